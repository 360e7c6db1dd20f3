import Foundation
import Logging
import PostgresNIO
import Storage

/// What an analyst may slice the case table by.
public enum Dimension: String, Sendable, CaseIterable {
    case disease, division, ageGroup, sex, day, week, month
}

public enum DateBasis: String, Sendable {
    case onset, report
}

/// The filters shared by counts and the line list, checked once.
public struct CaseFilter: Sendable, Equatable {
    public var diseases: [String] = []
    /// A GB/T 2260 prefix: `52`, `5201` or `520102`.
    public var division: String?
    public var from: Date
    public var to: Date
    public var dateBasis: DateBasis = .onset
    public var classifications: [String] = ["suspected", "clinical", "confirmed"]
    /// Cases CDC excluded as misdiagnoses are left out unless asked for.
    public var includeExcluded = false

    public static let longestRangeDays = 366 * 10

    /// Reads the query parameters: `disease`, `division`, `from`, `to` (dates, inclusive, local),
    /// `dateBasis`, `classification`, `includeExcluded`. Unknown diseases are refused by name.
    public init(query: [String: String], definitions: CaseDefinitions, today: Date = Date()) throws(SurveillanceError) {
        to = Self.startOfDay(today)
        from = to.addingTimeInterval(-364 * 86_400)
        if let text = query["disease"], !text.isEmpty {
            diseases = text.split(separator: ",").map { String($0) }
            for code in diseases where definitions.disease(code) == nil {
                throw .invalid(
                    field: "disease", reason: "\(code.prefix(40)) is not a notifiable disease code (see /api/v1/surveillance/diseases)")
            }
        }
        if let text = query["division"], !text.isEmpty {
            guard Divisions.isPrefix(text) else {
                throw .invalid(field: "division", reason: "must be a GB/T 2260 prefix: 52, 5201 or 520102")
            }
            division = text
        }
        if let text = query["from"] { from = try Self.date(text, field: "from") }
        if let text = query["to"] { to = try Self.date(text, field: "to") }
        guard from <= to else { throw .invalid(field: "from", reason: "must not be after to") }
        guard to.timeIntervalSince(from) <= Double(Self.longestRangeDays) * 86_400 else {
            throw .invalid(field: "from", reason: "the range may span at most \(Self.longestRangeDays) days")
        }
        if let text = query["dateBasis"] {
            guard let basis = DateBasis(rawValue: text) else { throw .invalid(field: "dateBasis", reason: "must be onset or report") }
            dateBasis = basis
        }
        if let text = query["classification"], !text.isEmpty {
            classifications = text.split(separator: ",").map { String($0) }
            for value in classifications where !["suspected", "clinical", "confirmed"].contains(value) {
                throw .invalid(field: "classification", reason: "\(value.prefix(20)) is not suspected, clinical or confirmed")
            }
        }
        if let text = query["includeExcluded"] {
            guard let flag = Bool(text) else { throw .invalid(field: "includeExcluded", reason: "must be true or false") }
            includeExcluded = flag
        }
    }

    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        return calendar
    }()

    static func startOfDay(_ date: Date) -> Date {
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return Date(timeIntervalSince1970: Double(days(year: parts.year!, month: parts.month!, day: parts.day!)) * 86_400)
    }

    /// Days since 1970-01-01 of a civil date (the dates in the case table are local dates; kept
    /// as midnight UTC here so no time zone moves them).
    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    public static func parseDate(_ text: String, field: String) throws(SurveillanceError) -> Date { try date(text, field: field) }

    /// Today in China, as the midnight-UTC date the case table's dates compare with.
    public static func today() -> Date { startOfDay(Date()) }

    static func date(_ text: String, field: String) throws(SurveillanceError) -> Date {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard text.utf8.count == 10, parts.count == 3, (1900...2200).contains(parts[0]), (1...12).contains(parts[1]),
            (1...31).contains(parts[2])
        else { throw .invalid(field: field, reason: "must be a date like 2026-01-31") }
        let date = Date(timeIntervalSince1970: Double(days(year: parts[0], month: parts[1], day: parts[2])) * 86_400)
        guard format(date) == text else { throw .invalid(field: field, reason: "\(text) is not a calendar date") }
        return date
    }

    public static func format(_ date: Date) -> String {
        var utc = Calendar(identifier: .gregorian)
        utc.timeZone = TimeZone(identifier: "UTC")!
        let parts = utc.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
    }

    /// The WHERE clause over `surveillance.cases c`, appending its binds.
    func whereClause(_ binds: inout PostgresBindings) -> String {
        let column = dateBasis == .onset ? "c.onset_date" : "c.report_date"
        var clauses: [String] = []
        binds.append(Self.format(from))
        clauses.append("\(column) >= $\(binds.count)::date")
        binds.append(Self.format(to))
        clauses.append("\(column) <= $\(binds.count)::date")
        if !diseases.isEmpty {
            binds.append(diseases)
            clauses.append("c.disease = ANY($\(binds.count)::text[])")
        }
        if let division {
            binds.append(division + "%")
            clauses.append("c.division LIKE $\(binds.count)")
        }
        if Set(classifications) != ["suspected", "clinical", "confirmed"] {
            binds.append(classifications)
            clauses.append("c.classification = ANY($\(binds.count)::text[])")
        }
        if !includeExcluded { clauses.append("c.review_status <> 'excluded'") }
        return clauses.joined(separator: " AND ")
    }
}

/// A counts request: the filter, the grouping, and the level divisions are grouped at.
public struct CountQuery: Sendable {
    public var filter: CaseFilter
    public var groupBy: [Dimension]
    public var divisionLevel: Divisions.Level = .county

    public init(query: [String: String], definitions: CaseDefinitions, today: Date = Date()) throws(SurveillanceError) {
        filter = try CaseFilter(query: query, definitions: definitions, today: today)
        groupBy = []
        if let text = query["groupBy"], !text.isEmpty {
            for name in text.split(separator: ",") {
                guard let dimension = Dimension(rawValue: String(name)) else {
                    throw .invalid(
                        field: "groupBy",
                        reason: "\(name.prefix(20)) is not one of \(Dimension.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                guard !groupBy.contains(dimension) else { throw .invalid(field: "groupBy", reason: "\(name) is named twice") }
                groupBy.append(dimension)
            }
        }
        guard groupBy.count <= 4 else { throw .invalid(field: "groupBy", reason: "at most 4 dimensions at once") }
        if let text = query["divisionLevel"] {
            guard let level = Divisions.Level(rawValue: text) else {
                throw .invalid(field: "divisionLevel", reason: "must be province, prefecture or county")
            }
            divisionLevel = level
        }
    }

    /// What the rows are grouped by, kept raw (a date, a number) so the formatting below runs once
    /// per group rather than once per case.
    func groupingExpression(_ dimension: Dimension) -> String {
        let date = filter.dateBasis == .onset ? "c.onset_date" : "c.report_date"
        switch dimension {
        case .disease: return "c.disease"
        case .division: return "coalesce(left(c.division, \(divisionLevel.width)), 'unknown')"
        case .ageGroup: return "CASE WHEN c.age_years IS NULL THEN -1 WHEN c.age_years >= 85 THEN 85 ELSE c.age_years / 5 * 5 END"
        case .sex: return "c.sex"
        case .day: return date
        case .week: return "date_trunc('week', \(date))::date"
        case .month: return "date_trunc('month', \(date))::date"
        }
    }

    /// The group's key as the answer shows it, from the grouped column `k`.
    func labelExpression(_ dimension: Dimension, _ k: String) -> String {
        switch dimension {
        case .disease, .division: return k
        case .ageGroup:
            return "CASE WHEN \(k) < 0 THEN 'unknown' WHEN \(k) >= 85 THEN '85+' ELSE \(k)::text || '-' || (\(k) + 4)::text END"
        case .sex: return "CASE \(k) WHEN 1 THEN 'male' WHEN 2 THEN 'female' ELSE 'unknown' END"
        case .day: return "to_char(\(k), 'YYYY-MM-DD')"
        case .week: return "to_char(\(k), 'IYYY-\"W\"IW')"
        case .month: return "to_char(\(k), 'YYYY-MM')"
        }
    }

    /// One statement: the filtered cases grouped, zero cells absent.
    public func statement() -> PostgresQuery {
        var binds = PostgresBindings()
        let condition = filter.whereClause(&binds)
        guard !groupBy.isEmpty else {
            return PostgresQuery(unsafeSQL: "SELECT count(*)::int8 FROM surveillance.cases c WHERE \(condition)", binds: binds)
        }
        let columns = groupBy.indices.map { "k\($0)" }
        let inner = zip(groupBy, columns).map { "\(groupingExpression($0)) AS \($1)" }.joined(separator: ", ")
        let labels = zip(groupBy, columns).map { labelExpression($0, $1) }.joined(separator: ", ")
        let positions = (1...groupBy.count).map(String.init).joined(separator: ", ")
        let sql = """
            SELECT \(labels), n FROM (
                SELECT \(inner), count(*)::int8 AS n FROM surveillance.cases c WHERE \(condition) GROUP BY \(positions)
            ) AS grouped ORDER BY \(positions)
            """
        return PostgresQuery(unsafeSQL: sql, binds: binds)
    }
}
