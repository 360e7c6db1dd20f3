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

/// Reruns `body` (a whole transaction) when it lost a race the database settled for it: a unique
/// violation from a concurrent insert of the same key, a deadlock, a serialization failure.
/// After `attempts` tries the error reaches the caller.
public func retryingConflicts<T: Sendable>(attempts: Int = 5, _ body: () async throws -> T) async throws -> T {
    var attempt = 1
    while true {
        do {
            return try await body()
        } catch let error as PSQLError where attempt < attempts {
            let state = error.serverInfo?[.sqlState]
            guard state == "23505" || state == "40P01" || state == "40001" else { throw error }
            attempt += 1
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
