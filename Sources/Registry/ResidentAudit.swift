import Access
import Foundation
import Logging
import PostgresNIO

/// A module's audit row for a read or change of a resident's data, in the caller's transaction,
/// with the resident's pseudonym (never their id number, name or anything they wrote). `purpose`
/// names the module (`monitoring`, `consultation`).
public struct ResidentAudit: Sendable {
    let registry: ResidentRegistry?
    let purpose: String
    let logger: Logger

    public init(registry: ResidentRegistry?, purpose: String, logger: Logger) {
        self.registry = registry
        self.purpose = purpose
        self.logger = logger
    }

    public func record(
        _ principal: Principal, _ action: String, resident: UUID?, resource: String, requestID: String?,
        on connection: PostgresConnection
    ) async throws {
        let pseudonym = resident.flatMap { resident in registry.map { $0.residentPseudonym(resident) } }
        try await AuditTrail.append(
            AuditEvent(
                principal: principal, action: action, resource: resource, residentPseudonym: pseudonym, purpose: purpose,
                requestID: requestID),
            on: connection, logger: logger)
    }
}
