import Access
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

/// A resident's consent that a facility may read their whole record.
public struct Consent: Sendable, Codable, Equatable {
    public var id: Int64
    public var facility: String
    public var grantedAt: Date
    public var expiresAt: Date?
    public var revokedAt: Date?
    public var grantedBy: String
}

public struct ConsentRequest: Sendable, Codable {
    public var facility: String
    public var expiresAt: Date?
}

/// Consents are the resident's to give and take back: a patient for themself, or an admin
/// recording one given on paper. Every change is audited.
public struct Consents: Sendable {
    let client: PostgresClient
    let registry: ResidentRegistry
    let logger: Logger

    public init(client: PostgresClient, registry: ResidentRegistry, logger: Logger) {
        self.client = client
        self.registry = registry
        self.logger = logger
    }

    func authorize(_ principal: Principal, resident: UUID, write: Bool) throws {
        switch principal.role {
        case .patient:
            try principal.require(scope: write ? "self.write" : "self.read")
            guard principal.resident == resident.lowercased else {
                throw AccessError.forbidden("a patient may manage only their own consents")
            }
        case .admin:
            try principal.require(scope: "registry.admin")
        default:
            throw AccessError.forbidden("consents are given by the resident (or recorded by an admin)")
        }
    }

    public func grant(_ request: ConsentRequest, resident text: String, by principal: Principal, requestID: String?) async throws -> Consent
    {
        let resident = try Self.residentID(text)
        try authorize(principal, resident: resident, write: true)
        if let expires = request.expiresAt, expires <= Date() {
            throw RecordsError.invalid(field: "expiresAt", reason: "must be in the future")
        }
        return try await client.transaction(logger: logger) { connection in
            try await requireResident(resident, on: connection)
            let facility = try await connection.query(
                "SELECT 1 FROM registry.facilities WHERE code = \(request.facility) AND active", logger: logger)
            guard try await facility.collect().count == 1 else {
                throw RecordsError.invalid(field: "facility", reason: "\(request.facility.prefix(40)) is not an active facility")
            }
            let rows = try await connection.query(
                """
                INSERT INTO records.consents (resident_id, facility, expires_at, granted_by)
                VALUES (\(resident), \(request.facility), \(request.expiresAt), \(principal.clientID))
                RETURNING id, facility, granted_at, expires_at, revoked_at, granted_by
                """, logger: logger)
            let consent = try await Self.consents(rows)[0]
            try await audit(principal, "record.consent.grant", resident, consent.id, requestID, on: connection)
            return consent
        }
    }

    public func list(resident text: String, by principal: Principal, requestID: String?) async throws -> [Consent] {
        let resident = try Self.residentID(text)
        try authorize(principal, resident: resident, write: false)
        return try await client.withConnection { connection in
            try await requireResident(resident, on: connection)
            let rows = try await connection.query(
                """
                SELECT id, facility, granted_at, expires_at, revoked_at, granted_by FROM records.consents
                WHERE resident_id = \(resident) ORDER BY id
                """, logger: logger)
            return try await Self.consents(rows)
        }
    }

    public func revoke(id: Int64, resident text: String, by principal: Principal, requestID: String?) async throws -> Consent {
        let resident = try Self.residentID(text)
        try authorize(principal, resident: resident, write: true)
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE records.consents SET revoked_at = coalesce(revoked_at, now())
                WHERE id = \(id) AND resident_id = \(resident)
                RETURNING id, facility, granted_at, expires_at, revoked_at, granted_by
                """, logger: logger)
            guard let consent = try await Self.consents(rows).first else { throw RecordsError.notFound("consent \(id)") }
            try await audit(principal, "record.consent.revoke", resident, id, requestID, on: connection)
            return consent
        }
    }

    private func requireResident(_ id: UUID, on connection: PostgresConnection) async throws {
        let rows = try await connection.query("SELECT 1 FROM registry.residents WHERE id = \(id)", logger: logger)
        guard try await rows.collect().count == 1 else { throw RecordsError.notFound("resident \(id.lowercased)") }
    }

    private func audit(
        _ principal: Principal, _ action: String, _ resident: UUID, _ id: Int64, _ requestID: String?, on connection: PostgresConnection
    ) async throws {
        try await AuditTrail.append(
            AuditEvent(
                principal: principal, action: action, resource: "resident/\(resident.lowercased)/consents/\(id)",
                residentPseudonym: registry.residentPseudonym(resident), purpose: "consent", requestID: requestID),
            on: connection, logger: logger)
    }

    static func residentID(_ text: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw RecordsError.notFound("resident \(text.prefix(40))") }
        return id
    }

    static func consents(_ rows: PostgresRowSequence) async throws -> [Consent] {
        var result: [Consent] = []
        for try await (id, facility, granted, expires, revoked, by) in rows.decode((Int64, String, Date, Date?, Date?, String).self) {
            result.append(Consent(id: id, facility: facility, grantedAt: granted, expiresAt: expires, revokedAt: revoked, grantedBy: by))
        }
        return result
    }
}
