import Access
import Foundation
import HTTPTypes
import Hummingbird
import Records
import Storage

extension HTTPField.Name {
    /// An emergency read of another facility's record states its reason here; the read is
    /// allowed and flagged in the audit.
    static let breakGlassReason = Self("X-Break-Glass-Reason")!
}

/// `/api/v1/documents`: clinical documents (CDA R2) in, and their headers and original bytes out.
public struct DocumentController: Sendable {
    let documents: ClinicalDocuments

    public init(documents: ClinicalDocuments) {
        self.documents = documents
    }

    static let xmlTypes: Set<String> = ["application/xml", "text/xml", "application/hl7-cda+xml", "application/hl7-v3+xml"]

    public func addRoutes(to group: RouterGroup<QianyunRequestContext>) {
        group.post("documents", use: submit)
        group.get("documents/{id}", use: get)
        group.get("documents/{id}/content", use: content)
    }

    @Sendable func submit(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<DocumentReceipt> {
        let principal = try context.requirePrincipal()
        let type = request.headers[.contentType].map { $0.split(separator: ";")[0].trimmingCharacters(in: .whitespaces).lowercased() }
        guard let type, Self.xmlTypes.contains(type) else {
            throw HTTPError(.unsupportedMediaType, message: "send a CDA document as application/xml (or application/hl7-cda+xml)")
        }
        let body = try await request.body.collect(upTo: context.maxUploadSize)
        let receipt = try await documents.submit(Array(body.readableBytesView), by: principal, requestID: context.requestID)
        return JSONBody(
            receipt, status: receipt.status == .created ? .created : .ok,
            headers: [.location: "/api/v1/documents/\(receipt.document.id)", .cacheControl: "no-store"])
    }

    @Sendable func get(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<DocumentSummary> {
        JSONBody(
            try await documents.summary(
                id: try context.parameters.require("id"), by: try context.requirePrincipal(),
                breakGlass: request.headers[.breakGlassReason], requestID: context.requestID), headers: noStore)
    }

    /// The document exactly as it was sent.
    @Sendable func content(_ request: Request, context: QianyunRequestContext) async throws -> Response {
        let found = try await documents.content(
            id: try context.parameters.require("id"), by: try context.requirePrincipal(),
            breakGlass: request.headers[.breakGlassReason], requestID: context.requestID)
        return Response(
            status: .ok, headers: [.contentType: "application/xml", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: found.bytes)))
    }
}

/// `/api/v1/residents/{id}/record`: a resident's timeline across facilities, newest first.
public struct RecordController: Sendable {
    let reader: RecordReader

    public init(reader: RecordReader) {
        self.reader = reader
    }

    public func addRoutes(to group: RouterGroup<QianyunRequestContext>) {
        group.get("residents/{id}/record", use: timeline)
        group.get("residents/{id}/reports", use: reports)
        group.get("record/items/{id}", use: item)
    }

    struct Reports: Encodable, Sendable {
        let items: [Report]
        let nextCursor: String?
        let scope: String
    }

    /// Lab and exam reports for a patient's phone: results grouped by order or document.
    @Sendable func reports(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Reports> {
        let query = request.uri.queryParameters
        let page = try PageRequest(limit: query["limit"].map(String.init), cursor: query["cursor"].map(String.init))
        let found = try await reader.reports(
            resident: try context.parameters.require("id"), page: page, by: try context.requirePrincipal(),
            breakGlass: request.headers[.breakGlassReason], requestID: context.requestID)
        return JSONBody(Reports(items: found.reports, nextCursor: found.nextCursor, scope: found.scope), headers: noStore)
    }

    /// One item, visit or document header by id, history included.
    @Sendable func item(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<TimelineItem> {
        JSONBody(
            try await reader.item(
                id: try context.parameters.require("id"), by: try context.requirePrincipal(),
                breakGlass: request.headers[.breakGlassReason], requestID: context.requestID), headers: noStore)
    }

    @Sendable func timeline(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Timeline> {
        let query = request.uri.queryParameters
        let page = try PageRequest(limit: query["limit"].map(String.init), cursor: query["cursor"].map(String.init))
        func time(_ name: String) throws -> Date? {
            guard let text = query[name[...]].map(String.init) else { return nil }
            if let date = ISO8601DateFormatter().date(from: text) { return date }
            // A bare date is midnight China time.
            if let date = ISO8601DateFormatter().date(from: text + "T00:00:00+08:00") { return date }
            throw RecordsError.invalid(field: name, reason: "must be a date (2026-12-01) or an ISO 8601 time (2026-12-01T08:00:00+08:00)")
        }
        let filter = TimelineFilter(
            types: query["type"].map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }) },
            facility: query["facility"].map(String.init), from: try time("from"), to: try time("to"), code: query["code"].map(String.init))
        return JSONBody(
            try await reader.timeline(
                resident: try context.parameters.require("id"), filter: filter, page: page, by: try context.requirePrincipal(),
                breakGlass: request.headers[.breakGlassReason], requestID: context.requestID), headers: noStore)
    }
}

/// `/api/v1/residents/{id}/consents`: a resident lets a facility read their whole record, or
/// stops letting it.
public struct ConsentController: Sendable {
    let consents: Consents

    public init(consents: Consents) {
        self.consents = consents
    }

    struct Listed: Encodable, Sendable {
        let items: [Consent]
    }

    public func addRoutes(to group: RouterGroup<QianyunRequestContext>) {
        group.post("residents/{id}/consents", use: grant)
        group.get("residents/{id}/consents", use: list)
        group.delete("residents/{id}/consents/{consentId}", use: revoke)
    }

    @Sendable func grant(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Consent> {
        let body = try await request.decodeJSON(ConsentRequest.self, context: context)
        let consent = try await consents.grant(
            body, resident: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID)
        return JSONBody(consent, status: .created, headers: noStore)
    }

    @Sendable func list(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Listed> {
        JSONBody(
            Listed(
                items: try await consents.list(
                    resident: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID)),
            headers: noStore)
    }

    @Sendable func revoke(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Consent> {
        guard let id = Int64(try context.parameters.require("consentId")) else { throw RecordsError.notFound("consent") }
        return JSONBody(
            try await consents.revoke(
                id: id, resident: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }
}
