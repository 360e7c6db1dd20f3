import Access
import Foundation
import IdentityNumbers
import Logging
import NameMatching
import PostgresNIO
import Storage

/// A PDQ-style demographic query. At least one of name, phone or identity number is required.
public struct ResidentQuery: Sendable {
    public var name: String?
    public var birthDate: String?
    public var sex: String?
    /// A division prefix (`52`, `5201`, `520102`).
    public var division: String?
    public var phone: String?
    public var idNumber: String?
    public var limit: Int

    public init(
        name: String? = nil, birthDate: String? = nil, sex: String? = nil, division: String? = nil, phone: String? = nil,
        idNumber: String? = nil, limit: Int = 20
    ) {
        self.name = name
        self.birthDate = birthDate
        self.sex = sex
        self.division = division
        self.phone = phone
        self.idNumber = idNumber
        self.limit = limit
    }
}

public struct SearchHit: Sendable, Codable, Equatable {
    public var resident: Resident
    /// The matcher's weight of the resident against the query: higher is closer.
    public var score: Double
    public var evidence: [String]
}

public struct RegistrationResult: Sendable, Codable, Equatable {
    public var resident: Resident
    public var match: RegistrationOutcome
}

public struct ResidentEvent: Sendable, Codable, Equatable {
    public var kind: String
    public var actor: String
    public var detail: [String: String]
    public var occurredAt: String
}

/// Residents: registration through the matcher, reads, updates, demographic search and the
/// facility-identifier cross-reference, each checked against the caller and audited.
///
/// Who sees whom: admins and clinicians every resident; a HIS the residents linked to its
/// facility, others only through a card it verifies or an identifier it presents; a patient
/// themself only.
public struct ResidentRegistry: Sendable {
    let client: PostgresClient
    let codec: ResidentCodec
    let registrar: Registrar
    let logger: Logger

    public init(client: PostgresClient, protector: FieldProtector, logger: Logger, matcher: Matcher = Matcher()) {
        self.client = client
        self.codec = ResidentCodec(protector: protector)
        self.registrar = Registrar(codec: codec, matcher: matcher, logger: logger)
        self.logger = logger
    }

    /// The keyed pseudonym audit rows and de-identified extracts name a resident by.
    public func residentPseudonym(_ id: UUID) -> String { codec.residentPseudonym(id) }

    // MARK: Registration

    static let conflictCode = "identity-number-conflict"

    /// The facility a registration is made for, after checking the caller may register there.
    public static func registeringFacility(_ draft: ResidentDraft, principal: Principal) throws -> (String?, String?) {
        let localId = ResidentValidation.nonEmpty(draft.localId)
        if let localId, localId.count > 64 || localId.contains(where: \.isControl) {
            throw RegistryError.invalid(field: "localId", reason: "must be 1 to 64 characters without control characters")
        }
        switch principal.role {
        case .his:
            try principal.require(scope: "registry.write")
            guard let own = principal.facility else { throw AccessError.forbidden("HIS client has no facility") }
            if let given = ResidentValidation.nonEmpty(draft.facility), given != own {
                throw AccessError.forbidden("client is not bound to facility \(given)")
            }
            guard let localId else { throw RegistryError.invalid(field: "localId", reason: "is required: the facility's own patient id") }
            return (own, localId)
        case .admin:
            try principal.require(scope: "registry.admin")
            let facility = ResidentValidation.nonEmpty(draft.facility)
            guard (facility == nil) == (localId == nil) else {
                throw RegistryError.invalid(field: facility == nil ? "facility" : "localId", reason: "facility and localId go together")
            }
            return (facility, localId)
        default:
            throw AccessError.forbidden("role \(principal.role.rawValue) may not register residents")
        }
    }

    public func register(_ draft: ResidentDraft, by principal: Principal, requestID: String?, today: Int = ChinaDate.today())
        async throws -> RegistrationResult
    {
        let (facility, localId) = try Self.registeringFacility(draft, principal: principal)
        let record = try ResidentValidation.validate(draft, today: today)
        let registration = Registration(
            facility: facility, localId: localId, record: record, source: principal.role == .admin ? "admin" : "registration")
        return try await retryingConflicts {
            try await client.transaction(logger: logger) { connection in
                try await register(registration, by: principal, requestID: requestID, on: connection)
            }
        }
    }

    /// Registers inside the caller's transaction (the HL7 gateway commits the message with it) and
    /// answers with the match outcome only, without reading the resident back. A unique violation
    /// from a concurrent registration of the same facility id aborts that transaction: the caller
    /// retries it whole.
    public func registerOutcome(
        _ draft: ResidentDraft, by principal: Principal, requestID: String?, today: Int = ChinaDate.today(),
        on connection: PostgresConnection
    ) async throws -> RegistrationOutcome {
        let (facility, localId) = try Self.registeringFacility(draft, principal: principal)
        let record = try ResidentValidation.validate(draft, today: today)
        return try await registered(
            Registration(facility: facility, localId: localId, record: record, source: "hl7"), by: principal, requestID: requestID,
            on: connection)
    }

    private func registered(_ registration: Registration, by principal: Principal, requestID: String?, on connection: PostgresConnection)
        async throws -> RegistrationOutcome
    {
        let outcome = try await registrar.register(
            [registration], actor: principal, requestID: requestID, purpose: "registration", on: connection)[0]
        if outcome.kind == .rejected {
            let reason = outcome.reason ?? "rejected"
            throw RegistryError.invalid(field: reason.hasPrefix("guardian") ? "guardian.residentId" : "facility", reason: reason)
        }
        return outcome
    }

    private func register(_ registration: Registration, by principal: Principal, requestID: String?, on connection: PostgresConnection)
        async throws -> RegistrationResult
    {
        let outcome = try await registered(registration, by: principal, requestID: requestID, on: connection)
        let id = UUID(uuidString: outcome.residentId!)!
        let resident = try await load(id, on: connection)
        return RegistrationResult(resident: resident.view(identifiers: try await identifiers(of: id, on: connection)), match: outcome)
    }

    /// What a feed's registration found: the facility id already linked, or a registration made.
    public enum FeedRegistration: Sendable {
        case existing(UUID)
        case registered(RegistrationOutcome)
    }

    /// Registers many inside the caller's transaction, each with its own caller and request (the
    /// HL7 gateway's group commit), unless the facility id is already linked: then it answers
    /// `existing` for the caller to update instead. The links, facilities and guardians are read
    /// and the blocking-key buckets locked in one round trip; one matcher pass, one write. A
    /// registration the caller may not make or whose record is invalid fails alone, before
    /// anything is written; database errors abort the transaction for the caller to rerun.
    public func registerOrFind(
        _ items: [(draft: ResidentDraft, principal: Principal, requestID: String?)], today: Int = ChinaDate.today(),
        on connection: PostgresConnection
    ) async throws -> [Result<FeedRegistration, any Error>] {
        var results = [Result<FeedRegistration, any Error>?](repeating: nil, count: items.count)
        var registrations: [Registration] = []
        var owners: [Int] = []
        var invalid: [(index: Int, pair: (String, String), error: any Error)] = []
        for (index, item) in items.enumerated() {
            let facility: String?
            let localId: String?
            do {
                (facility, localId) = try Self.registeringFacility(item.draft, principal: item.principal)
            } catch {
                results[index] = .failure(error)
                continue
            }
            do {
                let record = try ResidentValidation.validate(item.draft, today: today)
                registrations.append(
                    Registration(
                        facility: facility, localId: localId, record: record, source: "hl7", actor: item.principal,
                        requestID: item.requestID))
                owners.append(index)
            } catch {
                // Not enough to register, but perhaps enough to update a patient already linked.
                guard let facility, let localId else {
                    results[index] = .failure(error)
                    continue
                }
                invalid.append((index, (facility, localId), error))
            }
        }
        guard !registrations.isEmpty || !invalid.isEmpty else { return results.map { $0! } }
        let keys = registrations.map { codec.matchKeys($0.record) }
        let references = try await registrar.referencesLocking(registrations, keys: keys, alsoLinked: invalid.map(\.pair), on: connection)
        for (index, pair, error) in invalid {
            results[index] = references.linked[pair.0 + "\u{1F}" + pair.1].map { .success(.existing($0)) } ?? .failure(error)
        }
        var fresh: [Int] = []
        for (position, registration) in registrations.enumerated() {
            if let pair = pairKeyParts(registration), let id = references.linked[pair.0 + "\u{1F}" + pair.1] {
                results[owners[position]] = .success(.existing(id))
            } else {
                fresh.append(position)
            }
        }
        if !fresh.isEmpty {
            let outcomes = try await registrar.register(
                fresh.map { registrations[$0] }, keys: fresh.map { keys[$0] }, references: references,
                actor: registrations[fresh[0]].actor!, requestID: nil, purpose: "registration", on: connection)
            for (position, outcome) in zip(fresh, outcomes) {
                switch outcome.kind {
                case .rejected:
                    let reason = outcome.reason ?? "rejected"
                    results[owners[position]] = .failure(
                        RegistryError.invalid(field: reason.hasPrefix("guardian") ? "guardian.residentId" : "facility", reason: reason))
                case .existing:
                    results[owners[position]] = .success(.existing(UUID(uuidString: outcome.residentId!)!))
                default:
                    results[owners[position]] = .success(.registered(outcome))
                }
            }
        }
        return results.map { $0! }
    }

    /// The resident a facility's patient id is linked to, if any, inside the caller's transaction.
    public func residentID(facility: String, localId: String, on connection: PostgresConnection) async throws -> UUID? {
        try await connection.query(
            "SELECT resident_id FROM registry.identifiers WHERE facility = \(facility) AND local_id = \(localId)", logger: logger
        ).collect().first?.decode(UUID.self)
    }

    /// Registers many (an import), one transaction for the batch.
    public func register(batch: [Registration], by principal: Principal, requestID: String? = nil) async throws -> [RegistrationOutcome] {
        try principal.require(.admin, action: "import residents")
        return try await retryingConflicts {
            try await client.transaction(logger: logger) { connection in
                try await registrar.register(batch, actor: principal, requestID: requestID, purpose: "import", on: connection)
            }
        }
    }

    /// Two registrations of one facility id racing past the check, or a deadlock between
    /// batches, roll back whole; the rerun sees the winner's rows.
    // MARK: Reads

    public func get(id text: String, by principal: Principal, requestID: String?) async throws -> Resident {
        let id = try Self.residentID(text)
        return try await client.transaction(logger: logger) { connection in
            let resident = try await load(id, on: connection)
            let identifiers = try await identifiers(of: resident.mergedInto ?? id, on: connection)
            try authorizeRead(principal, resident, identifiers: identifiers)
            try await audit(principal, "resident.read", resident, requestID: requestID, on: connection)
            return resident.view(identifiers: resident.mergedInto == nil ? identifiers : [])
        }
    }

    /// PIX: the resident behind a facility's patient id, with every other identifier. Presenting
    /// the identifier is what lets a HIS read a resident registered elsewhere.
    public func lookup(facility: String, localId: String, by principal: Principal, requestID: String?) async throws -> Resident {
        try principal.require(.his, .clinician, .admin, action: "look up identifiers")
        try principal.require(scope: "registry.read")
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                "SELECT resident_id FROM registry.identifiers WHERE facility = \(facility) AND local_id = \(localId)", logger: logger
            ).collect()
            guard let row = rows.first else { throw RegistryError.notFound("identifier \(facility)/\(localId)") }
            let id = try row.decode(UUID.self)
            let resident = try await load(id, on: connection)
            try await audit(principal, "resident.pix", resident, requestID: requestID, on: connection)
            return resident.view(identifiers: try await identifiers(of: id, on: connection))
        }
    }

    public func history(id text: String, by principal: Principal) async throws -> [ResidentEvent] {
        try principal.require(.admin, action: "read resident history")
        let id = try Self.residentID(text)
        return try await client.transaction(logger: logger) { connection in
            _ = try await load(id, on: connection)
            let rows = try await connection.query(
                """
                SELECT kind, actor, detail::text, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                FROM registry.resident_events WHERE resident_id = \(id) ORDER BY id
                """, logger: logger)
            var events: [ResidentEvent] = []
            for try await (kind, actor, detail, at) in rows.decode((String, String, String, String).self) {
                let parsed = (try? JSONDecoder().decode([String: String].self, from: Data(detail.utf8))) ?? [:]
                events.append(ResidentEvent(kind: kind, actor: actor, detail: parsed, occurredAt: at))
            }
            return events
        }
    }

    public func search(_ query: ResidentQuery, by principal: Principal, requestID: String?) async throws -> [SearchHit] {
        try principal.require(.his, .clinician, .admin, action: "search residents")
        try principal.require(scope: "registry.read")
        let name = ResidentValidation.nonEmpty(query.name)
        let phone = try ResidentValidation.nonEmpty(query.phone).map { t throws(RegistryError) in
            try ResidentValidation.phone(t, field: "phone")
        }
        var documentHash: String?
        var probe = ResidentDraft(name: name ?? "?")
        if let number = ResidentValidation.nonEmpty(query.idNumber) {
            let verdict = ResidentIDNumber.check(number, today: ChinaDate.today())
            guard let normalized = verdict.normalized, verdict.valid else { throw RegistryError.identityNumber(verdict.problems) }
            documentHash = codec.documentHash(Document(type: .residentID, number: normalized))
            probe.idNumber = normalized
        }
        guard name != nil || phone != nil || documentHash != nil else {
            throw RegistryError.invalid(field: "name", reason: "give a name, phone or idNumber to search by")
        }
        let birth = try ResidentValidation.nonEmpty(query.birthDate).map { t throws(RegistryError) in
            try ResidentValidation.date(t, field: "birthDate", today: 99_991_231)
        }
        let sex = try ResidentValidation.nonEmpty(query.sex).map { t throws(RegistryError) in
            guard let sex = Sex(text: t) else {
                throw RegistryError.invalid(field: "sex", reason: "must be male, female, unknown or unspecified")
            }
            return sex
        }
        let division = ResidentValidation.nonEmpty(query.division)
        if let division, division.isEmpty || division.count > 6 || !division.allSatisfy({ $0.isASCII && $0.isNumber }) {
            throw RegistryError.invalid(field: "division", reason: "must be a division code prefix of 1 to 6 digits")
        }
        guard (1...100).contains(query.limit) else { throw RegistryError.invalid(field: "limit", reason: "must be from 1 to 100") }
        let keys = name.map { ChineseName($0).searchKeys } ?? []
        // A HIS searching by demographics sees its own registrants; presenting an ID number is
        // presenting an identifier, as with PIX.
        let ownFacility = principal.role == .his && documentHash == nil ? principal.facility : nil
        probe.birthDate = birth
        probe.sex = sex.map { String($0.rawValue) }
        probe.phone = phone
        probe.division = division?.count == 6 ? division : nil
        let queryPerson = ResidentRecord(
            name: name ?? "?", namePinyin: "", sex: sex ?? .unknown, birthDate: birth, ethnicity: nil,
            document: probe.idNumber.map { Document(type: .residentID, number: $0) }, phone: phone, division: probe.division, address: nil,
            deceased: false
        ).person

        return try await client.transaction(logger: logger) { connection in
            let divisionPattern = division.map { $0 + "%" }
            let rows = try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT \(ResidentCodec.columns) FROM registry.residents r
                        WHERE r.status = 'active'
                          AND ($1::text IS NULL OR r.name_pinyin = ANY($2::text[]))
                          AND ($3::text IS NULL OR r.document_hash = $3)
                          AND ($4::text IS NULL OR r.phone = $4)
                          AND ($5::date IS NULL OR r.birth_date = $5::date)
                          AND ($6::int2 IS NULL OR r.sex = $6::int2)
                          AND ($7::text IS NULL OR r.division LIKE $7)
                          AND ($8::text IS NULL OR EXISTS (SELECT 1 FROM registry.identifiers i WHERE i.resident_id = r.id AND i.facility = $8))
                        LIMIT 500
                        """,
                    binds: {
                        var binds = PostgresBindings()
                        binds.append(name)
                        binds.append(keys)
                        binds.append(documentHash)
                        binds.append(phone)
                        binds.append(birth)
                        binds.append(sex.map { Int16($0.rawValue) })
                        binds.append(divisionPattern)
                        binds.append(ownFacility)
                        return binds
                    }()), logger: logger)
            var found: [(StoredResident, MatchScore)] = []
            let matcher = registrar.matcher
            for try await row in rows {
                let resident = try codec.decode(row)
                found.append((resident, matcher.score(queryPerson, resident.record.person)))
            }
            found.sort { $0.1.weight != $1.1.weight ? $0.1.weight > $1.1.weight : $0.0.id.uuidString < $1.0.id.uuidString }
            var hits: [SearchHit] = []
            var audits: [AuditEvent] = []
            for (resident, score) in found.prefix(query.limit) {
                hits.append(
                    SearchHit(
                        resident: resident.view(identifiers: try await identifiers(of: resident.id, on: connection)), score: score.weight,
                        evidence: score.evidence))
                audits.append(auditEvent(principal, "resident.search", resident, requestID: requestID))
            }
            if audits.isEmpty {
                audits.append(
                    AuditEvent(
                        principal: principal, action: "resident.search", resource: "residents", purpose: "care", requestID: requestID))
            }
            try await AuditTrail.append(audits, on: connection, logger: logger)
            return hits
        }
    }

    // MARK: Changes

    public func update(
        id text: String, with patch: ResidentPatch, by principal: Principal, requestID: String?, today: Int = ChinaDate.today()
    )
        async throws -> Resident
    {
        let id = try Self.residentID(text)
        return try await client.transaction(logger: logger) { connection in
            try await update(id: id, with: patch, by: principal, requestID: requestID, today: today, on: connection)
        }
    }

    /// Updates inside the caller's transaction.
    public func update(
        id: UUID, with patch: ResidentPatch, by principal: Principal, requestID: String?, today: Int = ChinaDate.today(),
        on connection: PostgresConnection
    ) async throws -> Resident {
        let (current, identifiers, changed) = try await change(
            id: id, with: patch, by: principal, requestID: requestID, today: today, on: connection)
        guard changed else { return current.view(identifiers: identifiers) }
        return try await load(id, on: connection).view(identifiers: identifiers)
    }

    /// One change of a resident's demographics, by whom and under which request.
    public struct Change: Sendable {
        public var id: UUID
        public var patch: ResidentPatch
        public var principal: Principal
        public var requestID: String?

        public init(id: UUID, patch: ResidentPatch, principal: Principal, requestID: String?) {
            self.id = id
            self.patch = patch
            self.principal = principal
            self.requestID = requestID
        }
    }

    /// Updates many residents inside the caller's transaction without reading them back (the HL7
    /// gateway answers with ACKs, not views): all of them locked and read in one statement, all
    /// the changed rows written in another. Each change is applied in order on top of the ones
    /// before it; a refused one (access, validation, a merged resident) fails alone, before
    /// anything is written. Database errors abort the transaction for the caller to rerun.
    /// Each result says whether anything changed.
    public func updateQuietly(_ changes: [Change], today: Int = ChinaDate.today(), on connection: PostgresConnection) async throws
        -> [Result<Bool, any Error>]
    {
        try await changeMany(changes, today: today, on: connection).map { $0.map(\.changed) }
    }

    private func change(
        id: UUID, with patch: ResidentPatch, by principal: Principal, requestID: String?, today: Int, on connection: PostgresConnection
    ) async throws -> (StoredResident, [FacilityIdentifier], changed: Bool) {
        try await changeMany(
            [Change(id: id, patch: patch, principal: principal, requestID: requestID)], today: today, on: connection)[0].get()
    }

    private func changeMany(_ changes: [Change], today: Int, on connection: PostgresConnection) async throws
        -> [Result<(before: StoredResident, identifiers: [FacilityIdentifier], changed: Bool), any Error>]
    {
        // Locked in id order, so that two batches touching the same residents cannot deadlock.
        let ids = Array(Set(changes.map(\.id))).sorted { $0.uuidString < $1.uuidString }
        var loaded: [UUID: (StoredResident, [FacilityIdentifier])] = [:]
        for row in try await connection.run(ResidentsForUpdateStatement(ids: ids), logger: logger) {
            let resident = try codec.decode(row)
            let cells = row.makeRandomAccess()
            let identifiers = try cells[cells.count - 1].decode([String].self).map { text in
                let parts = text.split(separator: "\u{1F}", omittingEmptySubsequences: false).map(String.init)
                return FacilityIdentifier(facility: parts[0], localId: parts[1], source: parts[2])
            }
            loaded[resident.id] = (resident, identifiers)
        }
        var results: [Result<(before: StoredResident, identifiers: [FacilityIdentifier], changed: Bool), any Error>] = []
        var latest: [UUID: ResidentRecord] = [:]
        var rows: [UUID: ResidentRow] = [:]
        var keys: [UUID: [Int64]] = [:]
        var events: [EventRow] = []
        var audits: [AuditEvent] = []
        for change in changes {
            guard var (current, identifiers) = loaded[change.id] else {
                results.append(.failure(RegistryError.notFound("resident \(change.id.lowercased)")))
                continue
            }
            if let record = latest[change.id] { current.record = record }
            do {
                try authorizeWrite(change.principal, current, identifiers: identifiers, patch: change.patch)
                try current.requireActive()
                let updated = try ResidentValidation.apply(change.patch, to: current.record, today: today)
                let changed = Self.changedFields(current.record, updated)
                // A HIS resending the demographics it sent before (an ADT^A08 after every visit) changes nothing.
                guard !changed.isEmpty else {
                    results.append(.success((current, identifiers, false)))
                    continue
                }
                if let guardian = updated.guardianID, guardian != current.record.guardianID {
                    guard guardian != change.id else {
                        throw RegistryError.invalid(field: "guardian.residentId", reason: "cannot be the resident")
                    }
                    let exists = try await connection.query("SELECT 1 FROM registry.residents WHERE id = \(guardian)", logger: logger)
                        .collect()
                    guard !exists.isEmpty else { throw RegistryError.invalid(field: "guardian.residentId", reason: "names no resident") }
                }
                if let document = updated.document, document != current.record.document {
                    try await requireUnheld(document, except: change.id, on: connection)
                }
                latest[change.id] = updated
                rows[change.id] = try codec.row(id: change.id, record: updated, registeredBy: current.registeredBy)
                keys[change.id] = codec.matchKeys(updated)
                events.append(
                    EventRow(
                        resident_id: change.id, kind: "updated", actor: change.principal.clientID,
                        detail: ["fields": changed.joined(separator: ",")]))
                audits.append(auditEvent(change.principal, "resident.update", current, requestID: change.requestID))
                results.append(.success((current, identifiers, true)))
            } catch let error as PSQLError {
                throw error
            } catch {
                results.append(.failure(error))
            }
        }
        guard !rows.isEmpty else { return results }
        // The rows, their blocking keys, the history lines and the audit rows in one statement.
        let changedIDs = Array(rows.keys)
        let pairs = changedIDs.flatMap { id in keys[id]!.map { (id, $0) } }
        var binds = PostgresBindings()
        binds.append(try jsonText(changedIDs.map { rows[$0]! }))
        binds.append(pairs.map(\.0))
        binds.append(pairs.map(\.1))
        binds.append(changedIDs)
        binds.append(try jsonText(events))
        binds.append(try AuditTrail.json(audits))
        try await connection.run(ResidentUpdateStatement(binds: binds), logger: logger)
        return results
    }

    /// Links a facility's patient id to a resident the caller can already see.
    public func link(id text: String, identifier: FacilityIdentifier, by principal: Principal, requestID: String?) async throws -> Resident
    {
        let id = try Self.residentID(text)
        switch principal.role {
        case .his:
            try principal.require(scope: "registry.write")
            try principal.require(facility: identifier.facility)
        case .admin: try principal.require(scope: "registry.admin")
        default: throw AccessError.forbidden("role \(principal.role.rawValue) may not link identifiers")
        }
        let localId = identifier.localId.trimmingCharacters(in: .whitespaces)
        guard !localId.isEmpty, localId.count <= 64, !localId.contains(where: \.isControl) else {
            throw RegistryError.invalid(field: "localId", reason: "must be 1 to 64 characters without control characters")
        }
        return try await client.transaction(logger: logger) { connection in
            let resident = try await load(id, on: connection, forUpdate: true)
            try resident.requireActive()
            let facility = try await connection.query(
                "SELECT 1 FROM registry.facilities WHERE code = \(identifier.facility) AND active", logger: logger
            ).collect()
            guard !facility.isEmpty else { throw RegistryError.invalid(field: "facility", reason: "is not a registered, active facility") }
            let rows = try await connection.query(
                """
                INSERT INTO registry.identifiers (facility, local_id, resident_id, source)
                VALUES (\(identifier.facility), \(localId), \(id), 'link')
                ON CONFLICT (facility, local_id) DO UPDATE SET facility = EXCLUDED.facility
                RETURNING resident_id
                """, logger: logger
            ).collect()
            let owner = try rows.first!.decode(UUID.self)
            guard owner == id else {
                throw RegistryError.conflict(
                    code: "identifier-taken", detail: "identifier \(identifier.facility)/\(localId) belongs to another resident")
            }
            try await EventRow.insert(
                [EventRow(resident_id: id, kind: "linked", actor: principal.clientID, detail: ["facility": identifier.facility])],
                on: connection, logger: logger)
            try await audit(principal, "resident.link", resident, requestID: requestID, on: connection)
            return resident.view(identifiers: try await identifiers(of: id, on: connection))
        }
    }

    /// Refuses a document another active resident already holds (invariant: one number, one resident).
    func requireUnheld(_ document: Document, except id: UUID, on connection: PostgresConnection) async throws {
        let hash = codec.documentHash(document)
        let rows = try await connection.query(
            "SELECT 1 FROM registry.residents WHERE document_hash = \(hash) AND status = 'active' AND id <> \(id)", logger: logger
        ).collect()
        guard rows.isEmpty else {
            throw RegistryError.conflict(
                code: Self.conflictCode, detail: "another resident is registered with this identity number; merge them instead")
        }
    }

    // MARK: Access

    func authorizeRead(_ principal: Principal, _ resident: StoredResident, identifiers: [FacilityIdentifier]) throws {
        switch principal.role {
        case .admin, .clinician:
            try principal.require(scope: "registry.read")
        case .his:
            try principal.require(scope: "registry.read")
            guard identifiers.contains(where: { $0.facility == principal.facility }) else {
                throw AccessError.forbidden(
                    "resident is not registered at facility \(principal.facility ?? "-"); verify their card or present an identifier")
            }
        case .patient:
            try principal.require(scope: "self.read")
            guard let own = principal.resident, own == resident.id.lowercased || own == resident.mergedInto?.lowercased else {
                throw AccessError.forbidden("a patient may read only their own record")
            }
        case .analyst:
            throw AccessError.forbidden("role analyst may not read residents")
        }
    }

    /// A change that is not a field patch (a card): the resident's own facility ids decide.
    func authorizeWrite(_ principal: Principal, _ resident: StoredResident, on connection: PostgresConnection) async throws {
        try authorizeWrite(principal, resident, identifiers: try await identifiers(of: resident.id, on: connection), patch: .init())
    }

    func authorizeWrite(_ principal: Principal, _ resident: StoredResident, identifiers: [FacilityIdentifier], patch: ResidentPatch) throws
    {
        switch principal.role {
        case .admin:
            try principal.require(scope: "registry.admin")
        case .his:
            try principal.require(scope: "registry.write")
            guard identifiers.contains(where: { $0.facility == principal.facility }) else {
                throw AccessError.forbidden("resident is not registered at facility \(principal.facility ?? "-")")
            }
        case .patient:
            try principal.require(scope: "self.write")
            guard principal.resident == resident.id.lowercased else {
                throw AccessError.forbidden("a patient may change only their own record")
            }
            let identity =
                patch.name != nil || patch.sex != nil || patch.birthDate != nil || patch.document != nil || patch.idNumber != nil
                || patch.deceased != nil || patch.deceasedDate != nil || patch.ethnicity != nil
            if identity { throw AccessError.forbidden("a patient may change only their phone, division, address and guardian") }
        default:
            throw AccessError.forbidden("role \(principal.role.rawValue) may not change residents")
        }
    }

    // MARK: Helpers

    static func residentID(_ text: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw RegistryError.notFound("resident \(text.prefix(40))") }
        return id
    }

    func load(_ id: UUID, on connection: PostgresConnection, forUpdate: Bool = false) async throws -> StoredResident {
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: "SELECT \(ResidentCodec.columns) FROM registry.residents WHERE id = $1" + (forUpdate ? " FOR UPDATE" : ""),
                binds: {
                    var binds = PostgresBindings()
                    binds.append(id)
                    return binds
                }()), logger: logger
        ).collect()
        guard let row = rows.first else { throw RegistryError.notFound("resident \(id.lowercased)") }
        return try codec.decode(row)
    }

    func identifiers(of id: UUID, on connection: PostgresConnection) async throws -> [FacilityIdentifier] {
        let rows = try await connection.query(
            "SELECT facility, local_id, source FROM registry.identifiers WHERE resident_id = \(id) ORDER BY facility, local_id",
            logger: logger)
        var result: [FacilityIdentifier] = []
        for try await (facility, localId, source) in rows.decode((String, String, String).self) {
            result.append(FacilityIdentifier(facility: facility, localId: localId, source: source))
        }
        return result
    }

    func auditEvent(_ principal: Principal, _ action: String, _ resident: StoredResident, requestID: String?) -> AuditEvent {
        AuditEvent(
            principal: principal, action: action, resource: "resident/\(resident.id.lowercased)", residentPseudonym: resident.pseudonym,
            purpose: principal.role == .admin ? "administration" : "care", requestID: requestID)
    }

    func audit(_ principal: Principal, _ action: String, _ resident: StoredResident, requestID: String?, on connection: PostgresConnection)
        async throws
    {
        try await AuditTrail.append(auditEvent(principal, action, resident, requestID: requestID), on: connection, logger: logger)
    }

    static func changedFields(_ a: ResidentRecord, _ b: ResidentRecord) -> [String] {
        var fields: [String] = []
        if a.name != b.name { fields.append("name") }
        if a.sex != b.sex { fields.append("sex") }
        if a.birthDate != b.birthDate { fields.append("birthDate") }
        if a.ethnicity != b.ethnicity { fields.append("ethnicity") }
        if a.document != b.document { fields.append("document") }
        if a.phone != b.phone { fields.append("phone") }
        if a.division != b.division { fields.append("division") }
        if a.address != b.address { fields.append("address") }
        if a.guardianID != b.guardianID || a.guardianName != b.guardianName || a.guardianRelation != b.guardianRelation
            || a.guardianPhone != b.guardianPhone
        {
            fields.append("guardian")
        }
        if a.deceased != b.deceased || a.deceasedDate != b.deceasedDate { fields.append("deceased") }
        return fields
    }
}

/// Today in China Standard Time (UTC+8, no daylight saving), as `YYYYMMDD`.
public enum ChinaDate {
    public static func today(now: Date = Date()) -> Int {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 8 * 3600)!
        let parts = calendar.dateComponents([.year, .month, .day], from: now)
        return parts.year! * 10000 + parts.month! * 100 + parts.day!
    }
}

/// Residents locked for update, in the order of the ids given, each with
/// `facility␟localId␟source` of its identifiers (sorted). The id never changes, so the lock need
/// not block rows that merely reference the resident.
struct ResidentsForUpdateStatement: PreparedSQL {
    static let sql = """
        SELECT \(ResidentCodec.columns), ARRAY(
            SELECT i.facility || chr(31) || i.local_id || chr(31) || i.source FROM registry.identifiers i
            WHERE i.resident_id = r.id ORDER BY i.facility, i.local_id)
        FROM unnest($1::uuid[]) WITH ORDINALITY AS g(wanted, position),
          LATERAL (SELECT * FROM registry.residents r WHERE r.id = g.wanted LIMIT 1 FOR NO KEY UPDATE) AS r
        ORDER BY g.position
        """
    let binds: PostgresBindings

    init(ids: [UUID]) {
        var binds = PostgresBindings()
        binds.append(ids)
        self.binds = binds
    }
}

/// Residents' new rows, their blocking keys (stale ones deleted), history lines and audit rows
/// in one statement.
struct ResidentUpdateStatement: PreparedSQL {
    static let sql = """
        WITH u AS (
            UPDATE registry.residents r SET name = x.name, name_pinyin = x.name_pinyin, sex = x.sex, birth_date = x.birth_date,
                ethnicity = x.ethnicity, document_type = x.document_type,
                document_ciphertext = decode(x.document_ciphertext, 'hex'), document_key_id = x.document_key_id,
                document_hash = x.document_hash, document_masked = x.document_masked, phone = x.phone, division = x.division,
                address = x.address, guardian_id = x.guardian_id, guardian_name = x.guardian_name,
                guardian_relation = x.guardian_relation, guardian_phone = x.guardian_phone, deceased = x.deceased,
                deceased_date = x.deceased_date, version = r.version + 1, updated_at = now()
            FROM jsonb_to_recordset($1::jsonb) AS \(ResidentRow.recordType)
            WHERE r.id = x.id
        ), nk AS (
            SELECT * FROM unnest($2::uuid[], $3::int8[]) AS nk(resident_id, key)
        ), gone AS (
            DELETE FROM registry.match_keys m USING unnest($4::uuid[]) AS d(resident_id)
            WHERE m.resident_id = d.resident_id
              AND NOT EXISTS (SELECT 1 FROM nk WHERE nk.resident_id = m.resident_id AND nk.key = m.key)
        ), k AS (
            INSERT INTO registry.match_keys (key, resident_id) SELECT key, resident_id FROM nk ON CONFLICT DO NOTHING
        ), e AS (
            INSERT INTO registry.resident_events (resident_id, kind, actor, detail)
            SELECT resident_id, kind, actor, detail FROM jsonb_to_recordset($5::jsonb)
                AS x(resident_id uuid, kind text, actor text, detail jsonb)
        ), a AS (
            \(AuditTrail.insertSQL(json: "$6"))
        )
        SELECT 1
        """
    let binds: PostgresBindings
}
