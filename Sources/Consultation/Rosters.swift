import Access
import Foundation
import Logging
import PostgresNIO
import Storage

public struct DutyShift: Sendable, Codable, Equatable {
    public var id: String
    public var clinician: String
    public var department: String
    public var facility: String
    public var startsAt: Date
    public var endsAt: Date
}

public struct ShiftRequest: Sendable, Decodable {
    public var clinician: String?
    public var department: String?
    public var startsAt: Date?
    public var endsAt: Date?

    public init(clinician: String?, department: String?, startsAt: Date?, endsAt: Date?) {
        self.clinician = clinician
        self.department = department
        self.startsAt = startsAt
        self.endsAt = endsAt
    }
}

/// Duty rosters: who is on duty in which department when. Written by the facility's HIS client
/// (or an admin); read by the facility's HIS and clinicians.
public struct RosterService: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func add(_ body: ShiftRequest, by principal: Principal, requestID: String?) async throws -> DutyShift {
        switch principal.role {
        case .his: try principal.require(scope: "scheduling.write")
        case .admin: break
        default: throw AccessError.forbidden("role \(principal.role.rawValue) may not write duty rosters")
        }
        let provider = try ConsultationAccess.uuidField(body.clinician, "clinician")
        let department = try ConsultationAccess.uuidField(body.department, "department")
        guard let starts = body.startsAt else { throw ConsultationError.invalid(field: "startsAt", reason: "is required") }
        guard let ends = body.endsAt else { throw ConsultationError.invalid(field: "endsAt", reason: "is required") }
        guard ends > starts, ends.timeIntervalSince(starts) <= 24 * 3600 else {
            throw ConsultationError.invalid(field: "endsAt", reason: "must be after startsAt, at most 24 hours later")
        }
        let id = UUID.timeOrdered()
        return try await client.transaction(logger: logger) { connection in
            // The provider's row lock: two shifts for one clinician are checked one after the other.
            let found = try await connection.query(
                """
                SELECT p.facility, p.kind = 'clinician' AND p.active, d.facility, d.active
                FROM scheduling.providers p, scheduling.departments d WHERE p.id = \(provider) AND d.id = \(department)
                FOR UPDATE OF p
                """, logger: logger
            ).collect().first?.decode((String, Bool, String, Bool).self)
            guard let found, found.1 else {
                throw ConsultationError.invalid(field: "clinician", reason: "no such active clinician (or no such department)")
            }
            guard found.3, found.2 == found.0 else {
                throw ConsultationError.invalid(field: "department", reason: "must be an active department of the clinician's facility")
            }
            try principal.require(facility: found.0)
            let overlaps = try await connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM consultation.duty_shifts WHERE provider_id = \(provider)
                    AND starts_at < \(ends) AND ends_at > \(starts))
                """, logger: logger
            ).collect().first?.decode(Bool.self)
            guard overlaps == false else {
                throw ConsultationError.conflict(code: "shift-overlap", detail: "the clinician already has a shift overlapping this one")
            }
            try await connection.query(
                """
                INSERT INTO consultation.duty_shifts (id, provider_id, department_id, starts_at, ends_at, created_by)
                VALUES (\(id), \(provider), \(department), \(starts), \(ends), \(principal.clientID))
                """, logger: logger)
            try await AuditTrail.append(
                AuditEvent(
                    principal: principal, action: "consultation.shift.create", resource: "duty-rosters/\(id.lowercased)",
                    purpose: "consultation", requestID: requestID), on: connection, logger: logger)
            return DutyShift(
                id: id.lowercased, clinician: provider.lowercased, department: department.lowercased, facility: found.0, startsAt: starts,
                endsAt: ends)
        }
    }

    /// Shifts of the caller's facility (an admin's: every facility's) overlapping [from, to),
    /// optionally of one department; at most 1,000, by start.
    public func list(department: String?, from: Date?, to: Date?, by principal: Principal) async throws -> [DutyShift] {
        var facility: String?
        switch principal.role {
        case .his, .clinician:
            guard let own = principal.facility else { throw AccessError.forbidden("the client is not bound to a facility") }
            facility = own
        case .admin: break
        default: throw AccessError.forbidden("role \(principal.role.rawValue) may not read duty rosters")
        }
        let departmentID = try department.map { try ConsultationAccess.uuidField($0, "department") }
        let start = from ?? Date().addingTimeInterval(-86_400)
        let end = to ?? start.addingTimeInterval(8 * 86_400)
        guard end > start else { throw ConsultationError.invalid(field: "to", reason: "must be after from") }
        let rows = try await client.query(
            """
            SELECT s.id, s.provider_id, s.department_id, d.facility, s.starts_at, s.ends_at
            FROM consultation.duty_shifts s JOIN scheduling.departments d ON d.id = s.department_id
            WHERE (\(facility)::text IS NULL OR d.facility = \(facility))
              AND (\(departmentID)::uuid IS NULL OR s.department_id = \(departmentID))
              AND s.starts_at < \(end) AND s.ends_at > \(start)
            ORDER BY s.starts_at, s.id LIMIT 1000
            """, logger: logger)
        var result: [DutyShift] = []
        for try await (id, provider, department, facility, starts, ends) in rows.decode((UUID, UUID, UUID, String, Date, Date).self) {
            result.append(
                DutyShift(
                    id: id.lowercased, clinician: provider.lowercased, department: department.lowercased, facility: facility,
                    startsAt: starts, endsAt: ends))
        }
        return result
    }
}
