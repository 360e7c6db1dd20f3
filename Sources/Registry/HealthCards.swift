import Access
import Foundation
import Logging
import PostgresNIO
import Storage

public struct HealthCard: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable, CaseIterable {
        case issued, active, suspended, replaced, revoked

        /// The lifecycle: issued → active ⇄ suspended (reported lost, then found); a replacement
        /// ends any live card; revocation ends any card not already ended.
        func allows(_ next: Status) -> Bool {
            switch (self, next) {
            case (.issued, .active), (.active, .suspended), (.suspended, .active): true
            case (.issued, .revoked), (.active, .revoked), (.suspended, .revoked): true
            case (.issued, .replaced), (.active, .replaced), (.suspended, .replaced): true
            default: false
            }
        }
    }

    public var cardNumber: String
    public var residentId: String
    public var issuingFacility: String?
    public var issuedOn: String
    public var status: Status
    public var statusReason: String?
    /// The card this one replaced.
    public var replaces: String?
    public var statusChangedAt: String
}

/// What a HIS terminal gets back from a card it reads: enough to register the patient, with the
/// identity number masked.
public struct CardVerification: Sendable, Codable, Equatable {
    public struct Summary: Sendable, Codable, Equatable {
        public var id: String
        public var name: String
        public var sex: String
        public var sexCode: Int
        public var birthDate: String?
        public var document: Resident.DocumentView?
        public var phoneMasked: String?
        /// The caller facility's own patient id for this resident, when it has one.
        public var localId: String?
    }

    public var valid: Bool
    public var cardNumber: String
    public var status: String
    public var resident: Summary
}

public struct CardIssue: Sendable, Codable {
    /// The printed card number; generated when absent.
    public var cardNumber: String?
    /// Whether the card is active at once (the default) or waits to be activated.
    public var activate: Bool?
    public var issuingFacility: String?

    public init(cardNumber: String? = nil, activate: Bool? = nil, issuingFacility: String? = nil) {
        self.cardNumber = cardNumber
        self.activate = activate
        self.issuingFacility = issuingFacility
    }
}

/// Health cards: issue, the status lifecycle, replacement with history, and the verification
/// every HIS terminal calls for every patient.
public struct HealthCardService: Sendable {
    let client: PostgresClient
    /// Runs verification: asynchronous commit for its audit row (see `QianyunServer.makeReadAuditClient`).
    let verifier: PostgresClient
    let registry: ResidentRegistry
    let logger: Logger

    /// `verifier` defaults to `client` (every commit synchronous).
    public init(client: PostgresClient, verifier: PostgresClient? = nil, registry: ResidentRegistry, logger: Logger) {
        self.client = client
        self.verifier = verifier ?? client
        self.registry = registry
        self.logger = logger
    }

    static let columns = """
        card_number, resident_id, issuing_facility, issued_on::text, status, status_reason, replaces,
        to_char(status_changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        """

    static func card(from row: PostgresRow) throws -> HealthCard {
        let (number, resident, facility, issued, status, reason, replaces, changed) = try row.decode(
            (String, UUID, String?, String, String, String?, String?, String).self)
        return HealthCard(
            cardNumber: number, residentId: resident.lowercased, issuingFacility: facility, issuedOn: issued,
            status: HealthCard.Status(rawValue: status) ?? .revoked, statusReason: reason, replaces: replaces, statusChangedAt: changed)
    }

    /// Card numbers as printed: 6 to 32 letters and digits, case and spaces folded.
    static func normalize(_ raw: String) throws(RegistryError) -> String {
        let number = raw.uppercased().filter { !$0.isWhitespace && $0 != "-" }
        guard (6...32).contains(number.count), number.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw .invalid(field: "cardNumber", reason: "must be 6 to 32 letters and digits")
        }
        return number
    }

    /// `QY` and 16 random digits: collisions are refused by the primary key, never silently shared.
    static func generateNumber() -> String {
        "QY" + String((0..<16).map { _ in Character(String(Int.random(in: 0...9))) })
    }

    func requireCardWriter(_ principal: Principal) throws {
        switch principal.role {
        case .his: try principal.require(scope: "registry.write")
        case .admin: try principal.require(scope: "registry.admin")
        default: throw AccessError.forbidden("role \(principal.role.rawValue) may not issue or change cards")
        }
    }

    public func issue(residentID text: String, _ request: CardIssue, by principal: Principal, requestID: String?) async throws -> HealthCard
    {
        try requireCardWriter(principal)
        let id = try ResidentRegistry.residentID(text)
        let number = try request.cardNumber.map { t throws(RegistryError) in try Self.normalize(t) } ?? Self.generateNumber()
        let facility = principal.role == .his ? principal.facility : ResidentValidation.nonEmpty(request.issuingFacility)
        return try await client.transaction(logger: logger) { connection in
            let resident = try await registry.load(id, on: connection, forUpdate: true)
            try await registry.authorizeWrite(principal, resident, on: connection)
            try resident.requireActive()
            guard !resident.record.deceased else { throw RegistryError.conflict(code: "resident-deceased", detail: "resident is deceased") }
            let status: HealthCard.Status = request.activate ?? true ? .active : .issued
            if status == .active { try await requireNoActiveCard(id, on: connection) }
            let rows = try await connection.query(
                """
                INSERT INTO registry.health_cards (card_number, resident_id, issuing_facility, issued_on, status)
                VALUES (\(number), \(id), \(facility), (now() AT TIME ZONE 'Asia/Shanghai')::date, \(status.rawValue))
                ON CONFLICT (card_number) DO NOTHING
                RETURNING \(unescaped: Self.columns)
                """, logger: logger
            ).collect()
            guard let row = rows.first else { throw RegistryError.duplicate("card \(number)") }
            try await record(principal, "card.issue", number, resident, requestID: requestID, on: connection)
            return try Self.card(from: row)
        }
    }

    func requireNoActiveCard(_ resident: UUID, except: String? = nil, on connection: PostgresConnection) async throws {
        let rows = try await connection.query(
            "SELECT card_number FROM registry.health_cards WHERE resident_id = \(resident) AND status = 'active'", logger: logger
        ).collect()
        if let active = try rows.first?.decode(String.self), active != except {
            throw RegistryError.conflict(
                code: "card-already-active", detail: "resident already has active card \(active); replace or suspend it first")
        }
    }

    /// A status change: activate, suspend (reported lost), reactivate (found), revoke. A patient may
    /// report their own card lost.
    public func change(cardNumber raw: String, to next: HealthCard.Status, reason: String?, by principal: Principal, requestID: String?)
        async throws -> HealthCard
    {
        let number = try Self.normalize(raw)
        guard next != .replaced else {
            throw RegistryError.invalid(field: "status", reason: "a card is replaced by issuing its replacement (POST …/replace)")
        }
        if principal.role == .patient {
            guard next == .suspended else { throw AccessError.forbidden("a patient may only report their card lost") }
        } else {
            try requireCardWriter(principal)
        }
        return try await client.transaction(logger: logger) { connection in
            let card = try await lockCard(number, on: connection)
            let residentID = UUID(uuidString: card.residentId)!
            let resident = try await registry.load(residentID, on: connection)
            if principal.role == .patient {
                guard principal.resident == card.residentId else { throw AccessError.forbidden("a patient may change only their own card") }
            } else {
                try await registry.authorizeWrite(principal, resident, on: connection)
            }
            guard card.status.allows(next) else {
                throw RegistryError.conflict(
                    code: "card-transition", detail: "a \(card.status.rawValue) card cannot become \(next.rawValue)")
            }
            if next == .active { try await requireNoActiveCard(residentID, on: connection) }
            let updated = try await setStatus(number, next, reason: reason, on: connection)
            try await record(principal, "card.\(next.rawValue)", number, resident, requestID: requestID, on: connection)
            return updated
        }
    }

    /// Replaces a live card (lost, damaged): the old card becomes `replaced`, the new one takes
    /// over its place in the lifecycle and points back to it.
    public func replace(cardNumber raw: String, with request: CardIssue, reason: String?, by principal: Principal, requestID: String?)
        async throws -> HealthCard
    {
        try requireCardWriter(principal)
        let number = try Self.normalize(raw)
        let newNumber = try request.cardNumber.map { t throws(RegistryError) in try Self.normalize(t) } ?? Self.generateNumber()
        let facility = principal.role == .his ? principal.facility : ResidentValidation.nonEmpty(request.issuingFacility)
        return try await client.transaction(logger: logger) { connection in
            let card = try await lockCard(number, on: connection)
            let residentID = UUID(uuidString: card.residentId)!
            let resident = try await registry.load(residentID, on: connection, forUpdate: true)
            try await registry.authorizeWrite(principal, resident, on: connection)
            guard card.status.allows(.replaced) else {
                throw RegistryError.conflict(code: "card-transition", detail: "a \(card.status.rawValue) card cannot be replaced")
            }
            guard !resident.record.deceased else { throw RegistryError.conflict(code: "resident-deceased", detail: "resident is deceased") }
            _ = try await setStatus(number, .replaced, reason: reason ?? "replaced by \(newNumber)", on: connection)
            let status: HealthCard.Status = card.status == .issued ? .issued : .active
            let rows = try await connection.query(
                """
                INSERT INTO registry.health_cards (card_number, resident_id, issuing_facility, issued_on, status, replaces)
                VALUES (\(newNumber), \(residentID), \(facility), (now() AT TIME ZONE 'Asia/Shanghai')::date, \(status.rawValue), \(number))
                ON CONFLICT (card_number) DO NOTHING
                RETURNING \(unescaped: Self.columns)
                """, logger: logger
            ).collect()
            guard let row = rows.first else { throw RegistryError.duplicate("card \(newNumber)") }
            try await record(principal, "card.replace", newNumber, resident, requestID: requestID, on: connection)
            return try Self.card(from: row)
        }
    }

    public func get(cardNumber raw: String, by principal: Principal, requestID: String?) async throws -> HealthCard {
        let number = try Self.normalize(raw)
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                "SELECT \(unescaped: Self.columns) FROM registry.health_cards WHERE card_number = \(number)", logger: logger
            ).collect()
            guard let row = rows.first else { throw RegistryError.notFound("card \(number)") }
            let card = try Self.card(from: row)
            let residentID = UUID(uuidString: card.residentId)!
            let resident = try await registry.load(residentID, on: connection)
            try registry.authorizeRead(principal, resident, identifiers: try await registry.identifiers(of: residentID, on: connection))
            try await record(principal, "card.read", number, resident, requestID: requestID, on: connection)
            return card
        }
    }

    /// Every card a resident has had, newest first: the replacement history.
    public func cards(ofResident text: String, by principal: Principal, requestID: String?) async throws -> [HealthCard] {
        let id = try ResidentRegistry.residentID(text)
        return try await client.transaction(logger: logger) { connection in
            let resident = try await registry.load(id, on: connection)
            try registry.authorizeRead(
                principal, resident, identifiers: try await registry.identifiers(of: resident.mergedInto ?? id, on: connection))
            let rows = try await connection.query(
                "SELECT \(unescaped: Self.columns) FROM registry.health_cards WHERE resident_id = \(id) ORDER BY created_at DESC, card_number",
                logger: logger)
            var cards: [HealthCard] = []
            for try await row in rows { cards.append(try Self.card(from: row)) }
            try await registry.audit(principal, "card.list", resident, requestID: requestID, on: connection)
            return cards
        }
    }

    /// The registration desk's check. One prepared statement reads the card and its resident and
    /// writes the audit row, so the call costs one round trip and one commit.
    public func verify(cardNumber raw: String, by principal: Principal, requestID: String?) async throws -> CardVerification {
        try principal.require(.his, .clinician, .admin, action: "verify health cards")
        try principal.require(scope: "registry.read")
        let number = try Self.normalize(raw)
        let statement = VerifyCard(
            cardNumber: number, facility: principal.facility, actor: principal.clientID, role: principal.role.rawValue, requestID: requestID
        )
        var found: VerifyCard.Row?
        for try await row in try await verifier.execute(statement, logger: logger) { found = row }
        guard let row = found else {
            throw RegistryError.conflict(code: "card-unknown", detail: "no health card has number \(number)")
        }
        let status = HealthCard.Status(rawValue: row.status) ?? .revoked
        switch status {
        case .active: break
        case .suspended: throw RegistryError.conflict(code: "card-lost", detail: "card \(number) was reported lost")
        case .revoked: throw RegistryError.conflict(code: "card-revoked", detail: "card \(number) was revoked")
        case .replaced: throw RegistryError.conflict(code: "card-replaced", detail: "card \(number) was replaced by a newer card")
        case .issued: throw RegistryError.conflict(code: "card-not-active", detail: "card \(number) has not been activated")
        }
        if row.deceased { throw RegistryError.conflict(code: "resident-deceased", detail: "the card holder is recorded as deceased") }
        let sex = Sex(rawValue: Int(row.sex)) ?? .unknown
        return CardVerification(
            valid: true, cardNumber: number, status: status.rawValue,
            resident: .init(
                id: row.residentID.lowercased, name: row.name, sex: sex.name, sexCode: sex.rawValue, birthDate: row.birthDate,
                document: row.documentType.map { Resident.DocumentView(type: $0, masked: row.documentMasked ?? "") },
                phoneMasked: row.phone.map(FieldProtector.mask), localId: row.localId))
    }

    func lockCard(_ number: String, on connection: PostgresConnection) async throws -> HealthCard {
        let rows = try await connection.query(
            "SELECT \(unescaped: Self.columns) FROM registry.health_cards WHERE card_number = \(number) FOR UPDATE", logger: logger
        ).collect()
        guard let row = rows.first else { throw RegistryError.notFound("card \(number)") }
        return try Self.card(from: row)
    }

    func setStatus(_ number: String, _ status: HealthCard.Status, reason: String?, on connection: PostgresConnection) async throws
        -> HealthCard
    {
        let reason = reason.map { String($0.prefix(200)) }
        let rows = try await connection.query(
            """
            UPDATE registry.health_cards SET status = \(status.rawValue), status_reason = \(reason), status_changed_at = now()
            WHERE card_number = \(number) RETURNING \(unescaped: Self.columns)
            """, logger: logger
        ).collect()
        return try Self.card(from: rows[0])
    }

    func record(
        _ principal: Principal, _ action: String, _ number: String, _ resident: StoredResident, requestID: String?,
        on connection: PostgresConnection
    )
        async throws
    {
        try await EventRow.insert(
            [EventRow(resident_id: resident.id, kind: action, actor: principal.clientID, detail: ["card": number])], on: connection,
            logger: logger)
        try await AuditTrail.append(
            AuditEvent(
                principal: principal, action: action, resource: "card/\(number)", residentPseudonym: resident.pseudonym,
                purpose: principal.role == .admin ? "administration" : "registration", requestID: requestID),
            on: connection, logger: logger)
    }
}

/// Card, resident and the caller's own patient id in one read, with the audit row written by the
/// same statement (a data-modifying CTE always runs, found or not).
struct VerifyCard: PostgresPreparedStatement {
    struct Row {
        let status: String
        let residentID: UUID
        let name: String
        let sex: Int16
        let birthDate: String?
        let documentType: String?
        let documentMasked: String?
        let phone: String?
        let deceased: Bool
        let localId: String?
    }

    static let sql = """
        WITH card AS (
            SELECT c.card_number, c.status, r.id, r.name, r.sex, r.birth_date::text AS birth_date, r.document_type, r.document_masked,
                   r.phone, r.deceased, r.pseudonym,
                   (SELECT i.local_id FROM registry.identifiers i WHERE i.resident_id = r.id AND i.facility = $2
                    ORDER BY i.local_id LIMIT 1) AS local_id
            FROM registry.health_cards c JOIN registry.residents r ON r.id = c.resident_id
            WHERE c.card_number = $1
        ), audit AS (
            INSERT INTO access.audit_log (occurred_at, actor, role, facility, action, resource, resident_pseudonym, purpose, outcome,
                                          request_id, detail)
            SELECT date_trunc('microseconds', clock_timestamp()), $3, $4, $2, 'card.verify', 'card/' || $1, card.pseudonym,
                   'registration', 'success', $5,
                   CASE WHEN card.card_number IS NULL THEN 'unknown' WHEN card.deceased THEN 'deceased' ELSE card.status END
            FROM (SELECT 1) AS one LEFT JOIN card ON true
        )
        SELECT status, id, name, sex, birth_date, document_type, document_masked, phone, deceased, local_id FROM card
        """

    let cardNumber: String
    let facility: String?
    let actor: String
    let role: String
    let requestID: String?

    static var bindingDataTypes: [PostgresDataType] { [.text, .text, .text, .text, .text] }

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 5)
        bindings.append(cardNumber)
        bindings.append(facility)
        bindings.append(actor)
        bindings.append(role)
        bindings.append(requestID)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        let (status, id, name, sex, birth, type, masked, phone, deceased, localId) = try row.decode(
            (String, UUID, String, Int16, String?, String?, String?, String?, Bool, String?).self)
        return Row(
            status: status, residentID: id, name: name, sex: sex, birthDate: birth, documentType: type, documentMasked: masked,
            phone: phone, deceased: deceased, localId: localId)
    }
}
