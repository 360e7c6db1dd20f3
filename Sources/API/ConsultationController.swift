import Access
import Consultation
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Storage

extension HTTPField.Name {
    static let lastEventID = Self("Last-Event-ID")!
}

/// `/api/v1/consultations…` (the online-consultation queue, its messages and live streams) and
/// `/api/v1/duty-rosters`.
public struct ConsultationController: Sendable {
    let consultations: ConsultationService
    let messages: MessageService
    let rosters: RosterService
    let feed: ConsultationEventFeed
    /// How long a stream may stay silent before it sends a keep-alive comment (proxies close idle
    /// connections); also how often a stream reads the events table when no wake-up came.
    let keepAlive: Duration

    public init(
        consultations: ConsultationService, messages: MessageService, rosters: RosterService, feed: ConsultationEventFeed,
        keepAlive: Duration = .seconds(15)
    ) {
        self.consultations = consultations
        self.messages = messages
        self.rosters = rosters
        self.feed = feed
        self.keepAlive = keepAlive
    }

    public func addRoutes(to group: RouterGroup<QianyunRequestContext>) {
        group.post("consultations", use: create)
        group.get("consultations", use: list)
        group.post("consultations/claim", use: claim)
        group.get("consultations/stream", use: departmentStream)
        group.get("consultations/{id}", use: read)
        group.post("consultations/{id}/accept", use: accept)
        group.post("consultations/{id}/transfer", use: transfer)
        group.post("consultations/{id}/complete", use: complete)
        group.post("consultations/{id}/cancel", use: cancel)
        group.get("consultations/{id}/messages", use: listMessages)
        group.post("consultations/{id}/messages", use: postMessage)
        group.get("consultations/{id}/events", use: consultationStream)
        group.post("duty-rosters", use: addShift)
        group.get("duty-rosters", use: listShifts)
    }

    struct Items<Item: Encodable & Sendable>: Encodable, Sendable {
        let items: [Item]
        var nextCursor: String? = nil
    }

    @Sendable func create(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Consultation> {
        let body = try await request.decodeJSON(ConsultationRequest.self, context: context)
        let created = try await consultations.request(body, by: try context.requirePrincipal(), requestID: context.requestID)
        return JSONBody(created, status: .created, headers: noStore)
    }

    @Sendable func list(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<Consultation>> {
        let query = request.uri.queryParameters
        let page = try PageRequest(limit: query["limit"].map(String.init), cursor: query["cursor"].map(String.init))
        let found = try await consultations.list(
            status: query["status"].map(String.init), department: query["department"].map(String.init), page: page,
            by: try context.requirePrincipal(), requestID: context.requestID)
        return JSONBody(Items(items: found.items, nextCursor: found.nextCursor), headers: noStore)
    }

    @Sendable func read(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Consultation> {
        JSONBody(
            try await consultations.consultation(
                id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func claim(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Consultation> {
        JSONBody(try await consultations.claim(by: try context.requirePrincipal(), requestID: context.requestID), headers: noStore)
    }

    @Sendable func accept(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Consultation> {
        JSONBody(
            try await consultations.accept(
                id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func transfer(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Consultation> {
        let body = try await request.decodeJSON(TransferRequest.self, context: context)
        return JSONBody(
            try await consultations.transfer(
                body, id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func complete(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Consultation> {
        let body = try await request.decodeJSON(CompletionRequest.self, context: context)
        return JSONBody(
            try await consultations.complete(
                body, id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func cancel(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Consultation> {
        JSONBody(
            try await consultations.cancel(
                id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func listMessages(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<ConsultationMessage>> {
        JSONBody(
            Items(
                items: try await messages.messages(
                    consultation: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID)),
            headers: noStore)
    }

    @Sendable func postMessage(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<ConsultationMessage> {
        let body = try await request.decodeJSON(MessageRequest.self, context: context)
        return JSONBody(
            try await messages.post(
                body, consultation: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            status: .created, headers: noStore)
    }

    @Sendable func addShift(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<DutyShift> {
        let body = try await request.decodeJSON(ShiftRequest.self, context: context)
        return JSONBody(
            try await rosters.add(body, by: try context.requirePrincipal(), requestID: context.requestID), status: .created,
            headers: noStore)
    }

    @Sendable func listShifts(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<DutyShift>> {
        let query = request.uri.queryParameters
        return JSONBody(
            Items(
                items: try await rosters.list(
                    department: query["department"].map(String.init), from: try Self.time(query, "from"), to: try Self.time(query, "to"),
                    by: try context.requirePrincipal())), headers: noStore)
    }

    static func time(_ query: Hummingbird.Parameters, _ name: String) throws -> Date? {
        guard let text = query[name[...]].map(String.init) else { return nil }
        if let date = ISO8601DateFormatter().date(from: text) { return date }
        throw ConsultationError.invalid(field: name, reason: "must be an ISO 8601 time (2026-12-01T08:00:00+08:00)")
    }

    @Sendable func consultationStream(_ request: Request, context: QianyunRequestContext) async throws -> Response {
        let text = try context.parameters.require("id")
        guard let id = UUID(uuidString: text) else { throw ConsultationError.notFound("consultation \(text.prefix(40))") }
        return try await stream(.consultation(id), request: request, context: context)
    }

    @Sendable func departmentStream(_ request: Request, context: QianyunRequestContext) async throws -> Response {
        guard let text = request.uri.queryParameters["department"].map(String.init), let id = UUID(uuidString: text) else {
            throw ConsultationError.invalid(field: "department", reason: "is required (stream?department=<id>)")
        }
        return try await stream(.department(id), request: request, context: context)
    }

    /// Server-sent events: every event after `Last-Event-ID` (or from the start), then each new
    /// one as it commits, with keep-alive comments in between. The stream ends after `timeout`
    /// seconds (default 300; EventSource reconnects by itself, sending `Last-Event-ID`).
    func stream(_ scope: ConsultationStreamScope, request: Request, context: QianyunRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        var seconds = 300
        if let text = request.uri.queryParameters["timeout"] {
            guard let value = Int(String(text)), (1...3600).contains(value) else {
                throw ConsultationError.invalid(field: "timeout", reason: "must be a whole number of seconds from 1 to 3600")
            }
            seconds = value
        }
        var after: Int64 = 0
        if let text = request.headers[.lastEventID] {
            guard let value = Int64(text), value >= 0 else {
                throw ConsultationError.invalid(field: "Last-Event-ID", reason: "must be an event id this service sent")
            }
            after = value
        }
        try await feed.authorize(scope, by: principal, requestID: context.requestID)
        let feed = self.feed
        let keepAlive = self.keepAlive
        let (start, lifetime) = (after, seconds)
        let headers: HTTPFields = [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-store"]
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: "retry: 3000\n\n"))
                let deadline = ContinuousClock.now + .seconds(lifetime)
                var lastWrite = ContinuousClock.now
                // Event ids come from a sequence, and a transaction that took a smaller id can
                // commit after one that took a larger: reading strictly after the last id sent
                // could skip it. So each read starts at `floor`, which trails what was sent by
                // five seconds (far longer than any of these transactions stays open), and ids
                // already sent in that window are not sent twice.
                var floor = start
                var sent: [Int64: ContinuousClock.Instant] = [:]
                while !Task.isCancelled {
                    let seen = await feed.hub.current()
                    var text = ""
                    let now = ContinuousClock.now
                    var from = floor
                    while true {
                        let page = try await feed.events(scope, after: from)
                        for event in page where sent[event.id] == nil {
                            sent[event.id] = now
                            let data = String(decoding: try JSONEncoder.api.encode(event), as: UTF8.self)
                            text += "id: \(event.id)\nevent: \(event.kind)\ndata: \(data)\n\n"
                        }
                        guard page.count == ConsultationEventFeed.pageSize, let last = page.last else { break }
                        from = last.id
                    }
                    for (id, at) in sent where now - at > .seconds(5) {
                        floor = max(floor, id)
                        sent.removeValue(forKey: id)
                    }
                    if !text.isEmpty {
                        try await writer.write(ByteBuffer(string: text))
                        lastWrite = now
                    } else if now - lastWrite >= keepAlive {
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        lastWrite = now
                    }
                    // The read after the wait that reached the deadline is the last.
                    let remaining = deadline - now
                    if remaining <= .zero { break }
                    await feed.hub.wait(beyond: seen, timeout: min(remaining, keepAlive))
                }
                try await writer.finish(nil)
            })
    }
}
