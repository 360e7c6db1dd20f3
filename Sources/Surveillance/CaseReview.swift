import Access
import Foundation
import Logging
import PostgresNIO
import Storage

/// CDC staff confirm a reported case or exclude it as a misdiagnosis, with a note; export
/// approvals open gray fields to one analyst client for a purpose and a time.
extension SurveillanceService {
    public struct Review: Decodable, Sendable {
        public let decision: String
        public let note: String?
    }

    public struct ReviewedCase: Encodable, Sendable {
        public let id: String
        public let disease: String
        public let classification: String
        public let reviewStatus: String
        public let reviewedAt: Date
        public let reviewNote: String?
    }

    public func review(case id: String, _ review: Review, by principal: Principal, requestID: String?) async throws -> ReviewedCase {
        try principal.require(scope: "surveillance.review")
        guard let caseID = UUID(uuidString: id) else { throw SurveillanceError.notFound("case \(id.prefix(40))") }
        guard ["confirmed", "excluded"].contains(review.decision) else {
            throw SurveillanceError.invalid(field: "decision", reason: "must be confirmed or excluded")
        }
        if let note = review.note, note.count > 2000 { throw SurveillanceError.invalid(field: "note", reason: "at most 2000 characters") }
        if review.decision == "excluded", (review.note ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            throw SurveillanceError.invalid(field: "note", reason: "an exclusion needs a note saying why")
        }
        return try await client.transaction(logger: logger) { connection in
            let current = try await connection.query(
                "SELECT review_status FROM surveillance.cases WHERE id = \(caseID) FOR UPDATE", logger: logger
            ).collect().first?.decode(String.self)
            guard let current else { throw SurveillanceError.notFound("case \(id.prefix(40))") }
            guard current != review.decision else {
                throw SurveillanceError.conflict(code: "already-reviewed", detail: "the case is already \(current)")
            }
            let row = try await connection.query(
                """
                UPDATE surveillance.cases SET review_status = \(review.decision), reviewed_at = now(), reviewed_by = \(principal.clientID),
                    review_note = \(review.note)
                WHERE id = \(caseID) RETURNING disease, classification, reviewed_at
                """, logger: logger
            ).collect().first!
            let (disease, classification, at) = try row.decode((String, String, Date).self)
            try await AuditTrail.append(
                AuditEvent(
                    principal: principal, action: "surveillance.case.review",
                    resource: "surveillance/case/\(caseID.uuidString.lowercased())",
                    purpose: "public-health-surveillance", requestID: requestID),
                on: connection, logger: logger)
            return ReviewedCase(
                id: caseID.uuidString.lowercased(), disease: disease, classification: classification, reviewStatus: review.decision,
                reviewedAt: at, reviewNote: review.note)
        }
    }

    public struct ApprovalRequest: Decodable, Sendable {
        public let client: String
        public let fields: [String]
        public let purpose: String
        public let expiresAt: Date
    }

    public struct Approval: Encodable, Sendable {
        public let id: String
        public let client: String
        public let fields: [String]
        public let purpose: String
        public let approvedBy: String
        public let expiresAt: Date
    }

    /// An administrator records that a data-sharing request was approved: the named gray fields
    /// for one analyst client until `expiresAt` (at most a year).
    public func approve(_ request: ApprovalRequest, by principal: Principal, requestID: String?) async throws -> Approval {
        try principal.require(.admin, action: "approve surveillance exports")
        try principal.require(scope: "clients.admin")
        guard !request.fields.isEmpty else { throw SurveillanceError.invalid(field: "fields", reason: "name at least one gray field") }
        for name in request.fields {
            guard let field = LineListField(rawValue: name) else {
                throw SurveillanceError.invalid(field: "fields", reason: "\(name.prefix(30)) is not a line-list field")
            }
            guard field.dataClass == .gray else {
                throw SurveillanceError.invalid(
                    field: "fields", reason: "\(name) is \(field.dataClass.rawValue); only gray fields are shared on approval")
            }
        }
        let purpose = request.purpose.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...500).contains(purpose.count) else { throw SurveillanceError.invalid(field: "purpose", reason: "1 to 500 characters") }
        guard request.expiresAt > Date(), request.expiresAt < Date().addingTimeInterval(366 * 86_400) else {
            throw SurveillanceError.invalid(field: "expiresAt", reason: "must be in the future and within a year")
        }
        let role = try await client.query(
            "SELECT role FROM access.clients WHERE id = \(request.client) AND active", logger: logger
        ).collect().first?.decode(String.self)
        guard role == Role.analyst.rawValue else {
            throw SurveillanceError.invalid(field: "client", reason: "must be an active analyst client")
        }
        let id = UUID()
        let fields = Array(Set(request.fields)).sorted()
        try await client.transaction(logger: logger) { connection in
            try await connection.query(
                """
                INSERT INTO surveillance.export_approvals (id, client_id, fields, purpose, approved_by, expires_at)
                VALUES (\(id), \(request.client), \(fields), \(purpose), \(principal.clientID), \(request.expiresAt))
                """, logger: logger)
            try await AuditTrail.append(
                AuditEvent(
                    principal: principal, action: "surveillance.approval.create", resource: "client/\(request.client)",
                    purpose: "data-sharing-approval", requestID: requestID),
                on: connection, logger: logger)
        }
        return Approval(
            id: id.uuidString.lowercased(), client: request.client, fields: fields, purpose: purpose, approvedBy: principal.clientID,
            expiresAt: request.expiresAt)
    }
}
