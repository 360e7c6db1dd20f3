import Access
import Foundation
import HL7v2
import Interop
import NIOCore
import PostgresNIO
import QianyunServer
import Registry
import Testing

/// HL7 v2 gateway over real TCP against PostgreSQL: what is stored, what is applied, what the
/// sender is told.
@Suite(needsDatabase) struct GatewayTests {
    static func adt(
        _ trigger: String = "A04", control: String, localId: String = "P1001", name: String = "张^三",
        idNumber: String? = "11010519491231002X",
        sex: String = "F", birth: String = "19491231", facility: String = TestGateway.facility, msh18: String = "", extraMSH: String = "",
        extraSegments: String = "", phone: String = "13812345678"
    ) -> String {
        let ids = "\(localId)^^^\(facility)^PI" + (idNumber.map { "~\($0)^^^CHN^NNCHN" } ?? "")
        return
            "MSH|^~\\&|HIS|\(facility)|QIANYUN|GZ|20261125083000||ADT^\(trigger)^ADT_A01|\(control)|P|2.4|||\(extraMSH.isEmpty ? "|" : extraMSH)||\(msh18)\r"
            + "EVN|\(trigger)|20261125083000\r"
            + "PID|1||\(ids)||\(name)||\(birth)|\(sex)|||中华北路^^贵阳^贵州^550001^CHN^H^^520102||^PRN^CP^^^^\(phone)\r"
            + "PV1|1|O\r" + extraSegments
    }

    /// Ten different people: given names, birthdays and phones apart, as real patients are.
    static let given = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋"]
    static func birthday(_ n: Int) -> String { "19\(60 + n)0\(n % 9 + 1)1\(n % 10)" }
    static func mobile(_ n: Int) -> String { "1390851000\(n % 10)" }

    static func ack(_ frame: [UInt8], charset: HL7Charset = .utf8) throws -> HL7Message {
        try HL7Message.parse(frame, options: HL7ParseOptions(defaultCharset: charset))
    }

    @Test func anADTRegistersTheResidentAndAResendGetsTheStoredAck() async throws {
        try await withTestGateway { gateway in
            let message = Array(Self.adt(control: "MSG-1").utf8)
            let first = try await gateway.send([message])
            let ack = try Self.ack(try #require(first.first))
            #expect(ack["MSA-1"] == "AA")
            #expect(ack["MSA-2"] == "MSG-1")
            #expect(ack["MSH-3"] == "QIANYUN" && ack["MSH-5"] == "HIS" && ack["MSH-6"] == TestGateway.facility)
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents WHERE name = '张三'") == 1)
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM registry.identifiers WHERE facility = '5201020001' AND local_id = 'P1001' AND source = 'hl7'")
                    == 1)
            #expect(
                try await gateway.count(
                    """
                    SELECT count(*) FROM interop.messages WHERE status = 'applied' AND ack_code = 'AA' AND control_id = 'MSG-1'
                      AND message_type = 'ADT' AND trigger_event = 'A04' AND resident_id IS NOT NULL AND applied_at IS NOT NULL
                    """) == 1)
            // The raw message is sealed, never stored in clear: the identity number is not in the row.
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM interop.messages WHERE position('11010519491231002X'::bytea in raw_ciphertext) > 0") == 0)
            // The same bytes again (the HIS did not see the ACK): the stored ACK, byte for byte, and nothing applied twice.
            let again = try await gateway.send([message, message])
            #expect(again == [first[0], first[0]])
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages") == 1)
            #expect(try await gateway.count("SELECT attempts FROM interop.messages") == 3)
            // Effects and audit rows carry the message id as their request id.
            #expect(
                try await gateway.count(
                    """
                    SELECT count(*) FROM access.audit_log a JOIN interop.messages m ON a.request_id = m.id::text
                    WHERE a.actor = 'hl7:5201020001' AND a.action = 'resident.create'
                    """) == 1)
        }
    }

    @Test func anUpdateChangesTheResidentAndAReusedControlIDIsStillApplied() async throws {
        try await withTestGateway { gateway in
            _ = try await gateway.send(Self.adt(control: "MSG-1"))
            // Same control ID, different content: a different message, applied, with a warning.
            let update = try Self.ack(
                Array(try await gateway.send(Self.adt("A08", control: "MSG-1", name: "张^叁")).utf8))
            #expect(update["MSA-1"] == "AA")
            #expect(update["ERR-3"] == "205" && update["ERR-4"] == "W")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents WHERE name = '张叁'") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages WHERE control_id = 'MSG-1' AND status = 'applied'") == 2)
            // An A08 for an id the registry has not seen registers it.
            let fresh = try await gateway.send(
                Self.adt("A08", control: "MSG-2", localId: "P2002", name: "李^四", idNumber: nil, birth: "19800101"))
            #expect(fresh.contains("MSA|AA|MSG-2"))
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 2)
        }
    }

    @Test func gb18030WithoutMSH18IsReadWithTheSendersDefaultAndAnsweredInIt() async throws {
        try await withTestGateway { gateway in
            try await gateway.postgres.query(
                """
                INSERT INTO interop.senders (sending_facility, sending_application, facility, default_charset)
                VALUES ('GZSRMYY', '', '5201020001', 'GB 18030-2000')
                """, logger: TestDatabase.logger)
            // 乗 and 亅 end in the bytes of `\` and `|` in GBK: decoding must come before splitting.
            let text = Self.adt(control: "GB-1", name: "乗^亅", facility: "GZSRMYY").replacingOccurrences(
                of: "P1001^^^GZSRMYY", with: "P1001^^^5201020001")
            let bytes = HL7Charset.gb18030.encode(text)
            #expect(String(validating: bytes, as: UTF8.self) == nil)
            let frames = try await gateway.send([bytes])
            let ack = try Self.ack(try #require(frames.first), charset: .gb18030)
            #expect(ack["MSA-1"] == "AA")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents WHERE name = '乗亅'") == 1)
            #expect(
                try await gateway.count("SELECT count(*) FROM interop.messages WHERE charset = 'GB 18030-2000' AND facility = '5201020001'")
                    == 1)
        }
    }

    @Test func whatCannotBeAppliedIsKeptAndAnsweredTruthfully() async throws {
        try await withTestGateway { gateway in
            // Unknown sender: AR, 204 at MSH-4, kept.
            let stranger = try Self.ack(Array(try await gateway.send(Self.adt(control: "U-1", facility: "9999999999")).utf8))
            #expect(stranger["MSA-1"] == "AR" && stranger["ERR-3"] == "204")
            // Not HL7 at all: AR with a parse error, kept.
            let garbage = try await gateway.send([Array("hello, is this the lab?".utf8)])
            let garbageAck = String(decoding: try #require(garbage.first), as: UTF8.self)
            #expect(garbageAck.contains("\rMSA|AR"), "\(garbageAck.debugDescription)")
            // A type nobody handles yet: AE 200; a trigger nobody handles: AE 201.
            let dft =
                "MSH|^~\\&|FIN|5201020001|QY|GZ|20261125||DFT^P03|R-1|P|2.5\rPID|1||P1^^^5201020001^PI||王^五\rFT1|1\r"
            let unsupported = try Self.ack(Array(try await gateway.send(dft).utf8))
            #expect(unsupported["MSA-1"] == "AE" && unsupported["ERR-3"] == "200")
            let trigger = try Self.ack(Array(try await gateway.send(Self.adt("A99", control: "T-1")).utf8))
            #expect(trigger["MSA-1"] == "AE" && trigger["ERR-3"] == "201")
            // A bad identity number: AE 102 pointing at the PID-3 repetition, nothing registered.
            let bad = try Self.ack(Array(try await gateway.send(Self.adt(control: "B-1", idNumber: "110105194912310021")).utf8))
            #expect(bad["MSA-1"] == "AE" && bad["ERR-3"] == "102")
            #expect(bad["ERR-2.1"] == "PID" && bad["ERR-2.3"] == "3" && bad["ERR-2.4"] == "2")
            #expect(bad["ERR-1"] != nil, "a v2.4 sender also gets ERR-1")
            // No name: AE 101.
            let nameless = try Self.ack(Array(try await gateway.send(Self.adt(control: "N-1", name: "")).utf8))
            #expect(nameless["MSA-1"] == "AE" && nameless["ERR-3"] == "101")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 0)
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages") == 6)
            #expect(try await gateway.count("SELECT count(*) FROM interop.dead_letters") == 6)
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages WHERE status = 'rejected' AND facility IS NULL") == 2)
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages WHERE status = 'unsupported'") == 2)
            #expect(
                try await gateway.count("SELECT count(*) FROM interop.messages WHERE status = 'failed' AND error_hl7_code IN (101, 102)")
                    == 2)
        }
    }

    /// PID-19 is the SSN in the standard: a value shaped like a resident identity number is checked
    /// as one (a bad one refused, 102), anything else is left out with a warning. PID-13 gives the
    /// first number the registry accepts; a feed's unusable number is left out, not fatal.
    @Test func pid19AndPid13AreTakenOnlyWhenUsable() async throws {
        try await withTestGateway { gateway in
            func message(_ control: String, localId: String, name: String = "刘^洋", pid13: String = "", pid19: String = "") -> String {
                "MSH|^~\\&|HIS|\(TestGateway.facility)|QY|GZ|20261125083000||ADT^A04^ADT_A01|\(control)|P|2.5\r"
                    + "PID|1||\(localId)^^^\(TestGateway.facility)^PI||\(name)||19800101|M|||||\(pid13)||||||\(pid19)\r"
            }
            let ssn = try Self.ack(Array(try await gateway.send(message("S19-1", localId: "P19A", pid19: "123-45-6789")).utf8))
            #expect(ssn["MSA-1"] == "AA")
            #expect(ssn["ERR-4"] == "W" && (ssn["ERR-8"] ?? "").contains("PID-19"), "a warning names the field")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents WHERE document_hash IS NULL") == 1)

            let typo = try Self.ack(Array(try await gateway.send(message("S19-2", localId: "P19B", pid19: "110105194912310021")).utf8))
            #expect(typo["MSA-1"] == "AE" && typo["ERR-3"] == "102")
            #expect(typo["ERR-2.1"] == "PID" && typo["ERR-2.3"] == "19")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 1)

            // A four-digit local number beside a usable free-form one (as FHIR-Converter's samples have it).
            let free = try Self.ack(
                Array(try await gateway.send(message("S13-1", localId: "P13A", name: "周^杰", pid13: "78788788^^CP^5555^^^1111")).utf8))
            #expect(free["MSA-1"] == "AA")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents WHERE phone = '78788788'") == 1)
            let unusable = try Self.ack(Array(try await gateway.send(message("S13-2", localId: "P13B", name: "吴^敏", pid13: "1234")).utf8))
            #expect(unusable["MSA-1"] == "AA" && (unusable["ERR-8"] ?? "").contains("PID-13"))
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 3)
        }
    }

    /// A batch file framed as python-hl7's mllp_send frames it: the envelope travels with the
    /// messages beside it. One message in an envelope is applied; several in one frame are refused.
    @Test func aMessageInABatchEnvelopeIsAppliedAndABatchInOneFrameRefused() async throws {
        try await withTestGateway { gateway in
            let wrapped =
                "FHS|^~\\&|HIS|\(TestGateway.facility)\rBHS|^~\\&|HIS|\(TestGateway.facility)\r"
                + Self.adt(control: "W-1", localId: "PW1", name: "袁^丽", idNumber: nil) + "BTS|1\rFTS|1\r"
            let ack = try Self.ack(Array(try await gateway.send(wrapped).utf8))
            #expect(ack["MSA-1"] == "AA" && ack["MSA-2"] == "W-1")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents WHERE name = '袁丽'") == 1)

            let two =
                "BHS|^~\\&|HIS|\(TestGateway.facility)\r" + Self.adt(control: "W-2", localId: "PW2", name: "韩^雪", idNumber: nil)
                + Self.adt(control: "W-3", localId: "PW3", name: "唐^杰", idNumber: nil) + "BTS|2\r"
            let refused = try Self.ack(Array(try await gateway.send(two).utf8))
            #expect(refused["MSA-1"] == "AR" && refused["ERR-3"] == "100")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages") == 2, "the refused frame is kept too")
        }
    }

    @Test func anHL7XMLMessageIsAppliedAndAnsweredInXML() async throws {
        try await withTestGateway { gateway in
            let xml = HL7XML.encode(try HL7Message.parse(Self.adt(control: "X-1", localId: "PX1", name: "郑^洁", idNumber: nil)))
            #expect(xml.contains("<PID.5>"))
            let frames = try await gateway.send([Array(xml.utf8)])
            let ack = String(decoding: try #require(frames.first), as: UTF8.self)
            #expect(ack.hasPrefix("<?xml") || ack.hasPrefix("<ACK"))
            #expect(try HL7XML.decode(ack)["MSA-1"] == "AA" && (try HL7XML.decode(ack)["MSA-2"]) == "X-1")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents WHERE name = '郑洁'") == 1)
            // XML that is not well-formed, or that declares a DTD, is kept and refused, in XML.
            for bad in ["<ADT_A01><MSH>", "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><ADT_A01/>"] {
                let refused = String(decoding: try #require(try await gateway.send([Array(bad.utf8)]).first), as: UTF8.self)
                #expect(try HL7XML.decode(refused)["MSA-1"] == "AR")
            }
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages WHERE status = 'rejected'") == 2)
        }
    }

    @Test func enhancedModeGetsACommitAckThenAnApplicationAck() async throws {
        try await withTestGateway { gateway in
            let message = Self.adt(control: "E-1", extraMSH: "AL|AL")
            let frames = try await gateway.send([Array(message.utf8)], framesPerMessage: 2)
            #expect(frames.count == 2)
            #expect(try Self.ack(frames[0])["MSA-1"] == "CA")
            #expect(try Self.ack(frames[1])["MSA-1"] == "AA")
            // ER for the application ACK: nothing more after a success.
            let quiet = Self.adt("A08", control: "E-2", extraMSH: "AL|ER")
            let second = try await gateway.send([Array(quiet.utf8)], framesPerMessage: 1)
            #expect(second.count == 1)
            #expect(try Self.ack(second[0])["MSA-1"] == "CA")
        }
    }

    @Test func anA40MergesTheFacilitysTwoRecordsOfOnePerson() async throws {
        try await withTestGateway { gateway in
            _ = try await gateway.send(Self.adt(control: "M-1", localId: "OLD-1", name: "赵^六", idNumber: nil, birth: "19700101"))
            _ = try await gateway.send(Self.adt(control: "M-2", localId: "NEW-1", name: "赵^陆", idNumber: nil, sex: "F", birth: "19710202"))
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents WHERE status = 'active'") == 2)
            let merge = Self.adt(
                "A40", control: "M-3", localId: "NEW-1", name: "赵^陆", idNumber: nil, sex: "F", birth: "19710202",
                extraSegments: "MRG|OLD-1^^^5201020001^PI\r")
            let ack = try Self.ack(Array(try await gateway.send(merge).utf8))
            #expect(ack["MSA-1"] == "AA")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents WHERE status = 'active'") == 1)
            #expect(
                try await gateway.count(
                    """
                    SELECT count(DISTINCT resident_id) FROM registry.identifiers WHERE facility = '5201020001' AND local_id IN ('OLD-1', 'NEW-1')
                    """) == 1)
            let unknown = Self.adt(
                "A40", control: "M-4", localId: "NEW-1", name: "赵^陆", idNumber: nil, extraSegments: "MRG|NOPE^^^5201020001^PI\r")
            let refused = try Self.ack(Array(try await gateway.send(unknown).utf8))
            #expect(refused["MSA-1"] == "AE" && refused["ERR-3"] == "204")
        }
    }

    @Test func manyConnectionsAtOnceCreateOneResidentPerPatient() async throws {
        try await withTestGateway { gateway in
            // 8 connections, each sending A04 then A08 for the same 10 patients: the patient lock and
            // the registrar's locks leave one resident per patient and every message acknowledged AA.
            let acks = try await withThrowingTaskGroup(of: [[UInt8]].self) { group in
                for connection in 0..<8 {
                    group.addTask {
                        let messages = (0..<10).flatMap { patient in
                            ["A04", "A08"].map { trigger in
                                Array(
                                    Self.adt(
                                        trigger, control: "C\(connection)-\(patient)-\(trigger)", localId: "L\(patient)",
                                        name: "钱^\(Self.given[patient])", idNumber: nil, birth: Self.birthday(patient),
                                        phone: Self.mobile(patient)
                                    ).utf8)
                            }
                        }
                        return try await gateway.send(messages)
                    }
                }
                var all: [[UInt8]] = []
                for try await frames in group { all += frames }
                return all
            }
            #expect(acks.count == 160)
            #expect(try acks.allSatisfy { try Self.ack($0)["MSA-1"] == "AA" })
            let residents = try await gateway.count("SELECT count(*) FROM registry.residents")
            let reviews = try await gateway.count("SELECT count(*) FROM registry.match_reviews")
            let linkedEvents = try await gateway.count("SELECT count(*) FROM registry.resident_events WHERE kind = 'linked'")
            #expect(residents == 10, "residents \(residents), reviews \(reviews), linked \(linkedEvents)")
            #expect(try await gateway.count("SELECT count(*) FROM registry.identifiers") == 10)
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages WHERE status = 'applied'") == 160)
        }
    }

    /// Python's `hl7` package (installed by deploy/test) as a client nobody on the team wrote.
    static let pythonHL7: Bool = {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import hl7.client"]
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return false }
        probe.waitUntilExit()
        return probe.terminationStatus == 0
    }()

    @Test(.enabled(if: pythonHL7, "python3 -m pip install hl7 (deploy/test does)"))
    func pythonMLLPSendGetsAnAckForEveryMessage() async throws {
        try await withTestGateway { gateway in
            // A file as an integrator keeps one: messages one after another, lines ended by \n.
            var file = ""
            for patient in 0..<10 {
                let (name, birth, phone) = ("孙^\(Self.given[patient])", Self.birthday(patient), Self.mobile(patient))
                file += Self.adt(control: "PY-\(patient)-A", localId: "PY\(patient)", name: name, idNumber: nil, birth: birth, phone: phone)
                    .replacingOccurrences(of: "\r", with: "\n")
                file += Self.adt(
                    "A08", control: "PY-\(patient)-B", localId: "PY\(patient)", name: name, idNumber: nil, sex: "M", birth: birth,
                    phone: phone
                )
                .replacingOccurrences(of: "\r", with: "\n")
            }
            file += Self.adt(control: "PY-BAD", localId: "PYX", idNumber: "110105194912310021").replacingOccurrences(of: "\r", with: "\n")
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("qy-mllp-\(UUID().uuidString).hl7").path
            try file.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }

            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            // mllp_send waits for each ACK with no timeout of its own.
            process.arguments = [
                "timeout", "60", "python3", "-c", "import sys; from hl7.client import mllp_send; sys.argv[0] = 'mllp_send'; mllp_send()",
                "--loose", "-f", path, "-p", String(gateway.port), "127.0.0.1",
            ]
            let output = Pipe()
            process.standardOutput = output
            let data = try await offPool {
                try process.run()
                let data = output.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return data
            }
            #expect(process.terminationStatus == 0)
            let text = String(decoding: data, as: UTF8.self)
            #expect(text.components(separatedBy: "MSA|AA|PY-").count - 1 == 20)
            #expect(text.contains("MSA|AE|PY-BAD"))
            let residents = try await gateway.count("SELECT count(*) FROM registry.residents")
            #expect(residents == 10, "\(residents) residents; mllp_send printed \(text.debugDescription)")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents WHERE sex = 1") == 10, "the A08s applied")
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages") == 21)
        }
    }
}

/// `qianyun hl7 send|replay|inspect`, run as the built binary against a running gateway.
@Suite(needsDatabase) struct HL7CommandTests {
    @Test(.enabled(if: CLITests.binary != nil, "the qianyun binary is not built"))
    func sendReplayAndInspect() async throws {
        try await withTestGateway { gateway in
            let oru =
                "MSH|^~\\&|FIN|5201020001|QY|GZ|20261125||DFT^P03|R-1|P|2.5\rPID|1||P9^^^5201020001^PI||王^五\rFT1|1\r"
            let file =
                GatewayTests.adt(control: "S-1").replacingOccurrences(of: "\r", with: "\r\n")
                + GatewayTests.adt(control: "S-2", localId: "P2", name: "冯^芳", idNumber: nil, facility: "GZXYY") + oru
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("qy-send-\(UUID().uuidString).hl7").path
            try file.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }

            let sent = try await CLITests.runOffPool(["hl7", "send", path, "--port", String(gateway.port)], database: gateway.database)
            #expect(sent.status == 0, "\(sent.errors)")
            #expect(sent.output.contains("S-1 AA") && sent.output.contains("S-2 AR 204") && sent.output.contains("R-1 AE 200"))
            #expect(sent.output.contains("sent 3 messages on 1 connections"))

            // The unknown sender is registered: a replay of the rejected message applies it, once.
            try await gateway.postgres.query(
                "INSERT INTO interop.senders (sending_facility, facility) VALUES ('GZXYY', '5201020001')", logger: TestDatabase.logger)
            let replayed = try await CLITests.runOffPool(
                ["hl7", "replay", "--status", "rejected"], database: gateway.database, extra: gateway.keys)
            #expect(replayed.status == 0, "\(replayed.errors)")
            #expect(replayed.output.contains("rejected → applied AA"))
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 2)
            #expect(try await gateway.count("SELECT attempts FROM interop.messages WHERE control_id = 'S-2'") == 2)
            let again = try await CLITests.runOffPool(
                ["hl7", "replay", "--status", "rejected"], database: gateway.database, extra: gateway.keys)
            #expect(again.output.contains("replayed 0 message(s)"))
            // Still no handler for DFT: replayed, still unsupported, nothing applied.
            let unsupported = try await CLITests.runOffPool(["hl7", "replay"], database: gateway.database, extra: gateway.keys)
            #expect(unsupported.output.contains("unsupported → unsupported AE 200"))

            let tree = try await CLITests.runOffPool(["hl7", "inspect", path], database: gateway.database)
            #expect(tree.status == 0)
            #expect(
                tree.output.contains("# message 3") && tree.output.contains("PID-5  张^三")
                    && tree.output.contains("PID-3(2).1  11010519491231002X"))
            let id = try #require(
                try await gateway.postgres.query("SELECT id FROM interop.messages WHERE control_id = 'R-1'", logger: TestDatabase.logger)
                    .collect().first?.decode(UUID.self))
            let stored = try await CLITests.runOffPool(
                ["hl7", "inspect", "--id", id.uuidString], database: gateway.database, extra: gateway.keys)
            #expect(stored.output.contains("PID-5  王^五"), "\(stored.errors)")
        }
    }

    /// Real export files start with a byte-order mark and come wrapped as batches, and enhanced-mode
    /// senders get one reply or two depending on the outcome: `hl7 send` sends each message alone
    /// and takes its replies as they come.
    @Test(.enabled(if: CLITests.binary != nil, "the qianyun binary is not built"))
    func sendReadsByteOrderMarksAndEnhancedModeReplies() async throws {
        try await withTestGateway { gateway in
            let file =
                "\u{FEFF}FHS|^~\\&|HIS|5201020001\r\nBHS|^~\\&|HIS|5201020001\r\n"
                + GatewayTests.adt(control: "B-1").replacingOccurrences(of: "\r", with: "\r\n")
                // An unknown sender in enhanced mode: CR, and no application ACK after it.
                + GatewayTests.adt(control: "E-1", localId: "P2", name: "冯^芳", idNumber: nil, facility: "GZXYY", extraMSH: "AL|")
                // Commit ACK always, application ACK on success only.
                + GatewayTests.adt(control: "E-2", localId: "P3", name: "罗^敏", idNumber: nil, extraMSH: "AL|SU") + "BTS|3\rFTS|1\r"
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("qy-bom-\(UUID().uuidString).hl7").path
            try file.write(toFile: path, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: path) }

            let started = ContinuousClock.now
            let sent = try await CLITests.runOffPool(
                ["hl7", "send", path, "--port", String(gateway.port), "--timeout", "90"], database: gateway.database)
            #expect(sent.status == 0, "\(sent.errors)")
            #expect(sent.output.contains("B-1 AA"), "\(sent.output)")
            #expect(sent.output.contains("E-1 CR 204"), "\(sent.output)")
            #expect(sent.output.contains("E-2 CA") && sent.output.contains("E-2 AA"), "\(sent.output)")
            #expect(sent.output.contains("sent 3 messages on 1 connections"))
            // Waiting for the application ACK that never comes would take the whole 90 s timeout;
            // the margin below it is for a loaded machine running the suite in parallel.
            #expect(ContinuousClock.now - started < .seconds(60), "no reply was waited for past its time")
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages") == 3)
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 2)
        }
    }
}

/// The operator's view of the inbox over HTTP.
@Suite(needsDatabase) struct InboxAPITests {
    @Test func operatorsListStoredMessagesWithoutTheirContent() async throws {
        try await withTestApp { app in
            try await app.postgres.query(
                """
                INSERT INTO registry.facilities (code, name, level, division)
                VALUES ('5201020001', '贵州省人民医院', 'tertiary', '520102'), ('5201030001', '贵州医科大学附属医院', 'tertiary', '520103')
                """, logger: TestDatabase.logger)
            let protector = try QianyunServer.fieldProtector(app.configuration)
            let residents = ResidentRegistry(client: app.postgres, protector: protector, logger: TestDatabase.logger)
            let gateway = HL7Gateway(
                client: app.postgres, protector: protector,
                router: hl7Routes(
                    residents: residents, merges: MergeService(client: app.postgres, registry: residents, logger: TestDatabase.logger),
                    logger: TestDatabase.logger),
                maximumMessageBytes: 1 << 20, logger: TestDatabase.logger)
            let peer = MLLPPeer(address: "127.0.0.1")
            _ = await gateway.handle(message: ByteBuffer(string: GatewayTests.adt(control: "API-1")), from: peer)
            _ = await gateway.handle(
                message: ByteBuffer(string: GatewayTests.adt(control: "API-2", idNumber: "110105194912310021")), from: peer)
            _ = await gateway.handle(
                message: ByteBuffer(string: GatewayTests.adt(control: "API-3", localId: "P3", name: "吴^七", idNumber: nil)), from: peer)

            let admin = try await app.token(role: .admin)
            let all = try await app.request(.get, "/api/v1/interop/messages?limit=2", token: admin)
            #expect(all.status == .ok)
            let items = try #require(all.json["items"] as? [[String: Any]])
            #expect(items.count == 2)
            #expect(items.first?["controlId"] as? String == "API-3", "newest first")
            let next = try #require(all.json["nextCursor"] as? String)
            let rest = try await app.request(.get, "/api/v1/interop/messages?limit=2&cursor=\(next)", token: admin)
            #expect((rest.json["items"] as? [[String: Any]])?.map { $0["controlId"] as? String } == ["API-1"])
            #expect(!String(buffer: all.body).contains("张") && !String(buffer: all.body).contains("11010519491231002X"))

            let dead = try await app.request(.get, "/api/v1/interop/messages?status=failed,unsupported,rejected", token: admin)
            let failed = try #require((dead.json["items"] as? [[String: Any]])?.first)
            #expect(failed["controlId"] as? String == "API-2")
            let error = try #require(failed["error"] as? [String: Any])
            #expect(error["hl7Code"] as? Int == 102 && error["location"] as? String == "PID-3(2)")
            let one = try await app.request(.get, "/api/v1/interop/messages/\(try #require(failed["id"] as? String))", token: admin)
            #expect(one.status == .ok && one.json["status"] as? String == "failed")

            // A HIS sees its own facility's traffic only; other roles none of it.
            let his = try await app.token(role: .his, facility: "5201020001")
            #expect((try await app.request(.get, "/api/v1/interop/messages", token: his).json["items"] as? [Any])?.count == 3)
            #expect(try await app.request(.get, "/api/v1/interop/messages?facility=5201030001", token: his).status == .forbidden)
            let otherHIS = try await app.token(role: .his, facility: "5201030001")
            #expect((try await app.request(.get, "/api/v1/interop/messages", token: otherHIS).json["items"] as? [Any])?.count == 0)
            #expect(
                try await app.request(.get, "/api/v1/interop/messages", token: try await app.token(role: .clinician)).status == .forbidden)
            #expect(try await app.request(.get, "/api/v1/interop/messages?status=lost", token: admin).status == .badRequest)
            #expect(try await app.request(.get, "/api/v1/interop/messages?since=yesterday", token: admin).status == .badRequest)
            #expect(try await app.request(.get, "/api/v1/interop/messages/\(UUID().uuidString)", token: admin).status == .notFound)
        }
    }
}
