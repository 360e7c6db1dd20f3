import Access
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

/// One line of a resident's timeline: a visit, an item or a document, newest first.
public struct TimelineItem: Sendable, Encodable, Equatable {
    /// encounter, diagnosis, observation, medication, allergy, procedure or document.
    public var type: String
    public var id: String
    public var facility: String
    public var time: Date?
    public var code: String?
    public var codeSystem: String?
    public var display: String?
    public var value: String?
    public var unit: String?
    public var referenceRange: String?
    public var abnormalFlag: String?
    /// preliminary/final/corrected (results), in-progress/finished (visits), …
    public var status: String?
    public var certainty: String?
    public var primary: Bool?
    public var encounterId: String?
    public var documentId: String?
    /// The item this one corrected, when it is a correction.
    public var supersedes: String?
}

/// What a timeline read asks for.
public struct TimelineFilter: Sendable, Equatable {
    public var types: Set<String>?
    public var facility: String?
    public var from: Date?
    public var to: Date?
    public var code: String?

    public init(types: Set<String>? = nil, facility: String? = nil, from: Date? = nil, to: Date? = nil, code: String? = nil) {
        self.types = types
        self.facility = facility
        self.from = from
        self.to = to
        self.code = code
    }

    public static let allTypes: Set<String> = Set(["encounter", "document"] + EntryKind.allCases.map(\.rawValue))
}

/// A timeline page, saying whether entries of other facilities were left out for lack of a
/// treatment relationship or consent (the reader's own are always there).
public struct Timeline: Sendable, Encodable {
    public var items: [TimelineItem]
    public var nextCursor: String?
    /// `full`, or `own-facility` when other facilities' entries were withheld.
    public var scope: String
    public var basis: String
}

/// Reads a resident's record: the current items (corrections replace what they corrected),
/// visits and current documents, filtered and paged newest first. Access as for documents: a
/// patient their own, a facility what it wrote, others' with a relationship, consent or a
/// break-the-glass reason; each read audited.
public struct RecordReader: Sendable {
    let client: PostgresClient
    let registry: ResidentRegistry
    let access: RecordAccess
    let logger: Logger

    public init(client: PostgresClient, registry: ResidentRegistry, relationshipDays: Int = 90, logger: Logger) {
        self.client = client
        self.registry = registry
        self.access = RecordAccess(relationshipDays: relationshipDays, logger: logger)
        self.logger = logger
    }

    public func timeline(
        resident text: String, filter: TimelineFilter, page: PageRequest, by principal: Principal, breakGlass: String?,
        requestID: String?
    ) async throws -> Timeline {
        guard let resident = UUID(uuidString: text) else { throw RecordsError.notFound("resident \(text.prefix(40))") }
        if let types = filter.types, let unknown = types.subtracting(TimelineFilter.allTypes).first {
            throw RecordsError.invalid(
                field: "type", reason: "\(unknown) is not one of \(TimelineFilter.allTypes.sorted().joined(separator: ", "))")
        }
        return try await client.withConnection { connection in
            let exists = try await connection.query("SELECT 1 FROM registry.residents WHERE id = \(resident)", logger: logger)
            guard try await exists.collect().count == 1 else { throw RecordsError.notFound("resident \(resident.lowercased)") }
            var event = AuditEvent(
                principal: principal, action: "record.timeline.read", resource: "resident/\(resident.lowercased)/record",
                residentPseudonym: registry.residentPseudonym(resident), purpose: "treatment", requestID: requestID)
            // Decide for "another facility's entries": the reader's own are always theirs to read.
            let basis: ReadBasis
            var onlyFacility: String?
            do {
                basis = try await access.basis(principal, resident: resident, writer: "", breakGlass: breakGlass, on: connection)
            } catch let error as AccessError {
                guard principal.role == .his || principal.role == .clinician, let own = principal.facility,
                    principal.scopes.contains("records.read")
                else {
                    event.outcome = "denied"
                    try await AuditTrail.append(event, on: connection, logger: logger)
                    throw error
                }
                basis = .author
                onlyFacility = own
            }
            event.detail = basis.rawValue
            if basis == .breakGlass { event.purpose = "break-glass" }
            try await AuditTrail.append(event, on: connection, logger: logger)
            let rows = try await items(resident: resident, filter: filter, onlyFacility: onlyFacility, page: page, on: connection)
            let built = Page(rows: rows, limit: page.limit) { Self.cursorKey($0) }
            return Timeline(
                items: built.items, nextCursor: built.nextCursor, scope: onlyFacility == nil ? "full" : "own-facility",
                basis: basis.rawValue)
        }
    }

    /// `time|id` with the time as fixed-width microseconds, so keys sort as the rows do.
    static func cursorKey(_ item: TimelineItem) -> String {
        let micros = Int64(((item.time ?? Date(timeIntervalSince1970: 0)).timeIntervalSince1970 * 1_000_000).rounded())
        return String(format: "%020lld", micros + 10_000_000_000_000_000) + "|" + item.id
    }

    private func items(
        resident: UUID, filter: TimelineFilter, onlyFacility: String?, page: PageRequest, on connection: PostgresConnection
    ) async throws -> [TimelineItem] {
        var afterTime: Date?
        var afterID: UUID?
        if let after = page.after {
            let parts = after.split(separator: "|")
            guard parts.count == 2, let micros = Int64(parts[0]), let id = UUID(uuidString: String(parts[1])) else {
                throw PageError.badCursor("cursor is not one this service issued")
            }
            afterTime = Date(timeIntervalSince1970: Double(micros - 10_000_000_000_000_000) / 1_000_000)
            afterID = id
        }
        let types = Array(filter.types ?? TimelineFilter.allTypes)
        let facility = onlyFacility ?? filter.facility
        let conflicting = onlyFacility != nil && filter.facility != nil && filter.facility != onlyFacility
        if conflicting { return [] }
        // One keyset query over the three sources; each branch is an index range scan on its
        // (resident, time) index, and the outer ORDER BY … LIMIT merges them.
        let rows = try await connection.query(
            """
            SELECT * FROM (
              SELECT e.kind, e.id, e.facility, coalesce(e.effective_at, e.recorded_at) AS t, e.code, e.code_system, e.display,
                     e.value_text, e.unit, e.reference_range, e.abnormal_flag, e.status, e.certainty, e.is_primary, e.encounter_id,
                     e.document_id, e.supersedes
              FROM records.entries e
              WHERE e.resident_id = \(resident) AND e.current AND e.kind = ANY(\(types))
              UNION ALL
              SELECT 'encounter', n.id, n.facility, coalesce(n.started_at, n.recorded_at), NULL, NULL, n.department, n.class, NULL,
                     NULL, NULL, n.status, NULL, NULL, NULL, NULL, NULL
              FROM records.encounters n
              WHERE n.resident_id = \(resident) AND 'encounter' = ANY(\(types))
              UNION ALL
              SELECT 'document', d.id, d.facility, d.effective_at, d.type_code, d.type_system, coalesce(d.title, d.type_display), NULL,
                     NULL, NULL, NULL, CASE WHEN d.schema_valid THEN 'valid' ELSE 'schema-findings' END, NULL, NULL, NULL, d.id, NULL
              FROM records.documents d
              WHERE d.resident_id = \(resident) AND d.current AND 'document' = ANY(\(types))
            ) AS x (type, id, facility, t, code, code_system, display, value, unit, reference_range, abnormal_flag, status,
                    certainty, is_primary, encounter_id, document_id, supersedes)
            WHERE (\(facility)::text IS NULL OR x.facility = \(facility))
              AND (\(filter.from)::timestamptz IS NULL OR x.t >= \(filter.from))
              AND (\(filter.to)::timestamptz IS NULL OR x.t < \(filter.to))
              AND (\(filter.code)::text IS NULL OR x.code = \(filter.code))
              AND (\(afterTime)::timestamptz IS NULL OR (x.t, x.id) < (\(afterTime), \(afterID)))
            ORDER BY x.t DESC, x.id DESC
            LIMIT \(page.limit + 1)
            """, logger: logger)
        var result: [TimelineItem] = []
        for try await row in rows {
            let c = row.makeRandomAccess()
            result.append(
                TimelineItem(
                    type: try c[0].decode(String.self), id: try c[1].decode(UUID.self).lowercased, facility: try c[2].decode(String.self),
                    time: try c[3].decode(Date?.self), code: try c[4].decode(String?.self), codeSystem: try c[5].decode(String?.self),
                    display: try c[6].decode(String?.self), value: try c[7].decode(String?.self), unit: try c[8].decode(String?.self),
                    referenceRange: try c[9].decode(String?.self), abnormalFlag: try c[10].decode(String?.self),
                    status: try c[11].decode(String?.self), certainty: try c[12].decode(String?.self),
                    primary: try c[13].decode(Bool?.self),
                    encounterId: try c[14].decode(UUID?.self)?.lowercased, documentId: try c[15].decode(UUID?.self)?.lowercased,
                    supersedes: try c[16].decode(UUID?.self)?.lowercased))
        }
        return result
    }
}
