import ChronicCare
import Foundation
import HL7v2
import PostgresNIO
import Registry
import Testing

/// The record feeds monitoring whichever way data arrives: a confirmed qualifying diagnosis
/// enrols the resident (HL7 ADT here, CDA in `ChronicCareTests`), and blood pressures that reach
/// the record as results become readings that the worker evaluates.
@Suite(needsDatabase) struct ChronicCareRecordTests {
    /// An HL7 time (China time) `hours` ago.
    static func hl7Time(hoursAgo hours: Double) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 8 * 3600)
        formatter.dateFormat = "yyyyMMddHHmmss"
        return formatter.string(from: Date().addingTimeInterval(-hours * 3600))
    }

    @Test func aConfirmedDiagnosisOverHL7EnrolsAndBloodPressureResultsBecomeReadings() async throws {
        try await withTestGateway { gateway in
            let logger = TestDatabase.logger
            try await gateway.postgres.query(
                """
                INSERT INTO registry.facilities (code, name, level, primary_kind, division, supervisor)
                VALUES ('C9', '中华路社区卫生服务中心', 'primary', 'community', '520102', '5201020001')
                """, logger: logger)
            let configuration = try MonitoringConfiguration.load(directory: TestDatabase.schemasDirectory + "/rules")
            try await configuration.sync(client: gateway.postgres, logger: logger)

            // A working diagnosis does not enrol; the confirmed one at discharge does, once.
            let admit = GatewayTests.adt("A01", control: "D-1", extraSegments: "DG1|1|ICD10|I10^原发性高血压^ICD10||20261201090000|W\r")
            #expect(try GatewayTests.ack(Array(try await gateway.send(admit).utf8))["MSA-1"] == "AA")
            #expect(try await gateway.count("SELECT count(*) FROM chronic_care.enrolments") == 0)
            for control in ["D-2", "D-3"] {
                let confirmed = GatewayTests.adt(
                    "A08", control: control, extraSegments: "DG1|1|ICD10|I10.x00^原发性高血压^ICD10||20261201090000|F\r")
                #expect(try GatewayTests.ack(Array(try await gateway.send(confirmed).utf8))["MSA-1"] == "AA")
            }
            // The hospital diagnosed; the community clinic of the resident's division manages.
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM chronic_care.enrolments WHERE programme = 'hypertension' AND source = 'diagnosis' "
                        + "AND facility = 'C9' AND status = 'active' AND next_follow_up_due > now() + interval '89 days'") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM chronic_care.enrolments") == 1)
            #expect(
                try await gateway.count("SELECT count(*) FROM chronic_care.outbox WHERE topic = 'enrolment.created' AND facility = 'C9'")
                    == 1)

            // Two OBX halves of one blood pressure meet in one reading, waiting for the worker.
            let measured = Self.hl7Time(hoursAgo: 2)
            let oru =
                "MSH|^~\\&|EMR|\(TestGateway.facility)|QY|GZ|\(measured)||ORU^R01^ORU_R01|V-1|P|2.5|||||CHN|UNICODE UTF-8\r"
                + "PID|1||P1001^^^\(TestGateway.facility)^PI~11010519491231002X^^^CHN^NNCHN||张^三||19491231|F\r"
                + "OBR|1|VS1|VS1|VITALS^生命体征^L|||\(measured)\r"
                + "OBX|1|NM|8480-6^收缩压^LN||186|mm[Hg]|90-139|H|||F|||\(measured)\r"
                + "OBX|2|NM|8462-4^舒张压^LN||112|mm[Hg]|60-89|H|||F|||\(measured)\r"
            #expect(try GatewayTests.ack(Array(try await gateway.send(oru).utf8))["MSA-1"] == "AA")
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM chronic_care.readings WHERE source = 'record' AND type = 'blood-pressure' "
                        + "AND systolic = 186 AND diastolic = 112 AND evaluated_at IS NULL") == 1)
            let registry = ResidentRegistry(client: gateway.postgres, protector: gateway.protector, logger: logger)
            let alerts = AlertService(client: gateway.postgres, registry: registry, configuration: configuration, logger: logger)
            let worker = MonitoringWorker(client: gateway.postgres, alerts: alerts, configuration: configuration, logger: logger)
            #expect(try await worker.evaluatePending() == 1)
            #expect(try await worker.evaluatePending() == 0)
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM chronic_care.alerts WHERE rule_id = 'htn-bp-urgent' AND facility = 'C9' AND cardinality(reading_ids) = 1"
                )
                    == 1)
            // Vital signs of a resident nobody manages stay in the record only.
            let stranger = oru.replacingOccurrences(of: "P1001^^^", with: "P7777^^^").replacingOccurrences(
                of: "~11010519491231002X^^^CHN^NNCHN||张^三", with: "||李^四"
            ).replacingOccurrences(of: "|V-1|", with: "|V-2|")
            #expect(try GatewayTests.ack(Array(try await gateway.send(stranger).utf8))["MSA-1"] == "AA")
            #expect(try await gateway.count("SELECT count(*) FROM chronic_care.readings") == 1)
        }
    }

    @Test func diagnosesAlreadyInTheRecordEnrolWhenTheProgrammeIsConfigured() async throws {
        try await withTestGateway { gateway in
            let logger = TestDatabase.logger
            try await gateway.postgres.query(
                "INSERT INTO registry.facilities (code, name, level, primary_kind, division) VALUES ('C9', '社区', 'primary', 'township', '520102')",
                logger: logger)
            // Before monitoring knows any programme, a hypertension and a diabetes diagnosis are filed.
            let history = GatewayTests.adt(
                "A08", control: "B-1",
                extraSegments: "DG1|1|ICD10|I11.9^高血压性心脏病^ICD10||20250101090000|F\rDG1|2|ICD10|E11.9^2型糖尿病^ICD10||20250101090000|W\r")
            #expect(try GatewayTests.ack(Array(try await gateway.send(history).utf8))["MSA-1"] == "AA")
            #expect(try await gateway.count("SELECT count(*) FROM chronic_care.enrolments") == 0)
            let configuration = try MonitoringConfiguration.load(directory: TestDatabase.schemasDirectory + "/rules")
            // The confirmed hypertension enrols; the working diabetes diagnosis does not.
            #expect(try await configuration.sync(client: gateway.postgres, logger: logger) == 1)
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM chronic_care.enrolments WHERE programme = 'hypertension' AND facility = 'C9' AND source = 'diagnosis' "
                        + "AND next_follow_up_due IS NOT NULL") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM chronic_care.outbox WHERE topic = 'enrolment.created'") == 1)
            // Starting again changes nothing.
            #expect(try await configuration.sync(client: gateway.postgres, logger: logger) == 0)
            #expect(try await gateway.count("SELECT count(*) FROM chronic_care.enrolments") == 1)
        }
    }
}
