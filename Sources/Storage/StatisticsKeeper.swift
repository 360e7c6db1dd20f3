import Logging
import PostgresNIO
import ServiceLifecycle

/// Keeps the planner's statistics of fast-growing tables current, so that plans cached with
/// prepared statements are re-made as the tables grow.
///
/// A generic plan is made from the statistics of the moment and kept until they change. Made
/// while a table is new and nearly empty, every index looks alike, and the plan may well walk a
/// whole index where it should probe one key: harmless at ten rows, ruinous at ten thousand.
/// Autovacuum refreshes statistics only after a tenth of a table changed and at most once a
/// minute, so a busy new deployment can run on such plans for a long while. The keeper analyses
/// a watched table when it has never been analysed or has changed by more than a quarter since
/// it last was; ANALYZE invalidates the cached plans that use it. A settled table is left alone.
public struct StatisticsKeeper: Service {
    let client: PostgresClient
    let tables: [String]
    let interval: Duration
    let logger: Logger

    /// `tables` are schema-qualified names (`registry.residents`).
    public init(client: PostgresClient, tables: [String], interval: Duration = .seconds(5), logger: Logger) {
        self.client = client
        self.tables = tables
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await analyzeWhereNeeded()
            } catch {
                logger.warning("statistics check failed; will retry", metadata: ["error.type": "\(type(of: error))"])
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                break
            }
        }
    }

    /// Analyses the watched tables that need it; returns their names.
    @discardableResult
    public func analyzeWhereNeeded() async throws -> [String] {
        let rows = try await client.query(
            """
            SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname)
            FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
            WHERE s.schemaname || '.' || s.relname = ANY(\(tables)::text[])
              AND (c.reltuples < 0 OR s.n_mod_since_analyze > greatest(200, 0.25 * greatest(c.reltuples, 0)))
            ORDER BY 1
            """, logger: logger)
        var analyzed: [String] = []
        for try await table in rows.decode(String.self) { analyzed.append(table) }
        for table in analyzed {
            // The name comes from the catalogue through quote_ident, never from input.
            try await client.query(PostgresQuery(unsafeSQL: "ANALYZE \(table)"), logger: logger)
        }
        if !analyzed.isEmpty { logger.debug("statistics refreshed", metadata: ["tables": "\(analyzed.joined(separator: ","))"]) }
        return analyzed
    }
}
