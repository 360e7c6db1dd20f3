import Crypto
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
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

/// The hash that links an audit row to its predecessor. Pure, so `audit verify` and the sealer
/// agree byte for byte: fields joined by the ASCII unit separator, an absent field distinct from
/// an empty one, the time as integer microseconds since 1970.
public enum AuditChain {
    public static let genesis = String(repeating: "0", count: 64)

    public static func hash(sequence: Int64, rowID: Int64, occurredAtMicros: Int64, event: AuditEvent, previous: String) -> String {
        let fields: [String?] = [
            String(sequence), String(rowID), String(occurredAtMicros), event.actor, event.role, event.facility, event.action,
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
        return SHA256.hash(data: bytes).hexString
    }
}

/// What `audit verify` found.
public struct AuditVerification: Sendable, Equatable {
    public var rowsChecked: Int
    /// The first chain position whose link does not hold, and why; nil when the chain holds.
    public var firstBroken: (sequence: Int64, reason: String)?
    /// Rows written but not yet sealed into the chain (normally only the last fraction of a second).
    public var unsealed: Int = 0

    public var isIntact: Bool { firstBroken == nil }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.rowsChecked == rhs.rowsChecked && lhs.firstBroken?.sequence == rhs.firstBroken?.sequence
            && lhs.firstBroken?.reason == rhs.firstBroken?.reason && lhs.unsealed == rhs.unsealed
    }
}

/// The append-only, hash-chained audit trail in `access.audit_log`.
///
/// Writers append with one INSERT inside their own transaction, so a change to personal health
/// information and its audit row commit or vanish together, and writers never wait for each
/// other; a trigger queues each new row in `access.audit_unsealed`. A single sealer (the
/// chain-head row's lock keeps it single across instances) then links committed rows in batches,
/// appending chain position, previous hash and own hash to `access.audit_chain`: the audit row
/// itself is never updated, so auditing leaves no dead tuples behind. Serialising writers on the
/// head instead would hold one lock across every writer's commit and cap audited work at the
/// disk's flush rate, about 600 per second here.
public struct AuditTrail: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Appends in a statement of its own.
    public func record(_ event: AuditEvent) async throws {
        try await client.withConnection { connection in
            try await Self.append(event, on: connection, logger: logger)
        }
    }

    /// Appends on a connection, normally inside the caller's transaction.
    public static func append(_ event: AuditEvent, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO access.audit_log (occurred_at, actor, role, facility, action, resource, resident_pseudonym,
                purpose, outcome, request_id, client_address, detail)
            VALUES (date_trunc('microseconds', clock_timestamp()), \(event.actor), \(event.role), \(event.facility),
                \(event.action), \(event.resource), \(event.residentPseudonym), \(event.purpose), \(event.outcome),
                \(event.requestID), \(event.clientAddress), \(event.detail))
            """, logger: logger)
    }

    /// Appends many rows in one statement (a bulk import writes one row per resident it touches).
    public static func append(_ events: [AuditEvent], on connection: PostgresConnection, logger: Logger) async throws {
        guard !events.isEmpty else { return }
        var binds = PostgresBindings()
        binds.append(try json(events))
        try await connection.query(PostgresQuery(unsafeSQL: insertSQL(json: "$1"), binds: binds), logger: logger)
    }

    /// The INSERT of rows given as `json(_:)` text in parameter `placeholder` (`$1`), for a caller
    /// that writes its audit rows in the same statement (a data-modifying CTE) as the change itself.
    public static func insertSQL(json placeholder: String) -> String {
        """
        INSERT INTO access.audit_log (occurred_at, actor, role, facility, action, resource, resident_pseudonym,
            purpose, outcome, request_id, client_address, detail)
        SELECT date_trunc('microseconds', clock_timestamp()), actor, role, facility, action, resource, resident_pseudonym,
            purpose, outcome, request_id, client_address, detail
        FROM jsonb_to_recordset(\(placeholder)::jsonb) AS x(actor text, role text, facility text, action text, resource text,
            resident_pseudonym text, purpose text, outcome text, request_id text, client_address text, detail text)
        """
    }

    public static func json(_ events: [AuditEvent]) throws -> String {
        struct Row: Encodable {
            let actor: String, role: String?, facility: String?, action: String, resource: String
            let resident_pseudonym: String?, purpose: String, outcome: String, request_id: String?, client_address: String?
            let detail: String?
        }
        let rows = events.map {
            Row(
                actor: $0.actor, role: $0.role, facility: $0.facility, action: $0.action, resource: $0.resource,
                resident_pseudonym: $0.residentPseudonym, purpose: $0.purpose, outcome: $0.outcome, request_id: $0.requestID,
                client_address: $0.clientAddress, detail: $0.detail)
        }
        return String(decoding: try JSONEncoder().encode(rows), as: UTF8.self)
    }

    /// Links every committed, unsealed row into the chain, in batches; returns how many it sealed.
    @discardableResult
    public func seal(batchSize: Int = 2000) async throws -> Int {
        var total = 0
        while true {
            let sealed = try await client.transaction(logger: logger) { connection in
                try await sealBatch(on: connection, limit: batchSize)
            }
            total += sealed
            if sealed < batchSize { return total }
        }
    }

    private func sealBatch(on connection: PostgresConnection, limit: Int) async throws -> Int {
        let head = try await connection.query("SELECT seq, hash FROM access.audit_head WHERE id = 1 FOR UPDATE", logger: logger).collect()
        guard var (sequence, previous) = try head.first?.decode((Int64, String).self) else { throw AuditTrailError.missingHead }
        var ids: [Int64] = []
        var sequences: [Int64] = []
        var previousHashes: [String] = []
        var hashes: [String] = []
        let rows = try await connection.query(
            """
            SELECT a.id, (extract(epoch FROM a.occurred_at) * 1000000)::bigint, a.actor, a.role, a.facility, a.action, a.resource,
                   a.resident_pseudonym, a.purpose, a.outcome, a.request_id, a.client_address, a.detail
            FROM access.audit_unsealed u JOIN access.audit_log a ON a.id = u.id ORDER BY u.id LIMIT \(limit)
            """, logger: logger)
        for try await row in rows {
            let (id, micros, event) = try Self.decodeEvent(row)
            sequence += 1
            let hash = AuditChain.hash(sequence: sequence, rowID: id, occurredAtMicros: micros, event: event, previous: previous)
            ids.append(id)
            sequences.append(sequence)
            previousHashes.append(previous)
            hashes.append(hash)
            previous = hash
        }
        guard !ids.isEmpty else { return 0 }
        try await connection.query(
            """
            INSERT INTO access.audit_chain (seq, audit_id, prev_hash, hash)
            SELECT * FROM unnest(\(sequences)::bigint[], \(ids)::bigint[], \(previousHashes)::text[], \(hashes)::text[])
            """, logger: logger)
        try await connection.query("DELETE FROM access.audit_unsealed WHERE id = ANY(\(ids)::bigint[])", logger: logger)
        try await connection.query("UPDATE access.audit_head SET seq = \(sequence), hash = \(previous) WHERE id = 1", logger: logger)
        return ids.count
    }

    static func decodeEvent(_ row: PostgresRow) throws -> (Int64, Int64, AuditEvent) {
        let (id, micros, actor, role, facility, action, resource) = try row.decode(
            (Int64, Int64, String, String?, String?, String, String).self)
        let columns = row.makeRandomAccess()
        let event = AuditEvent(
            actor: actor, role: role, facility: facility, action: action, resource: resource,
            residentPseudonym: try columns[7].decode(String?.self), purpose: try columns[8].decode(String.self),
            outcome: try columns[9].decode(String.self), requestID: try columns[10].decode(String?.self),
            clientAddress: try columns[11].decode(String?.self), detail: try columns[12].decode(String?.self))
        return (id, micros, event)
    }

    /// Walks the chain in order, streaming rows, and names the first position whose link is
    /// broken: a changed field, a removed or reordered row, or a tail cut off behind the head.
    public func verify() async throws -> AuditVerification {
        // One repeatable-read snapshot for the rows and the head, so a batch sealed while the
        // walk runs is not mistaken for a cut-off tail.
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
            SELECT a.id, (extract(epoch FROM a.occurred_at) * 1000000)::bigint, a.actor, a.role, a.facility, a.action, a.resource,
                   a.resident_pseudonym, a.purpose, a.outcome, a.request_id, a.client_address, a.detail, c.seq, c.prev_hash, c.hash,
                   c.audit_id
            FROM access.audit_chain c LEFT JOIN access.audit_log a ON a.id = c.audit_id ORDER BY c.seq
            """, logger: logger)
        func broken(_ sequence: Int64, _ reason: String) -> AuditVerification {
            AuditVerification(rowsChecked: checked, firstBroken: (sequence, reason))
        }
        for try await row in rows {
            let columns = row.makeRandomAccess()
            let sequence = try columns[13].decode(Int64.self)
            let storedPrevious = try columns[14].decode(String.self)
            let storedHash = try columns[15].decode(String.self)
            if sequence != expected {
                return broken(expected, "row \(expected) is missing (next row is \(sequence))")
            }
            guard try columns[0].decode(Int64?.self) != nil else {
                return broken(sequence, "audit row \(try columns[16].decode(Int64.self)) is missing from access.audit_log")
            }
            let (id, micros, event) = try Self.decodeEvent(row)
            if storedPrevious != previousHash {
                return broken(sequence, "previous-hash link does not match row \(sequence - 1)")
            }
            let recomputed = AuditChain.hash(
                sequence: sequence, rowID: id, occurredAtMicros: micros, event: event, previous: storedPrevious)
            if recomputed != storedHash {
                return broken(sequence, "contents do not match the row's hash")
            }
            previousHash = storedHash
            expected += 1
            checked += 1
        }
        let head = try await connection.query("SELECT seq, hash FROM access.audit_head WHERE id = 1", logger: logger).collect()
        if let (headSequence, headHash) = try head.first?.decode((Int64, String).self),
            headSequence != expected - 1 || headHash != previousHash
        {
            return broken(expected, "rows after \(expected - 1) are missing (the head is at \(headSequence))")
        }
        let unsealed =
            try await connection.query(
                "SELECT count(*) FROM access.audit_unsealed", logger: logger
            ).collect().first?.decode(Int.self) ?? 0
        return AuditVerification(rowsChecked: checked, firstBroken: nil, unsealed: unsealed)
    }
}

/// Seals the audit chain every `interval` while the service runs, and once more on the way out.
public struct AuditSealer: Service {
    let trail: AuditTrail
    let interval: Duration
    let logger: Logger

    public init(trail: AuditTrail, interval: Duration = .milliseconds(250), logger: Logger) {
        self.trail = trail
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await trail.seal()
            } catch {
                logger.warning("audit sealing failed; will retry", metadata: ["error.type": "\(type(of: error))"])
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                break
            }
        }
        _ = try? await trail.seal()
    }
}

public enum AuditTrailError: Error, CustomStringConvertible {
    case missingHead
    public var description: String { "access.audit_head has no row; migrations have not run" }
}
