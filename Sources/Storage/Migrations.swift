import Crypto
import Foundation
import Logging
import PostgresNIO

/// One numbered SQL file from `schemas/migrations/`, e.g. `0003_registry.sql`.
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String
    /// Hex SHA-256 of the file's bytes, recorded when applied so later edits are caught.
    public let checksum: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
        self.checksum = SHA256.hash(data: Data(sql.utf8)).hexString
    }

    /// Reads every `NNNN_name.sql` file of a directory, ordered by version.
    public static func load(directory: String) throws(MigrationError) -> [Migration] {
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .directoryUnreadable(directory)
        }
        var migrations: [Migration] = []
        for file in files.sorted() where file.hasSuffix(".sql") {
            let prefix = file.prefix { $0.isNumber }
            guard !prefix.isEmpty, let version = Int(prefix), file.dropFirst(prefix.count).first == "_" else {
                throw .badFileName(file)
            }
            if let clash = migrations.first(where: { $0.version == version }) {
                throw .duplicateVersion(version, clash.name, file)
            }
            guard let data = FileManager.default.contents(atPath: directory + "/" + file),
                let sql = String(data: data, encoding: .utf8)
            else { throw .directoryUnreadable(directory + "/" + file) }
            migrations.append(Migration(version: version, name: file, sql: sql))
        }
        return migrations.sorted { $0.version < $1.version }
    }
}

public enum MigrationError: Error, Equatable, CustomStringConvertible {
    case directoryUnreadable(String)
    case badFileName(String)
    case duplicateVersion(Int, String, String)
    /// An applied migration whose file has changed since: refused, never re-run or ignored.
    case edited(version: Int, name: String, recorded: String, actual: String)
    /// The database has a migration this build does not know: it is newer than the code.
    case unknownApplied(version: Int, name: String)
    case failed(version: Int, name: String, statement: Int, reason: String)

    public var description: String {
        switch self {
        case .directoryUnreadable(let path):
            "cannot read migrations at \(path)"
        case .badFileName(let file):
            "migration file \(file) is not named NNNN_description.sql"
        case .duplicateVersion(let version, let first, let second):
            "migrations \(first) and \(second) share version \(version)"
        case .edited(let version, let name, let recorded, let actual):
            "migration \(version) (\(name)) was edited after it was applied: recorded checksum \(recorded.prefix(12)), "
                + "file now \(actual.prefix(12)); add a new migration instead of changing an applied one"
        case .unknownApplied(let version, let name):
            "the database has migration \(version) (\(name)) that this build does not have; it is newer than the code"
        case .failed(let version, let name, let statement, let reason):
            "migration \(version) (\(name)) failed at statement \(statement): \(reason)"
        }
    }
}

/// Where the database stands relative to the migration files.
public enum MigrationStatus: Sendable, Equatable {
    case current
    case pending([Int])
    case inconsistent(String)
}

/// Applies migrations in order, each in its own transaction, under a session advisory lock so
/// that two instances starting together apply each file once.
public struct Migrator: Sendable {
    /// "qianyun" folded into 63 bits: the advisory-lock key every instance agrees on.
    static let lockKey: Int64 = 0x7169_616e_7975_6e00 & Int64.max

    let client: PostgresClient
    let migrations: [Migration]
    let logger: Logger

    public init(client: PostgresClient, migrations: [Migration], logger: Logger) {
        self.client = client
        self.migrations = migrations
        self.logger = logger
    }

    /// Applies what is pending and returns it; throws before applying anything when an applied
    /// migration was edited or is unknown.
    @discardableResult
    public func migrate() async throws -> [Migration] {
        try await client.withConnection { connection in
            _ = try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
            do {
                let applied = try await apply(on: connection)
                _ = try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                throw error
            }
        }
    }

    public func status() async throws -> MigrationStatus {
        let exists =
            try await client.query(
                "SELECT to_regclass('public.schema_migrations') IS NOT NULL", logger: logger
            ).collect().first?.decode(Bool.self) ?? false
        guard exists else { return .pending(migrations.map(\.version)) }
        do {
            let recorded = try await recordedMigrations { try await client.query($0, logger: logger) }
            return .pending(try pending(given: recorded).map(\.version)).normalised
        } catch let error as MigrationError {
            return .inconsistent(error.description)
        }
    }

    private func apply(on connection: PostgresConnection) async throws -> [Migration] {
        _ = try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS public.schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """, logger: logger)
        let recorded = try await recordedMigrations { try await connection.query($0, logger: logger) }
        let todo = try pending(given: recorded)
        for migration in todo {
            try await connection.transaction(logger: logger) {
                for (number, statement) in SQLScript.statements(in: migration.sql).enumerated() {
                    do {
                        _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    } catch let error as PSQLError {
                        throw MigrationError.failed(
                            version: migration.version, name: migration.name, statement: number + 1,
                            reason: error.serverInfo?[.message] ?? "\(error.code)")
                    }
                }
                _ = try await connection.query(
                    """
                    INSERT INTO public.schema_migrations (version, name, checksum)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                    """, logger: logger)
            }
            logger.info(
                "applied migration", metadata: ["migration.version": "\(migration.version)", "migration.name": "\(migration.name)"])
        }
        return todo
    }

    private func recordedMigrations(
        _ run: (PostgresQuery) async throws -> PostgresRowSequence
    ) async throws -> [(Int, String, String)] {
        var rows: [(Int, String, String)] = []
        for try await (version, name, checksum) in try await run(
            "SELECT version, name, checksum FROM public.schema_migrations ORDER BY version"
        ).decode((Int, String, String).self) {
            rows.append((version, name, checksum))
        }
        return rows
    }

    private func pending(given recorded: [(Int, String, String)]) throws(MigrationError) -> [Migration] {
        let byVersion = Dictionary(uniqueKeysWithValues: migrations.map { ($0.version, $0) })
        for (version, name, checksum) in recorded {
            guard let file = byVersion[version] else { throw .unknownApplied(version: version, name: name) }
            if file.checksum != checksum {
                throw .edited(version: version, name: name, recorded: checksum, actual: file.checksum)
            }
        }
        let done = Set(recorded.map(\.0))
        return migrations.filter { !done.contains($0.version) }
    }
}

extension MigrationStatus {
    fileprivate var normalised: MigrationStatus {
        if case .pending(let versions) = self, versions.isEmpty { return .current }
        return self
    }
}
