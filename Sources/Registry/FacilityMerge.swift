import Access
import Foundation
import Logging
import PostgresNIO

/// What a facility's "these two patient ids are one person" (HL7 ADT^A40) did to the index.
public enum FacilityMergeOutcome: Sendable, Equatable {
    /// Both ids already named one resident.
    case alreadyOne(resident: UUID)
    /// The surviving id was new: it now names the prior id's resident as well.
    case relinked(resident: UUID)
    /// The two residents were merged (the prior one was known to this facility alone).
    case merged(MergeRecord, survivor: UUID)
    /// The prior resident is also known to other facilities: this facility's prior id moved to the
    /// survivor, and the pair waits on the review queue for `admin` instead of being merged on one
    /// facility's word.
    case reviewQueued(reviewID: Int64?, survivor: UUID)

    public var residentID: UUID {
        switch self {
        case .alreadyOne(let id), .relinked(let id), .merged(_, let id), .reviewQueued(_, let id): id
        }
    }
}

extension MergeService {
    /// Applies a facility's merge of its own patient ids, inside the caller's transaction.
    /// Throws `notFound` when the prior id is not linked at that facility.
    public func mergeFacilityRecords(
        facility: String, survivorLocalId: String, priorLocalId: String, by principal: Principal, requestID: String?,
        on connection: PostgresConnection
    ) async throws -> FacilityMergeOutcome {
        guard let prior = try await registry.residentID(facility: facility, localId: priorLocalId, on: connection) else {
            throw RegistryError.notFound("prior patient id \(facility)/\(priorLocalId)")
        }
        guard let survivor = try await registry.residentID(facility: facility, localId: survivorLocalId, on: connection) else {
            try await connection.query(
                """
                INSERT INTO registry.identifiers (facility, local_id, resident_id, source)
                VALUES (\(facility), \(survivorLocalId), \(prior), 'hl7')
                """, logger: logger)
            try await recordMove(facility, survivorLocalId, to: prior, by: principal, requestID: requestID, on: connection)
            return .relinked(resident: prior)
        }
        guard survivor != prior else { return .alreadyOne(resident: survivor) }
        let elsewhere =
            try await connection.query(
                "SELECT count(*) FROM registry.identifiers WHERE resident_id = \(prior) AND facility <> \(facility)", logger: logger
            ).collect().first?.decode(Int.self) ?? 0
        if elsewhere == 0 {
            return .merged(try await merge(survivor, prior, by: principal, requestID: requestID, on: connection), survivor: survivor)
        }
        try await connection.query(
            """
            UPDATE registry.identifiers SET resident_id = \(survivor)
            WHERE facility = \(facility) AND local_id = \(priorLocalId)
            """, logger: logger)
        try await recordMove(facility, priorLocalId, to: survivor, by: principal, requestID: requestID, on: connection)
        let review = try await connection.query(
            """
            INSERT INTO registry.match_reviews (resident_id, candidate_id, score, evidence, facility)
            VALUES (\(prior), \(survivor), 0, ARRAY['facility-merge'], \(facility))
            ON CONFLICT (resident_id, candidate_id) DO UPDATE SET status = 'open', resolved_by = NULL, resolved_at = NULL
            RETURNING id
            """, logger: logger
        ).collect().first?.decode(Int64.self)
        return .reviewQueued(reviewID: review, survivor: survivor)
    }

    private func recordMove(
        _ facility: String, _ localId: String, to resident: UUID, by principal: Principal, requestID: String?,
        on connection: PostgresConnection
    ) async throws {
        let stored = try await registry.load(resident, on: connection)
        try await EventRow.insert(
            [EventRow(resident_id: resident, kind: "linked", actor: principal.clientID, detail: ["facility": facility])],
            on: connection, logger: logger)
        try await AuditTrail.append(
            [registry.auditEvent(principal, "resident.link", stored, requestID: requestID)], on: connection, logger: logger)
    }
}
