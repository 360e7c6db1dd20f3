import Foundation
import Interop
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization
import Testing

/// The gateway's promises under `kill -9`: the built `qianyun serve` is killed in the middle of a
/// burst from several connections, restarted, and the whole burst is sent again.
@Suite(needsDatabase) struct GatewayCrashTests {
    static let connections = 4
    static let patients = 2_500
    /// A04, then three A08s, per patient: 10,000 messages.
    static let perPatient = 4

    static func message(patient: Int, step: Int) -> [UInt8] {
        let trigger = step == 0 ? "A04" : "A08"
        let text =
            "MSH|^~\\&|HIS|5201020001|QIANYUN|GZ|20261125083000||ADT^\(trigger)^ADT_A01|K-\(patient)-\(step)|P|2.5\r"
            + "EVN|\(trigger)|20261125083000\rPID|1||K\(patient)^^^5201020001^PI||周^\(patient)号||\(birth(patient))|M|||^^贵阳^^^^^^520102||"
            + "^PRN^CP^^^^1390000\(String(format: "%04d", step * 1000 + patient % 1000))\rPV1|1|O\r"
        return Array(text.utf8)
    }

    /// Spread over years and days, so the matcher's blocks stay small as they are in life.
    static func birth(_ patient: Int) -> String {
        String(format: "19%02d%02d%02d", 40 + patient % 60, 1 + patient / 60 % 12, 1 + patient / 720 % 28)
    }

    final class Tally: Sendable {
        let accepted = Mutex<Set<String>>([])
        let answered = Mutex(0)
    }

    /// Each patient's messages go down one connection, in order; returns when every connection has
    /// sent everything or lost its gateway.
    static func burst(port: Int, tally: Tally) async {
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<connections {
                group.addTask {
                    do {
                        let client = try await MLLPClient.connect(host: "127.0.0.1", port: port)
                        try await client.run { send in
                            for patient in stride(from: lane, to: patients, by: connections) {
                                for step in 0..<perPatient {
                                    let frames = try await send(message(patient: patient, step: step), 1)
                                    let text = String(decoding: frames[0], as: UTF8.self)
                                    if text.contains("MSA|AA|K-") { tally.accepted.withLock { _ = $0.insert("K-\(patient)-\(step)") } }
                                    tally.answered.withLock { $0 += 1 }
                                }
                            }
                        }
                    } catch {
                        // The gateway was killed: this connection is over.
                    }
                }
            }
        }
    }

    static func freePort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }

    static func startServer(database: String, environment: [String: String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(CLITests.binary, "build the qianyun product first"))
        process.arguments = ["serve"]
        var all = environment
        all["QIANYUN_DATABASE_URL"] = TestDatabase.url(database: database)
        process.environment = all
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func waitForMLLP(_ port: Int) async throws {
        for _ in 0..<300 {
            if let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port)
                .get()
            {
                try? await channel.close()
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the gateway did not start listening on \(port)")
    }

    @Test(.enabled(if: CLITests.binary != nil, "the qianyun binary is not built"), .timeLimit(.minutes(10)))
    func killedMidBurstItLosesNoAcknowledgedMessageAndAppliesNothingTwice() async throws {
        try await withTestDatabase { postgres, database in
            try await postgres.query(
                "INSERT INTO registry.facilities (code, name, level, division) VALUES ('5201020001', '贵州省人民医院', 'tertiary', '520102')",
                logger: TestDatabase.logger)
            func key() -> String { Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() }
            let port = try await Self.freePort()
            let environment = [
                "PATH": "/usr/bin:/bin", "QIANYUN_SCHEMAS_DIR": TestDatabase.schemasDirectory, "QIANYUN_LOG_LEVEL": "error",
                "QIANYUN_JWT_SECRET": key(), "QIANYUN_ENCRYPTION_KEYS": "k1:\(key())", "QIANYUN_PSEUDONYM_KEY": key(),
                "QIANYUN_HTTP_PORT": String(try await Self.freePort()), "QIANYUN_MLLP_PORT": String(port), "QIANYUN_DB_POOL_SIZE": "8",
            ]
            let total = Self.patients * Self.perPatient

            let first = try Self.startServer(database: database, environment: environment)
            try await Self.waitForMLLP(port)
            let tally = Tally()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await Self.burst(port: port, tally: tally) }
                group.addTask {
                    // Kill once a good part of the burst has been acknowledged, with more in flight.
                    while tally.answered.withLock({ $0 }) < total / 4 { try await Task.sleep(for: .milliseconds(20)) }
                    kill(first.processIdentifier, SIGKILL)
                }
                try await group.waitForAll()
            }
            first.waitUntilExit()
            let acknowledged = tally.accepted.withLock { $0 }
            #expect(acknowledged.count >= total / 4 && acknowledged.count < total, "killed in the middle of the burst")

            func count(_ sql: String) async throws -> Int {
                try await postgres.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).collect().first?.decode(Int.self) ?? -1
            }
            // Every message that got AA is there, applied, exactly once.
            let stored = try await postgres.query(
                "SELECT control_id FROM interop.messages WHERE status = 'applied'", logger: TestDatabase.logger)
            var applied: [String: Int] = [:]
            for try await id in stored.decode(String.self) { applied[id, default: 0] += 1 }
            #expect(acknowledged.allSatisfy { applied[$0] == 1 })
            #expect(applied.values.allSatisfy { $0 == 1 })

            // Restarted, the whole burst again: every message answered AA, nothing applied twice.
            let second = try Self.startServer(database: database, environment: environment)
            defer {
                second.terminate()
                second.waitUntilExit()
            }
            try await Self.waitForMLLP(port)
            let again = Tally()
            await Self.burst(port: port, tally: again)
            #expect(again.accepted.withLock { $0.count } == total)
            #expect(try await count("SELECT count(*) FROM interop.messages") == total)
            #expect(try await count("SELECT count(*) FROM interop.messages WHERE status = 'applied'") == total)
            #expect(try await count("SELECT count(*) FROM registry.residents") == Self.patients)
            #expect(try await count("SELECT count(*) FROM registry.identifiers") == Self.patients)
            #expect(try await count("SELECT count(*) FROM registry.resident_events WHERE kind = 'created'") == Self.patients)
        }
    }
}
