import Foundation
import Logging
import PostgresNIO

public struct Slot: Sendable, Codable, Equatable {
    public var id: String
    public var schedule: String
    public var provider: String
    public var providerName: String
    public var providerKind: String
    public var department: String
    public var facility: String
    public var day: String
    public var session: String
    public var start: Date
    public var end: Date
    public var capacity: Int
    public var referralCapacity: Int
    public var booked: Int
    /// Places the public can book now: 0 before the release instant.
    public var available: Int
    /// Places a referral can book now.
    public var referralAvailable: Int
    public var feeClass: String
    public var feeCents: Int?
    public var releaseAt: Date
    public var referralReleaseAt: Date
    public var released: Bool
    public var status: String
}

public struct SlotQuery: Sendable {
    public var facility: String?
    public var department: String?
    public var provider: String?
    public var kind: String?
    public var from: String?
    public var to: String?
    public var onlyAvailable = false
    public var limit = 200

    public init() {}
}

/// Slot search for the app and the HIS; slots hold no personal data, so any signed-in caller reads them.
public struct SlotDirectory: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The public pool: what is left of the capacity once referral-held places are set aside,
    /// until the referral hold lapses. Shared with the booking UPDATE, which must agree with it.
    static let publicFree = """
        (s.capacity - s.public_booked - CASE WHEN now() >= s.referral_release_at THEN s.referral_booked
                                             ELSE greatest(s.referral_capacity, s.referral_booked) END)
        """

    static let columns = """
        SELECT s.id, s.schedule_id, s.provider_id, p.name, p.kind, d.code, s.facility, s.day::text, s.session, s.starts_at, s.ends_at,
               s.capacity, s.referral_capacity, s.public_booked + s.referral_booked,
               CASE WHEN s.status = 'open' AND now() >= s.release_at AND now() < s.ends_at THEN greatest(\(publicFree), 0) ELSE 0 END,
               CASE WHEN s.status = 'open' AND now() < s.ends_at THEN s.capacity - s.public_booked - s.referral_booked ELSE 0 END,
               s.fee_class, s.fee_cents, s.release_at, s.referral_release_at, now() >= s.release_at, s.status
        FROM scheduling.slots s
        JOIN scheduling.providers p ON p.id = s.provider_id
        JOIN scheduling.departments d ON d.id = s.department_id
        """

    static func slots(_ rows: PostgresRowSequence) async throws -> [Slot] {
        var result: [Slot] = []
        for try await row in rows {
            let c = try row.decode(
                (
                    UUID, UUID, UUID, String, String, String, String, String, String, Date, Date, Int32, Int32, Int32, Int32, Int32,
                    String, Int32?, Date, Date, Bool, String
                ).self)
            result.append(
                Slot(
                    id: c.0.lowercased, schedule: c.1.lowercased, provider: c.2.lowercased, providerName: c.3, providerKind: c.4,
                    department: c.5, facility: c.6, day: c.7, session: c.8, start: c.9, end: c.10, capacity: Int(c.11),
                    referralCapacity: Int(c.12), booked: Int(c.13), available: Int(c.14), referralAvailable: Int(c.15), feeClass: c.16,
                    feeCents: c.17.map(Int.init), releaseAt: c.18, referralReleaseAt: c.19, released: c.20, status: c.21))
        }
        return result
    }

    public func search(_ query: SlotQuery) async throws -> [Slot] {
        guard query.facility != nil || query.provider != nil else {
            throw SchedulingError.invalid(field: "facility", reason: "facility or provider is required")
        }
        let provider = try query.provider.map { text -> UUID in
            guard let id = UUID(uuidString: text) else { throw SchedulingError.invalid(field: "provider", reason: "a provider id") }
            return id
        }
        for (field, value) in [("from", query.from), ("to", query.to)] {
            if let value, value.count != 10 || LocalDay.julian(value) == nil {
                throw SchedulingError.invalid(field: field, reason: "a date as YYYY-MM-DD")
            }
        }
        if let kind = query.kind, kind != "clinician", kind != "resource" {
            throw SchedulingError.invalid(field: "kind", reason: "clinician or resource")
        }
        guard (1...1000).contains(query.limit) else { throw SchedulingError.invalid(field: "limit", reason: "from 1 to 1000") }
        let rows = try await client.query(
            """
            \(unescaped: Self.columns)
            WHERE (\(query.facility)::text IS NULL OR s.facility = \(query.facility))
              AND (\(provider)::uuid IS NULL OR s.provider_id = \(provider))
              AND (\(query.department)::text IS NULL OR d.code = \(query.department) OR d.id::text = \(query.department?.lowercased()))
              AND (\(query.kind)::text IS NULL OR p.kind = \(query.kind))
              AND s.day >= coalesce(\(query.from)::date, (now() AT TIME ZONE 'Asia/Shanghai')::date)
              AND (\(query.to)::date IS NULL OR s.day <= \(query.to)::date)
              AND s.ends_at > now()
              AND (NOT \(query.onlyAvailable) OR (s.status = 'open' AND now() >= s.release_at AND \(unescaped: Self.publicFree) > 0))
            ORDER BY s.starts_at, p.code, s.id
            LIMIT \(query.limit)
            """, logger: logger)
        return try await Self.slots(rows)
    }

    public func slot(id text: String) async throws -> Slot {
        guard let id = UUID(uuidString: text),
            let slot = try await Self.slots(client.query("\(unescaped: Self.columns) WHERE s.id = \(id)", logger: logger)).first
        else { throw SchedulingError.notFound("slot \(text.prefix(40))") }
        return slot
    }
}
