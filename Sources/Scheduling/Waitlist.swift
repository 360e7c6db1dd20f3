import Access
import Foundation
import Logging
import PostgresNIO
import Storage

public struct WaitlistEntry: Sendable, Codable, Equatable {
    public var id: String
    public var slot: String
    public var resident: String
    public var joinedAt: Date
    public var status: String
    public var position: Int?
    public var booking: String?
    public var skippedReason: String?
}

public struct WaitlistRequest: Sendable, Decodable {
    public var slot: String
    public var resident: String?
}

/// A waiting list per slot. A freed place goes to the first resident waiting whom the booking
/// rules still allow, booked for them in the transaction that freed it (候补: the resident asked to
/// be booked, and is told so through the outbox); one the rules now refuse is passed over with the
/// reason kept.
public struct WaitingList: Sendable {
    let bookings: BookingService

    public init(bookings: BookingService) {
        self.bookings = bookings
    }

    var client: PostgresClient { bookings.client }
    var logger: Logger { bookings.logger }

    public func join(_ request: WaitlistRequest, by principal: Principal, requestID: String?) async throws -> WaitlistEntry {
        let party = try bookings.bookingParty(principal, resident: request.resident)
        guard let slotID = UUID(uuidString: request.slot) else { throw SchedulingError.invalid(field: "slot", reason: "a slot id") }
        guard let named = UUID(uuidString: party.resident) else {
            throw SchedulingError.invalid(field: "resident", reason: "a resident id")
        }
        try await bookings.throttle(principal, resident: party.resident)
        let slot = try await SlotState.load(slotID, on: client, logger: logger)
        if let refusal = slot.refusal(pool: .public), refusal != SchedulingError.full { throw refusal }
        if principal.role != .patient, principal.facility != slot.facility {
            throw AccessError.forbidden("a facility keeps waiting lists for its own slots")
        }
        return try await client.transaction(logger: logger) { connection in
            let resident = try await BookingService.survivor(named, on: connection, logger: logger)
            try await BookingService.lockResident(resident, on: connection, logger: logger)
            let current = try await SlotState.load(slotID, on: connection, logger: logger)
            if current.publicFree > 0 {
                throw SchedulingError.refused(code: "slot-available", detail: "this slot has a free place: book it instead")
            }
            if let refusal = try await bookings.residentRefusal(resident, provider: slot.provider, day: slot.day, on: connection),
                case .refused(let code, _, _) = refusal, code != "active-booking-limit"
            {
                throw refusal
            }
            let counts = try await connection.query(
                """
                SELECT count(*) FILTER (WHERE status = 'waiting'), count(*) FILTER (WHERE status = 'waiting' AND slot_id = \(slotID))
                FROM scheduling.waitlist WHERE resident_id = \(resident)
                """, logger: logger
            ).collect().first!.decode((Int64, Int64).self)
            if counts.1 > 0 {
                throw SchedulingError.refused(code: "already-waiting", detail: "the resident is already on this slot's waiting list")
            }
            if counts.0 >= bookings.policy.waitlistLimit {
                throw SchedulingError.refused(
                    code: "waitlist-limit",
                    detail: "the resident is on \(counts.0) waiting lists; the limit is \(bookings.policy.waitlistLimit)")
            }
            let id = UUID()
            _ = try await connection.query(
                """
                INSERT INTO scheduling.waitlist (id, slot_id, resident_id, joined_by) VALUES (\(id), \(slotID), \(resident), \(principal.clientID))
                """, logger: logger)
            try await SchedulingAudit.record(
                principal, "waitlist.join", pseudonym: bookings.pseudonym(resident), resource: "waitlist/\(id.lowercased)",
                requestID: requestID,
                on: connection, logger: logger)
            return try await entries(connection.query("\(unescaped: Self.columns) WHERE w.id = \(id)", logger: logger)).first!
        }
    }

    static let columns = """
        SELECT w.id, w.slot_id, w.resident_id, w.joined_at, w.status, w.booking_id, w.skipped_reason,
               CASE WHEN w.status = 'waiting' THEN (SELECT count(*) FROM scheduling.waitlist o
                    WHERE o.slot_id = w.slot_id AND o.status = 'waiting' AND (o.joined_at, o.id) <= (w.joined_at, w.id)) END
        FROM scheduling.waitlist w
        """

    func entries(_ rows: PostgresRowSequence) async throws -> [WaitlistEntry] {
        var result: [WaitlistEntry] = []
        for try await row in rows {
            let c = try row.decode((UUID, UUID, UUID, Date, String, UUID?, String?, Int64?).self)
            result.append(
                WaitlistEntry(
                    id: c.0.lowercased, slot: c.1.lowercased, resident: c.2.lowercased, joinedAt: c.3, status: c.4,
                    position: c.7.map(Int.init), booking: c.5?.lowercased, skippedReason: c.6))
        }
        return result
    }

    /// A patient's own entries; a facility's entries for one of its slots.
    public func list(slot: String?, by principal: Principal, requestID: String?) async throws -> [WaitlistEntry] {
        try await client.transaction(logger: logger) { connection in
            let rows: PostgresRowSequence
            switch principal.role {
            case .patient:
                let own = try principal.ownResident()
                rows = try await connection.query(
                    "\(unescaped: Self.columns) WHERE w.resident_id = \(own) ORDER BY w.joined_at DESC LIMIT 200", logger: logger)
            case .his, .clinician:
                try principal.require(scope: "scheduling.read")
                guard let slotID = slot.flatMap(UUID.init(uuidString:)) else {
                    throw SchedulingError.invalid(field: "slot", reason: "a slot id is required")
                }
                rows = try await connection.query(
                    """
                    \(unescaped: Self.columns) JOIN scheduling.slots s ON s.id = w.slot_id
                    WHERE w.slot_id = \(slotID) AND s.facility = \(principal.facility) ORDER BY w.joined_at, w.id
                    """, logger: logger)
            default:
                throw AccessError.forbidden("role \(principal.role.rawValue) may not read waiting lists")
            }
            let found = try await entries(rows)
            try await SchedulingAudit.record(
                principal, "waitlist.list", pseudonym: nil, resource: "waitlist?count=\(found.count)", requestID: requestID, on: connection,
                logger: logger)
            return found
        }
    }

    public func leave(id text: String, by principal: Principal, requestID: String?) async throws -> WaitlistEntry {
        guard let id = UUID(uuidString: text) else { throw SchedulingError.notFound("waiting-list entry \(text.prefix(40))") }
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                SELECT w.resident_id, w.status, s.facility FROM scheduling.waitlist w JOIN scheduling.slots s ON s.id = w.slot_id
                WHERE w.id = \(id) FOR UPDATE OF w
                """, logger: logger
            ).collect()
            guard let (resident, status, facility) = try rows.first?.decode((UUID, String, String).self) else {
                throw SchedulingError.notFound("waiting-list entry \(text.prefix(40))")
            }
            let allowed =
                principal.role == .patient ? principal.resident?.lowercased() == resident.lowercased : principal.facility == facility
            guard allowed else { throw SchedulingError.notFound("waiting-list entry \(text.prefix(40))") }
            guard status == "waiting" else { throw SchedulingError.refused(code: "invalid-transition", detail: "the entry is \(status)") }
            _ = try await connection.query(
                "UPDATE scheduling.waitlist SET status = 'cancelled', resolved_at = now() WHERE id = \(id)", logger: logger)
            try await SchedulingAudit.record(
                principal, "waitlist.leave", pseudonym: bookings.pseudonym(resident), resource: "waitlist/\(id.lowercased)",
                requestID: requestID,
                on: connection, logger: logger)
            return try await entries(connection.query("\(unescaped: Self.columns) WHERE w.id = \(id)", logger: logger)).first!
        }
    }

    /// Books freed places of `slot` for the residents waiting, in order, inside the caller's
    /// transaction. A waiting resident whose own lock another transaction holds is left waiting for
    /// the worker's next pass rather than waited for (two cancellations promoting each other's
    /// residents would deadlock). Returns how many were booked.
    static func promote(slot: SlotState, service: BookingService, on connection: PostgresConnection) async throws -> Int {
        var booked = 0
        let logger = service.logger
        while true {
            let current = try await SlotState.load(slot.id, on: connection, logger: logger)
            guard current.status == "open", !current.over, current.released, current.publicFree > 0 else { return booked }
            let rows = try await connection.query(
                """
                SELECT w.id, w.resident_id, pg_try_advisory_xact_lock(hashtextextended('scheduling:' || w.resident_id::text, 0))
                FROM scheduling.waitlist w WHERE w.slot_id = \(slot.id) AND w.status = 'waiting'
                ORDER BY w.joined_at, w.id LIMIT 1 FOR UPDATE SKIP LOCKED
                """, logger: logger
            ).collect()
            guard let (entry, resident, locked) = try rows.first?.decode((UUID, UUID, Bool).self), locked else { return booked }
            if let refusal = try await service.residentRefusal(resident, provider: current.provider, day: current.day, on: connection),
                case .refused(let code, _, _) = refusal
            {
                _ = try await connection.query(
                    "UPDATE scheduling.waitlist SET status = 'skipped', skipped_reason = \(code), resolved_at = now() WHERE id = \(entry)",
                    logger: logger)
                continue
            }
            let id = UUID()
            _ = try await connection.query(
                """
                INSERT INTO scheduling.bookings (id, slot_id, resident_id, provider_id, facility, day, starts_at, pool, channel, booked_by)
                VALUES (\(id), \(current.id), \(resident), \(current.provider), \(current.facility), \(current.day)::date, \(current.start),
                        'public', 'waitlist', 'waitlist')
                """, logger: logger)
            guard try await BookingService.take(current.id, pool: "public", on: connection, logger: logger) else {
                throw SchedulingError.full
            }
            _ = try await connection.query(
                "UPDATE scheduling.waitlist SET status = 'booked', booking_id = \(id), resolved_at = now() WHERE id = \(entry)",
                logger: logger)
            try await BookingService.notify(
                "waitlist.booked", resident: resident, booking: id, slot: current, on: connection, logger: logger)
            booked += 1
        }
    }

    /// The worker's pass: slots with a free place and someone waiting (a promotion left for later,
    /// a referral hold that lapsed).
    public func promotePending() async throws -> Int {
        let rows = try await client.query(
            """
            SELECT DISTINCT w.slot_id FROM scheduling.waitlist w JOIN scheduling.slots s ON s.id = w.slot_id
            WHERE w.status = 'waiting' AND s.status = 'open' AND now() >= s.release_at AND now() < s.ends_at
              AND \(unescaped: SlotDirectory.publicFree) > 0
            LIMIT 500
            """, logger: logger
        ).collect()
        var total = 0
        for row in rows {
            let slot = try row.decode(UUID.self)
            total += try await client.transaction(logger: logger) { connection in
                let state = try await SlotState.load(slot, on: connection, logger: logger)
                return try await Self.promote(slot: state, service: bookings, on: connection)
            }
        }
        return total
    }
}
