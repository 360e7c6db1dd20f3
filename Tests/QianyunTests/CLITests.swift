import Foundation
import PostgresNIO
import Testing

/// The operator's commands, run as the built `qianyun` binary against a test database.
@Suite(needsDatabase) struct CLITests {
    static var binary: String? {
        let candidates = [".build/debug/qianyun", ".build/release/qianyun"].map { TestDatabase.repositoryRoot + "/" + $0 }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Run {
        let status: Int32
        let output: String
        let errors: String
    }

    /// Runs the command on a Dispatch thread: waiting for a child process on one of the few
    /// cooperative threads would starve an in-process server the child talks to (on two cores
    /// two such waits deadlock the gateway tests).
    static func runOffPool(_ arguments: [String], database: String, extra: [String: String] = [:]) async throws -> Run {
        try await offPool { try run(arguments, database: database, extra: extra) }
    }

    static func run(_ arguments: [String], database: String, extra: [String: String] = [:]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(binary, "build the qianyun product first"))
        process.arguments = arguments
        var environment = ["PATH": "/usr/bin:/bin", "QIANYUN_SCHEMAS_DIR": TestDatabase.schemasDirectory, "QIANYUN_LOG_LEVEL": "error"]
        environment["QIANYUN_DATABASE_URL"] = TestDatabase.url(database: database)
        environment.merge(extra) { $1 }
        process.environment = environment
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, output: String(decoding: out, as: UTF8.self), errors: String(decoding: err, as: UTF8.self))
    }

    @Test(.enabled(if: CLITests.binary != nil, "the qianyun binary is not built"))
    func clientsAuditAndMigrateFromTheCommandLine() async throws {
        try await withTestDatabase { client, database in
            try await client.query(
                "INSERT INTO registry.facilities (code, name, level, division) VALUES ('H1', 'h', 'secondary', '520102')")
            let created = try Self.run(["clients", "create", "--role", "his", "--facility", "H1", "--output", "json"], database: database)
            #expect(created.status == 0, "\(created.errors)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(created.output.utf8)) as? [String: Any])
            let id = try #require(json["id"] as? String)
            #expect((json["secret"] as? String)?.hasPrefix("qys_") == true)
            #expect(json["facility"] as? String == "H1")
            let stored = try await client.query("SELECT role, facility_code FROM access.clients WHERE id = \(id)").collect()
            let (role, facility) = try #require(try stored.first?.decode((String, String).self))
            #expect(role == "his" && facility == "H1")

            let refused = try Self.run(["clients", "create", "--role", "his"], database: database)
            #expect(refused.status != 0)
            #expect(refused.errors.contains("must be bound to a facility"))
            #expect(!refused.errors.contains("Usage"))

            #expect(try Self.run(["migrate", "--status"], database: database).status == 0)
            let configError = try Self.run(["migrate"], database: database, extra: ["QIANYUN_DB_POOL_SIZE": "lots"])
            #expect(configError.status != 0)
            #expect(configError.errors.contains("QIANYUN_DB_POOL_SIZE"))

            let trail = Access.AuditTrail(client: client, logger: TestDatabase.logger)
            for n in 1...5 {
                try await trail.record(.init(actor: "c\(n)", action: "resident.read", resource: "resident/\(n)", purpose: "treatment"))
            }
            let intact = try Self.run(["audit", "verify"], database: database)
            #expect(intact.status == 0)
            #expect(intact.output.contains("audit chain intact: 5 rows verified"))
            try await client.withConnection { connection in
                try await connection.query(
                    "ALTER TABLE access.audit_log DISABLE TRIGGER audit_log_append_only", logger: TestDatabase.logger)
                try await connection.query(
                    "UPDATE access.audit_log SET purpose = 'marketing' WHERE id = (SELECT audit_id FROM access.audit_chain WHERE seq = 3)",
                    logger: TestDatabase.logger)
            }
            let broken = try Self.run(["audit", "verify"], database: database)
            #expect(broken.status == 1)
            #expect(broken.output.contains("BROKEN at row 3"))
        }
    }
}

import Access

@Suite(needsDatabase) struct ImportTests {
    static let keys: [String: String] = {
        func key() -> String { Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() }
        return ["QIANYUN_ENCRYPTION_KEYS": "k1:\(key())", "QIANYUN_PSEUDONYM_KEY": key()]
    }()

    @Test(.enabled(if: CLITests.binary != nil, "the qianyun binary is not built"))
    func importMatchesReportsRejectsAndARerunChangesNothing() async throws {
        try await withTestDatabase { client, database in
            try await client.query(
                "INSERT INTO registry.facilities (code, name, level, division) VALUES ('H1', 'h', 'secondary', '520102')")
            let id = residentIDNumber("520102", "19900307", 123)
            let rows = [
                "name,local_id,facility,sex,birth_date,id_number,phone,division,ignored",
                "张伟,1,H1,M,1990-03-07,\(id),13800001111,520102,x",
                "\"Zhang, Wei\",2,H1,M,1990-03-07,\(id.lowercased()),,,\"quoted \"\"field\"\"\"",
                "王五,3,H1,M,1990-13-07,,,,",
                "赵六,4,NOPE,F,1990-03-07,,,,",
                "李四,5,H1,F,1985-01-01,520102198501011235,,,",
                "short,6,H1",
                "",
                "陈静,7,H1,F,1985-02-03,,,520102,\"multi",
                "line\"",
            ]
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("import-\(UUID().uuidString).csv")
            try Data(([("\u{FEFF}" + rows[0])] + rows.dropFirst()).joined(separator: "\r\n").utf8).write(to: file)
            let report = file.path + ".report.csv"
            defer {
                try? FileManager.default.removeItem(at: file)
                try? FileManager.default.removeItem(atPath: report)
            }
            let first = try CLITests.run(["import", "residents", file.path], database: database, extra: Self.keys)
            #expect(first.status == 0, "\(first.errors)")
            #expect(first.output.contains("7 rows"), "\(first.output)")
            #expect(first.output.contains("2 created, 1 linked, 0 sent to review, 0 already linked, 4 rejected"), "\(first.output)")
            let reported = try String(contentsOfFile: report, encoding: .utf8)
            #expect(reported.contains("4,H1,3,rejected,,birth_date: is not a calendar date"))
            #expect(reported.contains("NOPE,4,rejected"))
            #expect(reported.contains("id_number: the check character"))
            #expect(reported.contains("has 3 fields"))
            #expect(!reported.contains(id))
            let count = { try await client.query("SELECT count(*) FROM registry.residents").collect().first!.decode(Int.self) }
            #expect(try await count() == 2)

            let rerun = try CLITests.run(["import", "residents", file.path], database: database, extra: Self.keys)
            #expect(rerun.status == 0, "\(rerun.errors)")
            #expect(rerun.output.contains("0 created, 0 linked, 0 sent to review, 3 already linked, 4 rejected"), "\(rerun.output)")
            #expect(try await count() == 2)

            let noHeader = try CLITests.run(["import", "residents", "/nonexistent.csv"], database: database, extra: Self.keys)
            #expect(noHeader.status != 0)
            #expect(noHeader.errors.contains("cannot read"))
        }
    }
}

/// Runs blocking work (a child process and its pipes) outside Swift concurrency's cooperative pool.
func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
    }
}
