import Foundation
import Logging
import PostgresNIO
import Storage
import Testing

/// Databases for tests on the PostgreSQL that `deploy/test` starts (`QIANYUN_TEST_DATABASE_URL`).
/// Each test gets its own database, copied from a template migrated once per run, so suites run
/// in parallel without seeing each other's rows.
actor TestDatabase {
    static let shared = TestDatabase()
    static let adminURL = ProcessInfo.processInfo.environment["QIANYUN_TEST_DATABASE_URL"]
    static var isConfigured: Bool { adminURL != nil }
    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .error
        return logger
    }()

    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
        }
        return FileManager.default.currentDirectoryPath
    }()

    static var schemasDirectory: String { repositoryRoot + "/schemas" }

    private var template: Task<String, any Error>?

    /// A new database: migrated (from the template) or empty.
    func create(migrated: Bool = true) async throws -> String {
        let name = "qy_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(20).lowercased()
        let templateClause = migrated ? " TEMPLATE \(try await templateName())" : ""
        try await Self.admin("CREATE DATABASE \(name)\(templateClause)")
        return name
    }

    func drop(_ name: String) async {
        try? await Self.admin("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    private func templateName() async throws -> String {
        if let template { return try await template.value }
        let task = Task<String, any Error> {
            let name = "qy_tpl_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
            try await Self.admin("CREATE DATABASE \(name)")
            let migrations = try Migration.load(directory: Self.schemasDirectory + "/migrations")
            _ = try await withClient(database: name) { client in
                try await Migrator(client: client, migrations: migrations, logger: Self.logger).migrate()
            }
            return name
        }
        template = task
        return try await task.value
    }

    static func url(database: String) -> String {
        guard var components = URLComponents(string: adminURL ?? "") else { return "" }
        components.path = "/" + database
        return components.string ?? ""
    }

    static func admin(_ sql: String) async throws {
        var configuration = try DatabaseURL.configuration(from: adminURL ?? "")
        configuration.options.maximumConnections = 1
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            _ = try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
            group.cancelAll()
        }
    }
}

/// Runs `body` with a running client on `database`.
func withClient<Result: Sendable>(
    database: String, maximumConnections: Int = 8, startupParameters: [(String, String)] = [],
    _ body: @Sendable (PostgresClient) async throws -> Result
) async throws -> Result {
    var configuration = try DatabaseURL.configuration(from: TestDatabase.url(database: database))
    configuration.options.maximumConnections = maximumConnections
    configuration.options.additionalStartupParameters += startupParameters
    let client = PostgresClient(configuration: configuration, backgroundLogger: TestDatabase.logger)
    return try await withThrowingTaskGroup(of: Result?.self) { group in
        group.addTask {
            await client.run()
            return nil
        }
        defer { group.cancelAll() }
        return try await body(client)
    }
}

/// A fresh migrated database for one test, dropped afterwards.
func withTestDatabase<Result: Sendable>(
    migrated: Bool = true, _ body: @Sendable (PostgresClient, String) async throws -> Result
) async throws -> Result {
    let name = try await TestDatabase.shared.create(migrated: migrated)
    do {
        let result = try await withClient(database: name) { try await body($0, name) }
        await TestDatabase.shared.drop(name)
        return result
    } catch {
        await TestDatabase.shared.drop(name)
        throw error
    }
}

/// The trait that keeps database suites from running without a database, with the reason.
let needsDatabase = Testing.ConditionTrait.enabled(
    if: TestDatabase.isConfigured, "needs QIANYUN_TEST_DATABASE_URL: run deploy/test")
