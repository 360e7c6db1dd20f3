import Foundation
import HL7v2
import Testing

/// HL7 v2 into the shared record over real MLLP: results with their corrections, visits and
/// diagnoses from ADT.
@Suite(needsDatabase) struct GatewayRecordTests {
    static let idNumber = residentIDNumber("520102", "19800101", 113)

    static func oru(
        control: String, status: String, value: String = "7.8", type: String = "NM", localId: String = "L100", visit: String = "V100"
    ) -> String {
        "MSH|^~\\&|LIS|\(TestGateway.facility)|QY|GZ|20261201080000||ORU^R01^ORU_R01|\(control)|P|2.5|||||CHN|UNICODE UTF-8\r"
            + "PID|1||\(localId)^^^\(TestGateway.facility)^PI~\(idNumber)^^^CHN^NNCHN||李^四||19800101|M\r"
            + "PV1|1|O|||||||||||||||||\(visit)\r"
            + "OBR|1|PO1|FO1|GLU^血糖^L|||20261201073000\r"
            + "OBX|1|\(type)|1558-6^空腹血糖^LN||\(value)|mmol/L|3.9-6.1|H|||\(status)|||20261201080000\r"
            + "OBX|2|NM|2345-7^葡萄糖^LN||6.1|mmol/L|3.9-6.1|N|||\(status)\r"
    }

    /// A PV1 segment with the given fields set.
    static func pv1(_ fields: [Int: String]) -> String {
        "PV1|" + (1...(fields.keys.max() ?? 1)).map { fields[$0] ?? "" }.joined(separator: "|") + "\r"
    }

    @Test func aResultIsFiledAndItsCorrectionsSupersedeItWhileHistoryIsKept() async throws {
        try await withTestGateway { gateway in
            // An unknown patient goes through the matcher rather than failing.
            let first = try GatewayTests.ack(Array(try await gateway.send(Self.oru(control: "R-1", status: "P")).utf8))
            #expect(first["MSA-1"] == "AA")
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM records.entries WHERE kind = 'observation' AND current") == 2)
            #expect(try await gateway.count("SELECT count(*) FROM records.encounters WHERE encounter_key = 'V100'") == 1)
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM records.entries e JOIN interop.messages m ON m.id = e.message_id "
                        + "WHERE m.control_id = 'R-1' AND e.encounter_id IS NOT NULL AND e.status = 'preliminary'") == 2)

            // An embedded PDF is shown as there, not copied into the record.
            let pdf = Self.oru(control: "R-PDF", status: "F", visit: "V100").replacingOccurrences(
                of: "OBX|2|NM|2345-7^葡萄糖^LN||6.1|mmol/L|3.9-6.1|N|||F\r",
                with: "OBX|2|ED|PDF^报告单^L||^application^pdf^Base64^" + String(repeating: "QUJD", count: 5_000) + "||||||F\r")
            #expect(try GatewayTests.ack(Array(try await gateway.send(pdf).utf8))["MSA-1"] == "AA")
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM records.entries WHERE code = 'PDF' AND value_text = '[embedded data, in message]'")
                    == 1)
            _ = try await gateway.send(Self.oru(control: "R-2", status: "F"))
            _ = try await gateway.send(Self.oru(control: "R-3", status: "C", value: "7.2"))
            // A preliminary arriving after the correction: kept as history, with a warning, not made current.
            let late = try GatewayTests.ack(Array(try await gateway.send(Self.oru(control: "R-4", status: "P", value: "9.9")).utf8))
            #expect(late["MSA-1"] == "AA" && late.er7.contains("history"))
            // The same final again under a new control id changes nothing.
            _ = try await gateway.send(Self.oru(control: "R-5", status: "C", value: "7.2"))

            let key = "FO1|1558-6|"
            #expect(try await gateway.count("SELECT count(*) FROM records.entries WHERE item_key = '\(key)'") == 4)
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM records.entries WHERE item_key = '\(key)' AND current AND status = 'corrected' AND value_text = '7.2'"
                ) == 1)
            // The chain: preliminary → final → corrected, each pointing at the next.
            #expect(
                try await gateway.count(
                    """
                    SELECT count(*) FROM records.entries a JOIN records.entries b ON b.id = a.superseded_by AND b.supersedes = a.id
                    WHERE a.item_key = '\(key)'
                    """) == 2)
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM records.entries WHERE item_key = '\(key)' AND NOT current AND value_text = '9.9'") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 1)
            // Every message that wrote to the record left an audit row naming it, never its content.
            #expect(try await gateway.count("SELECT count(*) FROM access.audit_log WHERE action = 'record.results.create'") == 6)
        }
    }

    @Test func aResultTheSenderMustFixIsRefusedAndChangesNothing() async throws {
        try await withTestGateway { gateway in
            let bad = try GatewayTests.ack(Array(try await gateway.send(Self.oru(control: "X-1", status: "F", value: "high")).utf8))
            #expect(bad["MSA-1"] == "AE" && bad["ERR-3"] == "102" && bad["ERR-2.1"] == "OBX" && bad["ERR-2.3"] == "5")
            let noOBX =
                "MSH|^~\\&|LIS|\(TestGateway.facility)|QY|GZ|20261201||ORU^R01|X-2|P|2.5\rPID|1||L1^^^\(TestGateway.facility)^PI||李^四\r"
            let none = try GatewayTests.ack(Array(try await gateway.send(noOBX).utf8))
            #expect(none["MSA-1"] == "AE" && none["ERR-3"] == "100")
            // Two patients' results in one message: refused whole, never filed against the first.
            let two =
                Self.oru(control: "X-3", status: "F") + "PID|2||L200^^^\(TestGateway.facility)^PI||王^五||19700101|F\r"
                + "OBR|1|PO2|FO2|GLU|||20261201073000\rOBX|1|NM|1558-6||5.1|mmol/L|||||F\r"
            let refused = try GatewayTests.ack(Array(try await gateway.send(two).utf8))
            #expect(refused["MSA-1"] == "AE" && refused["ERR-3"] == "100" && refused["ERR-2.1"] == "PID")
            #expect(try await gateway.count("SELECT count(*) FROM records.entries") == 0)
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") == 0)
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages WHERE status = 'failed'") == 3)
        }
    }

    @Test func anAdmissionOpensAVisitWithItsDiagnosesAndTheDischargeEndsIt() async throws {
        try await withTestGateway { gateway in
            let admit = GatewayTests.adt(
                "A01", control: "A-1",
                extraSegments: "DG1|1|ICD10|E11.9^2型糖尿病^ICD10||20261201090000|W|||||||||1\r"
            )
            .replacingOccurrences(
                of: "PV1|1|O\r", with: Self.pv1([1: "1", 2: "I", 3: "内分泌科^301^1", 10: "内分泌科", 19: "V9", 44: "20261201090000"]))
            let admitted = try GatewayTests.ack(Array(try await gateway.send(admit).utf8))
            #expect(admitted["MSA-1"] == "AA", "\(admitted.er7)")
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM records.encounters WHERE encounter_key = 'V9' AND class = 'inpatient' AND status = 'in-progress' "
                        + "AND started_at = '2026-12-01 09:00:00+08' AND department = '内分泌科'") == 1)
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM records.entries WHERE kind = 'diagnosis' AND code = 'E11.9' AND certainty = 'suspected' "
                        + "AND is_primary AND current AND encounter_id IS NOT NULL") == 1)

            let discharge = GatewayTests.adt(
                "A03", control: "A-2", extraSegments: "DG1|1|ICD10|E11.9^2型糖尿病^ICD10||20261205090000|F|||||||||1\r"
            )
            .replacingOccurrences(of: "PV1|1|O\r", with: Self.pv1([1: "1", 2: "I", 19: "V9", 45: "20261205100000"]))
            #expect(try GatewayTests.ack(Array(try await gateway.send(discharge).utf8))["MSA-1"] == "AA")
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM records.encounters WHERE encounter_key = 'V9' AND status = 'finished' "
                        + "AND ended_at = '2026-12-05 10:00:00+08' AND started_at = '2026-12-01 09:00:00+08'") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM records.encounters") == 1)
            // The working diagnosis became final: the confirmed one is current, the suspected one history.
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM records.entries WHERE kind = 'diagnosis' AND current AND certainty = 'confirmed'") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM records.entries WHERE kind = 'diagnosis'") == 2)
            #expect(try await gateway.count("SELECT count(*) FROM access.audit_log WHERE action = 'record.visit.update'") == 2)

            // A bad admission time is the sender's to fix: AE 102 at PV1-44, nothing registered or recorded.
            let bad = GatewayTests.adt("A01", control: "A-3", localId: "P2002", idNumber: nil)
                .replacingOccurrences(of: "PV1|1|O\r", with: Self.pv1([1: "1", 2: "I", 19: "V10", 44: "yesterday"]))
            let refused = try GatewayTests.ack(Array(try await gateway.send(bad).utf8))
            #expect(refused["MSA-1"] == "AE" && refused["ERR-3"] == "102" && refused["ERR-2.1"] == "PV1" && refused["ERR-2.3"] == "44")
            #expect(try await gateway.count("SELECT count(*) FROM registry.identifiers WHERE local_id = 'P2002'") == 0)
        }
    }

    /// A segment with the given fields set.
    static func segment(_ id: String, _ fields: [Int: String]) -> String {
        id + "|" + (1...(fields.keys.max() ?? 1)).map { fields[$0] ?? "" }.joined(separator: "|") + "\r"
    }

    static func rde(control: String, orderControl: String, trigger: String = "RDE^O11^RDE_O11") -> String {
        "MSH|^~\\&|PHIS|\(TestGateway.facility)|QY|GZ|20261201100000||\(trigger)|\(control)|P|2.5\r"
            + "PID|1||L100^^^\(TestGateway.facility)^PI~\(idNumber)^^^CHN^NNCHN||李^四||19800101|M\r"
            + segment("ORC", [1: orderControl, 2: "RX1001", 9: "20261201100000"])
            + segment("RXE", [1: "1^BID", 2: "860975^二甲双胍片^RXNORM", 3: "500", 5: "mg"])
            + "RXR|PO\r"
    }

    @Test func aMedicationOrderIsFiledAndItsCancellationReplacesIt() async throws {
        try await withTestGateway { gateway in
            #expect(try GatewayTests.ack(Array(try await gateway.send(Self.rde(control: "M-1", orderControl: "NW")).utf8))["MSA-1"] == "AA")
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM records.entries WHERE kind = 'medication' AND code = '860975' AND display = '二甲双胍片' "
                        + "AND value_text = '500' AND unit = 'mg' AND status = 'active' AND current AND detail->>'route' = 'PO'") == 1)
            #expect(try GatewayTests.ack(Array(try await gateway.send(Self.rde(control: "M-2", orderControl: "CA")).utf8))["MSA-1"] == "AA")
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM records.entries WHERE kind = 'medication' AND current AND status = 'cancelled'") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM records.entries WHERE kind = 'medication'") == 2)
            // An OMP without its RXO is the sender's to fix.
            let empty =
                "MSH|^~\\&|PHIS|\(TestGateway.facility)|QY|GZ|20261201||OMP^O09|M-3|P|2.5\rPID|1||L100^^^\(TestGateway.facility)^PI||李^四\rORC|NW|RX2\r"
            let refused = try GatewayTests.ack(Array(try await gateway.send(empty).utf8))
            #expect(refused["MSA-1"] == "AE" && refused["ERR-3"] == "100")
        }
    }
}
