import Access
import Foundation
import Logging
import PostgresNIO
import Storage

public struct Department: Sendable, Codable, Equatable {
    public var id: String
    public var facility: String
    public var code: String
    public var name: String
    public var active: Bool
}

public struct DepartmentDraft: Sendable, Decodable {
    public var facility: String?
    public var code: String
    public var name: String
}

/// A clinician or an exam resource (CT, MR, US…): what a schedule books.
public struct Provider: Sendable, Codable, Equatable {
    public var id: String
    public var facility: String
    public var department: String
    public var departmentCode: String
    public var kind: String
    public var code: String
    public var name: String
    public var title: String?
    public var modality: String?
    public var client: String?
    public var active: Bool
}

public struct ProviderDraft: Sendable, Decodable {
    /// The department's code at the caller's facility, or its id.
    public var department: String
    public var kind: String
    public var code: String
    public var name: String
    public var title: String?
    public var modality: String?
    /// The clinician's own API client (role clinician), for the consultation desk.
    public var client: String?

    public init(department: String, kind: String, code: String, name: String, title: String?, modality: String?, client: String?) {
        self.department = department
        self.kind = kind
        self.code = code
        self.name = name
        self.title = title
        self.modality = modality
        self.client = client
    }
}

public struct Schedule: Sendable, Codable, Equatable {
    public var id: String
    public var provider: String
    public var facility: String
    public var department: String
    public var weekdays: [Int]
    public var session: String
    public var start: String
    public var end: String
    public var slotMinutes: Int?
    public var capacity: Int
    public var referralCapacity: Int
    public var referralReleaseHours: Int
    public var feeClass: String
    public var feeCents: Int?
    public var releaseDaysAhead: Int
    public var releaseTime: String
    public var cancelDeadlineHours: Int
    public var timeZone: String
    public var validFrom: String
    public var validUntil: String?
    public var active: Bool
    /// Slots created by this call (on creation: the ones within the horizon).
    public var slotsGenerated: Int?
}

public struct ScheduleDraft: Sendable, Decodable {
    public var provider: String
    public var weekdays: [Int]
    public var session: String
    public var start: String
    public var end: String
    public var slotMinutes: Int?
    public var capacity: Int
    public var referralCapacity: Int?
    public var referralReleaseHours: Int?
    public var feeClass: String
    public var feeCents: Int?
    public var releaseDaysAhead: Int?
    public var releaseTime: String?
    public var cancelDeadlineHours: Int?
    public var timeZone: String?
    public var validFrom: String?
    public var validUntil: String?
}

/// Departments, providers and schedules of a facility, and the slots generated from schedules.
/// A facility's HIS (or an admin) keeps them; anyone signed in may read them: they hold no
/// personal data.
public struct SchedulingDirectory: Sendable {
    let client: PostgresClient
    let policy: BookingPolicy
    let logger: Logger

    public init(client: PostgresClient, policy: BookingPolicy, logger: Logger) {
        self.client = client
        self.policy = policy
        self.logger = logger
    }

    static let sessions: Set<String> = ["morning", "afternoon", "evening", "night"]
    static let feeClasses: Set<String> = ["general", "specialist", "expert", "special-needs", "exam"]
    static let modalities: Set<String> = ["CT", "MR", "US", "XR", "NM", "ES", "OT"]

    /// The facility a directory change is for: the HIS's own, or the one an admin names.
    static func managedFacility(_ principal: Principal, named: String?) throws -> String {
        switch principal.role {
        case .his:
            try principal.require(scope: "scheduling.write")
            let own = try principal.boundFacility()
            if let named, named != own { throw AccessError.forbidden("client is not bound to facility \(named)") }
            return own
        case .admin:
            try principal.require(scope: "scheduling.write")
            guard let named else { throw SchedulingError.invalid(field: "facility", reason: "is required for an admin") }
            return named
        default:
            throw AccessError.forbidden("role \(principal.role.rawValue) may not change schedules")
        }
    }

    static func code(_ value: String, _ field: String) throws -> String {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard (1...40).contains(trimmed.count),
            trimmed.unicodeScalars.allSatisfy({
                $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0))
            }),
            trimmed.first.map({ $0.isLetter || $0.isNumber }) == true
        else { throw SchedulingError.invalid(field: field, reason: "1 to 40 letters, digits, '.', '_' or '-'") }
        return trimmed
    }

    static func name(_ value: String, _ field: String, limit: Int = 100) throws -> String {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...limit).contains(trimmed.count) else { throw SchedulingError.invalid(field: field, reason: "1 to \(limit) characters") }
        return trimmed
    }

    // MARK: Departments

    public func createDepartment(_ draft: DepartmentDraft, by principal: Principal, requestID: String?) async throws -> Department {
        let facility = try Self.managedFacility(principal, named: draft.facility)
        let code = try Self.code(draft.code, "code")
        let name = try Self.name(draft.name, "name")
        let id = UUID()
        return try await client.transaction(logger: logger) { connection in
            let inserted = try await connection.query(
                """
                INSERT INTO scheduling.departments (id, facility, code, name)
                SELECT \(id), code, \(code), \(name) FROM registry.facilities WHERE code = \(facility)
                ON CONFLICT (facility, code) DO NOTHING RETURNING id
                """, logger: logger
            ).collect()
            guard !inserted.isEmpty else {
                let exists = try await connection.query("SELECT 1 FROM registry.facilities WHERE code = \(facility)", logger: logger)
                    .collect()
                if exists.isEmpty { throw SchedulingError.notFound("facility \(facility)") }
                throw SchedulingError.refused(code: "department-exists", detail: "facility \(facility) already has department \(code)")
            }
            try await SchedulingAudit.record(
                principal, "department.create", pseudonym: nil, resource: "department/\(id.lowercased)", requestID: requestID,
                on: connection, logger: logger)
            return Department(id: id.lowercased, facility: facility, code: code, name: name, active: true)
        }
    }

    public func departments(facility: String?) async throws -> [Department] {
        guard let facility else { throw SchedulingError.invalid(field: "facility", reason: "is required") }
        let rows = try await client.query(
            "SELECT id, facility, code, name, active FROM scheduling.departments WHERE facility = \(facility) ORDER BY code", logger: logger
        )
        var result: [Department] = []
        for try await (id, facility, code, name, active) in rows.decode((UUID, String, String, String, Bool).self) {
            result.append(Department(id: id.lowercased, facility: facility, code: code, name: name, active: active))
        }
        return result
    }

    // MARK: Providers

    public func createProvider(_ draft: ProviderDraft, facility named: String?, by principal: Principal, requestID: String?) async throws
        -> Provider
    {
        let facility = try Self.managedFacility(principal, named: named)
        guard draft.kind == "clinician" || draft.kind == "resource" else {
            throw SchedulingError.invalid(field: "kind", reason: "clinician or resource")
        }
        let code = try Self.code(draft.code, "code")
        let name = try Self.name(draft.name, "name")
        let title = try draft.title.map { try Self.name($0, "title", limit: 40) }
        var modality: String? = nil
        if draft.kind == "resource" {
            guard let value = draft.modality, Self.modalities.contains(value) else {
                throw SchedulingError.invalid(
                    field: "modality", reason: "a resource needs one of \(Self.modalities.sorted().joined(separator: ", "))")
            }
            modality = value
            if draft.client != nil { throw SchedulingError.invalid(field: "client", reason: "only a clinician signs in") }
        } else if draft.modality != nil {
            throw SchedulingError.invalid(field: "modality", reason: "only a resource has a modality")
        }
        let id = UUID()
        return try await client.transaction(logger: logger) { connection in
            let departmentRows = try await connection.query(
                """
                SELECT id, code FROM scheduling.departments
                WHERE facility = \(facility) AND (code = \(draft.department) OR id::text = \(draft.department.lowercased()))
                """, logger: logger
            ).collect()
            guard let department = try departmentRows.first?.decode((UUID, String).self) else {
                throw SchedulingError.invalid(field: "department", reason: "no such department at facility \(facility)")
            }
            if let clientID = draft.client {
                let rows = try await connection.query(
                    "SELECT role, facility_code FROM access.clients WHERE id = \(clientID) AND active", logger: logger
                ).collect()
                guard let (role, clientFacility) = try rows.first?.decode((String, String?).self), role == "clinician",
                    clientFacility == facility
                else {
                    throw SchedulingError.invalid(field: "client", reason: "must be an active clinician client of facility \(facility)")
                }
            }
            let inserted = try await connection.query(
                """
                INSERT INTO scheduling.providers (id, facility, department_id, kind, code, name, title, modality, client_id)
                VALUES (\(id), \(facility), \(department.0), \(draft.kind), \(code), \(name), \(title), \(modality), \(draft.client))
                ON CONFLICT DO NOTHING RETURNING id
                """, logger: logger
            ).collect()
            guard !inserted.isEmpty else {
                throw SchedulingError.refused(
                    code: "provider-exists", detail: "facility \(facility) already has provider \(code), or the client is bound to another")
            }
            try await SchedulingAudit.record(
                principal, "provider.create", pseudonym: nil, resource: "provider/\(id.lowercased)", requestID: requestID, on: connection,
                logger: logger)
            return Provider(
                id: id.lowercased, facility: facility, department: department.0.lowercased, departmentCode: department.1, kind: draft.kind,
                code: code, name: name, title: title, modality: modality, client: draft.client, active: true)
        }
    }

    static let providerColumns = """
        SELECT p.id, p.facility, p.department_id, d.code, p.kind, p.code, p.name, p.title, p.modality, p.client_id, p.active
        FROM scheduling.providers p JOIN scheduling.departments d ON d.id = p.department_id
        """

    static func providers(_ rows: PostgresRowSequence) async throws -> [Provider] {
        var result: [Provider] = []
        for try await row in rows {
            let c = try row.decode((UUID, String, UUID, String, String, String, String, String?, String?, String?, Bool).self)
            result.append(
                Provider(
                    id: c.0.lowercased, facility: c.1, department: c.2.lowercased, departmentCode: c.3, kind: c.4, code: c.5, name: c.6,
                    title: c.7, modality: c.8, client: c.9, active: c.10))
        }
        return result
    }

    public func providers(facility: String?, department: String?, kind: String?) async throws -> [Provider] {
        guard let facility else { throw SchedulingError.invalid(field: "facility", reason: "is required") }
        let rows = try await client.query(
            """
            \(unescaped: Self.providerColumns)
            WHERE p.facility = \(facility) AND (\(department)::text IS NULL OR d.code = \(department) OR d.id::text = \(department?.lowercased()))
              AND (\(kind)::text IS NULL OR p.kind = \(kind))
            ORDER BY d.code, p.code
            """, logger: logger)
        return try await Self.providers(rows)
    }

    public func provider(id text: String) async throws -> Provider {
        guard let id = UUID(uuidString: text) else { throw SchedulingError.notFound("provider \(text.prefix(40))") }
        let rows = try await client.query("\(unescaped: Self.providerColumns) WHERE p.id = \(id)", logger: logger)
        guard let provider = try await Self.providers(rows).first else { throw SchedulingError.notFound("provider \(text.prefix(40))") }
        return provider
    }

    // MARK: Schedules

    /// A local time as HH:MM, or HH:MM:SS (a release instant to the second).
    static func clock(_ text: String?, _ field: String) throws -> String? {
        guard let text else { return nil }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (2...3).contains(parts.count), parts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isASCII) }),
            let hour = Int(parts[0]), let minute = Int(parts[1]), (0...23).contains(hour), (0...59).contains(minute),
            parts.count == 2 || Int(parts[2]).map({ (0...59).contains($0) }) == true
        else { throw SchedulingError.invalid(field: field, reason: "a local time as HH:MM or HH:MM:SS") }
        return text
    }

    static func date(_ text: String?, _ field: String) throws -> String? {
        guard let text else { return nil }
        guard text.count == 10, LocalDay.julian(text) != nil else {
            throw SchedulingError.invalid(field: field, reason: "a date as YYYY-MM-DD")
        }
        return text
    }

    static func bounded(_ value: Int?, _ field: String, _ range: ClosedRange<Int>) throws -> Int? {
        guard let value else { return nil }
        guard range.contains(value) else {
            throw SchedulingError.invalid(field: field, reason: "from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    public func createSchedule(_ draft: ScheduleDraft, by principal: Principal, requestID: String?) async throws -> Schedule {
        guard let providerID = UUID(uuidString: draft.provider) else {
            throw SchedulingError.invalid(field: "provider", reason: "a provider id")
        }
        guard !draft.weekdays.isEmpty, draft.weekdays.count <= 7, Set(draft.weekdays).count == draft.weekdays.count,
            draft.weekdays.allSatisfy({ (1...7).contains($0) })
        else { throw SchedulingError.invalid(field: "weekdays", reason: "distinct ISO weekdays, 1 (Monday) to 7") }
        guard Self.sessions.contains(draft.session) else {
            throw SchedulingError.invalid(field: "session", reason: "one of \(Self.sessions.sorted().joined(separator: ", "))")
        }
        guard let start = try Self.clock(draft.start, "start"), let end = try Self.clock(draft.end, "end") else {
            throw SchedulingError.invalid(field: "start", reason: "is required")
        }
        func clockMinutes(_ clock: String) -> Int { Int(clock.prefix(2))! * 60 + Int(clock.dropFirst(3).prefix(2))! }
        guard end > start else { throw SchedulingError.invalid(field: "end", reason: "must be after start") }
        let minutes = clockMinutes(end) - clockMinutes(start)
        let slotMinutes = try Self.bounded(draft.slotMinutes, "slotMinutes", 5...240)
        if let slotMinutes, slotMinutes > minutes { throw SchedulingError.invalid(field: "slotMinutes", reason: "longer than the session") }
        let capacity = try Self.bounded(draft.capacity, "capacity", 1...1000)!
        let referralCapacity = try Self.bounded(draft.referralCapacity ?? 0, "referralCapacity", 0...capacity)!
        let referralReleaseHours = try Self.bounded(draft.referralReleaseHours ?? 24, "referralReleaseHours", 0...720)!
        guard Self.feeClasses.contains(draft.feeClass) else {
            throw SchedulingError.invalid(field: "feeClass", reason: "one of \(Self.feeClasses.sorted().joined(separator: ", "))")
        }
        let feeCents = try Self.bounded(draft.feeCents, "feeCents", 0...10_000_000)
        let releaseDays = try Self.bounded(draft.releaseDaysAhead ?? 7, "releaseDaysAhead", 0...90)!
        let releaseTime = try Self.clock(draft.releaseTime ?? "08:00", "releaseTime")!
        let cancelHours = try Self.bounded(draft.cancelDeadlineHours ?? 24, "cancelDeadlineHours", 0...168)!
        let timeZone = draft.timeZone ?? "Asia/Shanghai"
        guard TimeZone(identifier: timeZone) != nil, timeZone.count <= 64 else {
            throw SchedulingError.invalid(field: "timeZone", reason: "an IANA time zone such as Asia/Shanghai")
        }
        let validFrom = try Self.date(draft.validFrom, "validFrom")
        let validUntil = try Self.date(draft.validUntil, "validUntil")
        if let validFrom, let validUntil, validUntil < validFrom {
            throw SchedulingError.invalid(field: "validUntil", reason: "before validFrom")
        }
        let id = UUID()
        let weekdays = draft.weekdays.sorted().map { Int16($0) }
        let horizon = policy.horizonDays
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                "SELECT facility FROM scheduling.providers WHERE id = \(providerID) AND active", logger: logger
            )
            .collect()
            guard let facility = try rows.first?.decode(String.self) else {
                throw SchedulingError.notFound("provider \(draft.provider.prefix(40))")
            }
            _ = try Self.managedFacility(principal, named: facility)
            _ = try await connection.query(
                """
                INSERT INTO scheduling.schedules (
                    id, provider_id, weekdays, session, starts, ends, slot_minutes, capacity, referral_capacity, referral_release_hours,
                    fee_class, fee_cents, release_days_ahead, release_time, cancel_deadline_hours, time_zone, valid_from, valid_until, created_by)
                VALUES (
                    \(id), \(providerID), \(weekdays), \(draft.session), \(start)::time, \(end)::time, \(slotMinutes.map(Int32.init))::int4,
                    \(Int32(capacity)), \(Int32(referralCapacity)), \(Int32(referralReleaseHours)), \(draft.feeClass), \(feeCents.map(Int32.init))::int4,
                    \(Int32(releaseDays)), \(releaseTime)::time, \(Int32(cancelHours)), \(timeZone),
                    coalesce(\(validFrom)::date, (now() AT TIME ZONE \(timeZone))::date), \(validUntil)::date, \(principal.clientID))
                """, logger: logger)
            let generated =
                try await connection.query(
                    """
                    SELECT scheduling.generate_slots(\(id), (now() AT TIME ZONE \(timeZone))::date,
                                                     (now() AT TIME ZONE \(timeZone))::date + \(Int32(max(horizon, releaseDays)))::int4)
                    """, logger: logger
                ).collect().first?.decode(Int32.self) ?? 0
            try await SchedulingAudit.record(
                principal, "schedule.create", pseudonym: nil, resource: "schedule/\(id.lowercased)", requestID: requestID, on: connection,
                logger: logger)
            var schedule = try await Self.schedules(
                connection.query("\(unescaped: Self.scheduleColumns) WHERE s.id = \(id)", logger: logger)
            ).first!
            schedule.slotsGenerated = Int(generated)
            return schedule
        }
    }

    static let scheduleColumns = """
        SELECT s.id, s.provider_id, p.facility, p.department_id, s.weekdays, s.session, to_char(s.starts, 'HH24:MI'), to_char(s.ends, 'HH24:MI'),
               s.slot_minutes, s.capacity, s.referral_capacity, s.referral_release_hours, s.fee_class, s.fee_cents, s.release_days_ahead,
               to_char(s.release_time, CASE WHEN extract(second FROM s.release_time) = 0 THEN 'HH24:MI' ELSE 'HH24:MI:SS' END), s.cancel_deadline_hours, s.time_zone, s.valid_from::text, s.valid_until::text, s.active
        FROM scheduling.schedules s JOIN scheduling.providers p ON p.id = s.provider_id
        """

    static func schedules(_ rows: PostgresRowSequence) async throws -> [Schedule] {
        var result: [Schedule] = []
        for try await row in rows {
            let c = try row.decode(
                (
                    UUID, UUID, String, UUID, [Int16], String, String, String, Int32?, Int32, Int32, Int32, String, Int32?, Int32, String,
                    Int32, String, String, String?, Bool
                ).self)
            result.append(
                Schedule(
                    id: c.0.lowercased, provider: c.1.lowercased, facility: c.2, department: c.3.lowercased, weekdays: c.4.map(Int.init),
                    session: c.5, start: c.6, end: c.7, slotMinutes: c.8.map(Int.init), capacity: Int(c.9), referralCapacity: Int(c.10),
                    referralReleaseHours: Int(c.11), feeClass: c.12, feeCents: c.13.map(Int.init), releaseDaysAhead: Int(c.14),
                    releaseTime: c.15, cancelDeadlineHours: Int(c.16), timeZone: c.17, validFrom: c.18, validUntil: c.19, active: c.20))
        }
        return result
    }

    public func schedules(facility: String?, provider: String?) async throws -> [Schedule] {
        guard facility != nil || provider != nil else {
            throw SchedulingError.invalid(field: "facility", reason: "facility or provider is required")
        }
        let providerID = try provider.map { text -> UUID in
            guard let id = UUID(uuidString: text) else { throw SchedulingError.invalid(field: "provider", reason: "a provider id") }
            return id
        }
        let rows = try await client.query(
            """
            \(unescaped: Self.scheduleColumns)
            WHERE (\(facility)::text IS NULL OR p.facility = \(facility)) AND (\(providerID)::uuid IS NULL OR s.provider_id = \(providerID))
            ORDER BY p.code, s.session, s.starts
            """, logger: logger)
        return try await Self.schedules(rows)
    }

    public func schedule(id text: String) async throws -> Schedule {
        guard let id = UUID(uuidString: text) else { throw SchedulingError.notFound("schedule \(text.prefix(40))") }
        guard
            let schedule = try await Self.schedules(client.query("\(unescaped: Self.scheduleColumns) WHERE s.id = \(id)", logger: logger))
                .first
        else { throw SchedulingError.notFound("schedule \(text.prefix(40))") }
        return schedule
    }

    /// Keeps every active schedule's slots generated `horizonDays` (or its release window) ahead.
    public func generateSlots() async throws -> Int {
        let rows = try await client.query(
            """
            SELECT coalesce(sum(scheduling.generate_slots(id, (now() AT TIME ZONE time_zone)::date,
                                                          (now() AT TIME ZONE time_zone)::date + greatest(\(Int32(policy.horizonDays))::int4, release_days_ahead))), 0)::int8
            FROM scheduling.schedules WHERE active
            """, logger: logger)
        return Int(try await rows.collect().first?.decode(Int64.self) ?? 0)
    }
}

/// Calendar days without Foundation's calendar: a date string to a day number, for validation.
enum LocalDay {
    static func julian(_ text: String) -> Int? {
        let parts = text.split(separator: "-")
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2, let y = Int(parts[0]), let m = Int(parts[1]),
            let d = Int(parts[2]), (1900...2200).contains(y), (1...12).contains(m)
        else { return nil }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...lengths[m - 1]).contains(d) else { return nil }
        // Days from civil (Howard Hinnant's algorithm).
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
