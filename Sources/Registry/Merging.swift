import Access
import Foundation
import Logging
import PostgresNIO
import Storage

public struct MatchReview: Sendable, Codable, Equatable {
    public var id: Int64
    public var status: String
    public var score: Double
    public var evidence: [String]
    public var facility: String?
    /// An identity number the registration gave that the candidate already holds: kept here
    /// (encrypted; shown masked) instead of on a second resident.
    public var heldDocument: Resident.DocumentView?
    /// The resident created for the registration, and the existing resident it may be.
    public var resident: Resident
    public var candidate: Resident
    public var resolvedBy: String?
}

public struct MergeRecord: Sendable, Codable, Equatable {
    public var id: Int64
    public var survivorId: String
    public var mergedId: String
    public var identifiersMoved: [String]
    public var cardsMoved: [String]
}

/// Merge and unmerge of residents, and the review queue the matcher fills. Admin only: every
/// change is in `registry.merges`, the residents' history and the audit trail.
public struct MergeService: Sendable {
    let client: PostgresClient
    let registry: ResidentRegistry
    let logger: Logger

    public init(client: PostgresClient, registry: ResidentRegistry, logger: Logger) {
        self.client = client
        self.registry = registry
        self.logger = logger
    }

    struct MovedCard: Codable {
        let card: String
        let status: String
    }

    /// Merges `mergedID` into `survivorID`: the survivor takes every identifier and card (a second
    /// active card is suspended so one stays active), the merged resident points at the survivor.
    public func merge(survivor survivorText: String, merged mergedText: String, by principal: Principal, requestID: String?) async throws
        -> MergeRecord
    {
        try principal.require(.admin, action: "merge residents")
        try principal.require(scope: "registry.admin")
        let survivorID = try ResidentRegistry.residentID(survivorText)
        let mergedID = try ResidentRegistry.residentID(mergedText)
        guard survivorID != mergedID else { throw RegistryError.invalid(field: "mergedId", reason: "cannot merge a resident into itself") }
        return try await client.transaction(logger: logger) { connection in
            try await merge(survivorID, mergedID, by: principal, requestID: requestID, on: connection)
        }
    }

    func merge(_ survivorID: UUID, _ mergedID: UUID, by principal: Principal, requestID: String?, on connection: PostgresConnection)
        async throws -> MergeRecord
    {
        // Lock in id order so two merges of the same pair cannot deadlock.
        var pair: [UUID: StoredResident] = [:]
        for id in [survivorID, mergedID].sorted(by: { $0.uuidString < $1.uuidString }) {
            pair[id] = try await registry.load(id, on: connection, forUpdate: true)
        }
        let survivor = pair[survivorID]!
        let merged = pair[mergedID]!
        for resident in [survivor, merged] where resident.status != "active" {
            throw RegistryError.conflict(
                code: "resident-merged",
                detail: "resident \(resident.id.lowercased) is already merged into \(resident.mergedInto!.lowercased)")
        }
        let identifiers = try await connection.query(
            "UPDATE registry.identifiers SET resident_id = \(survivorID) WHERE resident_id = \(mergedID) RETURNING facility, local_id",
            logger: logger)
        var moved: [String] = []
        for try await (facility, localId) in identifiers.decode((String, String).self) { moved.append(facility + "/" + localId) }

        let survivorHasActive =
            !(try await connection.query(
                "SELECT 1 FROM registry.health_cards WHERE resident_id = \(survivorID) AND status = 'active'", logger: logger
            ).collect().isEmpty)
        let cardRows = try await connection.query(
            "SELECT card_number, status FROM registry.health_cards WHERE resident_id = \(mergedID) FOR UPDATE", logger: logger)
        var cards: [MovedCard] = []
        for try await (card, status) in cardRows.decode((String, String).self) { cards.append(MovedCard(card: card, status: status)) }
        for card in cards {
            let status = card.status == "active" && survivorHasActive ? "suspended" : card.status
            try await connection.query(
                """
                UPDATE registry.health_cards SET resident_id = \(survivorID), status = \(status),
                    status_reason = CASE WHEN status = \(status) THEN status_reason ELSE 'merged: survivor keeps its own card' END
                WHERE card_number = \(card.card)
                """, logger: logger)
        }
        try await connection.query(
            """
            INSERT INTO registry.match_keys (key, resident_id)
            SELECT key, \(survivorID) FROM registry.match_keys WHERE resident_id = \(mergedID) ON CONFLICT DO NOTHING
            """, logger: logger)
        try await connection.query(
            """
            UPDATE registry.residents SET status = 'merged', merged_into = \(survivorID), version = version + 1, updated_at = now()
            WHERE id = \(mergedID)
            """, logger: logger)
        // Residents merged earlier into the merged one now point straight at the survivor.
        try await connection.query(
            "UPDATE registry.residents SET merged_into = \(survivorID) WHERE merged_into = \(mergedID)", logger: logger)
        try await connection.query(
            """
            UPDATE registry.match_reviews SET status = 'same', resolved_by = \(principal.clientID), resolved_at = now()
            WHERE status = 'open' AND ((resident_id = \(mergedID) AND candidate_id = \(survivorID))
                                    OR (resident_id = \(survivorID) AND candidate_id = \(mergedID)))
            """, logger: logger)
        let cardsJSON = try jsonText(cards)
        let rows = try await connection.query(
            """
            INSERT INTO registry.merges (survivor_id, merged_id, identifiers, cards, merged_by)
            VALUES (\(survivorID), \(mergedID), \(moved), \(cardsJSON)::jsonb, \(principal.clientID)) RETURNING id
            """, logger: logger
        ).collect()
        let mergeID = try rows[0].decode(Int64.self)
        try await record("merge", mergeID, survivor, merged, by: principal, requestID: requestID, on: connection)
        return MergeRecord(
            id: mergeID, survivorId: survivorID.lowercased, mergedId: mergedID.lowercased, identifiersMoved: moved,
            cardsMoved: cards.map(\.card))
    }

    /// Undoes the live merge of `mergedID`: the identifiers and cards it brought go back (those the
    /// survivor still holds), with the card statuses they had.
    public func unmerge(merged mergedText: String, by principal: Principal, requestID: String?) async throws -> MergeRecord {
        try principal.require(.admin, action: "unmerge residents")
        try principal.require(scope: "registry.admin")
        let mergedID = try ResidentRegistry.residentID(mergedText)
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                SELECT id, survivor_id, identifiers, cards::text FROM registry.merges
                WHERE merged_id = \(mergedID) AND undone_at IS NULL FOR UPDATE
                """, logger: logger
            ).collect()
            guard let row = rows.first else {
                throw RegistryError.conflict(code: "not-merged", detail: "resident \(mergedID.lowercased) is not merged")
            }
            let (mergeID, survivorID, identifiers, cardsText) = try row.decode((Int64, UUID, [String], String).self)
            let cards = try JSONDecoder().decode([MovedCard].self, from: Data(cardsText.utf8))
            let survivor = try await registry.load(survivorID, on: connection, forUpdate: true)
            let merged = try await registry.load(mergedID, on: connection, forUpdate: true)
            if let document = merged.record.document {
                try await registry.requireUnheld(document, except: mergedID, on: connection)
            }
            var restored: [String] = []
            for identifier in identifiers {
                let parts = identifier.split(separator: "/", maxSplits: 1).map(String.init)
                let result = try await connection.query(
                    """
                    UPDATE registry.identifiers SET resident_id = \(mergedID)
                    WHERE facility = \(parts[0]) AND local_id = \(parts[1]) AND resident_id = \(survivorID) RETURNING 1
                    """, logger: logger
                ).collect()
                if !result.isEmpty { restored.append(identifier) }
            }
            var restoredCards: [String] = []
            for card in cards {
                // A card the survivor activated or replaced since stays where it is.
                let result = try await connection.query(
                    """
                    UPDATE registry.health_cards SET resident_id = \(mergedID), status = \(card.status), status_reason = 'unmerged'
                    WHERE card_number = \(card.card) AND resident_id = \(survivorID)
                      AND (status = \(card.status) OR (status = 'suspended' AND status_reason LIKE 'merged:%'))
                    RETURNING 1
                    """, logger: logger
                ).collect()
                if !result.isEmpty { restoredCards.append(card.card) }
            }
            try await connection.query(
                """
                UPDATE registry.residents SET status = 'active', merged_into = NULL, version = version + 1, updated_at = now()
                WHERE id = \(mergedID)
                """, logger: logger)
            try await connection.query(
                "UPDATE registry.merges SET undone_by = \(principal.clientID), undone_at = now() WHERE id = \(mergeID)", logger: logger)
            try await record("unmerge", mergeID, survivor, merged, by: principal, requestID: requestID, on: connection)
            return MergeRecord(
                id: mergeID, survivorId: survivorID.lowercased, mergedId: mergedID.lowercased, identifiersMoved: restored,
                cardsMoved: restoredCards)
        }
    }

    /// The history rows (`merge-survivor`/`merged`, `unmerge-survivor`/`unmerged`) and audit rows
    /// (`resident.merge`/`resident.merged`, …) of both residents of a merge or unmerge.
    func record(
        _ verb: String, _ mergeID: Int64, _ survivor: StoredResident, _ merged: StoredResident, by principal: Principal,
        requestID: String?, on connection: PostgresConnection
    ) async throws {
        let detail = ["merge": String(mergeID)]
        try await EventRow.insert(
            [
                EventRow(resident_id: survivor.id, kind: "\(verb)-survivor", actor: principal.clientID, detail: detail),
                EventRow(resident_id: merged.id, kind: "\(verb)d", actor: principal.clientID, detail: detail),
            ], on: connection, logger: logger)
        try await AuditTrail.append(
            [
                registry.auditEvent(principal, "resident.\(verb)", survivor, requestID: requestID),
                registry.auditEvent(principal, "resident.\(verb)d", merged, requestID: requestID),
            ], on: connection, logger: logger)
    }

    // MARK: Review queue

    public func reviews(status: String, page: PageRequest, by principal: Principal, requestID: String?) async throws -> Page<MatchReview> {
        try principal.require(.admin, action: "read the matching review queue")
        guard ["open", "same", "different"].contains(status) else {
            throw RegistryError.invalid(field: "status", reason: "must be open, same or different")
        }
        let after = page.after.flatMap { Int64($0) } ?? 0
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                SELECT id, status, score, evidence, facility, resident_id, candidate_id, resolved_by, held_document_type,
                    held_document_masked FROM registry.match_reviews
                WHERE status = \(status) AND id > \(after) ORDER BY id LIMIT \(page.limit + 1)
                """, logger: logger
            ).collect()
            var reviews: [MatchReview] = []
            var audits: [AuditEvent] = []
            for row in rows {
                let (id, status, score, evidence, facility, residentID, candidateID, resolvedBy, heldType, heldMasked) = try row.decode(
                    (Int64, String, Double, [String], String?, UUID, UUID, String?, String?, String?).self)
                let resident = try await registry.load(residentID, on: connection)
                let candidate = try await registry.load(candidateID, on: connection)
                if reviews.count < page.limit {
                    audits.append(registry.auditEvent(principal, "resident.review.read", resident, requestID: requestID))
                    audits.append(registry.auditEvent(principal, "resident.review.read", candidate, requestID: requestID))
                }
                reviews.append(
                    MatchReview(
                        id: id, status: status, score: score, evidence: evidence, facility: facility,
                        heldDocument: heldType.map { Resident.DocumentView(type: $0, masked: heldMasked ?? "") },
                        resident: resident.view(identifiers: try await registry.identifiers(of: residentID, on: connection)),
                        candidate: candidate.view(identifiers: try await registry.identifiers(of: candidateID, on: connection)),
                        resolvedBy: resolvedBy))
            }
            try await AuditTrail.append(audits, on: connection, logger: logger)
            return Page(rows: reviews, limit: page.limit, key: { String($0.id) })
        }
    }

    /// `same` merges the registration's resident into the existing one; `different` keeps both.
    public func resolve(review id: Int64, decision: String, by principal: Principal, requestID: String?) async throws -> MatchReview {
        try principal.require(.admin, action: "resolve matching reviews")
        try principal.require(scope: "registry.admin")
        guard decision == "same" || decision == "different" else {
            throw RegistryError.invalid(field: "decision", reason: "must be same or different")
        }
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                "SELECT status, resident_id, candidate_id FROM registry.match_reviews WHERE id = \(id) FOR UPDATE", logger: logger
            ).collect()
            guard let row = rows.first else { throw RegistryError.notFound("review \(id)") }
            let (status, residentID, candidateID) = try row.decode((String, UUID, UUID).self)
            guard status == "open" else {
                throw RegistryError.conflict(code: "review-resolved", detail: "review \(id) is already resolved")
            }
            if decision == "same" {
                _ = try await merge(candidateID, residentID, by: principal, requestID: requestID, on: connection)
            }
            try await connection.query(
                """
                UPDATE registry.match_reviews SET status = \(decision), resolved_by = \(principal.clientID), resolved_at = now()
                WHERE id = \(id)
                """, logger: logger)
            let resident = try await registry.load(residentID, on: connection)
            let candidate = try await registry.load(candidateID, on: connection)
            try await AuditTrail.append(
                registry.auditEvent(principal, "resident.review.\(decision)", resident, requestID: requestID), on: connection,
                logger: logger)
            let (score, evidence, facility, heldType, heldMasked) = try await connection.query(
                """
                SELECT score, evidence, facility, held_document_type, held_document_masked FROM registry.match_reviews WHERE id = \(id)
                """, logger: logger
            ).collect()[0].decode((Double, [String], String?, String?, String?).self)
            return MatchReview(
                id: id, status: decision, score: score, evidence: evidence, facility: facility,
                heldDocument: heldType.map { Resident.DocumentView(type: $0, masked: heldMasked ?? "") },
                resident: resident.view(identifiers: try await registry.identifiers(of: residentID, on: connection)),
                candidate: candidate.view(identifiers: try await registry.identifiers(of: candidateID, on: connection)),
                resolvedBy: principal.clientID)
        }
    }
}
