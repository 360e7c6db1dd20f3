import Access
import Foundation
import Logging
import PostgresNIO
import Storage

/// How openly a field may leave the platform, as Guizhou's health-data platform labels them:
/// green fields are open to analysts, gray ones are shared on an approved request, red ones
/// identify a person and never leave through surveillance.
public enum DataClass: String, Sendable, Codable {
    case green, gray, red
}

/// The de-identified line list: one row per case, with a keyed pseudonym instead of the resident.
public enum LineListField: String, Sendable, CaseIterable, Codable {
    case caseId, pseudonym, disease, diseaseName, diseaseClass, classification, reviewStatus, ageBand, sex, county, countyName
    case onsetDate, reportDate, reportingDelayHours, lateReport
    case diagnosedAt, reportedAt, confirmedAt, ageYears, reportingFacility
    case name, idNumber, phone, address, facilityPatientId, birthDate

    public var dataClass: DataClass {
        switch self {
        case .caseId, .pseudonym, .disease, .diseaseName, .diseaseClass, .classification, .reviewStatus, .ageBand, .sex, .county,
            .countyName, .onsetDate, .reportDate, .reportingDelayHours, .lateReport:
            .green
        case .diagnosedAt, .reportedAt, .confirmedAt, .ageYears, .reportingFacility: .gray
        case .name, .idNumber, .phone, .address, .facilityPatientId, .birthDate: .red
        }
    }

    public static let defaults = allCases.filter { $0.dataClass == .green }
}

extension SurveillanceService {
    public struct LineListPage: Sendable {
        public let fields: [LineListField]
        public let rows: [[LineListField: String?]]
        public let nextCursor: String?
    }

    /// The fields a caller asked for, checked against their data classes: red fields are refused
    /// to everyone; gray ones need an unexpired approval for this client naming the field.
    public func allowedFields(_ text: String?, for principal: Principal) async throws -> [LineListField] {
        guard let text, !text.isEmpty else { return LineListField.defaults }
        var fields: [LineListField] = []
        for name in text.split(separator: ",") {
            guard let field = LineListField(rawValue: String(name)) else {
                throw SurveillanceError.invalid(field: "fields", reason: "\(name.prefix(30)) is not a line-list field")
            }
            if !fields.contains(field) { fields.append(field) }
        }
        if let red = fields.first(where: { $0.dataClass == .red }) {
            throw SurveillanceError.restricted(
                field: red.rawValue, reason: "a restricted (red) field identifies a person and is never exported for surveillance")
        }
        let gray = fields.filter { $0.dataClass == .gray }.map(\.rawValue)
        if !gray.isEmpty {
            let approved = try await client.query(
                """
                SELECT DISTINCT f FROM surveillance.export_approvals a, unnest(a.fields) AS f
                WHERE a.client_id = \(principal.clientID) AND a.revoked_at IS NULL AND a.expires_at > now()
                """, logger: logger
            ).collect().map { try $0.decode(String.self) }
            if let missing = gray.first(where: { !approved.contains($0) }) {
                throw SurveillanceError.restricted(
                    field: missing, reason: "a shared-on-approval (gray) field needs an approved export request for this client")
            }
        }
        return fields
    }

    /// Cases matching the filter, newest report first, `limit` at a time.
    public func lineList(
        _ filter: CaseFilter, fields: [LineListField], limit: Int, cursor: String?, by principal: Principal, format: String,
        requestID: String?
    ) async throws -> LineListPage {
        try principal.require(scope: "surveillance.read")
        guard (1...10_000).contains(limit) else { throw SurveillanceError.invalid(field: "limit", reason: "must be 1 to 10000") }
        var binds = PostgresBindings()
        var condition = filter.whereClause(&binds)
        if let cursor {
            guard let id = UUID(uuidString: cursor) else {
                throw SurveillanceError.invalid(field: "cursor", reason: "not a cursor this list returned")
            }
            binds.append(id)
            condition +=
                " AND (c.reported_at, c.id) < (SELECT k.reported_at, k.id FROM surveillance.cases k WHERE k.id = $\(binds.count)::uuid)"
        }
        binds.append(limit + 1)
        let sql = """
            SELECT c.id, c.resident_id, c.disease, c.classification, c.review_status, c.age_years, c.sex, c.division,
                   c.onset_date::text, c.report_date::text, c.delay_minutes, c.limit_hours, c.diagnosed_at, c.reported_at,
                   c.confirmed_at, c.facility
            FROM surveillance.cases c WHERE \(condition)
            ORDER BY c.reported_at DESC, c.id DESC LIMIT $\(binds.count)
            """
        var rows: [[LineListField: String?]] = []
        var last: UUID?
        var more = false
        let iso = Date.ISO8601FormatStyle(includingFractionalSeconds: false)
        for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger) {
            let (id, resident, disease, classification, review, age, sex, division, onset, report, delay, limitHours) =
                try row.decode(
                    (UUID, UUID, String, String, String, Int16?, Int16, String?, String, String, Int32, Int32).self)
            let cells = row.makeRandomAccess()
            let diagnosed = try cells[12].decode(Date.self)
            let reported = try cells[13].decode(Date.self)
            let confirmed = try cells[14].decode(Date?.self)
            let facility = try cells[15].decode(String.self)
            guard rows.count < limit else {
                more = true
                break
            }
            last = id
            var out: [LineListField: String?] = [:]
            for field in fields {
                out[field] =
                    switch field {
                    case .caseId: id.uuidString.lowercased()
                    case .pseudonym: protector.pseudonym(resident.uuidString.lowercased(), domain: "surveillance").prefix(32).description
                    case .disease: disease
                    case .diseaseName: definitions.disease(disease)?.name.zh
                    case .diseaseClass: definitions.disease(disease)?.class.rawValue
                    case .classification: classification
                    case .reviewStatus: review
                    case .ageBand: age.map { $0 >= 85 ? "85+" : "\($0 / 5 * 5)-\($0 / 5 * 5 + 4)" }
                    case .sex: sex == 1 ? "male" : sex == 2 ? "female" : "unknown"
                    case .county: division
                    case .countyName: division.flatMap { divisions.name($0) }
                    case .onsetDate: onset
                    case .reportDate: report
                    case .reportingDelayHours: String(format: "%.1f", Double(delay) / 60)
                    case .lateReport: delay > Int(limitHours) * 60 ? "true" : "false"
                    case .diagnosedAt: diagnosed.formatted(iso)
                    case .reportedAt: reported.formatted(iso)
                    case .confirmedAt: confirmed?.formatted(iso)
                    case .ageYears: age.map { String($0) }
                    case .reportingFacility: facility
                    case .name, .idNumber, .phone, .address, .facilityPatientId, .birthDate: nil
                    }
            }
            rows.append(out)
        }
        // The cursor names the last row returned; the one read past it only says there is more.
        let cursorOut = more ? last?.uuidString.lowercased() : nil
        try await audit(
            principal, resource: "surveillance/cases",
            detail: "fields=\(fields.map(\.rawValue).joined(separator: "+"));rows=\(rows.count);format=\(format)", requestID: requestID)
        return LineListPage(fields: fields, rows: rows, nextCursor: cursorOut)
    }
}
