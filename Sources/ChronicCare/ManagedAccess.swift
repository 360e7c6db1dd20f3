import Access
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

/// Who may see a resident's readings, enrolments and alerts: the resident (a patient token for
/// them), and a clinic that manages them (an active enrolment there), or a hospital an alert of
/// theirs was escalated to. Nobody else: not a hospital that merely treated them once, not an admin.
enum ManagedAccess {
    static func requireRead(
        _ principal: Principal, resident: UUID, on connection: PostgresConnection, logger: Logger
    ) async throws {
        switch principal.role {
        case .patient:
            try principal.require(scope: "self.read")
            guard principal.resident == resident.lowercased else {
                throw AccessError.forbidden("a patient may read only their own readings and alerts")
            }
        case .clinician, .his:
            try principal.require(scope: "monitoring.read")
            guard let facility = principal.facility else { throw AccessError.forbidden("the client is not bound to a facility") }
            let rows = try await connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM chronic_care.enrolments WHERE resident_id = \(resident) AND facility = \(facility) AND status = 'active')
                    OR EXISTS (SELECT 1 FROM chronic_care.alerts WHERE resident_id = \(resident) AND escalated_to = \(facility))
                """, logger: logger)
            guard try await rows.collect().first?.decode(Bool.self) == true else {
                throw AccessError.forbidden("facility \(facility) does not manage this resident")
            }
        default:
            throw AccessError.forbidden("role \(principal.role.rawValue) may not read monitoring data")
        }
    }

    /// A clinic's own lists: the facility it is bound to.
    static func clinic(_ principal: Principal, scope: String = "monitoring.read") throws -> String {
        guard principal.role == .clinician || principal.role == .his else {
            throw AccessError.forbidden("work lists belong to a clinic's clinicians")
        }
        try principal.require(scope: scope)
        guard let facility = principal.facility else { throw AccessError.forbidden("the client is not bound to a facility") }
        return facility
    }

    static func uuid(_ text: String, _ what: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw ChronicCareError.notFound("\(what) \(text.prefix(40))") }
        return id
    }
}
