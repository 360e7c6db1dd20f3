import Access
import Foundation
import Logging
import NameMatching
import PostgresNIO
import Storage

/// One registration to run through the matcher: from the API (one at a time) or an import (in batches).
public struct Registration: Sendable {
    public var facility: String?
    public var localId: String?
    public var record: ResidentRecord
    /// `registration`, `import`, `admin` or `hl7`: recorded on the identifier it creates.
    public var source: String
    /// Who registers and under which request, when a batch mixes callers (the HL7 gateway commits
    /// messages from several facilities together); nil takes the batch's.
    public var actor: Principal?
    public var requestID: String?

    public init(
        facility: String?, localId: String?, record: ResidentRecord, source: String, actor: Principal? = nil, requestID: String? = nil
    ) {
        self.facility = facility
        self.localId = localId
        self.record = record
        self.source = source
        self.actor = actor
        self.requestID = requestID
    }
}

/// What the matcher did with a registration.
public struct RegistrationOutcome: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        /// A new resident was created; no existing resident resembled them.
        case created
        /// Linked to an existing resident the matcher was sure of.
        case linked
        /// A new resident was created, and pairs with similar residents wait on the review queue.
        case review
        /// The facility's patient id was already linked: nothing changed.
        case existing
        /// The row could not be registered (bulk import only; the API throws instead).
        case rejected
    }

    public var kind: Kind
    public var residentId: String?
    /// The winning candidate's Fellegi–Sunter weight, for `linked` and `review`.
    public var score: Double?
    public var evidence: [String]?
    public var reviewIds: [Int64]?
    public var reason: String?
}

/// Registration through the master patient index. A batch runs in one transaction: the facility
/// ids already known are answered first; the rest take advisory locks on their blocking-key
/// buckets (so two desks registering one new person at once cannot both create them), gather
/// candidates from the blocking index with a bounded fan-out per key, and are scored against
/// those candidates and against earlier rows of the same batch.
struct Registrar: Sendable {
    let codec: ResidentCodec
    let matcher: Matcher
    let logger: Logger

    /// Candidates read per blocking key: a placeholder phone shared by thousands must not make one
    /// registration read thousands of rows.
    static let fanOutPerKey = 64
    /// Advisory lock class of registration buckets (`pg_advisory_xact_lock(class, bucket)`).
    static let lockClass: Int32 = 0x5159
    static let buckets: Int64 = 1 << 16

    func register(
        _ registrations: [Registration], actor: Principal, requestID: String?, purpose: String, on connection: PostgresConnection
    ) async throws -> [RegistrationOutcome] {
        let keys = registrations.map { codec.matchKeys($0.record) }
        let references = try await referencesLocking(registrations, keys: keys, on: connection)
        return try await register(
            registrations, keys: keys, references: references, actor: actor, requestID: requestID, purpose: purpose, on: connection)
    }

    /// Registers with the references already read and the blocking-key buckets of `keys` already
    /// locked (`referencesLocking`).
    func register(
        _ registrations: [Registration], keys allKeysOf: [[Int64]], references: References, actor: Principal, requestID: String?,
        purpose: String, on connection: PostgresConnection
    ) async throws -> [RegistrationOutcome] {
        var outcomes = [RegistrationOutcome?](repeating: nil, count: registrations.count)
        let known = references.linked
        var pending: [Int] = []
        for (index, registration) in registrations.enumerated() {
            if let facility = registration.facility, !references.activeFacilities.contains(facility) {
                outcomes[index] = .init(kind: .rejected, reason: "facility \(facility) is not registered or not active")
            } else if let guardian = registration.record.guardianID, !references.guardians.contains(guardian) {
                outcomes[index] = .init(kind: .rejected, reason: "guardian.residentId names no resident")
            } else if let facility = registration.facility, let localId = registration.localId,
                let resident = known[facility + "\u{1F}" + localId]
            {
                outcomes[index] = .init(kind: .existing, residentId: resident.lowercased)
            } else {
                pending.append(index)
            }
        }
        guard !pending.isEmpty else { return outcomes.map { $0! } }

        let keys = pending.map { allKeysOf[$0] }
        let allKeys = Array(Set(keys.joined())).sorted()

        // Locked: the candidates, with what a concurrent registration may have added.
        var candidatesByKey: [Int64: [UUID]] = [:]
        var residents: [UUID: StoredResident] = [:]
        for row in try await connection.run(CandidatesStatement(keys: allKeys), logger: logger) {
            let resident = try codec.decode(row)
            residents[resident.id] = resident
            let cells = row.makeRandomAccess()
            for key in try cells[cells.count - 1].decode([Int64].self) { candidatesByKey[key, default: []].append(resident.id) }
        }

        var newResidents: [ResidentRow] = []
        var newByKey: [Int64: [UUID]] = [:]
        var newRecords: [UUID: ResidentRecord] = [:]
        var identifiers: [IdentifierRow] = []
        var matchKeys: [MatchKeyRow] = []
        var reviews: [ReviewRow] = []
        var events: [EventRow] = []
        var audits: [AuditEvent] = []
        var reviewOwner: [Int] = []
        var claimed: [String: UUID] = [:]

        for (position, index) in pending.enumerated() {
            let registration = registrations[index]
            let actor = registration.actor ?? actor
            let requestID = registration.requestID ?? requestID
            let pairKey = registration.facility.flatMap { f in registration.localId.map { f + "\u{1F}" + $0 } }
            if let pairKey, let resident = known[pairKey] ?? claimed[pairKey] {
                outcomes[index] = .init(kind: .existing, residentId: resident.lowercased)
                continue
            }
            let person = registration.record.person
            var scored: [(id: UUID, score: MatchScore)] = []
            var seen: Set<UUID> = []
            for key in keys[position] {
                for id in (candidatesByKey[key] ?? []) + (newByKey[key] ?? []) where seen.insert(id).inserted {
                    let candidate = residents[id]?.record ?? newRecords[id]
                    guard let candidate else { continue }
                    scored.append((id, matcher.score(person, candidate.person)))
                }
            }
            scored.sort { $0.score.weight > $1.score.weight }

            let residentID: UUID
            var outcome: RegistrationOutcome
            let holder = scored.first { sameDocument(registration.record, residents[$0.id]?.record ?? newRecords[$0.id]) }
            if let best = scored.first, best.score.decision == .link, holder == nil || holder!.id == best.id {
                residentID = best.id
                outcome = .init(kind: .linked, residentId: best.id.lowercased, score: best.score.weight, evidence: best.score.evidence)
                events.append(
                    EventRow(
                        resident_id: best.id, kind: "linked", actor: actor.clientID,
                        detail: ["facility": registration.facility ?? "", "score": String(best.score.weight)]))
            } else {
                residentID = UUID.timeOrdered()
                var record = registration.record
                var held: Document?
                if holder != nil {
                    // The number already names someone the matcher will not link to (a typo in the
                    // name, or a parent's number used for a child). A second holder would split the
                    // identity: the new resident is created without it, and the number waits on the
                    // review with the pair, encrypted, for an admin to settle.
                    held = record.document
                    record.document = nil
                }
                newResidents.append(try codec.row(id: residentID, record: record, registeredBy: registration.facility))
                newRecords[residentID] = record
                for key in keys[position] {
                    newByKey[key, default: []].append(residentID)
                    matchKeys.append(MatchKeyRow(key: key, resident_id: residentID))
                }
                events.append(
                    EventRow(resident_id: residentID, kind: "created", actor: actor.clientID, detail: ["source": registration.source]))
                var doubtful = Array(scored.filter { $0.score.decision == .review }.prefix(3))
                if let holder, !doubtful.contains(where: { $0.id == holder.id }) { doubtful.insert(holder, at: 0) }
                for candidate in doubtful {
                    var row = ReviewRow(
                        resident_id: residentID, candidate_id: candidate.id, score: candidate.score.weight,
                        evidence: candidate.score.evidence, facility: registration.facility)
                    if let held, candidate.id == holder?.id { try row.hold(held, codec: codec) }
                    reviews.append(row)
                    reviewOwner.append(index)
                }
                outcome =
                    doubtful.isEmpty
                    ? .init(kind: .created, residentId: residentID.lowercased)
                    : .init(
                        kind: .review, residentId: residentID.lowercased, score: doubtful.first!.score.weight,
                        evidence: doubtful.first!.score.evidence, reviewIds: [],
                        reason: held == nil
                            ? nil : "identity-number-held: the number is registered to the candidate; it is kept on the review")
            }
            if let facility = registration.facility, let localId = registration.localId, let pairKey {
                identifiers.append(
                    IdentifierRow(facility: facility, local_id: localId, resident_id: residentID, source: registration.source))
                claimed[pairKey] = residentID
            }
            audits.append(
                AuditEvent(
                    actor: actor.clientID, role: actor.role.rawValue, facility: actor.facility,
                    action: outcome.kind == .linked ? "resident.link" : "resident.create", resource: "resident/\(residentID.lowercased)",
                    residentPseudonym: codec.residentPseudonym(residentID), purpose: purpose, requestID: requestID,
                    detail: outcome.kind.rawValue))
            outcomes[index] = outcome
        }

        try await write(
            residents: newResidents, matchKeys: matchKeys, identifiers: identifiers, events: events, audits: audits, on: connection)
        if !reviews.isEmpty {
            let rows = try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO registry.match_reviews (resident_id, candidate_id, score, evidence, facility, held_document_type,
                            held_document_ciphertext, held_document_key_id, held_document_masked)
                        SELECT resident_id, candidate_id, score, ARRAY(SELECT jsonb_array_elements_text(evidence)), facility,
                            held_document_type, decode(held_document_ciphertext, 'hex'), held_document_key_id, held_document_masked
                        FROM jsonb_to_recordset($1::jsonb) AS x(resident_id uuid, candidate_id uuid, score float8, evidence jsonb,
                            facility text, held_document_type text, held_document_ciphertext text, held_document_key_id text,
                            held_document_masked text)
                        RETURNING id, resident_id
                        """,
                    binds: try jsonBinds(reviews)), logger: logger)
            var owners: [UUID: Int] = [:]
            for (review, owner) in zip(reviews, reviewOwner) { owners[review.resident_id] = owner }
            for try await (id, resident) in rows.decode((Int64, UUID).self) {
                if let owner = owners[resident] { outcomes[owner]?.reviewIds?.append(id) }
            }
        }
        return outcomes.map { $0! }
    }
}

/// Both records carry the same identity document.
func sameDocument(_ a: ResidentRecord, _ b: ResidentRecord?) -> Bool {
    guard let x = a.document, let y = b?.document else { return false }
    return x == y
}

/// `(facility, localId)` of a registration that carries both.
func pairKeyParts(_ registration: Registration) -> (String, String)? {
    registration.facility.flatMap { facility in registration.localId.map { (facility, $0) } }
}

/// What a registration batch must know before matching: the residents already linked to its
/// facility ids (keyed `facility␟localId`), which of its facilities are active, which guardians exist.
struct References {
    var linked: [String: UUID] = [:]
    var activeFacilities: Set<String> = []
    var guardians: Set<UUID> = []
}

extension Registrar {
    static func bucket(_ key: Int64) -> Int32 { Int32(truncatingIfNeeded: ((key % buckets) + buckets) % buckets) }

    /// In one round trip: the references, read before the locks (a registration of the same
    /// facility id committing meanwhile makes our identifier insert fail with a unique violation,
    /// and the caller reruns the transaction), and the advisory locks on the blocking-key buckets,
    /// so that the candidate query that follows sees every committed resident sharing a key and
    /// two desks registering one new person at once cannot both create them.
    func referencesLocking(
        _ registrations: [Registration], keys: [[Int64]], alsoLinked extraPairs: [(String, String)] = [], on connection: PostgresConnection
    ) async throws -> References {
        let pairs = registrations.compactMap(pairKeyParts) + extraPairs
        let buckets = Array(Set(keys.joined().map(Self.bucket))).sorted()
        var result = References()
        let rows = try await connection.run(
            ReferencesStatement(
                facilities: pairs.map(\.0), localIds: pairs.map(\.1), active: Array(Set(registrations.compactMap(\.facility))),
                buckets: buckets, guardians: Array(Set(registrations.compactMap(\.record.guardianID)))), logger: logger)
        for row in rows {
            let (kind, key, id) = try row.decode((String, String, UUID?).self)
            switch kind {
            case "l": result.linked[key] = id
            case "f": result.activeFacilities.insert(key)
            case "g": if let id { result.guardians.insert(id) }
            default: break
            }
        }
        return result
    }

    /// Batches up to this many new residents are written with one statement; larger ones (imports)
    /// with COPY, which costs a few round trips but parses nothing per row.
    static let statementWriteLimit = 64

    /// Writes new residents, their blocking keys, facility ids, history and audit rows.
    func write(
        residents: [ResidentRow], matchKeys: [MatchKeyRow], identifiers: [IdentifierRow], events: [EventRow], audits: [AuditEvent],
        on connection: PostgresConnection
    ) async throws {
        var seenKeys = Set<String>()
        let uniqueKeys = matchKeys.filter { seenKeys.insert("\($0.key)\u{1F}\($0.resident_id)").inserted }
        if residents.count > Self.statementWriteLimit {
            try await connection.copyRows(
                schema: "registry", table: "residents", columns: ResidentRow.copyColumns, rows: residents.map(\.copyValues),
                logger: logger)
            try await connection.copyRows(
                schema: "registry", table: "match_keys", columns: ["key", "resident_id"],
                rows: uniqueKeys.map { ["\($0.key)", $0.resident_id.lowercased] }, logger: logger)
            try await connection.copyRows(
                schema: "registry", table: "identifiers", columns: ["facility", "local_id", "resident_id", "source"],
                rows: identifiers.map { [$0.facility, $0.local_id, $0.resident_id.lowercased, $0.source] }, logger: logger)
            try await EventRow.insert(events, on: connection, logger: logger)
            try await AuditTrail.append(audits, on: connection, logger: logger)
            return
        }
        guard !residents.isEmpty || !identifiers.isEmpty || !events.isEmpty || !audits.isEmpty else { return }
        // One statement: on the gateway's hot path every round trip is paid by every message.
        var binds = PostgresBindings()
        binds.append(try jsonText(residents))
        binds.append(uniqueKeys.map(\.key))
        binds.append(uniqueKeys.map(\.resident_id))
        binds.append(identifiers.map(\.facility))
        binds.append(identifiers.map(\.local_id))
        binds.append(identifiers.map(\.resident_id))
        binds.append(identifiers.map(\.source))
        binds.append(try jsonText(events))
        binds.append(try AuditTrail.json(audits))
        try await connection.run(RegistrationWriteStatement(binds: binds), logger: logger)
    }
}

/// The references and the bucket locks (see `referencesLocking`). The `n` row makes sure the
/// locks are taken even when nothing else matches. Each lookup is a LATERAL probe with a LIMIT,
/// so the plan cached with the prepared statement stays an index probe when it was made while
/// the tables were young and small (a join would be planned as a hash over a sequential scan
/// that keeps running as the tables grow).
struct ReferencesStatement: PreparedSQL {
    static let sql = """
        WITH locked AS MATERIALIZED (
            SELECT count(pg_advisory_xact_lock(\(Registrar.lockClass), b)) AS n
            FROM (SELECT DISTINCT b FROM unnest($4::int4[]) AS b ORDER BY b) AS sorted
        )
        SELECT 'l', p.facility || chr(31) || p.local_id, i.resident_id FROM locked, unnest($1::text[], $2::text[]) AS p(facility, local_id),
          LATERAL (SELECT resident_id FROM registry.identifiers i WHERE i.facility = p.facility AND i.local_id = p.local_id LIMIT 1) AS i
        UNION ALL SELECT 'f', f.code, NULL FROM locked, unnest($3::text[]) AS c,
          LATERAL (SELECT code FROM registry.facilities WHERE code = c AND active LIMIT 1) AS f
        UNION ALL SELECT 'g', r.id::text, r.id FROM locked, unnest($5::uuid[]) AS g,
          LATERAL (SELECT id FROM registry.residents WHERE id = g LIMIT 1) AS r
        UNION ALL SELECT 'n', n::text, NULL FROM locked
        """
    let binds: PostgresBindings

    init(facilities: [String], localIds: [String], active: [String], buckets: [Int32], guardians: [UUID]) {
        var binds = PostgresBindings()
        binds.append(facilities)
        binds.append(localIds)
        binds.append(active)
        binds.append(buckets)
        binds.append(guardians)
        self.binds = binds
    }
}

/// Active residents sharing a blocking key, at most `fanOutPerKey` per key, each with the keys it
/// shares. The `LIMIT 1` keeps the resident lookup a primary-key probe per candidate: without it
/// the planner may flatten the join and, with a young table's statistics, scan every resident.
/// The status is tested outside the probe, or the partial index on active residents' documents
/// (whose predicate the test would imply) becomes a candidate plan: scanned whole per probe.
struct CandidatesStatement: PreparedSQL {
    static let sql = """
        SELECT \(ResidentCodec.columns), m.keys FROM (
            SELECT mk.resident_id, array_agg(k) AS keys FROM unnest($1::int8[]) AS k,
              LATERAL (SELECT resident_id FROM registry.match_keys WHERE key = k LIMIT \(Registrar.fanOutPerKey)) AS mk
            GROUP BY mk.resident_id
        ) AS m, LATERAL (SELECT * FROM registry.residents r WHERE r.id = m.resident_id LIMIT 1) AS r
        WHERE r.status = 'active'
        """
    let binds: PostgresBindings

    init(keys: [Int64]) {
        var binds = PostgresBindings()
        binds.append(keys)
        self.binds = binds
    }
}

/// New residents, their blocking keys, facility ids, history and audit rows in one statement.
struct RegistrationWriteStatement: PreparedSQL {
    static let sql = """
        WITH r AS (
            INSERT INTO registry.residents (\(ResidentRow.copyColumns.joined(separator: ", ")))
            SELECT \(ResidentRow.copyColumns.map { $0 == "document_ciphertext" ? "decode(x.document_ciphertext, 'hex')" : "x." + $0 }
                .joined(separator: ", "))
            FROM jsonb_to_recordset($1::jsonb) AS \(ResidentRow.recordType)
        ), k AS (
            INSERT INTO registry.match_keys (key, resident_id) SELECT * FROM unnest($2::int8[], $3::uuid[])
        ), i AS (
            INSERT INTO registry.identifiers (facility, local_id, resident_id, source)
            SELECT * FROM unnest($4::text[], $5::text[], $6::uuid[], $7::text[])
        ), e AS (
            INSERT INTO registry.resident_events (resident_id, kind, actor, detail)
            SELECT resident_id, kind, actor, detail FROM jsonb_to_recordset($8::jsonb)
                AS x(resident_id uuid, kind text, actor text, detail jsonb)
        ), a AS (
            \(AuditTrail.insertSQL(json: "$9"))
        )
        SELECT 1
        """
    let binds: PostgresBindings
}

struct IdentifierRow: Encodable {
    let facility: String
    let local_id: String
    let resident_id: UUID
    let source: String
}

struct MatchKeyRow {
    let key: Int64
    let resident_id: UUID
}

struct ReviewRow: Encodable {
    let resident_id: UUID
    let candidate_id: UUID
    let score: Double
    let evidence: [String]
    let facility: String?
    var held_document_type: String?
    var held_document_ciphertext: String?
    var held_document_key_id: String?
    var held_document_masked: String?

    mutating func hold(_ document: Document, codec: ResidentCodec) throws {
        let sealed = try codec.protector.seal(document.number, context: ResidentCodec.documentContext)
        held_document_type = document.type.rawValue
        held_document_ciphertext = sealed.bytes.hexString
        held_document_key_id = sealed.keyID
        held_document_masked = document.masked
    }
}

/// A line of a resident's history. `detail` names fields and facilities, never demographic values.
struct EventRow: Encodable {
    let resident_id: UUID
    let kind: String
    let actor: String
    var detail: [String: String] = [:]

    static func insert(_ events: [EventRow], on connection: PostgresConnection, logger: Logger) async throws {
        guard !events.isEmpty else { return }
        try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO registry.resident_events (resident_id, kind, actor, detail)
                    SELECT resident_id, kind, actor, detail FROM jsonb_to_recordset($1::jsonb)
                        AS x(resident_id uuid, kind text, actor text, detail jsonb)
                    """,
                binds: try jsonBinds(events)), logger: logger)
    }
}

func jsonBinds(_ value: some Encodable) throws -> PostgresBindings {
    var binds = PostgresBindings()
    binds.append(try jsonText(value))
    return binds
}
