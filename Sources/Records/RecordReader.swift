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
    /// A visit's end.
    public var ended: Date?
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
    /// The resident the item belongs to (single-item reads).
    public var residentId: String?
    /// The order a result belongs to (an HL7 OBR's filler or placer number), for reports.
    public var reportKey: String?
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
        var binds = PostgresBindings()
        binds.append(resident)
        binds.append(types)
        binds.append(facility)
        binds.append(filter.from)
        binds.append(filter.to)
        binds.append(filter.code)
        binds.append(afterTime)
        binds.append(afterID)
        binds.append(page.limit + 1)
        // Each branch is filtered, ordered and limited on its own, along an index on (resident,
        // time DESC, id DESC), so a page reads about `limit` rows per source however long the
        // record is and however deep the cursor; the outer sort merges at most three pages.
        func branch(_ alias: String, time: String, code: String?) -> String {
            """
            AND ($3::text IS NULL OR \(alias).facility = $3)
            AND ($4::timestamptz IS NULL OR \(time) >= $4) AND ($5::timestamptz IS NULL OR \(time) < $5)
            AND ($6::text IS NULL OR \(code.map { "\($0) = $6" } ?? "false"))
            AND ($7::timestamptz IS NULL OR (\(time), \(alias).id) < ($7, $8::uuid))
            ORDER BY \(time) DESC, \(alias).id DESC LIMIT $9
            """
        }
        let sql = """
            SELECT * FROM (\(Self.union(
                entries: "e.resident_id = $1 AND e.current AND e.kind = ANY($2) " + branch("e", time: Self.entryTime, code: "e.code"),
                encounters: "n.resident_id = $1 AND 'encounter' = ANY($2) " + branch("n", time: Self.encounterTime, code: nil),
                documents: "d.resident_id = $1 AND d.current AND 'document' = ANY($2) " + branch("d", time: "d.effective_at", code: "d.type_code"))))
              AS x
            ORDER BY x.t DESC, x.id DESC
            LIMIT $9
            """
        return try await Self.decode(connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger))
    }

    /// The time an item, a visit sorts by: the same expressions as the timeline indexes of migration 0008.
    static let entryTime = "coalesce(e.effective_at, e.recorded_at)"
    static let encounterTime = "coalesce(n.started_at, n.recorded_at)"

    /// The three sources as one row shape; each `where` filters (and may order and limit) its
    /// branch (aliases e, n, d).
    static func union(entries: String, encounters: String, documents: String) -> String {
        """
        (SELECT e.kind AS type, e.id, e.facility, \(entryTime) AS t, e.code, e.code_system, e.display,
               e.value_text AS value, e.unit, e.reference_range, e.abnormal_flag, e.status, e.certainty, e.is_primary, e.encounter_id,
               e.document_id, e.supersedes, NULL::timestamptz AS ended, e.resident_id,
               CASE WHEN e.message_id IS NOT NULL THEN split_part(e.item_key, '|', 1) END AS report_key
        FROM records.entries e WHERE \(entries))
        UNION ALL
        (SELECT 'encounter', n.id, n.facility, \(encounterTime), NULL, NULL, n.department, n.class, NULL,
               NULL, NULL, n.status, NULL, NULL, NULL, NULL, NULL, n.ended_at, n.resident_id, NULL
        FROM records.encounters n WHERE \(encounters))
        UNION ALL
        (SELECT 'document', d.id, d.facility, d.effective_at, d.type_code, d.type_system, coalesce(d.title, d.type_display), NULL,
               NULL, NULL, NULL, CASE WHEN d.current THEN 'current' ELSE 'superseded' END, NULL, NULL, NULL, d.id, NULL, NULL,
               d.resident_id, NULL
        FROM records.documents d WHERE \(documents))
        """
    }

    static func decode(_ rows: PostgresRowSequence) async throws -> [TimelineItem] {
        var result: [TimelineItem] = []
        for try await row in rows {
            let c = row.makeRandomAccess()
            result.append(
                TimelineItem(
                    type: try c[0].decode(String.self), id: try c[1].decode(UUID.self).lowercased, facility: try c[2].decode(String.self),
                    time: try c[3].decode(Date?.self), ended: try c[17].decode(Date?.self), code: try c[4].decode(String?.self),
                    codeSystem: try c[5].decode(String?.self),
                    display: try c[6].decode(String?.self), value: try c[7].decode(String?.self), unit: try c[8].decode(String?.self),
                    referenceRange: try c[9].decode(String?.self), abnormalFlag: try c[10].decode(String?.self),
                    status: try c[11].decode(String?.self), certainty: try c[12].decode(String?.self),
                    primary: try c[13].decode(Bool?.self),
                    encounterId: try c[14].decode(UUID?.self)?.lowercased, documentId: try c[15].decode(UUID?.self)?.lowercased,
                    supersedes: try c[16].decode(UUID?.self)?.lowercased, residentId: try c[18].decode(UUID.self).lowercased,
                    reportKey: try c[19].decode(String?.self)))
        }
        return result
    }

    /// One item, visit or document by id (history included: a superseded result is still
    /// readable by its id), with the same access rules and audit as the timeline.
    public func item(id text: String, by principal: Principal, breakGlass: String?, requestID: String?) async throws -> TimelineItem {
        guard let id = UUID(uuidString: text) else { throw RecordsError.notFound("record item \(text.prefix(40))") }
        return try await client.withConnection { connection in
            var binds = PostgresBindings()
            binds.append(id)
            let sql = Self.union(entries: "e.id = $1", encounters: "n.id = $1", documents: "d.id = $1")
            guard let item = try await Self.decode(connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)).first,
                let resident = item.residentId.flatMap(UUID.init(uuidString:))
            else { throw RecordsError.notFound("record item \(id.lowercased)") }
            let event = AuditEvent(
                principal: principal, action: "record.item.read", resource: "\(item.type)/\(id.lowercased)",
                residentPseudonym: registry.residentPseudonym(resident), purpose: "treatment", requestID: requestID)
            _ = try await access.audited(
                event, principal, resident: resident, writer: item.facility, breakGlass: breakGlass, on: connection)
            return item
        }
    }

    /// The whole current record, newest first, up to `limit` items (FHIR `$everything`).
    public func everything(
        resident: String, limit: Int = 2_000, by principal: Principal, breakGlass: String?, requestID: String?
    ) async throws -> Timeline {
        var all: [TimelineItem] = []
        var cursor: String?
        var first: Timeline?
        repeat {
            let page = try await timeline(
                resident: resident, filter: TimelineFilter(), page: PageRequest(limit: PageRequest.maximumLimit, after: cursor),
                by: principal, breakGlass: breakGlass, requestID: requestID)
            if first == nil { first = page }
            all += page.items
            cursor = page.nextCursor.flatMap(Cursor.decode)
        } while cursor != nil && all.count < limit
        var result = first!
        result.items = Array(all.prefix(limit))
        result.nextCursor = nil
        return result
    }
}

/// A lab or exam report as a patient's phone shows it (检查报告): the results of one order (an
/// HL7 OBR) or one clinical document, with how many are outside their reference range.
public struct Report: Sendable, Encodable, Equatable {
    public struct Result: Sendable, Encodable, Equatable {
        public var id: String
        public var code: String?
        public var name: String?
        public var value: String?
        public var unit: String?
        public var referenceRange: String?
        public var abnormalFlag: String?
        /// The flag in words a patient understands.
        public var interpretation: String?
        public var status: String?
    }

    public var id: String
    public var facility: String
    public var time: Date?
    /// preliminary while any result is; corrected when any was corrected; else final.
    public var status: String
    public var abnormal: Int
    public var results: [Result]
}

extension RecordReader {
    /// The resident's reports, newest first: results grouped by order or document. Same access
    /// and audit as the timeline (other facilities' reports need a basis).
    public func reports(
        resident: String, page: PageRequest, by principal: Principal, breakGlass: String?, requestID: String?
    ) async throws -> (reports: [Report], nextCursor: String?, scope: String) {
        // A page is up to `limit` results (200 by default), grouped; a report at the page's end
        // may continue on the next page under the same id.
        let timeline = try await timeline(
            resident: resident, filter: TimelineFilter(types: ["observation"]),
            page: PageRequest(limit: page.limit == PageRequest.defaultLimit ? PageRequest.maximumLimit : page.limit, after: page.after),
            by: principal, breakGlass: breakGlass, requestID: requestID)
        var keys: [String] = []
        var groups: [String: [TimelineItem]] = [:]
        for item in timeline.items {
            let key = item.documentId ?? (item.facility + "|" + (item.reportKey ?? item.id))
            if groups[key] == nil { keys.append(key) }
            groups[key, default: []].append(item)
        }
        let next = timeline.nextCursor
        let reports = keys.map { key -> Report in
            let items = groups[key]!
            let statuses = Set(items.compactMap(\.status))
            let status = statuses.contains("preliminary") ? "preliminary" : statuses.contains("corrected") ? "corrected" : "final"
            return Report(
                id: items[0].documentId ?? items[0].reportKey ?? items[0].id, facility: items[0].facility,
                time: items.compactMap(\.time).max(), status: status,
                abnormal: items.filter { Self.isAbnormal($0.abnormalFlag) }.count,
                results: items.map { item in
                    Report.Result(
                        id: item.id, code: item.code, name: item.display, value: item.value, unit: item.unit,
                        referenceRange: item.referenceRange, abnormalFlag: item.abnormalFlag, interpretation: Self.words(item.abnormalFlag),
                        status: item.status)
                })
        }
        return (reports, next, timeline.scope)
    }

    static func isAbnormal(_ flag: String?) -> Bool {
        guard let flag = flag?.uppercased(), !flag.isEmpty else { return false }
        return flag != "N"
    }

    /// HL7 table 0078 in Chinese, as report apps show it.
    static func words(_ flag: String?) -> String? {
        switch flag?.uppercased() {
        case nil, "": nil
        case "N": "正常"
        case "H": "偏高"
        case "HH", "HU", ">": "危急偏高"
        case "L": "偏低"
        case "LL", "LU", "<": "危急偏低"
        case "A", "AA": "异常"
        default: "异常"
        }
    }
}
