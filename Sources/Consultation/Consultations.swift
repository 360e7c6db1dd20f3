import Access
import Foundation
import Logging
import PostgresNIO
import Records
import Registry
import Storage

/// Settings of the consultation desk.
public struct ConsultationConfiguration: Sendable {
    /// A request still queued this long after it was made is escalated.
    public var escalateAfterMinutes: Int
    /// The handling time assumed for the estimated wait until a department has finished enough
    /// consultations to measure its own.
    public var defaultHandlingMinutes: Int

    public init(escalateAfterMinutes: Int = 10, defaultHandlingMinutes: Int = 10) {
        self.escalateAfterMinutes = escalateAfterMinutes
        self.defaultHandlingMinutes = defaultHandlingMinutes
    }
}

public struct Consultation: Sendable, Codable, Equatable {
    public var id: String
    public var resident: String
    public var department: String
    public var departmentCode: String
    public var facility: String
    public var preferredClinician: String?
    public var complaint: String
    public var urgency: String
    public var status: String
    public var queuedAt: Date
    public var clinician: String?
    public var claimedAt: Date?
    public var acceptedAt: Date?
    public var completedAt: Date?
    public var cancelledAt: Date?
    public var escalated: Bool
    public var escalatedAt: Date?
    public var transfers: Int
    public var summary: String?
    public var advice: String?
    public var encounter: String?
    /// While queued: 1 for the next to be claimed in the department.
    public var position: Int?
    /// While queued: position × the department's recent mean handling time ÷ clinicians on duty.
    public var estimatedWaitMinutes: Int?
    public var cliniciansOnDuty: Int?
}

public struct ConsultationRequest: Sendable, Decodable {
    public var department: String?
    public var complaint: String?
    public var urgency: String?
    /// A clinician (provider id) of the department, or absent for any.
    public var preferredClinician: String?

    public init(department: String?, complaint: String?, urgency: String? = nil, preferredClinician: String? = nil) {
        self.department = department
        self.complaint = complaint
        self.urgency = urgency
        self.preferredClinician = preferredClinician
    }
}

public struct TransferRequest: Sendable, Decodable {
    public var department: String?
}

public struct CompletionRequest: Sendable, Decodable {
    public var summary: String?
    public var advice: String?
}

/// The queue: requests, claims, the clinician's transitions, the resident's cancel, escalation.
public struct ConsultationService: Sendable {
    let client: PostgresClient
    let configuration: ConsultationConfiguration
    let audit: ResidentAudit
    let record: ClinicalRecord
    let logger: Logger

    public init(client: PostgresClient, registry: ResidentRegistry, configuration: ConsultationConfiguration, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.audit = ResidentAudit(registry: registry, purpose: "consultation", logger: logger)
        self.record = ClinicalRecord(logger: logger)
        self.logger = logger
    }

    static let columns = """
        c.id, c.resident_id, c.department_id, d.code, d.facility, c.preferred_provider_id, c.complaint, c.urgency, c.status,
        c.queued_at, c.provider_id, c.claimed_at, c.accepted_at, c.completed_at, c.cancelled_at, c.escalated, c.escalated_at,
        c.transfers, c.summary, c.advice, c.encounter_id, c.priority
        """

    static let select = """
        SELECT \(columns) FROM consultation.consultations c JOIN scheduling.departments d ON d.id = c.department_id
        """

    struct Row {
        var consultation: Consultation
        var id: UUID
        var resident: UUID
        var department: UUID
        var provider: UUID?
        var priority: Int
        var status: ConsultationStatus
    }

    static func rows(_ sequence: PostgresRowSequence) async throws -> [Row] {
        var result: [Row] = []
        for try await row in sequence {
            let c = try row.decode(
                (
                    UUID, UUID, UUID, String, String, UUID?, String, String, String, Date, UUID?, Date?, Date?, Date?, Date?, Bool, Date?,
                    Int32, String?, String?, UUID?, Int16
                ).self)
            result.append(
                Row(
                    consultation: Consultation(
                        id: c.0.lowercased, resident: c.1.lowercased, department: c.2.lowercased, departmentCode: c.3, facility: c.4,
                        preferredClinician: c.5?.lowercased, complaint: c.6, urgency: c.7, status: c.8, queuedAt: c.9,
                        clinician: c.10?.lowercased, claimedAt: c.11, acceptedAt: c.12, completedAt: c.13, cancelledAt: c.14,
                        escalated: c.15, escalatedAt: c.16, transfers: Int(c.17), summary: c.18, advice: c.19,
                        encounter: c.20?.lowercased),
                    id: c.0, resident: c.1, department: c.2, provider: c.10, priority: Int(c.21),
                    status: ConsultationStatus(rawValue: c.8) ?? .queued))
        }
        return result
    }

    /// A resident asks for a consultation; it joins the department's queue.
    public func request(_ body: ConsultationRequest, by principal: Principal, requestID: String?) async throws -> Consultation {
        let resident = try ConsultationAccess.resident(principal, scope: "consultation.write")
        let department = try ConsultationAccess.uuidField(body.department, "department")
        let complaint = (body.complaint ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...4000).contains(complaint.count) else {
            throw ConsultationError.invalid(field: "complaint", reason: "is required (at most 4000 characters)")
        }
        let urgency = body.urgency ?? "routine"
        guard urgency == "routine" || urgency == "urgent" else {
            throw ConsultationError.invalid(field: "urgency", reason: "must be routine or urgent")
        }
        let preferred = try body.preferredClinician.map { try ConsultationAccess.uuidField($0, "preferredClinician") }
        let id = UUID.timeOrdered()
        return try await client.transaction(logger: logger) { connection in
            let found = try await connection.query(
                """
                SELECT (SELECT active FROM scheduling.departments WHERE id = \(department)),
                       (\(preferred)::uuid IS NULL OR EXISTS (SELECT 1 FROM scheduling.providers WHERE id = \(preferred)
                            AND department_id = \(department) AND kind = 'clinician' AND active)),
                       EXISTS (SELECT 1 FROM registry.residents WHERE id = \(resident))
                """, logger: logger
            ).collect().first?.decode((Bool?, Bool, Bool).self)
            guard found?.0 == true else { throw ConsultationError.invalid(field: "department", reason: "no such active department") }
            guard found?.1 == true else {
                throw ConsultationError.invalid(field: "preferredClinician", reason: "is not an active clinician of the department")
            }
            guard found?.2 == true else { throw AccessError.forbidden("the resident this client acts for is not registered") }
            try await connection.query(
                """
                INSERT INTO consultation.consultations (id, resident_id, requested_by, department_id, preferred_provider_id, complaint,
                    urgency, priority)
                VALUES (\(id), \(resident), \(principal.clientID), \(department), \(preferred), \(complaint), \(urgency),
                    \(urgency == "urgent" ? Int16(2) : Int16(0)))
                """, logger: logger)
            var row = try await Self.rows(try await connection.query("\(unescaped: Self.select) WHERE c.id = \(id)", logger: logger))[0]
            try await withQueuePosition(&row, on: connection)
            try await audit.record(
                principal, "consultation.create", resident: resident, resource: "consultations/\(id.lowercased)", requestID: requestID,
                on: connection)
            return row.consultation
        }
    }

    /// One consultation, for its resident or a clinician of its department's desk (or the one
    /// holding it); with the queue position and estimated wait while queued.
    public func consultation(id text: String, by principal: Principal, requestID: String?) async throws -> Consultation {
        let id = try ConsultationAccess.uuid(text, "consultation")
        return try await client.withConnection { connection in
            var row = try await visible(id, by: principal, on: connection)
            try await withQueuePosition(&row, on: connection)
            try await audit.record(
                principal, "consultation.read", resident: row.resident, resource: "consultations/\(row.consultation.id)",
                requestID: requestID, on: connection)
            return row.consultation
        }
    }

    /// The row if the caller may see it; a consultation the caller may not see does not exist
    /// as far as they can tell.
    func visible(
        _ id: UUID, by principal: Principal, known clinician: Clinician? = nil, lock: Bool = false, on connection: PostgresConnection
    ) async throws -> Row {
        let rows = try await connection.query(
            "\(unescaped: Self.select) WHERE c.id = \(id) \(unescaped: lock ? "FOR UPDATE OF c" : "")", logger: logger)
        guard let row = try await Self.rows(rows).first else { throw ConsultationError.notFound("consultation \(id.lowercased)") }
        switch principal.role {
        case .patient:
            guard principal.resident == row.consultation.resident, principal.scopes.contains("self.read") else {
                throw ConsultationError.notFound("consultation \(id.lowercased)")
            }
        case .clinician:
            var me = clinician
            if me == nil { me = try await ConsultationAccess.clinician(principal, on: connection, logger: logger) }
            guard let me else { throw ConsultationError.notFound("consultation \(id.lowercased)") }
            guard row.provider == me.provider else {
                guard try await ConsultationAccess.isOnDesk(me, department: row.department, on: connection, logger: logger) else {
                    throw ConsultationError.notFound("consultation \(id.lowercased)")
                }
                return row
            }
        default:
            throw AccessError.forbidden("role \(principal.role.rawValue) may not read consultations")
        }
        return row
    }

    /// Position, estimated wait and clinicians on duty for a queued request. The wait is
    /// position × the mean handling time (claim to completion) of the department's last 50
    /// consultations finished within a day ÷ the clinicians on duty there now; with fewer than
    /// three such consultations the configured default handling time stands in. With nobody on
    /// duty there is no estimate (null), only the position.
    func withQueuePosition(_ row: inout Row, on connection: PostgresConnection) async throws {
        guard row.status == .queued else { return }
        let queuedAt = row.consultation.queuedAt
        let priority = Int16(row.priority)
        let rows = try await connection.query(
            """
            SELECT (SELECT count(*) FROM consultation.consultations q WHERE q.department_id = \(row.department) AND q.status = 'queued'
                      AND (q.priority > \(priority) OR (q.priority = \(priority) AND (q.queued_at, q.id) < (\(queuedAt), \(row.id)))))::int4,
                   (SELECT count(DISTINCT provider_id) FROM consultation.duty_shifts WHERE department_id = \(row.department)
                      AND starts_at <= now() AND ends_at > now())::int4,
                   recent.n::int4, recent.mean
            FROM (SELECT count(*) AS n, extract(epoch FROM avg(completed_at - claimed_at))::float8 AS mean
                  FROM (SELECT completed_at, claimed_at FROM consultation.consultations
                        WHERE department_id = \(row.department) AND status = 'completed' AND completed_at > now() - interval '1 day'
                        ORDER BY completed_at DESC LIMIT 50) last) recent
            """, logger: logger)
        guard let found = try await rows.collect().first?.decode((Int32, Int32, Int32, Double?).self) else { return }
        let (ahead, onDuty, samples, mean) = found
        let handling = samples >= 3 ? (mean ?? 0) : Double(configuration.defaultHandlingMinutes * 60)
        let position = Int(ahead) + 1
        row.consultation.position = position
        row.consultation.cliniciansOnDuty = Int(onDuty)
        if onDuty > 0 {
            row.consultation.estimatedWaitMinutes = Int((Double(position) * handling / Double(onDuty) / 60).rounded(.up))
        }
    }

    /// The resident's own consultations, or a department's for a clinician of its desk
    /// (`department` defaults to the clinician's own); newest queue time first.
    public func list(
        status: String?, department: String?, page: PageRequest, by principal: Principal, requestID: String?
    ) async throws -> (items: [Consultation], nextCursor: String?) {
        if let status, ConsultationStatus(rawValue: status) == nil {
            throw ConsultationError.invalid(field: "status", reason: "must be queued, claimed, in-progress, completed or cancelled")
        }
        var afterTime = Date.distantFuture
        var afterID = UUID(uuidString: "ffffffff-ffff-ffff-ffff-ffffffffffff")!
        if let after = page.after {
            let parts = after.split(separator: "|")
            guard parts.count == 2, let seconds = Double(parts[0]), let id = UUID(uuidString: String(parts[1])) else {
                throw PageError.badCursor("cursor is not one this service issued")
            }
            (afterTime, afterID) = (Date(timeIntervalSince1970: seconds), id)
        }
        return try await client.withConnection { connection in
            var resident: UUID?
            var departmentID: UUID?
            if principal.role == .patient {
                resident = try ConsultationAccess.resident(principal, scope: "self.read")
            } else {
                let me = try await ConsultationAccess.clinician(principal, on: connection, logger: logger)
                let wanted = try department.map { try ConsultationAccess.uuidField($0, "department") } ?? me.department
                guard try await ConsultationAccess.isOnDesk(me, department: wanted, on: connection, logger: logger) else {
                    throw ConsultationError.forbidden(code: "not-on-desk", detail: "you are not a clinician of this department")
                }
                departmentID = wanted
            }
            let rows = try await connection.query(
                """
                \(unescaped: Self.select)
                WHERE (\(resident)::uuid IS NULL OR c.resident_id = \(resident))
                  AND (\(departmentID)::uuid IS NULL OR c.department_id = \(departmentID))
                  AND (\(status)::text IS NULL OR c.status = \(status))
                  AND (c.queued_at, c.id) < (\(afterTime), \(afterID))
                ORDER BY c.queued_at DESC, c.id DESC LIMIT \(page.limit + 1)
                """, logger: logger)
            var found = try await Self.rows(rows).map(\.consultation)
            var next: String?
            if found.count > page.limit {
                found.removeLast()
                let last = found[page.limit - 1]
                next = Cursor.encode("\(last.queuedAt.timeIntervalSince1970)|\(last.id)")
            }
            try await audit.record(
                principal, "consultation.list", resident: resident,
                resource: departmentID.map { "departments/\($0.lowercased)/consultations" } ?? "consultations", requestID: requestID,
                on: connection)
            return (found, next)
        }
    }

    /// The next request for a clinician on duty: from the departments of their current shifts,
    /// urgent (and escalated) first, then oldest; a request naming another clinician waits for
    /// them until it is escalated. One statement locks the head of the queue with SKIP LOCKED, so
    /// concurrent claims take different requests and never wait for each other.
    public func claim(by principal: Principal, requestID: String?) async throws -> Consultation {
        try await client.transaction(logger: logger) { connection in
            let me = try await ConsultationAccess.clinician(principal, on: connection, logger: logger)
            let departments = try await connection.query(
                """
                SELECT DISTINCT department_id FROM consultation.duty_shifts
                WHERE provider_id = \(me.provider) AND starts_at <= now() AND ends_at > now()
                """, logger: logger
            ).collect().map { try $0.decode(UUID.self) }
            guard !departments.isEmpty else {
                throw ConsultationError.conflict(code: "off-duty", detail: "you have no duty shift now; an off-duty clinician cannot claim")
            }
            let rows = try await connection.query(
                """
                WITH next AS (
                    SELECT id FROM consultation.consultations
                    WHERE status = 'queued' AND department_id = ANY(\(departments)::uuid[])
                      AND (preferred_provider_id IS NULL OR preferred_provider_id = \(me.provider) OR escalated)
                    ORDER BY priority DESC, queued_at, id LIMIT 1
                    FOR UPDATE SKIP LOCKED
                ), claimed AS (
                    UPDATE consultation.consultations c SET status = 'claimed', provider_id = \(me.provider), claimed_at = now(),
                        updated_at = now()
                    FROM next WHERE c.id = next.id AND c.status = 'queued'
                    RETURNING c.*
                )
                SELECT \(unescaped: Self.columns) FROM claimed c JOIN scheduling.departments d ON d.id = c.department_id
                """, logger: logger)
            guard let row = try await Self.rows(rows).first else { throw ConsultationError.queueEmpty }
            try await audit.record(
                principal, "consultation.claim", resident: row.resident, resource: "consultations/\(row.consultation.id)",
                requestID: requestID, on: connection)
            return row.consultation
        }
    }

    /// The clinician holding a claimed request accepts it.
    public func accept(id text: String, by principal: Principal, requestID: String?) async throws -> Consultation {
        try await clinicianTransition(.accept, id: text, by: principal, requestID: requestID) { row, _, connection in
            _ = try await connection.query(
                """
                UPDATE consultation.consultations SET status = 'in-progress', accepted_at = now(), updated_at = now()
                WHERE id = \(row.id)
                """, logger: logger)
        }
    }

    /// The clinician holding a request sends it to another department's queue, where it keeps
    /// its original queue time (and so its place among older requests).
    public func transfer(_ body: TransferRequest, id text: String, by principal: Principal, requestID: String?) async throws
        -> Consultation
    {
        let target = try ConsultationAccess.uuidField(body.department, "department")
        return try await clinicianTransition(.transfer, id: text, by: principal, requestID: requestID) { row, _, connection in
            guard target != row.department else {
                throw ConsultationError.invalid(field: "department", reason: "is the department the consultation is already in")
            }
            let active = try await connection.query(
                "SELECT active FROM scheduling.departments WHERE id = \(target)", logger: logger
            ).collect().first?.decode(Bool.self)
            guard active == true else { throw ConsultationError.invalid(field: "department", reason: "no such active department") }
            try await connection.query(
                """
                UPDATE consultation.consultations SET status = 'queued', department_id = \(target), provider_id = NULL,
                    preferred_provider_id = NULL, claimed_at = NULL, accepted_at = NULL, transfers = transfers + 1, updated_at = now()
                WHERE id = \(row.id)
                """, logger: logger)
        }
    }

    /// The clinician holding an accepted request completes it: the summary and advice are kept
    /// with the consultation, and an online encounter at the clinician's facility enters the
    /// resident's record in the same transaction.
    public func complete(_ body: CompletionRequest, id text: String, by principal: Principal, requestID: String?) async throws
        -> Consultation
    {
        let summary = (body.summary ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let advice = (body.advice ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...4000).contains(summary.count) else {
            throw ConsultationError.invalid(field: "summary", reason: "is required (at most 4000 characters)")
        }
        guard (1...4000).contains(advice.count) else {
            throw ConsultationError.invalid(field: "advice", reason: "is required (at most 4000 characters)")
        }
        return try await clinicianTransition(.complete, id: text, by: principal, requestID: requestID) { row, me, connection in
            let now = Date()
            // The consultation's id as the visit number: completing twice could not file two encounters.
            let encounter = try await record.recordEncounter(
                EncounterInput(
                    key: "consultation-" + row.consultation.id, encounterClass: .online, status: .finished,
                    startedAt: row.consultation.acceptedAt ?? row.consultation.claimedAt, endedAt: now,
                    department: row.consultation.departmentCode),
                resident: row.resident, facility: me.facility, source: .api, on: connection)
            try await connection.query(
                """
                UPDATE consultation.consultations SET status = 'completed', completed_at = \(now), summary = \(summary),
                    advice = \(advice), encounter_id = \(encounter), updated_at = now()
                WHERE id = \(row.id)
                """, logger: logger)
        }
    }

    /// Locks the consultation, checks that the caller is the clinician holding it and that the
    /// state machine allows `event`, runs `change`, audits and returns the new state.
    func clinicianTransition(
        _ event: ConsultationEvent, id text: String, by principal: Principal, requestID: String?,
        _ change: @Sendable (Row, Clinician, PostgresConnection) async throws -> Void
    ) async throws -> Consultation {
        let id = try ConsultationAccess.uuid(text, "consultation")
        return try await client.transaction(logger: logger) { connection in
            let me = try await ConsultationAccess.clinician(principal, on: connection, logger: logger)
            let row = try await visible(id, by: principal, known: me, lock: true, on: connection)
            var state = ConsultationState(status: row.status, escalated: row.consultation.escalated)
            do { try state.on(event) } catch {
                throw ConsultationError.conflict(code: "consultation-\(row.status.rawValue)", detail: "\(error)")
            }
            guard row.provider == me.provider else {
                throw ConsultationError.forbidden(code: "not-assigned", detail: "another clinician holds this consultation")
            }
            try await change(row, me, connection)
            let changed = try await Self.rows(try await connection.query("\(unescaped: Self.select) WHERE c.id = \(id)", logger: logger))[0]
            try await audit.record(
                principal, "consultation.\(event.rawValue)", resident: row.resident, resource: "consultations/\(row.consultation.id)",
                requestID: requestID, on: connection)
            return changed.consultation
        }
    }

    /// The resident withdraws a request that is queued or claimed (not yet accepted).
    public func cancel(id text: String, by principal: Principal, requestID: String?) async throws -> Consultation {
        let id = try ConsultationAccess.uuid(text, "consultation")
        _ = try ConsultationAccess.resident(principal, scope: "consultation.write")
        return try await client.transaction(logger: logger) { connection in
            let row = try await visible(id, by: principal, lock: true, on: connection)
            var state = ConsultationState(status: row.status, escalated: row.consultation.escalated)
            do { try state.on(.cancel) } catch {
                throw ConsultationError.conflict(code: "consultation-\(row.status.rawValue)", detail: "\(error)")
            }
            try await connection.query(
                """
                UPDATE consultation.consultations SET status = 'cancelled', provider_id = NULL, cancelled_at = now(), updated_at = now()
                WHERE id = \(id)
                """, logger: logger)
            let changed = try await Self.rows(try await connection.query("\(unescaped: Self.select) WHERE c.id = \(id)", logger: logger))[0]
            try await audit.record(
                principal, "consultation.cancel", resident: row.resident, resource: "consultations/\(row.consultation.id)",
                requestID: requestID, on: connection)
            return changed.consultation
        }
    }

    /// Escalates requests still queued `escalateAfterMinutes` after they were made: flagged,
    /// moved up one priority step, and an outbox row for the department's facility. Each request
    /// is escalated once. Returns how many were escalated.
    @discardableResult
    public func escalate(now: Date = Date()) async throws -> Int {
        let minutes = Int32(configuration.escalateAfterMinutes)
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                WITH due AS (
                    SELECT id FROM consultation.consultations
                    WHERE status = 'queued' AND NOT escalated AND queued_at <= \(now) - make_interval(mins => \(minutes))
                    ORDER BY queued_at LIMIT 5000
                    FOR UPDATE SKIP LOCKED
                ), escalated AS (
                    UPDATE consultation.consultations c SET escalated = true, escalated_at = \(now), priority = least(priority + 1, 3),
                        updated_at = now()
                    FROM due WHERE c.id = due.id
                    RETURNING c.id, c.department_id, c.urgency, c.queued_at
                ), notified AS (
                    INSERT INTO consultation.outbox (topic, department_id, facility, payload)
                    SELECT 'consultation.escalated', e.department_id, d.facility,
                           jsonb_build_object('consultation', e.id, 'department', e.department_id, 'urgency', e.urgency,
                                              'queuedAt', e.queued_at)
                    FROM escalated e JOIN scheduling.departments d ON d.id = e.department_id
                    RETURNING 1
                )
                SELECT count(*)::int4 FROM notified
                """, logger: logger)
            return Int(try await rows.collect().first?.decode(Int32.self) ?? 0)
        }
    }
}
