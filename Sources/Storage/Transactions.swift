import Logging
import PostgresNIO

extension PostgresClient {
    /// `withTransaction` that rethrows the body's own error: PostgresNIO wraps it in
    /// `PostgresTransactionError`, which would hide a domain error (a duplicate, a refusal) from
    /// the edge that maps it to a status code.
    public func transaction<Result>(
        logger: Logger, _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        do {
            return try await withTransaction(logger: logger, body)
        } catch let error as PostgresTransactionError {
            if let closureError = error.closureError { throw closureError }
            if let beginError = error.beginError { throw beginError }
            throw error.commitError ?? error.rollbackError ?? error
        }
    }
}

extension PostgresConnection {
    /// Runs `body` between `begin` (e.g. `BEGIN ISOLATION LEVEL REPEATABLE READ`) and COMMIT on
    /// this connection, rolling back on any error. For work that must stay on one connection,
    /// such as a migration under a session advisory lock.
    public func transaction<Result>(
        _ begin: PostgresQuery = "BEGIN", logger: Logger, _ body: () async throws -> Result
    ) async throws -> Result {
        _ = try await query(begin, logger: logger)
        do {
            let result = try await body()
            _ = try await query("COMMIT", logger: logger)
            return result
        } catch {
            _ = try? await query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
