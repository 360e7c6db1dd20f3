import Foundation
import HTTPTypes
import Hummingbird

/// An RFC 9457 problem: every error response of the API is one. `code` is stable and becomes the
/// `type` URI; `detail` says what is wrong without echoing what the caller sent.
public struct Problem: Error, HTTPResponseError, Sendable {
    public struct FieldError: Codable, Sendable, Equatable {
        public let field: String
        public let reason: String
    }

    public let status: HTTPResponse.Status
    public let code: String
    public let title: String
    public let detail: String
    public var fieldErrors: [FieldError] = []
    public var headers: HTTPFields = [:]
    /// Extra members some clients look for, e.g. OAuth2's `error`.
    public var extensions: [String: String] = [:]
    /// Structured extension members, e.g. the list of problems found in an identity number.
    var structured: [String: JSONValue] = [:]
    public var requestID: String?

    public init(_ status: HTTPResponse.Status, code: String, title: String, detail: String) {
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
    }

    public static let typePrefix = "urn:qianyun:problem:"

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        response(requestID: requestID)
    }

    public func response(requestID: String?) -> Response {
        var body: [String: JSONValue] = [
            "type": .string(Self.typePrefix + code), "title": .string(title), "status": .int(status.code),
            "detail": .string(detail),
        ]
        if let requestID { body["requestId"] = .string(requestID) }
        if !fieldErrors.isEmpty {
            body["errors"] = .array(fieldErrors.map { .object(["field": .string($0.field), "reason": .string($0.reason)]) })
        }
        for (key, value) in extensions { body[key] = .string(value) }
        for (key, value) in structured { body[key] = value }
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        headers[.cacheControl] = "no-store"
        let data = (try? JSONEncoder.api.encode(body)) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Just enough JSON to write problem bodies with a fixed key order.
enum JSONValue: Encodable, Sendable {
    case string(String)
    case int(Int)
    case bool(Bool)
    case decimal(Decimal)
    case array([JSONValue])
    case object([String: JSONValue])

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .decimal(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSONEncoder {
    static let api: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()
}

extension JSONDecoder {
    static let api: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}

/// A JSON response with a chosen status and headers.
public struct JSONBody<Value: Encodable & Sendable>: ResponseGenerator, Sendable {
    let value: Value
    let status: HTTPResponse.Status
    let headers: HTTPFields

    public init(_ value: Value, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) {
        self.value = value
        self.status = status
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try JSONEncoder.api.encode(value)
        var headers = self.headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension Request {
    /// Decodes a JSON body within the context's size cap; malformed JSON and wrong types become
    /// a 400 problem that names the field, never the value.
    func decodeJSON<Value: Decodable>(_ type: Value.Type, context: QianyunRequestContext) async throws -> Value {
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        do {
            return try JSONDecoder.api.decode(type, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw Problem.invalidBody(error)
        }
    }

    /// As `decodeJSON`, for an optional body: nil when the request has none.
    func decodeJSONOrEmpty<Value: Decodable>(_ type: Value.Type, context: QianyunRequestContext) async throws -> Value? {
        let buffer = try await body.collect(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else { return nil }
        do {
            return try JSONDecoder.api.decode(type, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw Problem.invalidBody(error)
        }
    }
}
