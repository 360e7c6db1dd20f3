import Access
import Foundation
import Logging
import PostgresNIO
import Storage

/// Reporting delay (diagnosis to case) against the legal limits, per disease or per reporting
/// facility: how many cases, how many late, the median and 90th-percentile delay. Rows with
/// fewer cases than the suppression threshold are withheld.
extension SurveillanceService {
    public struct TimelinessRow: Codable, Sendable, Equatable {
        public let key: String
        public let name: String?
        public let limitHours: Int?
        public let cases: Int
        public let late: Int
        public let lateShare: Double
        public let medianDelayHours: Double
        public let p90DelayHours: Double
    }

    public struct Timeliness: Codable, Sendable, Equatable {
        public let groupBy: String
        public let threshold: Int
        public let rows: [TimelinessRow]
        public let withheldRows: Int
    }

    public func timeliness(_ filter: CaseFilter, groupBy: String, by principal: Principal, requestID: String?) async throws -> Timeliness {
        try principal.require(scope: "surveillance.read")
        let key: String
        switch groupBy {
        case "disease": key = "c.disease"
        case "facility": key = "c.facility"
        case "class": key = "d.class"
        default: throw SurveillanceError.invalid(field: "groupBy", reason: "must be disease, facility or class")
        }
        var binds = PostgresBindings()
        let condition = filter.whereClause(&binds)
        let sql = """
            SELECT \(key), max(c.limit_hours)::int4, count(*)::int4, count(*) FILTER (WHERE c.delay_minutes > c.limit_hours * 60)::int4,
                   (percentile_cont(0.5) WITHIN GROUP (ORDER BY c.delay_minutes) / 60)::float8,
                   (percentile_cont(0.9) WITHIN GROUP (ORDER BY c.delay_minutes) / 60)::float8,
                   f.name
            FROM surveillance.cases c JOIN surveillance.diseases d ON d.code = c.disease
            LEFT JOIN registry.facilities f ON f.code = c.facility AND \(groupBy == "facility")
            WHERE \(condition) GROUP BY \(key), f.name ORDER BY 1
            """
        var rows: [TimelinessRow] = []
        var withheld = 0
        for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger) {
            let (value, limit, cases, late, median, p90, facilityName) = try row.decode(
                (String, Int32, Int32, Int32, Double, Double, String?).self)
            guard Int(cases) >= threshold else {
                withheld += 1
                continue
            }
            let name: String? =
                switch groupBy {
                case "disease": definitions.disease(value)?.name.zh
                case "facility": facilityName
                default: nil
                }
            rows.append(
                TimelinessRow(
                    key: value, name: name, limitHours: groupBy == "facility" ? nil : Int(limit), cases: Int(cases), late: Int(late),
                    lateShare: (Double(late) / Double(cases) * 1000).rounded() / 1000, medianDelayHours: (median * 10).rounded() / 10,
                    p90DelayHours: (p90 * 10).rounded() / 10))
        }
        try await audit(
            principal, resource: "surveillance/timeliness", detail: "groupBy=\(groupBy);rows=\(rows.count)", requestID: requestID)
        return Timeliness(groupBy: groupBy, threshold: threshold, rows: rows, withheldRows: withheld)
    }
}
