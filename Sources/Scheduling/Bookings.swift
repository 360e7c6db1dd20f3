import Access
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

public struct Booking: Sendable, Codable, Equatable {
    public var id: String
    public var slot: String
    public var resident: String
    public var provider: String
    public var facility: String
    public var department: String
    public var day: String
    public var session: String
    public var start: Date
    public var end: Date
    public var status: String
    public var pool: String
    public var referral: String?
    public var channel: String
    public var bookedAt: Date
    public var queueNumber: Int?
    public var checkedInAt: Date?
    public var cancelledAt: Date?
    public var cancelReason: String?
    public var noShowAt: Date?
    public var rescheduledFrom: String?
}

public struct BookingRequest: Sendable, Decodable {
    public var slot: String
    /// The resident, for a HIS or clinic booking for its patient; a patient books for themselves.
    public var resident: String?
    /// A referral from a lower-level facility: the booking takes a held place.
    public var referral: String?
}

public struct Cancellation: Sendable, Decodable {
    public var reason: String?

    public init(reason: String?) { self.reason = reason }
}

public struct Rescheduling: Sendable, Decodable {
    public var slot: String
}

/// Bookings and every rule about them. Who gets the last place is settled by one conditional
/// UPDATE of the slot's counter, run as the transaction's last statement so that the row lock it
/// takes is held only for the commit; everything a resident's rules read is serialised per
/// resident by an advisory lock, so a resident's two phones cannot both pass the active-booking cap.
public struct BookingService: Sendable {
    let client: PostgresClient
    let registry: ResidentRegistry
    let policy: BookingPolicy
    let residentLimiter: RateLimiter
    let clientLimiter: RateLimiter
    let logger: Logger

    public init(client: PostgresClient, registry: ResidentRegistry, policy: BookingPolicy, logger: Logger) {
        self.client = client
        self.registry = registry
        self.policy = policy
        self.residentLimiter = RateLimiter(burst: policy.residentBurst, perSecond: Double(policy.residentPerMinute) / 60)
        self.clientLimiter = RateLimiter(burst: policy.clientBurst, perSecond: Double(policy.clientPerSecond))
        self.logger = logger
    }

    func pseudonym(_ resident: UUID) -> String { registry.residentPseudonym(resident) }

    // MARK: Booking

    /// Who the booking is for and through which channel, after the caller's rights are checked.
    func bookingParty(_ principal: Principal, resident named: String?) throws -> (resident: String, channel: String) {
        switch principal.role {
        case .patient:
            try principal.require(scope: "scheduling.write")
            let own = try principal.ownResident().lowercased
            if let named, named.lowercased() != own.lowercased() { throw AccessError.forbidden("a patient books only for themselves") }
            return (own, "app")
        case .his, .clinician:
            try principal.require(scope: "scheduling.write")
            _ = try principal.boundFacility()
            guard let named else { throw SchedulingError.invalid(field: "resident", reason: "is required when a facility books") }
            return (named, "his")
        default:
            throw AccessError.forbidden("role \(principal.role.rawValue) may not book appointments")
        }
    }

    /// Spends a token of the resident's and the client's buckets, or refuses with 429.
    func throttle(_ principal: Principal, resident: String) async throws {
        if let seconds = await clientLimiter.take(principal.clientID) {
            throw SchedulingError.rateLimited(scope: "client", retryAfterSeconds: seconds)
        }
        if let seconds = await residentLimiter.take(resident.lowercased()) {
            throw SchedulingError.rateLimited(scope: "resident", retryAfterSeconds: seconds)
        }
    }

    public func book(_ request: BookingRequest, by principal: Principal, requestID: String?) async throws -> Booking {
        let party = try bookingParty(principal, resident: request.resident)
        guard let slotID = UUID(uuidString: request.slot) else { throw SchedulingError.invalid(field: "slot", reason: "a slot id") }
        guard let named = UUID(uuidString: party.resident) else {
            throw SchedulingError.invalid(field: "resident", reason: "a resident id")
        }
        let referral = try request.referral.map { text -> UUID in
            guard let id = UUID(uuidString: text) else { throw SchedulingError.invalid(field: "referral", reason: "a referral id") }
            return id
        }
        try await throttle(principal, resident: party.resident)
        // Refusals that need no lock are answered before any transaction: in a rush most
        // requests are for a slot already full or not yet released.
        let slot = try await SlotState.load(slotID, on: client, logger: logger)
        try slot.check(pool: referral == nil ? .public : .referral, principal: principal)
        return try await client.transaction(logger: logger) { connection in
            let resident = try await Self.survivorLocked(named, on: connection, logger: logger)
            return try await book(
                slot: slot, resident: resident, referral: referral, channel: party.channel, rescheduledFrom: nil, by: principal,
                requestID: requestID, on: connection)
        }
    }

    /// The resident's surviving record (a merged one answers for the one merged into it).
    static func survivor(_ resident: UUID, on connection: PostgresConnection, logger: Logger) async throws -> UUID {
        let rows = try await connection.query(
            "SELECT coalesce(merged_into, id) FROM registry.residents WHERE id = \(resident)", logger: logger
        ).collect()
        guard let survivor = try rows.first?.decode(UUID.self) else { throw SchedulingError.notFound("resident \(resident.lowercased)") }
        return survivor
    }

    /// The surviving record, locked for this transaction's booking rules: one round trip.
    static func survivorLocked(_ resident: UUID, on connection: PostgresConnection, logger: Logger) async throws -> UUID {
        var binds = PostgresBindings()
        binds.append(resident)
        let rows = try await connection.run(SurvivorLockedStatement(binds: binds), logger: logger)
        guard let survivor = try rows.first?.decode(UUID.self) else { throw SchedulingError.notFound("resident \(resident.lowercased)") }
        return survivor
    }

    /// Locks the resident's booking rules for this transaction.
    static func lockResident(_ resident: UUID, on connection: PostgresConnection, logger: Logger) async throws {
        _ = try await connection.query(
            "SELECT pg_advisory_xact_lock(hashtextextended('scheduling:' || \(resident.lowercased), 0))", logger: logger)
    }

    /// The resident-side rules: suspension, active cap, one booking per provider per day. Nil when
    /// they may book, else the refusal.
    func residentRefusal(_ resident: UUID, provider: UUID, day: String, on connection: PostgresConnection) async throws -> SchedulingError?
    {
        let rows = try await connection.query(
            """
            SELECT (SELECT max(ends_at) FROM scheduling.suspensions WHERE resident_id = \(resident) AND ends_at > now()),
                   (SELECT count(*) FROM scheduling.bookings WHERE resident_id = \(resident) AND status = 'booked' AND starts_at > now()),
                   EXISTS (SELECT 1 FROM scheduling.bookings
                           WHERE resident_id = \(resident) AND provider_id = \(provider) AND day = \(day)::date
                             AND status IN ('booked', 'checked-in', 'completed'))
            """, logger: logger
        ).collect()
        guard let (suspendedUntil, active, sameDay) = try rows.first?.decode((Date?, Int64, Bool).self) else { return nil }
        if let suspendedUntil {
            return .refused(
                code: "booking-suspended",
                detail:
                    "online booking is suspended until \(Timestamp.iso(suspendedUntil)) after \(policy.noShowLimit) missed appointments in \(policy.noShowWindowDays) days",
                retryAt: suspendedUntil)
        }
        if sameDay {
            return .refused(
                code: "one-booking-per-provider-per-day", detail: "the resident already has a booking with this provider on \(day)")
        }
        if active >= policy.activeLimit {
            return .refused(
                code: "active-booking-limit",
                detail: "the resident already holds \(active) upcoming bookings; the limit is \(policy.activeLimit)")
        }
        return nil
    }

    /// Books inside the caller's transaction, which holds the resident's lock (`survivorLocked`
    /// or `lockBooking`). The place, the booking, the referral, the outbox row and the audit row
    /// are one statement, the last before the commit, so the slot's row lock is held only for that
    /// statement and the commit, and a lost race writes nothing.
    func book(
        slot: SlotState, resident: UUID, referral: UUID?, channel: String, rescheduledFrom: UUID?, by principal: Principal,
        requestID: String?, on connection: PostgresConnection
    ) async throws -> Booking {
        if let referral {
            try await claimReferral(referral, resident: resident, slot: slot, principal: principal, on: connection)
        }
        if let refusal = try await residentRefusal(resident, provider: slot.provider, day: slot.day, on: connection) { throw refusal }
        let id = UUID()
        let pool = referral == nil ? "public" : "referral"
        let audit = AuditEvent(
            principal: principal, action: "booking.create", resource: "booking/\(id.lowercased)", residentPseudonym: pseudonym(resident),
            purpose: "scheduling", requestID: requestID)
        var binds = PostgresBindings()
        binds.append(slot.id)
        binds.append(id)
        binds.append(resident)
        binds.append(slot.provider)
        binds.append(slot.facility)
        binds.append(slot.day)
        binds.append(slot.start)
        binds.append(pool)
        if let referral { binds.append(referral) } else { binds.appendNull() }
        binds.append(channel)
        binds.append(principal.clientID)
        if let rescheduledFrom { binds.append(rescheduledFrom) } else { binds.appendNull() }
        binds.append(try AuditTrail.json([audit]))
        let rows: [PostgresRow]
        do {
            rows =
                pool == "public"
                ? try await connection.run(BookPublicStatement(binds: binds), logger: logger)
                : try await connection.run(BookReferralStatement(binds: binds), logger: logger)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw SchedulingError.refused(
                code: "one-booking-per-provider-per-day", detail: "the resident already has a booking with this provider on \(slot.day)")
        }
        guard let bookedAt = try rows.first?.decode(Date.self) else {
            // Lost the race (or the release instant has not come after all): nothing was written.
            throw try await SlotState.load(slot.id, on: connection, logger: logger).refusal(pool: pool == "public" ? .public : .referral)
                ?? SchedulingError.full
        }
        return Booking(
            id: id.lowercased, slot: slot.id.lowercased, resident: resident.lowercased, provider: slot.provider.lowercased,
            facility: slot.facility, department: slot.departmentCode, day: slot.day, session: slot.session, start: slot.start,
            end: slot.end, status: "booked", pool: pool, referral: referral?.lowercased, channel: channel, bookedAt: bookedAt,
            rescheduledFrom: rescheduledFrom?.lowercased)
    }

    /// The conditional counter updates that settle who gets a place ($1: the slot).
    static let takePublic = """
        UPDATE scheduling.slots s SET public_booked = public_booked + 1
        WHERE s.id = $1 AND s.status = 'open' AND now() >= s.release_at AND now() < s.ends_at AND \(SlotDirectory.publicFree) > 0
        """
    static let takeReferral = """
        UPDATE scheduling.slots s SET referral_booked = referral_booked + 1
        WHERE s.id = $1 AND s.status = 'open' AND now() < s.ends_at AND s.public_booked + s.referral_booked < s.capacity
        """

    /// Takes one place from the slot's pool if one is free now; false when none is.
    static func take(_ slot: UUID, pool: String, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        var binds = PostgresBindings()
        binds.append(slot)
        let sql = (pool == "public" ? takePublic : takeReferral) + " RETURNING 1"
        return try await !connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).collect().isEmpty
    }

    func claimReferral(_ referral: UUID, resident: UUID, slot: SlotState, principal: Principal, on connection: PostgresConnection)
        async throws
    {
        let rows = try await connection.query(
            """
            SELECT r.resident_id, r.from_facility, r.to_facility, r.to_department_id, r.status, r.expires_at < now()
            FROM scheduling.referrals r WHERE r.id = \(referral) FOR UPDATE
            """, logger: logger
        ).collect()
        guard
            let (referred, from, to, department, status, expired) = try rows.first?.decode((UUID, String, String, UUID?, String, Bool).self)
        else { throw SchedulingError.notFound("referral \(referral.lowercased)") }
        switch principal.role {
        case .patient:
            guard principal.resident?.lowercased() == referred.lowercased else {
                throw AccessError.forbidden("not this resident's referral")
            }
        default:
            guard principal.facility == from || principal.facility == to else {
                throw AccessError.forbidden("only the referring or the receiving facility books a referral")
            }
        }
        guard status == "open" else { throw SchedulingError.refused(code: "referral-not-open", detail: "the referral is \(status)") }
        guard !expired else { throw SchedulingError.refused(code: "referral-expired", detail: "the referral has expired") }
        guard referred == resident else {
            throw SchedulingError.refused(code: "referral-mismatch", detail: "the referral is for another resident")
        }
        guard to == slot.facility, department == nil || department == slot.department else {
            throw SchedulingError.refused(code: "referral-mismatch", detail: "the referral is to another facility or department")
        }
    }

    static func notify(
        _ topic: String, resident: UUID, booking: UUID, slot: SlotState, on connection: PostgresConnection, logger: Logger
    ) async throws {
        _ = try await connection.query(
            """
            INSERT INTO scheduling.outbox (topic, resident_id, booking_id, payload)
            VALUES (\(topic), \(resident), \(booking),
                    jsonb_build_object('booking', \(booking.lowercased), 'slot', \(slot.id.lowercased), 'facility', \(slot.facility),
                                       'provider', \(slot.provider.lowercased), 'start', \(slot.start)))
            """, logger: logger)
    }

    // MARK: Reading

    static let columns = """
        SELECT b.id, b.slot_id, b.resident_id, b.provider_id, b.facility, d.code, b.day::text, s.session, b.starts_at, s.ends_at, b.status, b.pool,
               b.referral_id, b.channel, b.booked_at, b.queue_number, b.checked_in_at, b.cancelled_at, b.cancel_reason, b.no_show_at,
               b.rescheduled_from
        FROM scheduling.bookings b JOIN scheduling.slots s ON s.id = b.slot_id JOIN scheduling.departments d ON d.id = s.department_id
        """

    static func bookings(_ rows: PostgresRowSequence) async throws -> [Booking] {
        var result: [Booking] = []
        for try await row in rows {
            let c = try row.decode(
                (
                    UUID, UUID, UUID, UUID, String, String, String, String, Date, Date, String, String, UUID?, String, Date, Int32?, Date?,
                    Date?, String?, Date?, UUID?
                ).self)
            result.append(
                Booking(
                    id: c.0.lowercased, slot: c.1.lowercased, resident: c.2.lowercased, provider: c.3.lowercased, facility: c.4,
                    department: c.5, day: c.6, session: c.7, start: c.8, end: c.9, status: c.10, pool: c.11, referral: c.12?.lowercased,
                    channel: c.13, bookedAt: c.14, queueNumber: c.15.map(Int.init), checkedInAt: c.16, cancelledAt: c.17,
                    cancelReason: c.18, noShowAt: c.19, rescheduledFrom: c.20?.lowercased))
        }
        return result
    }

    func read(_ id: UUID, on connection: PostgresConnection) async throws -> Booking {
        guard let booking = try await Self.bookings(connection.query("\(unescaped: Self.columns) WHERE b.id = \(id)", logger: logger)).first
        else { throw SchedulingError.notFound("booking \(id.lowercased)") }
        return booking
    }

    /// The resident themselves, the facility the booking is at, and a referring facility.
    func requireAccess(_ principal: Principal, to booking: Booking, write: Bool, on connection: PostgresConnection) async throws {
        switch principal.role {
        case .patient:
            try principal.require(scope: write ? "scheduling.write" : "self.read")
            guard principal.resident?.lowercased() == booking.resident else { throw SchedulingError.notFound("booking \(booking.id)") }
        case .his, .clinician:
            try principal.require(scope: write ? "scheduling.write" : "scheduling.read")
            if principal.facility == booking.facility { return }
            if let referral = booking.referral, let referralID = UUID(uuidString: referral) {
                let rows = try await connection.query(
                    "SELECT from_facility FROM scheduling.referrals WHERE id = \(referralID)", logger: logger
                ).collect()
                if try rows.first?.decode(String.self) == principal.facility { return }
            }
            throw AccessError.forbidden("the booking is at another facility")
        default:
            throw AccessError.forbidden("role \(principal.role.rawValue) may not read bookings")
        }
    }

    public func get(id text: String, by principal: Principal, requestID: String?) async throws -> Booking {
        guard let id = UUID(uuidString: text) else { throw SchedulingError.notFound("booking \(text.prefix(40))") }
        return try await client.transaction(logger: logger) { connection in
            let booking = try await read(id, on: connection)
            try await requireAccess(principal, to: booking, write: false, on: connection)
            try await SchedulingAudit.record(
                principal, "booking.read", pseudonym: pseudonym(UUID(uuidString: booking.resident)!), resource: "booking/\(booking.id)",
                requestID: requestID, on: connection, logger: logger)
            return booking
        }
    }

    /// A patient's own bookings; a facility's bookings of a day (its own or the ones it referred).
    public func list(resident: String?, day: String?, status: String?, by principal: Principal, requestID: String?) async throws
        -> [Booking]
    {
        if let day, day.count != 10 || LocalDay.julian(day) == nil {
            throw SchedulingError.invalid(field: "date", reason: "a date as YYYY-MM-DD")
        }
        return try await client.transaction(logger: logger) { connection in
            let rows: PostgresRowSequence
            switch principal.role {
            case .patient:
                try principal.require(scope: "self.read")
                let own = try principal.ownResident()
                rows = try await connection.query(
                    """
                    \(unescaped: Self.columns) WHERE b.resident_id = \(own) AND (\(status)::text IS NULL OR b.status = \(status))
                    ORDER BY b.starts_at DESC LIMIT 200
                    """, logger: logger)
            case .his, .clinician:
                try principal.require(scope: "scheduling.read")
                let facility = try principal.boundFacility()
                let residentID = try resident.map { text -> UUID in
                    guard let id = UUID(uuidString: text) else { throw SchedulingError.invalid(field: "resident", reason: "a resident id") }
                    return id
                }
                guard day != nil || residentID != nil else {
                    throw SchedulingError.invalid(field: "date", reason: "date or resident is required")
                }
                rows = try await connection.query(
                    """
                    \(unescaped: Self.columns)
                    WHERE (b.facility = \(facility) OR b.referral_id IN (SELECT id FROM scheduling.referrals WHERE from_facility = \(facility)))
                      AND (\(day)::date IS NULL OR b.day = \(day)::date) AND (\(residentID)::uuid IS NULL OR b.resident_id = \(residentID))
                      AND (\(status)::text IS NULL OR b.status = \(status))
                    ORDER BY b.starts_at, b.queue_number NULLS LAST, b.booked_at LIMIT 2000
                    """, logger: logger)
            default:
                throw AccessError.forbidden("role \(principal.role.rawValue) may not read bookings")
            }
            let found = try await Self.bookings(rows)
            try await SchedulingAudit.record(
                principal, "booking.list", pseudonym: nil, resource: "bookings?count=\(found.count)", requestID: requestID, on: connection,
                logger: logger)
            return found
        }
    }

    // MARK: Changes

    /// Locks the booking and checks the caller may change it.
    func lockBooking(_ text: String, by principal: Principal, on connection: PostgresConnection) async throws -> (Booking, Int) {
        guard let id = UUID(uuidString: text) else { throw SchedulingError.notFound("booking \(text.prefix(40))") }
        let rows = try await connection.query(
            """
            SELECT b.resident_id, s.cancel_deadline_hours FROM scheduling.bookings b JOIN scheduling.slots s ON s.id = b.slot_id
            WHERE b.id = \(id) FOR UPDATE OF b
            """, logger: logger
        ).collect()
        guard let (resident, deadline) = try rows.first?.decode((UUID, Int32).self) else {
            throw SchedulingError.notFound("booking \(text.prefix(40))")
        }
        try await Self.lockResident(resident, on: connection, logger: logger)
        let booking = try await read(id, on: connection)
        try await requireAccess(principal, to: booking, write: true, on: connection)
        return (booking, Int(deadline))
    }

    static func transition(_ booking: Booking, to target: String, allowedFrom: Set<String>) throws {
        guard allowedFrom.contains(booking.status) else {
            throw SchedulingError.refused(code: "invalid-transition", detail: "a \(booking.status) booking cannot become \(target)")
        }
    }

    public func cancel(id: String, _ cancellation: Cancellation, by principal: Principal, requestID: String?) async throws -> Booking {
        let reason = try cancellation.reason.map { try SchedulingDirectory.name($0, "reason", limit: 500) }
        return try await client.transaction(logger: logger) { connection in
            let (booking, deadline) = try await lockBooking(id, by: principal, on: connection)
            return try await cancel(booking, deadlineHours: deadline, reason: reason, by: principal, requestID: requestID, on: connection)
        }
    }

    func cancel(
        _ booking: Booking, deadlineHours: Int, reason: String?, by principal: Principal, requestID: String?,
        on connection: PostgresConnection
    ) async throws -> Booking {
        try Self.transition(booking, to: "cancelled", allowedFrom: ["booked"])
        let deadline = booking.start.addingTimeInterval(-Double(deadlineHours) * 3600)
        if principal.role == .patient, Date() > deadline {
            throw SchedulingError.refused(
                code: "cancellation-deadline-passed",
                detail: "bookings for this slot can be cancelled until \(Timestamp.iso(deadline)) (\(deadlineHours) h before it starts)")
        }
        let id = UUID(uuidString: booking.id)!
        let slot = UUID(uuidString: booking.slot)!
        let resident = UUID(uuidString: booking.resident)!
        _ = try await connection.query(
            """
            UPDATE scheduling.bookings SET status = 'cancelled', cancelled_at = now(), cancelled_by = \(principal.clientID), cancel_reason = \(reason)
            WHERE id = \(id)
            """, logger: logger)
        let counter = booking.pool == "public" ? "public_booked" : "referral_booked"
        _ = try await connection.query(
            "UPDATE scheduling.slots SET \(unescaped: counter) = \(unescaped: counter) - 1 WHERE id = \(slot)", logger: logger)
        if let referral = booking.referral.flatMap(UUID.init(uuidString:)) {
            // The referral stands: the resident can be booked on it again.
            _ = try await connection.query(
                "UPDATE scheduling.referrals SET status = 'open', booking_id = NULL WHERE id = \(referral)", logger: logger)
        }
        let state = try await SlotState.load(slot, on: connection, logger: logger)
        try await Self.notify("booking.cancelled", resident: resident, booking: id, slot: state, on: connection, logger: logger)
        try await SchedulingAudit.record(
            principal, "booking.cancel", pseudonym: pseudonym(resident), resource: "booking/\(booking.id)", requestID: requestID,
            on: connection, logger: logger)
        _ = try await WaitingList.promote(slot: state, service: self, on: connection)
        return try await read(id, on: connection)
    }

    /// The facility cancels a whole slot (the doctor is called away: 停诊). Every booking in it is
    /// cancelled with a `slot.cancelled` notification, referrals booked into it reopen, and its
    /// waiting list is closed. Returns the bookings cancelled.
    public func cancelSlot(id text: String, _ cancellation: Cancellation, by principal: Principal, requestID: String?) async throws -> Int {
        guard principal.role == .his || principal.role == .admin else { throw AccessError.forbidden("only the facility cancels a slot") }
        try principal.require(scope: "scheduling.write")
        guard let slotID = UUID(uuidString: text) else { throw SchedulingError.notFound("slot \(text.prefix(40))") }
        let reason = try cancellation.reason.map { try SchedulingDirectory.name($0, "reason", limit: 500) } ?? "slot cancelled"
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                "SELECT facility, status FROM scheduling.slots WHERE id = \(slotID) FOR UPDATE", logger: logger
            ).collect()
            guard let (facility, status) = try rows.first?.decode((String, String).self) else {
                throw SchedulingError.notFound("slot \(text.prefix(40))")
            }
            try principal.require(facility: facility)
            guard status == "open" else {
                throw SchedulingError.refused(code: "invalid-transition", detail: "the slot is already cancelled")
            }
            let cancelled =
                try await connection.query(
                    """
                    WITH slot AS (
                        UPDATE scheduling.slots SET status = 'cancelled', public_booked = 0, referral_booked = 0 WHERE id = \(slotID)
                        RETURNING id, facility, provider_id, starts_at
                    ), gone AS (
                        UPDATE scheduling.bookings b SET status = 'cancelled', cancelled_at = now(), cancelled_by = \(principal.clientID),
                                                         cancel_reason = \(reason)
                        WHERE b.slot_id = \(slotID) AND b.status = 'booked'
                        RETURNING b.id, b.resident_id, b.referral_id
                    ), reopened AS (
                        UPDATE scheduling.referrals r SET status = 'open', booking_id = NULL FROM gone WHERE r.id = gone.referral_id
                    ), waiting AS (
                        UPDATE scheduling.waitlist SET status = 'cancelled', resolved_at = now() WHERE slot_id = \(slotID) AND status = 'waiting'
                    ), told AS (
                        INSERT INTO scheduling.outbox (topic, resident_id, booking_id, payload)
                        SELECT 'slot.cancelled', gone.resident_id, gone.id,
                               jsonb_build_object('booking', gone.id, 'slot', slot.id, 'facility', slot.facility, 'provider', slot.provider_id,
                                                  'start', slot.starts_at)
                        FROM gone, slot
                    )
                    SELECT count(*) FROM gone
                    """, logger: logger
                ).collect().first?.decode(Int64.self) ?? 0
            try await SchedulingAudit.record(
                principal, "slot.cancel", pseudonym: nil, resource: "slot/\(slotID.lowercased)?bookings=\(cancelled)", requestID: requestID,
                on: connection, logger: logger)
            return Int(cancelled)
        }
    }

    /// Moves a booking to another slot in one transaction: the old place is freed only if the
    /// new one is taken.
    public func reschedule(id: String, _ change: Rescheduling, by principal: Principal, requestID: String?) async throws -> Booking {
        guard let slotID = UUID(uuidString: change.slot) else { throw SchedulingError.invalid(field: "slot", reason: "a slot id") }
        try await throttle(principal, resident: principal.resident ?? principal.clientID)
        let target = try await SlotState.load(slotID, on: client, logger: logger)
        return try await client.transaction(logger: logger) { connection in
            let (booking, deadline) = try await lockBooking(id, by: principal, on: connection)
            let referral = booking.referral.flatMap(UUID.init(uuidString:))
            try target.check(pool: referral == nil ? .public : .referral, principal: principal)
            _ = try await cancel(
                booking, deadlineHours: deadline, reason: "rescheduled", by: principal, requestID: requestID, on: connection)
            return try await book(
                slot: target, resident: UUID(uuidString: booking.resident)!, referral: referral, channel: booking.channel,
                rescheduledFrom: UUID(uuidString: booking.id), by: principal, requestID: requestID, on: connection)
        }
    }

    /// Arrival on the day: the next queue number of the provider's session.
    public func checkIn(id: String, by principal: Principal, requestID: String?) async throws -> Booking {
        try await client.transaction(logger: logger) { connection in
            let (booking, _) = try await lockBooking(id, by: principal, on: connection)
            try Self.transition(booking, to: "checked-in", allowedFrom: ["booked"])
            let rows = try await connection.query(
                """
                SELECT (now() AT TIME ZONE sc.time_zone)::date = s.day, now() < s.ends_at
                FROM scheduling.slots s JOIN scheduling.schedules sc ON sc.id = s.schedule_id WHERE s.id = \(UUID(uuidString: booking.slot)!)
                """, logger: logger
            ).collect()
            guard let (today, open) = try rows.first?.decode((Bool, Bool).self), today, open else {
                throw SchedulingError.refused(
                    code: "check-in-closed", detail: "check-in is open on the day of the appointment until its slot ends")
            }
            let provider = UUID(uuidString: booking.provider)!
            _ = try await connection.query(
                """
                WITH n AS (
                    INSERT INTO scheduling.session_queues AS q (provider_id, day, session, last_number)
                    VALUES (\(provider), \(booking.day)::date, \(booking.session), 1)
                    ON CONFLICT (provider_id, day, session) DO UPDATE SET last_number = q.last_number + 1
                    RETURNING last_number
                )
                UPDATE scheduling.bookings SET status = 'checked-in', checked_in_at = now(), queue_number = (SELECT last_number FROM n)
                WHERE id = \(UUID(uuidString: booking.id)!)
                """, logger: logger)
            try await SchedulingAudit.record(
                principal, "booking.check-in", pseudonym: pseudonym(UUID(uuidString: booking.resident)!), resource: "booking/\(booking.id)",
                requestID: requestID, on: connection, logger: logger)
            return try await read(UUID(uuidString: booking.id)!, on: connection)
        }
    }

    /// A booking the resident did not come to, marked by the facility once its slot has ended. The
    /// `noShowLimit`-th within the window suspends online booking.
    public func markNoShow(id: String, by principal: Principal, requestID: String?) async throws -> Booking {
        guard principal.role == .his || principal.role == .clinician else {
            throw AccessError.forbidden("only the facility marks a no-show")
        }
        return try await client.transaction(logger: logger) { connection in
            let (booking, _) = try await lockBooking(id, by: principal, on: connection)
            guard principal.facility == booking.facility else { throw AccessError.forbidden("the booking is at another facility") }
            try Self.transition(booking, to: "no-show", allowedFrom: ["booked"])
            guard booking.end <= Date() else {
                throw SchedulingError.refused(code: "slot-not-over", detail: "a no-show is marked after the slot ends")
            }
            let id = UUID(uuidString: booking.id)!
            let resident = UUID(uuidString: booking.resident)!
            _ = try await connection.query(
                "UPDATE scheduling.bookings SET status = 'no-show', no_show_at = now() WHERE id = \(id)", logger: logger)
            _ = try await connection.query(
                """
                INSERT INTO scheduling.suspensions (resident_id, ends_at, reason)
                SELECT \(resident), now() + make_interval(days => \(Int32(policy.suspensionDays))::int4), 'no-shows'
                WHERE (SELECT count(*) FROM scheduling.bookings
                       WHERE resident_id = \(resident) AND status = 'no-show'
                         AND no_show_at > now() - make_interval(days => \(Int32(policy.noShowWindowDays))::int4)) >= \(Int64(policy.noShowLimit))
                  AND NOT EXISTS (SELECT 1 FROM scheduling.suspensions WHERE resident_id = \(resident) AND ends_at > now())
                """, logger: logger)
            try await SchedulingAudit.record(
                principal, "booking.no-show", pseudonym: pseudonym(resident), resource: "booking/\(booking.id)", requestID: requestID,
                on: connection, logger: logger)
            return try await read(id, on: connection)
        }
    }
}

/// What a booking needs to know of its slot, read without a lock: the checks made on it before
/// the transaction are repeated by the counter UPDATE that settles the booking.
struct SlotState: Sendable {
    enum Pool { case `public`, referral }

    let id: UUID
    let provider: UUID
    let department: UUID
    let departmentCode: String
    let facility: String
    let day: String
    let session: String
    let start: Date
    let end: Date
    let status: String
    let releaseAt: Date
    let released: Bool
    let over: Bool
    let publicFree: Int
    let referralFree: Int

    static func load(_ id: UUID, on client: PostgresClient, logger: Logger) async throws -> SlotState {
        try await client.withConnection { try await load(id, on: $0, logger: logger) }
    }

    static func load(_ id: UUID, on connection: PostgresConnection, logger: Logger) async throws -> SlotState {
        var binds = PostgresBindings()
        binds.append(id)
        let rows = try await connection.run(SlotStateStatement(binds: binds), logger: logger)
        guard
            let c = try rows.first?.decode(
                (UUID, UUID, UUID, String, String, String, String, Date, Date, String, Date, Bool, Bool, Int32, Int32).self)
        else {
            throw SchedulingError.notFound("slot \(id.lowercased)")
        }
        return SlotState(
            id: c.0, provider: c.1, department: c.2, departmentCode: c.3, facility: c.4, day: c.5, session: c.6, start: c.7, end: c.8,
            status: c.9, releaseAt: c.10, released: c.11, over: c.12, publicFree: Int(c.13), referralFree: Int(c.14))
    }

    /// Why the slot cannot take a booking from `pool` now, if it cannot.
    func refusal(pool: Pool) -> SchedulingError? {
        if status == "cancelled" { return .refused(code: "slot-cancelled", detail: "the facility has cancelled this slot") }
        if over { return .refused(code: "slot-closed", detail: "this slot has ended") }
        switch pool {
        case .public:
            if !released { return SchedulingError.notReleased(releaseAt) }
            if publicFree <= 0 { return SchedulingError.full }
        case .referral:
            if referralFree <= 0 { return SchedulingError.full }
        }
        return nil
    }

    func check(pool: Pool, principal: Principal) throws {
        if let refusal = refusal(pool: pool) { throw refusal }
        // A facility books its own slots for walk-in patients; other facilities book here only on a referral.
        if pool == .public, principal.role == .his || principal.role == .clinician, principal.facility != facility {
            throw AccessError.forbidden("a facility books another facility's slots only on a referral")
        }
    }
}

// The statements of the booking path, prepared once per connection: in a release-hour rush each
// runs thousands of times a second, and parsing and planning them was most of PostgreSQL's share.
// Each finds its rows by primary key, so the plan cached with it cannot go stale as tables grow.

/// A slot's state for the booking checks ($1: the slot).
struct SlotStateStatement: PreparedSQL {
    static let sql = """
        SELECT s.id, s.provider_id, s.department_id, d.code, s.facility, s.day::text, s.session, s.starts_at, s.ends_at, s.status,
               s.release_at, now() >= s.release_at, now() >= s.ends_at, \(SlotDirectory.publicFree),
               s.capacity - s.public_booked - s.referral_booked
        FROM scheduling.slots s JOIN scheduling.departments d ON d.id = s.department_id WHERE s.id = $1
        """
    let binds: PostgresBindings
}

/// The resident's surviving record, with the lock on their booking rules ($1: the resident).
struct SurvivorLockedStatement: PreparedSQL {
    static let sql = """
        SELECT s.id FROM (SELECT coalesce(merged_into, id) AS id FROM registry.residents WHERE id = $1) AS s
        CROSS JOIN LATERAL (SELECT pg_advisory_xact_lock(hashtextextended('scheduling:' || s.id::text, 0))) AS l
        """
    let binds: PostgresBindings
}

/// The place, the booking, the referral, the outbox row and the audit row: $1 slot, $2 booking,
/// $3 resident, $4 provider, $5 facility, $6 day, $7 start, $8 pool, $9 referral, $10 channel,
/// $11 client, $12 rescheduled from, $13 the audit row as JSON.
enum BookingSQL {
    static func statement(take: String) -> String {
        """
        WITH taken AS (\(take) RETURNING s.id),
        booking AS (
            INSERT INTO scheduling.bookings (id, slot_id, resident_id, provider_id, facility, day, starts_at, pool, referral_id, channel,
                                             booked_by, rescheduled_from)
            SELECT $2, taken.id, $3, $4, $5, $6::date, $7, $8, $9::uuid, $10, $11, $12::uuid FROM taken
            RETURNING id, booked_at
        ), referral AS (
            UPDATE scheduling.referrals r SET status = 'booked', booking_id = booking.id FROM booking WHERE r.id = $9::uuid
        ), told AS (
            INSERT INTO scheduling.outbox (topic, resident_id, booking_id, payload)
            SELECT 'booking.confirmed', $3, booking.id,
                   jsonb_build_object('booking', booking.id, 'slot', $1::uuid, 'facility', $5::text, 'provider', $4::uuid,
                                      'start', $7::timestamptz)
            FROM booking
        ), audited AS (
            \(AuditTrail.insertSQL(json: "$13")) WHERE EXISTS (SELECT 1 FROM booking)
        )
        SELECT booked_at FROM booking
        """
    }
}

struct BookPublicStatement: PreparedSQL {
    static let sql = BookingSQL.statement(take: BookingService.takePublic)
    let binds: PostgresBindings
}

struct BookReferralStatement: PreparedSQL {
    static let sql = BookingSQL.statement(take: BookingService.takeReferral)
    let binds: PostgresBindings
}
