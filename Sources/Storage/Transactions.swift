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
