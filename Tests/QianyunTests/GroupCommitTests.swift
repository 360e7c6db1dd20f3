import Foundation
import HL7v2
@testable import Interop
import PostgresNIO
import Synchronization
import Testing

/// The group commit's queue on its own: batches follow the load, one key is never in two places
/// at once, and work with one key runs in the order it arrived.
@Suite struct GroupCommitQueueTests {
    /// What the run function saw: each batch's items, and the most batches running at once.
    final class Record: Sendable {
        let state = Mutex<(batches: [[String]], running: Int, peak: Int, overlap: Bool)>(([], 0, 0, false))
        let active = Mutex<Set<String>>([])
    }

    static func item(_ key: String, _ n: Int) -> String { "\(key)#\(n)" }

    @Test func keysStayInArrivalOrderAndNeverRunTwiceAtOnce() async throws {
        let commits = GroupCommit<String, String>(maximumBatch: 8, concurrency: 3)
        let record = Record()
        let run: GroupCommit<String, String>.Run = { batch in
            record.state.withLock { state in
                state.batches.append(batch)
                state.running += 1
                state.peak = max(state.peak, state.running)
            }
            let keys = batch.map { String($0.split(separator: "#")[0]) }
            let clash = record.active.withLock { active in
                let clash = !active.isDisjoint(with: keys) || Set(keys).count != keys.count
                active.formUnion(keys)
                return clash
            }
            try? await Task.sleep(for: .milliseconds(Int.random(in: 1...5)))
            record.active.withLock { $0.subtract(keys) }
            record.state.withLock { state in
                state.running -= 1
                if clash { state.overlap = true }
            }
            return batch.map { .success("done " + $0) }
        }
        // 6 keys, 20 items each, submitted from many tasks: per key, item n is submitted after n-1 has been queued.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in ["a", "b", "c", "d", "e", "f"] {
                group.addTask {
                    try await withThrowingTaskGroup(of: String.self) { inner in
                        for n in 0..<20 {
                            let item = Self.item(key, n)
                            inner.addTask { try await commits.submit(keys: [key], solo: false, item, run: run) }
                            // Let the submission reach the queue before the next one for this key.
                            try await Task.sleep(for: .microseconds(200))
                        }
                        for try await answer in inner { #expect(answer.hasPrefix("done \(key)#")) }
                    }
                }
            }
            try await group.waitForAll()
        }
        let state = record.state.withLock { $0 }
        #expect(!state.overlap, "a key ran in two batches at once, or twice in one")
        #expect(state.peak <= 3)
        #expect(state.batches.joined().count == 120)
        for key in ["a", "b", "c", "d", "e", "f"] {
            let order = state.batches.joined().filter { $0.hasPrefix(key + "#") }
            #expect(order == (0..<20).map { Self.item(key, $0) }, "order of \(key): \(order)")
        }
        #expect(state.batches.contains { $0.count > 1 }, "work that queued together never shared a batch")
    }

    @Test func soloWorkRunsAloneAndFailuresReachOnlyTheirOwnCaller() async throws {
        let commits = GroupCommit<Int, Int>(maximumBatch: 64, concurrency: 1)
        let sizes = Mutex<[(Int, Bool)]>([])
        let run: GroupCommit<Int, Int>.Run = { batch in
            sizes.withLock { $0.append((batch.count, batch.contains { $0 % 10 == 0 })) }
            try? await Task.sleep(for: .milliseconds(2))
            return batch.map { $0 % 7 == 3 ? .failure(CancellationError()) : .success($0 * 2) }
        }
        let results = await withTaskGroup(of: (Int, Result<Int, any Error>).self) { group in
            for n in 1...40 {
                group.addTask {
                    do {
                        return (n, .success(try await commits.submit(keys: ["k\(n)"], solo: n % 10 == 0, n, run: run)))
                    } catch {
                        return (n, .failure(error))
                    }
                }
            }
            var all: [Int: Result<Int, any Error>] = [:]
            for await (n, result) in group { all[n] = result }
            return all
        }
        for n in 1...40 {
            switch results[n]! {
            case .success(let value): #expect(n % 7 != 3 && value == n * 2)
            case .failure: #expect(n % 7 == 3)
            }
        }
        // A batch holding a solo item (multiples of 10) holds nothing else.
        #expect(sizes.withLock { $0 }.allSatisfy { !$0.1 || $0.0 == 1 })
    }
}

/// A merge names two patients: it waits for both, and neither runs beside it.
@Suite struct GroupCommitKeysTests {
    @Test func workWithSeveralKeysWaitsForAllOfThem() async throws {
        let commits = GroupCommit<String, String>(maximumBatch: 8, concurrency: 4, minimumBatch: 1)
        let active = Mutex<[String: Int]>([:])
        let clash = Mutex(false)
        let order = Mutex<[String]>([])
        let run: GroupCommit<String, String>.Run = { batch in
            let keys = batch.flatMap { $0.split(separator: "+").map(String.init) }
            active.withLock { active in
                for key in keys {
                    active[key, default: 0] += 1
                    if active[key]! > 1 { clash.withLock { $0 = true } }
                }
            }
            order.withLock { $0 += batch }
            try? await Task.sleep(for: .milliseconds(3))
            active.withLock { active in for key in keys { active[key]! -= 1 } }
            return batch.map { .success($0) }
        }
        try await withThrowingTaskGroup(of: String.self) { group in
            for item in ["a", "b", "a+b", "b", "c", "a"] {
                group.addTask { try await commits.submit(keys: item.split(separator: "+").map(String.init), solo: false, item, run: run) }
                try await Task.sleep(for: .microseconds(300))
            }
            for try await _ in group {}
        }
        #expect(!clash.withLock { $0 }, "a key ran in two places at once")
        let seen = order.withLock { $0 }
        // Per key, arrival order: a, a+b, a and b, a+b, b.
        #expect(seen.filter { $0.contains("a") } == ["a", "a+b", "a"])
        #expect(seen.filter { $0.contains("b") } == ["b", "a+b", "b"])
    }
}

/// A test-only message type whose application fails in the database for one patient, to drive a
/// batch into its one-at-a-time fallback.
struct PoisonApplication: HL7BatchApplication {
    func canBatch(_ message: HL7Message) -> Bool { true }

    func apply(_ message: HL7Message, context: HL7Context, on connection: PostgresConnection) async throws -> HL7Applied {
        if message["PID-3"] == "POISON" {
            try await connection.query("SELECT 1 / 0", logger: TestDatabase.logger)
        }
        return HL7Applied()
    }

    func apply(batch: [(message: HL7Message, context: HL7Context)], on connection: PostgresConnection) async throws
        -> [Result<HL7Applied, any Error>]
    {
        var results: [Result<HL7Applied, any Error>] = []
        for (message, context) in batch { results.append(.success(try await apply(message, context: context, on: connection))) }
        return results
    }
}

@Suite(needsDatabase) struct GroupCommitGatewayTests {
    static func zzz(_ control: String, patient: String) -> [UInt8] {
        Array("MSH|^~\\&|HIS|\(TestGateway.facility)|QY|GZ|20261125||ZZZ^Z01|\(control)|P|2.4\rPID|1||\(patient)\r".utf8)
    }

    @Test func aMessageThePoolRefusesFailsAloneAndTheRestOfItsBatchCommits() async throws {
        let poison: @Sendable (inout HL7Router) -> Void = { $0.route("ZZZ", ["Z01"], to: PoisonApplication()) }
        try await withTestGateway(routes: poison) { gateway in
            // 8 connections at once; one message among them makes PostgreSQL abort its transaction.
            let acks = try await withThrowingTaskGroup(of: [(String, [UInt8])].self) { group in
                for connection in 0..<8 {
                    group.addTask {
                        var sent: [(String, [UInt8])] = []
                        for n in 0..<12 {
                            let control = "Z\(connection)-\(n)"
                            let patient = connection == 3 && n == 5 ? "POISON" : "P\(connection)-\(n)"
                            let ack = try await gateway.send([Self.zzz(control, patient: patient)])
                            sent.append((control, try #require(ack.first)))
                        }
                        return sent
                    }
                }
                var all: [(String, [UInt8])] = []
                for try await sent in group { all += sent }
                return all
            }
            #expect(acks.count == 96)
            for (control, frame) in acks {
                let ack = try GatewayTests.ack(frame)
                #expect(ack["MSA-2"] == control)
                if control == "Z3-5" {
                    #expect(ack["MSA-1"] == "AE" && ack["ERR-3"] == "207", "\(control)")
                } else {
                    #expect(ack["MSA-1"] == "AA", "\(control): \(ack["MSA-1"] ?? "")")
                }
            }
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages WHERE status = 'applied'") == 95)
            #expect(try await gateway.count("SELECT count(*) FROM interop.dead_letters WHERE control_id = 'Z3-5'") == 1)
        }
    }

    @Test func aPatientIsKeyedByTheIdTheMappingApplies() throws {
        func keys(_ pid: String) throws -> [String] {
            let message = try HL7Message.parse(
                Array("MSH|^~\\&|HIS|F|QY|GZ|20261125||ADT^A08|C1|P|2.4\r\(pid)\r".utf8), options: HL7ParseOptions())
            return HL7Gateway.patientKeys(message, facility: "F")
        }
        let expected = ["F\u{1F}MRN1"]
        #expect(try keys("PID|1||MRN1^^^F^PI") == expected)
        #expect(try keys("PID|1|| MRN1 ^^^F^PI") == expected)
        #expect(try keys("PID|1||11010519491231002X^^^CHN^NNCHN~MRN1^^^F^PI") == expected)
        #expect(try keys("PID|1|MRN1") == expected)
        #expect(try keys("PID|1||11010519491231002X^^^CHN^NNCHN") == [])
        let merge = try HL7Message.parse(
            Array("MSH|^~\\&|HIS|F|QY|GZ|20261125||ADT^A40|C2|P|2.4\rPID|1||MRN1^^^F^PI\rMRG|OLD7^^^F^PI\r".utf8),
            options: HL7ParseOptions())
        #expect(HL7Gateway.patientKeys(merge, facility: "F") == ["F\u{1F}MRN1", "F\u{1F}OLD7"])
    }

    @Test func aControlIDReusedOnTwoConnectionsAtOnceIsAppliedTwiceWithOneWarning() async throws {
        try await withTestGateway { gateway in
            for round in 0..<3 {
                let first = Array(
                    GatewayTests.adt(control: "DUP-\(round)", localId: "A\(round)", name: "李^四", idNumber: nil, phone: "1390000000\(round)")
                        .utf8)
                let second = Array(
                    GatewayTests.adt(control: "DUP-\(round)", localId: "B\(round)", name: "王^五", idNumber: nil, phone: "1380000000\(round)")
                        .utf8)
                let acks = try await withThrowingTaskGroup(of: [UInt8].self) { group in
                    for message in [first, second] { group.addTask { try #require(try await gateway.send([message]).first) } }
                    var all: [[UInt8]] = []
                    for try await ack in group { all.append(ack) }
                    return all
                }
                let parsed = try acks.map { try GatewayTests.ack($0) }
                #expect(parsed.allSatisfy { $0["MSA-1"] == "AA" })
                #expect(parsed.filter { $0["ERR-3"] == "205" }.count == 1, "exactly the later one is warned")
            }
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages WHERE status = 'applied'") == 6)
            #expect(try await gateway.count("SELECT count(*) FROM registry.identifiers") == 6)
        }
    }

    @Test func oneResidentUpdatedByTwoFacilitiesAtOnceKeepsEveryChange() async throws {
        try await withTestGateway { gateway in
            try await gateway.postgres.query(
                "INSERT INTO registry.facilities (code, name, level, division) VALUES ('5201030001', '贵阳市第一人民医院', 'tertiary', '520103')",
                logger: TestDatabase.logger)
            // One person, known to both hospitals under their own ids.
            for (facility, localId) in [(TestGateway.facility, "A1"), ("5201030001", "B1")] {
                let ack = try await gateway.send([
                    Array(GatewayTests.adt(control: "REG-\(localId)", localId: localId, facility: facility).utf8)
                ])
                #expect(try GatewayTests.ack(try #require(ack.first))["MSA-1"] == "AA")
            }
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 1)
            for round in 0..<5 {
                let updates = [(TestGateway.facility, "A1", "1391111000\(round)"), ("5201030001", "B1", "1382222000\(round)")].map {
                    Array(GatewayTests.adt("A08", control: "UPD-\($0.1)-\(round)", localId: $0.1, facility: $0.0, phone: $0.2).utf8)
                }
                let acks = try await withThrowingTaskGroup(of: [UInt8].self) { group in
                    for message in updates { group.addTask { try #require(try await gateway.send([message]).first) } }
                    var all: [[UInt8]] = []
                    for try await ack in group { all.append(ack) }
                    return all
                }
                #expect(try acks.allSatisfy { try GatewayTests.ack($0)["MSA-1"] == "AA" })
            }
            // Every A08 changed the phone once: ten history lines on the one resident.
            #expect(try await gateway.count("SELECT count(*) FROM registry.resident_events WHERE kind = 'updated'") == 10)
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents WHERE phone IN ('13911110004', '13822220004')") == 1)
        }
    }

    @Test func theSameMessageOnTwoConnectionsAtOnceIsAppliedOnce() async throws {
        try await withTestGateway { gateway in
            for round in 0..<5 {
                let message = Array(GatewayTests.adt(control: "SAME-\(round)", localId: "S\(round)", phone: "1380000000\(round)").utf8)
                let acks = try await withThrowingTaskGroup(of: [UInt8].self) { group in
                    for _ in 0..<4 { group.addTask { try #require(try await gateway.send([message]).first) } }
                    var all: [[UInt8]] = []
                    for try await ack in group { all.append(ack) }
                    return all
                }
                #expect(Set(acks).count == 1, "every copy gets the one stored ACK")
                #expect(try GatewayTests.ack(acks[0])["MSA-1"] == "AA")
                #expect(
                    try await gateway.count("SELECT attempts FROM interop.messages WHERE control_id = 'SAME-\(round)'") == 4)
            }
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages") == 5)
            #expect(try await gateway.count("SELECT count(*) FROM registry.identifiers") == 5)
            // One person (same identity number) under five facility ids: one resident.
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 1)
        }
    }
}
