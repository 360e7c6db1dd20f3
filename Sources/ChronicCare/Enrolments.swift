import Access
import ChronicRules
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

public struct Enrolment: Sendable, Codable, Equatable {
    public var id: String
    public var resident: String
    public var programme: String
    public var facility: String
    public var status: String
    public var riskLevel: String?
    public var source: String
    public var enrolledAt: Date
    public var followUpDays: Int?
    public var lastFollowUpAt: Date?
    public var nextFollowUpDue: Date?
    public var dischargedAt: Date?
    public var dischargeReason: String?
}

public struct EnrolmentRequest: Sendable, Decodable {
    public var resident: String
    public var programme: String
    public var riskLevel: String?
    /// The managing clinic; by default the clinician's own.
    public var facility: String?
    public var followUpDays: Int?
}

public struct FollowUpRequest: Sendable, Decodable {
    public var kind: String?
    public var performedAt: Date?
    public var riskLevel: String?
    public var note: String?
}

public struct DischargeRequest: Sendable, Decodable {
    public var reason: String
}

/// A row of a clinic's work list.
public struct WorkListEntry: Sendable, Codable, Equatable {
    public var enrolment: String
    public var resident: String
    public var name: String
    public var programme: String
    public var riskLevel: String?
    public var nextFollowUpDue: Date?
    public var lastReadingAt: Date?
}

/// Enrolment in programmes: by a clinician, or automatically from a qualifying diagnosis (the
/// migration's trigger); follow-ups that move the next due date; discharge; the clinic's lists.
public struct EnrolmentService: Sendable {
    let client: PostgresClient
    let registry: ResidentRegistry
    let configuration: MonitoringConfiguration
    let audit: ResidentAudit
    let logger: Logger

    public init(client: PostgresClient, registry: ResidentRegistry, configuration: MonitoringConfiguration, logger: Logger) {
        self.client = client
        self.registry = registry
        self.configuration = configuration
        self.audit = ResidentAudit(registry: registry, purpose: "monitoring", logger: logger)
        self.logger = logger
    }

    static let columns = """
        SELECT id, resident_id, programme, facility, status, risk_level, source, enrolled_at, follow_up_days, last_follow_up_at,
               next_follow_up_due, discharged_at, discharge_reason FROM chronic_care.enrolments
        """

    static func enrolments(_ rows: PostgresRowSequence) async throws -> [Enrolment] {
        var result: [Enrolment] = []
        for try await row in rows {
            let c = try row.decode((UUID, UUID, String, String, String, String?, String, Date, Int?, Date?, Date?, Date?, String?).self)
            result.append(
                Enrolment(
                    id: c.0.lowercased, resident: c.1.lowercased, programme: c.2, facility: c.3, status: c.4, riskLevel: c.5, source: c.6,
                    enrolledAt: c.7, followUpDays: c.8, lastFollowUpAt: c.9, nextFollowUpDue: c.10, dischargedAt: c.11,
                    dischargeReason: c.12))
        }
        return result
    }

    static func checkRisk(_ risk: String?) throws {
        if let risk, !["low", "medium", "high"].contains(risk) {
            throw ChronicCareError.invalid(field: "riskLevel", reason: "must be low, medium or high")
        }
    }

    public func enrol(_ request: EnrolmentRequest, by principal: Principal, requestID: String?) async throws -> Enrolment {
        let own = try ManagedAccess.clinic(principal, scope: "monitoring.write")
        let resident = try ManagedAccess.uuid(request.resident, "resident")
        guard let programme = configuration.programme(request.programme) else {
            throw ChronicCareError.invalid(
                field: "programme", reason: "must be one of \(configuration.programmes.map(\.code).joined(separator: ", "))")
        }
        try Self.checkRisk(request.riskLevel)
        let facility = request.facility ?? own
        // A hospital may refer a resident to a clinic's care; a clinic enrols for itself.
        if facility != own, principal.role != .clinician && principal.role != .his {
            throw AccessError.forbidden("only a clinician may enrol for another facility")
        }
        let days = request.followUpDays ?? programme.followUpDays
        if let days, !(1...366).contains(days) { throw ChronicCareError.invalid(field: "followUpDays", reason: "must be from 1 to 366") }
        return try await client.transaction(logger: logger) { connection in
            let exists = try await connection.query(
                """
                SELECT (SELECT count(*) FROM registry.residents WHERE id = \(resident) AND status = 'active')::int4,
                       (SELECT count(*) FROM registry.facilities WHERE code = \(facility) AND active)::int4
                """, logger: logger)
            let (residents, facilities) = try await exists.collect().first!.decode((Int32, Int32).self)
            guard residents == 1 else { throw ChronicCareError.notFound("resident \(request.resident.prefix(40))") }
            guard facilities == 1 else {
                throw ChronicCareError.invalid(field: "facility", reason: "\(facility.prefix(40)) is not an active facility")
            }
            let rows = try await connection.query(
                """
                INSERT INTO chronic_care.enrolments (id, resident_id, programme, facility, risk_level, source, enrolled_by, follow_up_days,
                                                     next_follow_up_due)
                VALUES (\(UUID.timeOrdered()), \(resident), \(programme.code), \(facility), \(request.riskLevel), 'clinician', \(principal.clientID),
                        \(days), CASE WHEN \(days)::int4 IS NULL THEN NULL ELSE now() + make_interval(days => \(days ?? 0)::int4) END)
                ON CONFLICT (resident_id, programme) WHERE status = 'active' DO NOTHING
                RETURNING id, resident_id, programme, facility, status, risk_level, source, enrolled_at, follow_up_days, last_follow_up_at,
                          next_follow_up_due, discharged_at, discharge_reason
                """, logger: logger)
            guard let enrolment = try await Self.enrolments(rows).first else {
                throw ChronicCareError.conflict(code: "already-enrolled", detail: "the resident is already enrolled in \(programme.code)")
            }
            try await connection.query(
                """
                INSERT INTO chronic_care.outbox (topic, facility, payload)
                VALUES ('enrolment.created', \(facility), jsonb_build_object('enrolment', \(enrolment.id)::text, 'programme', \(programme.code)::text, 'source', 'clinician'))
                """, logger: logger)
            try await audit.record(
                principal, "chronic.enrolment.create", resident: resident, resource: "enrolments/\(enrolment.id)", requestID: requestID,
                on: connection)
            return enrolment
        }
    }

    public func list(
        resident: String?, programme: String?, status: String?, by principal: Principal, requestID: String?
    ) async throws -> [Enrolment] {
        if let status, !["active", "discharged"].contains(status) {
            throw ChronicCareError.invalid(field: "status", reason: "must be active or discharged")
        }
        return try await client.withConnection { connection in
            var residentID: UUID?
            var facility: String?
            if principal.role == .patient {
                residentID = try ManagedAccess.uuid(principal.resident ?? "", "resident")
                if let resident, resident.lowercased() != residentID!.lowercased {
                    throw AccessError.forbidden("a patient may read only their own enrolments")
                }
                try await ManagedAccess.requireRead(principal, resident: residentID!, on: connection, logger: logger)
            } else {
                facility = try ManagedAccess.clinic(principal)
                residentID = try resident.map { try ManagedAccess.uuid($0, "resident") }
            }
            let rows = try await connection.query(
                """
                 \(unescaped: Self.columns)
                 WHERE (\(residentID)::uuid IS NULL OR resident_id = \(residentID)) AND (\(facility)::text IS NULL OR facility = \(facility))
                  AND (\(programme)::text IS NULL OR programme = \(programme)) AND (\(status)::text IS NULL OR status = \(status))
                ORDER BY enrolled_at DESC, id DESC LIMIT 500
                """, logger: logger)
            let found = try await Self.enrolments(rows)
            try await audit.record(
                principal, "chronic.enrolment.list", resident: residentID, resource: "enrolments", requestID: requestID, on: connection)
            return found
        }
    }

    /// A face-to-face follow-up moves the next due date on by the programme's interval; phone
    /// and online follow-ups are recorded but do not count toward the four a year.
    public func followUp(_ request: FollowUpRequest, enrolment text: String, by principal: Principal, requestID: String?) async throws
        -> Enrolment
    {
        let facility = try ManagedAccess.clinic(principal, scope: "monitoring.write")
        let id = try ManagedAccess.uuid(text, "enrolment")
        let kind = request.kind ?? "face-to-face"
        guard ["face-to-face", "phone", "online"].contains(kind) else {
            throw ChronicCareError.invalid(field: "kind", reason: "must be face-to-face, phone or online")
        }
        try Self.checkRisk(request.riskLevel)
        let performed = request.performedAt ?? Date()
        guard performed <= Date().addingTimeInterval(600) else {
            throw ChronicCareError.invalid(field: "performedAt", reason: "is in the future")
        }
        if let note = request.note, note.count > 2000 { throw ChronicCareError.invalid(field: "note", reason: "at most 2000 characters") }
        return try await client.transaction(logger: logger) { connection in
            let current = try await Self.enrolments(
                try await connection.query("\(unescaped: Self.columns) WHERE id = \(id) FOR UPDATE", logger: logger))
            guard let enrolment = current.first, enrolment.facility == facility else {
                throw ChronicCareError.notFound("enrolment \(text.prefix(40))")
            }
            guard enrolment.status == "active" else {
                throw ChronicCareError.conflict(code: "enrolment-discharged", detail: "the enrolment was discharged")
            }
            try await connection.query(
                """
                INSERT INTO chronic_care.follow_ups (enrolment_id, facility, kind, performed_at, risk_level, note, recorded_by)
                VALUES (\(id), \(facility), \(kind), \(performed), \(request.riskLevel), \(request.note), \(principal.clientID))
                """, logger: logger)
            let rows = try await connection.query(
                """
                UPDATE chronic_care.enrolments SET
                    risk_level = coalesce(\(request.riskLevel), risk_level),
                    last_follow_up_at = CASE WHEN \(kind) = 'face-to-face' THEN greatest(last_follow_up_at, \(performed)) ELSE last_follow_up_at END,
                    next_follow_up_due = CASE WHEN \(kind) = 'face-to-face' AND follow_up_days IS NOT NULL
                        THEN greatest(last_follow_up_at, \(performed)) + make_interval(days => follow_up_days) ELSE next_follow_up_due END,
                    version = version + 1
                WHERE id = \(id)
                RETURNING id, resident_id, programme, facility, status, risk_level, source, enrolled_at, follow_up_days, last_follow_up_at,
                          next_follow_up_due, discharged_at, discharge_reason
                """, logger: logger)
            let updated = try await Self.enrolments(rows)[0]
            try await audit.record(
                principal, "chronic.enrolment.follow-up", resident: UUID(uuidString: updated.resident),
                resource: "enrolments/\(updated.id)",
                requestID: requestID, on: connection)
            return updated
        }
    }

    public func discharge(_ request: DischargeRequest, enrolment text: String, by principal: Principal, requestID: String?) async throws
        -> Enrolment
    {
        let facility = try ManagedAccess.clinic(principal, scope: "monitoring.write")
        let id = try ManagedAccess.uuid(text, "enrolment")
        let reason = request.reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...500).contains(reason.count) else {
            throw ChronicCareError.invalid(field: "reason", reason: "is required (at most 500 characters)")
        }
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE chronic_care.enrolments SET status = 'discharged', discharged_at = now(), discharge_reason = \(reason), version = version + 1
                WHERE id = \(id) AND facility = \(facility) AND status = 'active'
                RETURNING id, resident_id, programme, facility, status, risk_level, source, enrolled_at, follow_up_days, last_follow_up_at,
                          next_follow_up_due, discharged_at, discharge_reason
                """, logger: logger)
            guard let updated = try await Self.enrolments(rows).first else {
                let existing = try await connection.query(
                    "SELECT status FROM chronic_care.enrolments WHERE id = \(id) AND facility = \(facility)", logger: logger)
                if try await existing.collect().isEmpty { throw ChronicCareError.notFound("enrolment \(text.prefix(40))") }
                throw ChronicCareError.conflict(code: "enrolment-discharged", detail: "the enrolment was already discharged")
            }
            try await audit.record(
                principal, "chronic.enrolment.discharge", resident: UUID(uuidString: updated.resident),
                resource: "enrolments/\(updated.id)",
                requestID: requestID, on: connection)
            return updated
        }
    }

    /// The clinic's list of residents whose face-to-face follow-up is past due (or, with
    /// `noReadingsDays`, who have sent no reading for that many days), most overdue first.
    public func workList(
        overdue: Bool, noReadingsDays: Int?, programme: String?, by principal: Principal, requestID: String?, now: Date = Date()
    ) async throws -> [WorkListEntry] {
        let facility = try ManagedAccess.clinic(principal)
        if let days = noReadingsDays, !(1...366).contains(days) {
            throw ChronicCareError.invalid(field: "days", reason: "must be from 1 to 366")
        }
        let silentSince = noReadingsDays.map { now.addingTimeInterval(-Double($0) * 86_400) }
        return try await client.withConnection { connection in
            let rows = try await connection.query(
                """
                SELECT e.id, e.resident_id, r.name, e.programme, e.risk_level, e.next_follow_up_due, last.at
                FROM chronic_care.enrolments e
                JOIN registry.residents r ON r.id = e.resident_id
                LEFT JOIN LATERAL (SELECT max(measured_at) AS at FROM chronic_care.readings WHERE resident_id = e.resident_id) AS last ON true
                WHERE e.facility = \(facility) AND e.status = 'active' AND (\(programme)::text IS NULL OR e.programme = \(programme))
                  AND (NOT \(overdue) OR e.next_follow_up_due < \(now))
                  AND (\(silentSince)::timestamptz IS NULL OR (coalesce(last.at, '-infinity') < \(silentSince) AND e.enrolled_at < \(silentSince)))
                ORDER BY CASE WHEN \(overdue) THEN e.next_follow_up_due END ASC NULLS LAST, last.at ASC NULLS FIRST, e.id
                LIMIT 1000
                """, logger: logger)
            var entries: [WorkListEntry] = []
            for try await (id, resident, name, programme, risk, due, last) in rows.decode(
                (UUID, UUID, String, String, String?, Date?, Date?).self)
            {
                entries.append(
                    WorkListEntry(
                        enrolment: id.lowercased, resident: resident.lowercased, name: name, programme: programme, riskLevel: risk,
                        nextFollowUpDue: due, lastReadingAt: last))
            }
            try await audit.record(
                principal, overdue ? "chronic.worklist.overdue" : "chronic.worklist.no-readings", resident: nil, resource: "worklists",
                requestID: requestID, on: connection)
            return entries
        }
    }
}
