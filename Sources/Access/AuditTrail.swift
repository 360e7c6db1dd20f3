import Crypto
import Foundation
import Logging
import PostgresNIO
import Storage

/// One entry of the audit trail: who did what to which resource, for which resident, why.
/// It carries a resident's pseudonym, never their name or identity number.
public struct AuditEvent: Sendable, Equatable {
    public var actor: String
    public var role: String?
    public var facility: String?
    /// Dotted verb, e.g. `facility.create`, `resident.read`, `auth.token.denied`.
    public var action: String
    /// The resource touched, e.g. `facility/520102001`; never a raw identity number.
    public var resource: String
    public var residentPseudonym: String?
    public var purpose: String
    /// `success`, `denied` or `error`.
    public var outcome: String
    public var requestID: String?
    public var clientAddress: String?
    /// A short machine reason (`bad-secret`, `locked`); never a payload.
    public var detail: String?

    public init(
        actor: String, role: String? = nil, facility: String? = nil, action: String, resource: String,
        residentPseudonym: String? = nil, purpose: String, outcome: String = "success", requestID: String? = nil,
        clientAddress: String? = nil, detail: String? = nil
    ) {
        self.actor = actor
        self.role = role
        self.facility = facility
        self.action = action
        self.resource = resource
        self.residentPseudonym = residentPseudonym
        self.purpose = purpose
        self.outcome = outcome
        self.requestID = requestID
        self.clientAddress = clientAddress
        self.detail = detail
    }

    public init(
        principal: Principal, action: String, resource: String, residentPseudonym: String? = nil, purpose: String, requestID: String?
    ) {
        self.init(
            actor: principal.clientID, role: principal.role.rawValue, facility: principal.facility, action: action,
            resource: resource, residentPseudonym: residentPseudonym, purpose: purpose, requestID: requestID)
    }
}

/// The hash that links an audit row to its predecessor. Pure, so `audit verify` and the writer
/// agree byte for byte: fields joined by the ASCII unit separator, an absent field distinct from
/// an empty one, the time as integer microseconds since 1970.
public enum AuditChain {
    public static let genesis = String(repeating: "0", count: 64)

    public static func hash(sequence: Int64, occurredAtMicros: Int64, event: AuditEvent, previous: String) -> String {
        let fields: [String?] = [
            String(sequence), String(occurredAtMicros), event.actor, event.role, event.facility, event.action,
            event.resource, event.residentPseudonym, event.purpose, event.outcome, event.requestID,
            event.clientAddress, event.detail, previous,
        ]
        var bytes: [UInt8] = []
        for field in fields {
            if let field {
                bytes.append(0x01)
                bytes.append(contentsOf: field.utf8)
            } else {
                bytes.append(0x00)
            }
            bytes.append(0x1F)
        }
        return SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}

/// What `audit verify` found.
public struct AuditVerification: Sendable, Equatable {
    public var rowsChecked: Int
    /// The first row whose link does not hold, and why; nil when the whole chain holds.
    public var firstBroken: (sequence: Int64, reason: String)?

    public var isIntact: Bool { firstBroken == nil }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.rowsChecked == rhs.rowsChecked && lhs.firstBroken?.sequence == rhs.firstBroken?.sequence
            && lhs.firstBroken?.reason == rhs.firstBroken?.reason
    }
}

/// The append-only, hash-chained audit trail in `access.audit_log`.
///
/// Appending takes the single chain-head row with `UPDATE … RETURNING`, which serialises writers
/// for the length of their transaction: concurrent writers queue instead of forking the chain.
/// Callers that change personal health information append inside their own transaction, so the
/// change and its audit row commit or vanish together.
public struct AuditTrail: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Appends in a transaction of its own.
    public func record(_ event: AuditEvent) async throws {
        try await client.transaction(logger: logger) { connection in
            try await Self.append(event, on: connection, logger: logger)
        }
    }

    /// Appends on a connection that is inside the caller's transaction.
    public static func append(_ event: AuditEvent, on connection: PostgresConnection, logger: Logger) async throws {
        let head = try await connection.query(
            "UPDATE access.audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash", logger: logger
        ).collect()
        guard let (sequence, previous) = try head.first?.decode((Int64, String).self) else {
            throw AuditTrailError.missingHead
        }
        let micros = Int64((Date().timeIntervalSince1970 * 1_000_000).rounded(.down))
        let hash = AuditChain.hash(sequence: sequence, occurredAtMicros: micros, event: event, previous: previous)
        // Row and new head in one statement: the head lock is held for as few round trips as possible.
        try await connection.query(
            """
            WITH appended AS (
                INSERT INTO access.audit_log (seq, occurred_at, actor, role, facility, action, resource,
                    resident_pseudonym, purpose, outcome, request_id, client_address, detail, prev_hash, hash)
                VALUES (\(sequence), timestamptz 'epoch' + \(micros) * interval '1 microsecond', \(event.actor),
                    \(event.role), \(event.facility), \(event.action), \(event.resource), \(event.residentPseudonym),
                    \(event.purpose), \(event.outcome), \(event.requestID), \(event.clientAddress), \(event.detail),
                    \(previous), \(hash))
                RETURNING hash)
            UPDATE access.audit_head SET hash = appended.hash FROM appended WHERE id = 1
            """, logger: logger)
    }

    /// Walks the chain in order, streaming rows, and names the first row whose link is broken:
    /// a changed field, a removed or reordered row, or a tail cut off behind the head.
    public func verify() async throws -> AuditVerification {
        // One repeatable-read snapshot for the rows and the head, so appends that commit while
        // the walk runs are not mistaken for a cut-off tail.
        try await client.withConnection { connection in
            try await connection.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger) {
                try await verify(on: connection)
            }
        }
    }

    private func verify(on connection: PostgresConnection) async throws -> AuditVerification {
        var previousHash = AuditChain.genesis
        var expected: Int64 = 1
        var checked = 0
        let rows = try await connection.query(
            """
            SELECT seq, (extract(epoch FROM occurred_at) * 1000000)::bigint, actor, role, facility, action, resource,
                   resident_pseudonym, purpose, outcome, request_id, client_address, detail, prev_hash, hash
            FROM access.audit_log ORDER BY seq
            """, logger: logger)
        for try await row in rows {
            let (sequence, micros, actor, role, facility, action, resource) = try row.decode(
                (Int64, Int64, String, String?, String?, String, String).self)
            let columns = row.makeRandomAccess()
            let event = AuditEvent(
                actor: actor, role: role, facility: facility, action: action, resource: resource,
                residentPseudonym: try columns[7].decode(String?.self), purpose: try columns[8].decode(String.self),
                outcome: try columns[9].decode(String.self), requestID: try columns[10].decode(String?.self),
                clientAddress: try columns[11].decode(String?.self), detail: try columns[12].decode(String?.self))
            let storedPrevious = try columns[13].decode(String.self)
            let storedHash = try columns[14].decode(String.self)
            if sequence != expected {
                return AuditVerification(
                    rowsChecked: checked, firstBroken: (expected, "row \(expected) is missing (next row is \(sequence))"))
            }
            if storedPrevious != previousHash {
                return AuditVerification(
                    rowsChecked: checked, firstBroken: (sequence, "previous-hash link does not match row \(sequence - 1)"))
            }
            let recomputed = AuditChain.hash(sequence: sequence, occurredAtMicros: micros, event: event, previous: storedPrevious)
            if recomputed != storedHash {
                return AuditVerification(rowsChecked: checked, firstBroken: (sequence, "contents do not match the row's hash"))
            }
            previousHash = storedHash
            expected += 1
            checked += 1
        }
        let head = try await connection.query("SELECT seq, hash FROM access.audit_head WHERE id = 1", logger: logger).collect()
        if let (headSequence, headHash) = try head.first?.decode((Int64, String).self),
            headSequence != expected - 1 || headHash != previousHash
        {
            return AuditVerification(
                rowsChecked: checked,
                firstBroken: (expected, "rows after \(expected - 1) are missing (the head is at \(headSequence))"))
        }
        return AuditVerification(rowsChecked: checked, firstBroken: nil)
    }
}

public enum AuditTrailError: Error, CustomStringConvertible {
    case missingHead
    public var description: String { "access.audit_head has no row; migrations have not run" }
}
