import Access
import Foundation
import HL7v2
import PostgresNIO

/// Who a message came from and under which identity its effects are recorded.
public struct HL7Context: Sendable {
    /// The registered facility the sender resolved to.
    public var facility: String
    /// A `his` principal for that facility: the registry's access rules apply as for its HTTP client.
    public var principal: Principal
    /// The inbox row's id, used as the request id of every audit row the message writes.
    public var messageID: UUID
    /// Today in China, yyyymmdd.
    public var today: Int
}

/// What applying a message did.
public struct HL7Applied: Sendable, Equatable {
    public var residentID: UUID?
    /// Reported to the sender as ERR segments of severity W; never patient data.
    public var warnings: [String]

    public init(residentID: UUID? = nil, warnings: [String] = []) {
        self.residentID = residentID
        self.warnings = warnings
    }
}

/// Applies one kind of message inside the gateway's transaction, so its effects commit with the
/// inbox row or not at all. Throws `HL7ApplicationError` for content the sender must fix.
public protocol HL7Application: Sendable {
    func apply(_ message: HL7Message, context: HL7Context, on connection: PostgresConnection) async throws -> HL7Applied
}

/// An application that applies several messages in one transaction with fewer round trips than
/// one at a time: the gateway's group commit hands it the messages that arrived together. No two
/// of them concern the same patient of the same facility. Each result is its message's alone:
/// an error that is not a database error must leave nothing written for that message, so the
/// others commit; a database error aborts the transaction, and the gateway reruns the messages
/// one at a time.
public protocol HL7BatchApplication: HL7Application {
    /// Whether this message may share a transaction (a merge, say, may rather run alone).
    func canBatch(_ message: HL7Message) -> Bool
    func apply(batch: [(message: HL7Message, context: HL7Context)], on connection: PostgresConnection) async throws
        -> [Result<HL7Applied, any Error>]
}

/// Message type and trigger → application. Later modules add theirs (ORU^R01 → records, …).
public struct HL7Router: Sendable {
    var routes: [String: any HL7Application] = [:]

    public init() {}

    public mutating func route(_ messageCode: String, _ triggers: [String], to application: any HL7Application) {
        for trigger in triggers { routes[messageCode.uppercased() + "^" + trigger.uppercased()] = application }
    }

    /// The application for a message, or the error that says why there is none (200 when the
    /// message type is unknown, 201 when only its trigger is).
    func application(for type: MSG) -> Result<any HL7Application, HL7ApplicationError> {
        let code = type.messageCode.uppercased()
        if let application = routes[code + "^" + type.triggerEvent.uppercased()] { return .success(application) }
        let location = HL7Location(segmentID: "MSH", segmentSequence: 1, field: 9)
        if routes.keys.contains(where: { $0.hasPrefix(code + "^") }) {
            var at = location
            at.component = 2
            return .failure(
                HL7ApplicationError(.unsupportedEventCode, at, "no handler for trigger event \(type.triggerEvent) of \(code) yet"))
        }
        return .failure(HL7ApplicationError(.unsupportedMessageType, location, "no handler for message type \(code) yet"))
    }

    var supported: [String] { routes.keys.sorted() }
}
