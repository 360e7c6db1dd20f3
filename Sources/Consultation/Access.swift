import Access
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

/// A clinician as the consultation desk knows them: the provider their API client is bound to.
public struct Clinician: Sendable, Equatable {
    public let provider: UUID
    public let facility: String
    /// The department the provider belongs to (their home department).
    public let department: UUID
}

enum ConsultationAccess {
    /// The provider bound to a clinician's client, or a refusal: another role, or a client no
    /// provider is bound to.
    static func clinician(_ principal: Principal, on connection: PostgresConnection, logger: Logger) async throws -> Clinician {
        guard principal.role == .clinician else {
            throw ConsultationError.forbidden(code: "not-a-clinician", detail: "only a clinician may do this")
        }
        try principal.require(scope: "consultation.write")
        let rows = try await connection.query(
            """
            SELECT id, facility, department_id FROM scheduling.providers
            WHERE client_id = \(principal.clientID) AND kind = 'clinician' AND active
            """, logger: logger)
        for try await (id, facility, department) in rows.decode((UUID, String, UUID).self) {
            return Clinician(provider: id, facility: facility, department: department)
        }
        throw ConsultationError.forbidden(code: "not-a-clinician", detail: "this client is not bound to a clinician")
    }

    /// The resident a patient token acts for.
    static func resident(_ principal: Principal, scope: String) throws -> UUID {
        guard principal.role == .patient else {
            throw ConsultationError.forbidden(code: "not-the-resident", detail: "only the resident may do this")
        }
        try principal.require(scope: scope)
        guard let text = principal.resident, let id = UUID(uuidString: text) else {
            throw AccessError.forbidden("the client is not bound to a resident")
        }
        return id
    }

    /// Whether a clinician belongs to a department's desk: it is their home department, or they
    /// have a shift there that has not ended more than a day ago.
    static func isOnDesk(_ clinician: Clinician, department: UUID, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        if clinician.department == department { return true }
        let rows = try await connection.query(
            """
            SELECT EXISTS (SELECT 1 FROM consultation.duty_shifts WHERE provider_id = \(clinician.provider)
                AND department_id = \(department) AND ends_at > now() - interval '1 day')
            """, logger: logger)
        return try await rows.collect().first?.decode(Bool.self) == true
    }

    static func uuid(_ text: String, _ what: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw ConsultationError.notFound("\(what) \(text.prefix(40))") }
        return id
    }

    static func uuidField(_ text: String?, _ field: String) throws -> UUID {
        guard let text, let id = UUID(uuidString: text) else { throw ConsultationError.invalid(field: field, reason: "must be an id") }
        return id
    }
}
