import Foundation
import Logging
import PostgresNIO
import Storage
import Testing

@Suite(needsDatabase) struct MigrationTests {
    static func shipped() throws -> [Migration] {
        try Migration.load(directory: TestDatabase.schemasDirectory + "/migrations")
    }

    static func recorded(_ client: PostgresClient) async throws -> [Int] {
        var versions: [Int] = []
        for try await version in try await client.query("SELECT version FROM public.schema_migrations ORDER BY version").decode(Int.self) {
            versions.append(version)
        }
        return versions
    }

    @Test func appliesEverythingOnceAndTheSecondRunIsANoOp() async throws {
        try await withTestDatabase(migrated: false) { client, _ in
            let migrations = try Self.shipped()
            let migrator = Migrator(client: client, migrations: migrations, logger: TestDatabase.logger)
            #expect(try await migrator.status() == .pending(migrations.map(\.version)))
            #expect(try await migrator.migrate().count == migrations.count)
            #expect(try await migrator.migrate().isEmpty)
            #expect(try await migrator.status() == .current)
            #expect(try await Self.recorded(client) == migrations.map(\.version))
            let schemas = try await client.query(
                "SELECT count(*) FROM pg_namespace WHERE nspname IN ('registry','access','records','scheduling','interop','surveillance')"
            ).collect().first?.decode(Int.self)
            #expect(schemas == 6)
        }
    }

    @Test func concurrentMigratorsApplyEachFileOnce() async throws {
        try await withTestDatabase(migrated: false) { client, _ in
            let migrations = try Self.shipped()
            let counts = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await Migrator(client: client, migrations: migrations, logger: TestDatabase.logger).migrate().count
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(counts.reduce(0, +) == migrations.count, "each migration applied by exactly one instance")
            #expect(try await Self.recorded(client) == migrations.map(\.version))
        }
    }

    @Test func anEditedAppliedMigrationIsRefusedAndNothingRuns() async throws {
        try await withTestDatabase { client, _ in
            var migrations = try Self.shipped()
            let first = migrations[0]
            migrations[0] = Migration(version: first.version, name: first.name, sql: first.sql + "\n-- edited\n")
            migrations.append(Migration(version: 9999, name: "9999_new.sql", sql: "CREATE TABLE public.should_not_exist (x int);"))
            let migrator = Migrator(client: client, migrations: migrations, logger: TestDatabase.logger)
            await #expect {
                try await migrator.migrate()
            } throws: { error in
                guard case .edited(let version, let name, _, _) = error as? MigrationError else { return false }
                return version == first.version && name == first.name && "\(error)".contains("was edited after it was applied")
            }
            let created = try await client.query("SELECT to_regclass('public.should_not_exist') IS NOT NULL").collect().first?.decode(
                Bool.self)
            #expect(created == false)
            if case .inconsistent = try await migrator.status() {} else { Issue.record("status should be inconsistent") }
        }
    }

    @Test func aFailingMigrationLeavesNoTraceAndIsNamed() async throws {
        try await withTestDatabase { client, _ in
            let migrations =
                try Self.shipped() + [
                    Migration(version: 9000, name: "9000_half.sql", sql: "CREATE TABLE public.half (x int);\nSELECT * FROM no_such_table;")
                ]
            let migrator = Migrator(client: client, migrations: migrations, logger: TestDatabase.logger)
            await #expect {
                try await migrator.migrate()
            } throws: { error in
                guard case .failed(let version, _, let statement, let reason) = error as? MigrationError else { return false }
                return version == 9000 && statement == 2 && reason.contains("no_such_table")
            }
            let half = try await client.query("SELECT to_regclass('public.half') IS NOT NULL").collect().first?.decode(Bool.self)
            #expect(half == false, "the failed migration's first statement was rolled back")
            #expect(!(try await Self.recorded(client)).contains(9000))
            // The advisory lock was released: a corrected run goes through.
            let fixed = try Self.shipped() + [Migration(version: 9000, name: "9000_half.sql", sql: "CREATE TABLE public.half (x int);")]
            #expect(try await Migrator(client: client, migrations: fixed, logger: TestDatabase.logger).migrate().count == 1)
        }
    }

    @Test func aDatabaseNewerThanTheCodeIsRefused() async throws {
        try await withTestDatabase { client, _ in
            let fewer = Array(try Self.shipped().dropLast())
            await #expect(throws: MigrationError.self) {
                try await Migrator(client: client, migrations: fewer, logger: TestDatabase.logger).migrate()
            }
        }
    }

    @Test func badFileNamesAndDuplicateVersionsAreNamed() throws {
        let directory = NSTemporaryDirectory() + "qy-mig-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "SELECT 1;".write(toFile: directory + "/0001_a.sql", atomically: true, encoding: .utf8)
        try "SELECT 1;".write(toFile: directory + "/0001_b.sql", atomically: true, encoding: .utf8)
        #expect(throws: MigrationError.duplicateVersion(1, "0001_a.sql", "0001_b.sql")) { try Migration.load(directory: directory) }
        try FileManager.default.removeItem(atPath: directory + "/0001_b.sql")
        try "SELECT 1;".write(toFile: directory + "/first.sql", atomically: true, encoding: .utf8)
        #expect(throws: MigrationError.badFileName("first.sql")) { try Migration.load(directory: directory) }
    }
}

@Suite(needsDatabase) struct StatisticsKeeperTests {
    @Test func analysesNewAndFastGrowingTablesOnly() async throws {
        try await withTestDatabase { postgres, _ in
            let keeper = StatisticsKeeper(
                client: postgres, tables: ["registry.match_keys", "interop.messages"], logger: TestDatabase.logger)
            // Never analysed since the migrations created them.
            #expect(try await keeper.analyzeWhereNeeded() == ["interop.messages", "registry.match_keys"])
            #expect(try await keeper.analyzeWhereNeeded() == [])
            // A table that grew by more than a quarter (and by more than 200 rows) is analysed again.
            try await postgres.query(
                """
                INSERT INTO registry.residents (id, name, name_pinyin, sex, pseudonym)
                VALUES ('00000000-0000-7000-8000-000000000001', '张三', 'zhang san', 1, 'p1')
                """, logger: TestDatabase.logger)
            try await postgres.query(
                """
                INSERT INTO registry.match_keys (key, resident_id)
                SELECT k, '00000000-0000-7000-8000-000000000001' FROM generate_series(1, 300) AS k
                """, logger: TestDatabase.logger)
            // The statistics collector reports modifications asynchronously.
            var analysed: [String] = []
            for _ in 0..<50 where analysed.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                analysed = try await keeper.analyzeWhereNeeded()
            }
            #expect(analysed == ["registry.match_keys"])
        }
    }
}
