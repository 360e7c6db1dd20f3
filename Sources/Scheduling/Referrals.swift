import Access
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

public struct Referral: Sendable, Codable, Equatable {
    public var id: String
    public var resident: String
    public var fromFacility: String
    public var fromClinician: String
    public var toFacility: String
    public var toDepartment: String?
    public var reason: String?
    public var status: String
    public var createdAt: Date
    public var expiresAt: Date
    public var booking: String?
}

public struct ReferralRequest: Sendable, Decodable {
    public var resident: String
    public var fromClinician: String
    public var toFacility: String
    /// The receiving department's code (or id); any department when absent.
    public var toDepartment: String?
    public var reason: String?
    public var validDays: Int?
}

/// Referrals up the tiers of care (分级诊疗): only to a facility of a higher level than the
/// referring one. A referral books a place held back for referrals.
public struct ReferralService: Sendable {
    let client: PostgresClient
    let registry: ResidentRegistry
    let logger: Logger

    public init(client: PostgresClient, registry: ResidentRegistry, logger: Logger) {
        self.client = client
        self.registry = registry
        self.logger = logger
    }

    static let rank = ["primary": 0, "secondary": 1, "tertiary": 2]

    public func create(_ request: ReferralRequest, by principal: Principal, requestID: String?) async throws -> Referral {
        guard principal.role == .his || principal.role == .clinician else {
            throw AccessError.forbidden("referrals are made by facilities")
        }
        try principal.require(scope: "scheduling.write")
        let from = try principal.boundFacility()
        guard let named = UUID(uuidString: request.resident) else {
            throw SchedulingError.invalid(field: "resident", reason: "a resident id")
        }
        let clinician = try SchedulingDirectory.name(request.fromClinician, "fromClinician")
        let reason = try request.reason.map { try SchedulingDirectory.name($0, "reason", limit: 2000) }
        let days = try SchedulingDirectory.bounded(request.validDays ?? 30, "validDays", 1...180)!
        let id = UUID()
        return try await client.transaction(logger: logger) { connection in
            let resident = try await BookingService.survivor(named, on: connection, logger: logger)
            let levels = try await connection.query(
                "SELECT code, level FROM registry.facilities WHERE code IN (\(from), \(request.toFacility))", logger: logger
            ).collect()
            var level: [String: String] = [:]
            for row in levels {
                let (code, value) = try row.decode((String, String).self)
                level[code] = value
            }
            guard let toLevel = level[request.toFacility] else {
                throw SchedulingError.invalid(field: "toFacility", reason: "no such facility")
            }
            guard let fromRank = level[from].flatMap({ Self.rank[$0] }), let toRank = Self.rank[toLevel], toRank > fromRank else {
                throw SchedulingError.refused(
                    code: "referral-not-upward",
                    detail: "a referral goes to a facility of a higher level than \(level[from] ?? "the referring one")")
            }
            var department: UUID? = nil
            if let code = request.toDepartment {
                let rows = try await connection.query(
                    """
                    SELECT id FROM scheduling.departments WHERE facility = \(request.toFacility) AND (code = \(code) OR id::text = \(code.lowercased()))
                    """, logger: logger
                ).collect()
                guard let found = try rows.first?.decode(UUID.self) else {
                    throw SchedulingError.invalid(field: "toDepartment", reason: "no such department at \(request.toFacility)")
                }
                department = found
            }
            _ = try await connection.query(
                """
                INSERT INTO scheduling.referrals (id, resident_id, from_facility, from_clinician, to_facility, to_department_id, reason, created_by, expires_at)
                VALUES (\(id), \(resident), \(from), \(clinician), \(request.toFacility), \(department), \(reason), \(principal.clientID),
                        now() + make_interval(days => \(Int32(days))::int4))
                """, logger: logger)
            try await SchedulingAudit.record(
                principal, "referral.create", pseudonym: registry.residentPseudonym(resident), resource: "referral/\(id.lowercased)",
                requestID: requestID, on: connection, logger: logger)
            return try await referrals(connection.query("\(unescaped: Self.columns) WHERE r.id = \(id)", logger: logger)).first!
        }
    }

    static let columns = """
        SELECT r.id, r.resident_id, r.from_facility, r.from_clinician, r.to_facility, d.code, r.reason,
               CASE WHEN r.status = 'open' AND r.expires_at < now() THEN 'expired' ELSE r.status END, r.created_at, r.expires_at, r.booking_id
        FROM scheduling.referrals r LEFT JOIN scheduling.departments d ON d.id = r.to_department_id
        """

    func referrals(_ rows: PostgresRowSequence) async throws -> [Referral] {
        var result: [Referral] = []
        for try await row in rows {
            let c = try row.decode((UUID, UUID, String, String, String, String?, String?, String, Date, Date, UUID?).self)
            result.append(
                Referral(
                    id: c.0.lowercased, resident: c.1.lowercased, fromFacility: c.2, fromClinician: c.3, toFacility: c.4, toDepartment: c.5,
                    reason: c.6, status: c.7, createdAt: c.8, expiresAt: c.9, booking: c.10?.lowercased))
        }
        return result
    }

    /// A patient's own referrals; a facility's sent and received ones (`direction`).
    public func list(direction: String?, by principal: Principal, requestID: String?) async throws -> [Referral] {
        try await client.transaction(logger: logger) { connection in
            let rows: PostgresRowSequence
            switch principal.role {
            case .patient:
                let own = try principal.ownResident()
                rows = try await connection.query(
                    "\(unescaped: Self.columns) WHERE r.resident_id = \(own) ORDER BY r.created_at DESC LIMIT 200", logger: logger)
            case .his, .clinician:
                try principal.require(scope: "scheduling.read")
                let facility = try principal.boundFacility()
                guard direction == nil || direction == "sent" || direction == "received" else {
                    throw SchedulingError.invalid(field: "direction", reason: "sent or received")
                }
                let column = direction == "received" ? "r.to_facility" : "r.from_facility"
                rows = try await connection.query(
                    "\(unescaped: Self.columns) WHERE \(unescaped: column) = \(facility) ORDER BY r.created_at DESC LIMIT 500",
                    logger: logger)
            default:
                throw AccessError.forbidden("role \(principal.role.rawValue) may not read referrals")
            }
            let found = try await referrals(rows)
            try await SchedulingAudit.record(
                principal, "referral.list", pseudonym: nil, resource: "referrals?count=\(found.count)", requestID: requestID,
                on: connection,
                logger: logger)
            return found
        }
    }
}

/// The module's audit row, in the caller's transaction, with the resident's pseudonym.
enum SchedulingAudit {
    static func record(
        _ principal: Principal, _ action: String, pseudonym: String?, resource: String, requestID: String?,
        on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        try await AuditTrail.append(
            AuditEvent(
                principal: principal, action: action, resource: resource, residentPseudonym: pseudonym, purpose: "scheduling",
                requestID: requestID),
            on: connection, logger: logger)
    }
}
