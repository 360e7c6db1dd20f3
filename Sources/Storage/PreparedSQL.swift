import PostgresNIO

/// A statement on a hot path, prepared once per connection and then only bound and executed:
/// PostgreSQL parses and plans it once instead of at every call (for the registrar's candidate
/// query that is two thirds of its cost). Conformers give the SQL and carry their bindings.
public protocol PreparedSQL: PostgresPreparedStatement where Row == PostgresRow {
    var binds: PostgresBindings { get }
}

extension PreparedSQL {
    public func makeBindings() throws -> PostgresBindings { binds }
    public func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

extension PostgresConnection {
    /// Runs a prepared statement and collects its rows.
    @discardableResult
    public func run(_ statement: some PreparedSQL, logger: Logger) async throws -> [PostgresRow] {
        var rows: [PostgresRow] = []
        for try await row in try await execute(statement, logger: logger) { rows.append(row) }
        return rows
    }
}
