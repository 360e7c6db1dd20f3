import Access
import Foundation
import Logging
import PostgresNIO
import Storage

/// A stored message as operators see it: the header, the outcome and the error, never the
/// content (names and identity numbers stay sealed in the inbox).
public struct InboxMessage: Sendable, Codable, Equatable {
    public struct Failure: Sendable, Codable, Equatable {
        public var code: String
        /// HL7 table 0357.
        public var hl7Code: Int?
        public var location: String?
        public var text: String?
    }

    public var id: String
    public var receivedAt: Date
    public var facility: String?
    public var sendingApplication: String?
    public var sendingFacility: String?
    public var controlId: String?
    public var messageType: String?
    public var triggerEvent: String?
    public var version: String?
    public var charset: String?
    public var status: String
    public var ackCode: String
    public var error: Failure?
    public var warnings: [String]
    public var residentId: String?
    public var attempts: Int
    public var bytes: Int
    public var appliedAt: Date?
}

public struct InboxFilter: Sendable {
    public var facility: String?
    public var statuses: [String]?
    public var messageType: String?
    public var triggerEvent: String?
    public var since: Date?
    public var until: Date?

    public init(
        facility: String? = nil, statuses: [String]? = nil, messageType: String? = nil, triggerEvent: String? = nil, since: Date? = nil,
        until: Date? = nil
    ) {
        self.facility = facility
        self.statuses = statuses
        self.messageType = messageType
        self.triggerEvent = triggerEvent
        self.since = since
        self.until = until
    }

    public static let statuses = ["applied", "rejected", "failed", "unsupported"]
}

public enum InboxError: Error, Equatable, CustomStringConvertible {
    case invalid(field: String, reason: String)
    case notFound(String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "\(field): \(reason)"
        case .notFound(let what): "\(what) was not found"
        }
    }
}

/// The operator's view of the inbox: `admin` sees every facility's traffic, a HIS client its own.
public struct MessageLog: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let columns = """
        id, received_at, facility, sending_application, sending_facility, control_id, message_type, trigger_event, version, charset,
        status, ack_code, error_code, error_hl7_code, error_location, error_text, warnings, resident_id, attempts, byte_count, applied_at
        """

    /// Newest first, paged by (received_at, id).
    public func list(_ filter: InboxFilter, page: PageRequest, by principal: Principal) async throws -> Page<InboxMessage> {
        let facility = try scope(filter.facility, principal)
        if let statuses = filter.statuses, let bad = statuses.first(where: { !InboxFilter.statuses.contains($0) }) {
            throw InboxError.invalid(field: "status", reason: "\(bad) is not one of \(InboxFilter.statuses.joined(separator: ", "))")
        }
        var afterTime: Date?
        var afterID: UUID?
        if let after = page.after {
            let parts = after.split(separator: "|")
            guard parts.count == 2, let micros = Int64(parts[0]), let id = UUID(uuidString: String(parts[1])) else {
                throw InboxError.invalid(field: "cursor", reason: "is not one this list issued")
            }
            afterTime = Date(timeIntervalSince1970: Double(micros) / 1_000_000)
            afterID = id
        }
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.columns) FROM interop.messages
            WHERE (\(facility)::text IS NULL OR facility = \(facility))
              AND (\(filter.statuses)::text[] IS NULL OR status = ANY(\(filter.statuses)::text[]))
              AND (\(filter.messageType)::text IS NULL OR message_type = \(filter.messageType))
              AND (\(filter.triggerEvent)::text IS NULL OR trigger_event = \(filter.triggerEvent))
              AND (\(filter.since)::timestamptz IS NULL OR received_at >= \(filter.since))
              AND (\(filter.until)::timestamptz IS NULL OR received_at < \(filter.until))
              AND (\(afterTime)::timestamptz IS NULL OR (received_at, id) < (\(afterTime), \(afterID)))
            ORDER BY received_at DESC, id DESC LIMIT \(page.limit + 1)
            """, logger: logger)
        var messages: [InboxMessage] = []
        for try await row in rows { messages.append(try Self.message(row)) }
        return Page(rows: messages, limit: page.limit) { message in
            "\(Int64((message.receivedAt.timeIntervalSince1970 * 1_000_000).rounded()))|\(message.id)"
        }
    }

    public func get(id text: String, by principal: Principal) async throws -> InboxMessage {
        guard let id = UUID(uuidString: text) else { throw InboxError.notFound("message \(text)") }
        let facility = try scope(nil, principal)
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.columns) FROM interop.messages
            WHERE id = \(id) AND (\(facility)::text IS NULL OR facility = \(facility))
            """, logger: logger
        ).collect()
        guard let row = rows.first else { throw InboxError.notFound("message \(text)") }
        return try Self.message(row)
    }

    /// The facility a caller may see: all for `admin`, its own for `his`.
    func scope(_ requested: String?, _ principal: Principal) throws -> String? {
        switch principal.role {
        case .admin: return requested
        case .his:
            guard let own = principal.facility else { throw AccessError.forbidden("this client has no facility") }
            if let requested, requested != own { throw AccessError.forbidden("a HIS client sees only its own facility's messages") }
            return own
        default: throw AccessError.forbidden("role \(principal.role.rawValue) may not read the HL7 inbox")
        }
    }

    static func message(_ row: PostgresRow) throws -> InboxMessage {
        let columns = row.makeRandomAccess()
        func text(_ index: Int) throws -> String? { try columns[index].decode(String?.self) }
        let errorCode = try text(12)
        return InboxMessage(
            id: try columns[0].decode(UUID.self).uuidString.lowercased(), receivedAt: try columns[1].decode(Date.self),
            facility: try text(2), sendingApplication: try text(3), sendingFacility: try text(4), controlId: try text(5),
            messageType: try text(6), triggerEvent: try text(7), version: try text(8), charset: try text(9),
            status: try columns[10].decode(String.self), ackCode: try columns[11].decode(String.self),
            error: try errorCode.map { code in
                InboxMessage.Failure(code: code, hl7Code: try columns[13].decode(Int?.self), location: try text(14), text: try text(15))
            },
            warnings: try columns[16].decode([String].self), residentId: try columns[17].decode(UUID?.self)?.uuidString.lowercased(),
            attempts: try columns[18].decode(Int.self), bytes: try columns[19].decode(Int.self),
            appliedAt: try columns[20].decode(Date?.self))
    }
}
