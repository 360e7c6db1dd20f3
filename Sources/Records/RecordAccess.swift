import Access
import Storage
import Foundation
import Logging
import PostgresNIO

/// Why a read of a record item is allowed. Every read is audited with its basis.
public enum ReadBasis: String, Sendable, Codable {
    /// A patient reading their own record.
    case own
    /// A facility reading what it wrote.
    case author
    /// Another facility's item, read while the reader has an open treatment relationship: an
    /// encounter with the resident in the last `relationshipDays`.
    case relationship
    /// Another facility's item, read with the resident's recorded consent.
    case consent
    /// An emergency read with a stated reason, allowed and flagged in the audit.
    case breakGlass = "break-glass"
}

/// Who may read which part of a resident's record (DESIGN invariant 5).
struct RecordAccess: Sendable {
    let relationshipDays: Int
    let logger: Logger

    /// Shortest break-the-glass reason accepted: a reason must say something.
    static let minimumReason = 4

    /// The basis on which `principal` may read an item of `resident` written by `writer`, or an
    /// `AccessError.forbidden` naming what would allow it.
    func basis(
        _ principal: Principal, resident: UUID, writer: String, breakGlass: String?, on connection: PostgresConnection
    ) async throws -> ReadBasis {
        switch principal.role {
        case .patient:
            try principal.require(scope: "self.read")
            guard principal.resident == resident.uuidString.lowercased() else {
                throw AccessError.forbidden("a patient may read only their own record")
            }
            return .own
        case .his, .clinician:
            try principal.require(scope: "records.read")
            guard let facility = principal.facility else { throw AccessError.forbidden("client is bound to no facility") }
            if writer == facility { return .author }
            let rows = try await connection.query(
                """
                SELECT
                  EXISTS (SELECT 1 FROM records.encounters WHERE resident_id = \(resident) AND facility = \(facility)
                          AND started_at >= now() - \(Int32(relationshipDays)) * interval '1 day'),
                  EXISTS (SELECT 1 FROM records.consents WHERE resident_id = \(resident) AND facility = \(facility)
                          AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))
                """, logger: logger)
            for try await (relationship, consent) in rows.decode((Bool, Bool).self) {
                if relationship { return .relationship }
                if consent { return .consent }
            }
            if let reason = breakGlass?.trimmingCharacters(in: .whitespacesAndNewlines), reason.count >= Self.minimumReason {
                return .breakGlass
            }
            throw AccessError.forbidden(
                "facility \(facility) has no treatment relationship with this resident in the last \(relationshipDays) days and no "
                    + "consent on file; an emergency read needs a break-the-glass reason (X-Break-Glass-Reason)")
        case .admin, .analyst:
            throw AccessError.forbidden("role \(principal.role.rawValue) may not read clinical records")
        }
    }

    /// Decides a read and audits it either way: allowed with its basis (break-the-glass as its
    /// purpose), or refused as `denied` before the refusal is thrown.
    func audited(
        _ event: AuditEvent, _ principal: Principal, resident: UUID, writer: String, breakGlass: String?,
        on connection: PostgresConnection
    ) async throws -> ReadBasis {
        var event = event
        do {
            let basis = try await basis(principal, resident: resident, writer: writer, breakGlass: breakGlass, on: connection)
            event.detail = basis.rawValue
            if basis == .breakGlass { event.purpose = "break-glass" }
            try await AuditTrail.append(event, on: connection, logger: logger)
            return basis
        } catch let error as AccessError {
            event.outcome = "denied"
            try await AuditTrail.append(event, on: connection, logger: logger)
            throw error
        }
    }
}
