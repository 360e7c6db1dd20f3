import Access
import Foundation
import Logging
import PostgresNIO
import Storage

/// Counts, the de-identified line list, case review and export approvals for public-health
/// staff. Every read here is an export and leaves an audit row naming the query, never a row.
public struct SurveillanceService: Sendable {
    public let definitions: CaseDefinitions
    public let divisions: Divisions
    /// Counts from 1 to `threshold − 1` are suppressed.
    public let threshold: Int
    let client: PostgresClient
    let protector: FieldProtector
    let logger: Logger

    public init(
        client: PostgresClient, definitions: CaseDefinitions, divisions: Divisions, protector: FieldProtector, threshold: Int,
        logger: Logger
    ) {
        self.client = client
        self.definitions = definitions
        self.divisions = divisions
        self.protector = protector
        self.threshold = max(threshold, 1)
        self.logger = logger
    }

    // MARK: Counts

    public struct Cell: Sendable {
        public let key: [Dimension: String]
        public let count: Int
        public let suppressed: Bool
        public let population: Int?
        public let rate: Double?
    }

    public struct Margin: Sendable {
        public let value: String
        public let count: Int
        public let suppressed: Bool
    }

    public struct CountTable: Sendable {
        public let query: CountQuery
        public let threshold: Int
        public let cells: [Cell]
        public let margins: [(dimension: Dimension, values: [Margin])]
        public let total: Int
        public let totalSuppressed: Bool
    }

    public func counts(_ query: CountQuery, by principal: Principal, format: String, requestID: String?) async throws -> CountTable {
        try principal.require(scope: "surveillance.read")
        let width = query.groupBy.count
        let (keys, counts) = try await client.transaction(logger: logger) { connection in
            // A five-year county-by-week grouping sorts a few hundred thousand groups: in memory.
            try await connection.query("SET LOCAL work_mem = '64MB'", logger: logger)
            var keys: [[String]] = []
            var counts: [Int] = []
            for try await row in try await connection.query(query.statement(), logger: logger) {
                let cells = row.makeRandomAccess()
                var key: [String] = []
                key.reserveCapacity(width)
                for column in 0..<width { key.append(try cells[column].decode(String.self)) }
                keys.append(key)
                counts.append(Int(try cells[width].decode(Int64.self)))
            }
            return (keys, counts)
        }
        let table = Suppression.apply(keys: keys, counts: counts, dimensions: width, threshold: threshold)
        let populations = query.groupBy.contains(.division) ? try await population(level: query.divisionLevel) : [:]
        let divisionColumn = query.groupBy.firstIndex(of: .division)
        var cells: [Cell] = []
        cells.reserveCapacity(keys.count)
        for (row, key) in keys.enumerated() where width == 0 || counts[row] > 0 {
            var named: [Dimension: String] = [:]
            for (column, dimension) in query.groupBy.enumerated() { named[dimension] = key[column] }
            let population = divisionColumn.flatMap { populations[key[$0]] }
            let hidden = table.hidden[row]
            let rate = population.flatMap { $0 > 0 && !hidden ? (Double(counts[row]) * 100_000 / Double($0) * 100).rounded() / 100 : nil }
            cells.append(Cell(key: named, count: counts[row], suppressed: hidden, population: population, rate: rate))
        }
        let margins = query.groupBy.enumerated().map { column, dimension in
            (dimension, table.margins[column].map { Margin(value: $0.value, count: $0.count, suppressed: $0.hidden) })
        }
        try await audit(
            principal, resource: "surveillance/counts",
            detail: "groupBy=\(query.groupBy.map(\.rawValue).joined(separator: "+"));cells=\(cells.count);format=\(format)",
            requestID: requestID)
        return CountTable(
            query: query, threshold: threshold, cells: cells, margins: margins, total: table.total, totalSuppressed: table.totalHidden)
    }

    /// Registered residents per division at `level`, the rates' denominator (as last counted by
    /// the signal job; counted now if never).
    public func population(level: Divisions.Level) async throws -> [String: Int] {
        var rows = try await client.query(
            "SELECT left(division, \(level.width)::int4), sum(residents)::int8 FROM surveillance.population GROUP BY 1", logger: logger
        ).collect()
        if rows.isEmpty {
            try await refreshPopulation()
            rows = try await client.query(
                "SELECT left(division, \(level.width)::int4), sum(residents)::int8 FROM surveillance.population GROUP BY 1", logger: logger
            ).collect()
        }
        var result: [String: Int] = [:]
        for row in rows {
            let (division, residents) = try row.decode((String, Int64).self)
            result[division] = Int(residents)
        }
        return result
    }

    public func refreshPopulation() async throws {
        try await client.transaction(logger: logger) { connection in
            try await connection.query(
                """
                WITH counted AS (
                    SELECT division, count(*)::int4 AS residents FROM registry.residents
                    WHERE status = 'active' AND NOT deceased AND division IS NOT NULL GROUP BY division
                ), gone AS (DELETE FROM surveillance.population p WHERE NOT EXISTS (SELECT 1 FROM counted c WHERE c.division = p.division))
                INSERT INTO surveillance.population (division, residents, counted_at) SELECT division, residents, now() FROM counted
                ON CONFLICT (division) DO UPDATE SET residents = EXCLUDED.residents, counted_at = EXCLUDED.counted_at
                """, logger: logger)
        }
    }

    /// The display name of one value of a dimension, where it has one.
    public func name(_ dimension: Dimension, _ value: String) -> String? {
        switch dimension {
        case .disease: definitions.disease(value)?.name.zh
        case .division: divisions.name(value)
        default: nil
        }
    }

    func audit(_ principal: Principal, resource: String, detail: String, requestID: String?) async throws {
        try await AuditTrail(client: client, logger: logger).record(
            AuditEvent(
                actor: principal.clientID, role: principal.role.rawValue, facility: principal.facility, action: "surveillance.export",
                resource: resource, purpose: "public-health-surveillance", requestID: requestID, detail: String(detail.prefix(300))))
    }
}
