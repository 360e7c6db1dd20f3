import Access
import Foundation
import HTTPTypes
import Hummingbird
import Logging

extension HTTPField.Name {
    static let requestID = Self("X-Request-Id")!
}

/// Gives every request an id (the caller's `X-Request-Id` when it is a sane token), puts it on
/// the response and on every log line, caps the body, and turns every error into problem+json.
/// Logs name the route template and status, never the raw path or query: identity numbers travel
/// in paths such as `/id-numbers/{number}/check`.
public struct EdgeMiddleware: RouterMiddleware {
    public typealias Context = QianyunRequestContext
    let maximumBodyBytes: Int
    let routes: RouteTable
    /// Paths whose body may be larger than `maximumBodyBytes` (a clinical document with its
    /// attachments), with their own cap.
    let largerBodies: [String: Int]

    public init(maximumBodyBytes: Int, routes: RouteTable, largerBodies: [String: Int] = [:]) {
        self.maximumBodyBytes = maximumBodyBytes
        self.routes = routes
        self.largerBodies = largerBodies
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let requestID = Self.acceptableID(request.headers[.requestID]) ?? Self.newID()
        context.requestID = requestID
        let limit = largerBodies[request.uri.path] ?? maximumBodyBytes
        context.maxUploadSize = limit
        context.logger[metadataKey: "request.id"] = .string(requestID)
        let started = ContinuousClock.now
        var response: Response
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            response = Problem.from(HTTPError(.contentTooLarge)).response(requestID: requestID)
        } else {
            do {
                response = try await next(request, context)
            } catch let error as HTTPError where error.status == .notFound {
                // A path we serve, asked with a method we do not: 405 and the methods we do.
                let allowed = routes.methods(forPath: request.uri.path)
                if allowed.isEmpty || allowed.contains(request.method) {
                    response = Problem.from(error).response(requestID: requestID)
                } else {
                    var problem = Problem.from(HTTPError(.methodNotAllowed))
                    problem.headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
                    response = problem.response(requestID: requestID)
                }
            } catch {
                var problem = Problem.from(error)
                problem.requestID = requestID
                if problem.status.code >= 500 {
                    context.logger.error("request failed", metadata: ["error.type": "\(String(reflecting: type(of: error)))"])
                }
                response = problem.response(requestID: requestID)
            }
        }
        response.headers[.requestID] = requestID
        let elapsed = ContinuousClock.now - started
        context.logger.info(
            "request",
            metadata: [
                "http.method": "\(request.method)", "http.route": "\(context.endpointPath ?? "unmatched")",
                "http.status": "\(response.status.code)",
                "http.duration_ms": "\((elapsed / .microseconds(1)).rounded() / 1000)",
            ])
        return response
    }

    static func acceptableID(_ value: String?) -> String? {
        guard let value, (1...64).contains(value.utf8.count),
            value.utf8.allSatisfy({
                $0 == 0x2D || $0 == 0x2E || $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0)
                    || (0x61...0x7A).contains($0)
            })
        else { return nil }
        return value
    }

    static func newID() -> String {
        UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    }
}

/// Resolves the bearer token into the request's principal; every route behind it requires one.
public struct AuthenticationMiddleware: RouterMiddleware {
    public typealias Context = QianyunRequestContext
    let tokens: TokenService

    public init(tokens: TokenService) {
        self.tokens = tokens
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw AccessError.unauthenticated("missing bearer token")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty else {
            throw AccessError.unauthenticated("Authorization header must be 'Bearer <token>'")
        }
        var context = context
        let principal = try await tokens.principal(fromBearer: String(parts[1]).trimmingCharacters(in: .whitespaces))
        context.principal = principal
        context.logger[metadataKey: "client.id"] = .string(principal.clientID)
        context.logger[metadataKey: "client.role"] = .string(principal.role.rawValue)
        return try await next(request, context)
    }
}

/// The routes' templates and methods, filled once the router is built, so the edge can tell an
/// unknown path (404) from a known path asked with the wrong method (405).
public final class RouteTable: @unchecked Sendable {
    // Written once by `buildRouter` before the server starts, read-only afterwards.
    private var templates: [([Substring], HTTPRequest.Method)] = []

    public init() {}

    func fill(_ routes: [(String, HTTPRequest.Method)]) {
        templates = routes.map { (template, method) in (template.split(separator: "/"), method) }
    }

    func methods(forPath path: String) -> [HTTPRequest.Method] {
        let parts = path.split(separator: "/")
        var methods: [HTTPRequest.Method] = []
        for (template, method) in templates where template.count == parts.count {
            let matches = zip(template, parts).allSatisfy { $0.hasPrefix("{") || $0.hasPrefix(":") || $0 == $1 }
            if matches, !methods.contains(method) { methods.append(method) }
        }
        return methods.sorted { $0.rawValue < $1.rawValue }
    }
}
