import Access
import Foundation
import HL7v2
import PostgresNIO
import Surveillance
import Testing

/// Cases found in the record whichever way a diagnosis or result arrives: one case per resident,
/// disease and episode, upgraded by later reports, with its times, county, age and sex.
@Suite(needsDatabase) struct SurveillanceRecordTests {
    static func definitions() throws -> CaseDefinitions {
        try CaseDefinitions.load(directory: TestDatabase.schemasDirectory + "/case-definitions")
    }

    /// An ADT for another visit (PV1-19), so the same diagnosis code is a new record item.
    static func visit(_ control: String, _ dg1: String) -> String {
        GatewayTests.adt("A08", control: control, extraSegments: dg1).replacingOccurrences(
            of: "PV1|1|O\r", with: "PV1|1|O" + String(repeating: "|", count: 17) + "V-\(control)\r")
    }

    static func ok(_ gateway: TestGateway, _ message: String) async throws {
        #expect(try GatewayTests.ack(Array(try await gateway.send(message).utf8))["MSA-1"] == "AA")
    }

    static func oru(control: String, code: String, value: String, flag: String = "", at time: String) -> String {
        "MSH|^~\\&|LIS|\(TestGateway.facility)|QY|GZ|\(time)||ORU^R01^ORU_R01|\(control)|P|2.5|||||CHN|UNICODE UTF-8\r"
            + "PID|1||P1001^^^\(TestGateway.facility)^PI~11010519491231002X^^^CHN^NNCHN||张^三||19491231|F|||中华北路^^贵阳^贵州^550001^CHN^H^^520102\r"
            + "OBR|1|\(control)|\(control)|LAB^检验^L|||\(time)\r"
            + "OBX|1|ST|\(code)^检验项目^LN||\(value)||阴性|\(flag)|||F|||\(time)\r"
    }

    @Test func aDiagnosisOverHL7MakesOneCaseThatRepeatsJoinAndALabResultConfirms() async throws {
        try await withTestGateway { gateway in
            try await Self.definitions().sync(client: gateway.postgres, logger: TestDatabase.logger)
            let threeHoursAgo = ChronicCareRecordTests.hl7Time(hoursAgo: 3)
            // A working (suspected) measles diagnosis: one suspected case, in the resident's county.
            try await Self.ok(
                gateway, GatewayTests.adt("A01", control: "M-1", extraSegments: "DG1|1|ICD10|B05.9^麻疹^ICD10||\(threeHoursAgo)|W\r"))
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.cases") == 1)
            #expect(
                try await gateway.count(
                    """
                    SELECT count(*) FROM surveillance.cases WHERE disease = 'measles' AND classification = 'suspected'
                    AND division = '520102' AND sex = 2 AND age_years = 76 AND facility = '\(TestGateway.facility)'
                    AND review_status = 'reported' AND delay_minutes BETWEEN 170 AND 200 AND limit_hours = 24
                    AND onset_date = (diagnosed_at AT TIME ZONE 'Asia/Shanghai')::date
                    """) == 1)
            // The same message again (a resend) and the final diagnosis: still one case, now clinical.
            try await Self.ok(
                gateway, GatewayTests.adt("A01", control: "M-1", extraSegments: "DG1|1|ICD10|B05.9^麻疹^ICD10||\(threeHoursAgo)|W\r"))
            try await Self.ok(
                gateway, GatewayTests.adt("A08", control: "M-2", extraSegments: "DG1|1|ICD10|B05.9^麻疹^ICD10||\(threeHoursAgo)|F\r"))
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.cases") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.cases WHERE classification = 'clinical'") == 1)
            // A negative IgM changes nothing; a positive one confirms the same case.
            let now = ChronicCareRecordTests.hl7Time(hoursAgo: 0)
            try await Self.ok(gateway, Self.oru(control: "L-1", code: "35275-7", value: "阴性", at: now))
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.cases WHERE classification = 'clinical'") == 1)
            try await Self.ok(gateway, Self.oru(control: "L-2", code: "35275-7", value: "阳性(+)", flag: "A", at: now))
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM surveillance.cases WHERE classification = 'confirmed' AND confirmed_at IS NOT NULL AND upgraded_at IS NOT NULL"
                ) == 1)
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.cases") == 1)
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM surveillance.case_events WHERE effect = 'upgraded' AND source = 'result' AND classification = 'confirmed'"
                )
                    == 1)
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.case_events WHERE effect = 'created'") == 1)

            // Class A: cholera diagnosed five hours before it reached the record is late (limit 2 h).
            let fiveHoursAgo = ChronicCareRecordTests.hl7Time(hoursAgo: 5)
            try await Self.ok(
                gateway, GatewayTests.adt("A08", control: "C-1", extraSegments: "DG1|1|ICD10|A00.1^霍乱^ICD10||\(fiveHoursAgo)|F\r"))
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM surveillance.cases WHERE disease = 'cholera' AND limit_hours = 2 AND delay_minutes > 120 AND classification = 'confirmed'"
                ) == 1)

            // Influenza episodes last 30 days: a report 50 days later is a new case, one 5 days after that joins it.
            for (control, daysAgo) in [("F-1", 60.0), ("F-2", 10.0), ("F-3", 5.0)] {
                let at = ChronicCareRecordTests.hl7Time(hoursAgo: daysAgo * 24)
                try await Self.ok(gateway, Self.visit(control, "DG1|1|ICD10|J10.1^流感^ICD10||\(at)|F\r"))
            }
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.cases WHERE disease = 'influenza'") == 2)
            // HIV has no episode: a report years later is the same case.
            for (control, daysAgo) in [("H-1", 900.0), ("H-2", 1.0)] {
                let at = ChronicCareRecordTests.hl7Time(hoursAgo: daysAgo * 24)
                try await Self.ok(gateway, Self.visit(control, "DG1|1|ICD10|B20^HIV病^ICD10||\(at)|F\r"))
            }
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.cases WHERE disease = 'hiv-aids'") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.case_events WHERE effect = 'repeat'") == 2)
            // A diagnosis that is not notifiable makes nothing.
            try await Self.ok(gateway, GatewayTests.adt("A08", control: "N-1", extraSegments: "DG1|1|ICD10|I10^高血压^ICD10||\(now)|F\r"))
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.cases") == 5)
        }
    }

    @Test func reportsAlreadyInTheRecordBecomeCasesWhenDefinitionsAreLoadedOnceAndAChangedFileNeedsANewVersion() async throws {
        try await withTestGateway { gateway in
            let logger = TestDatabase.logger
            // Before surveillance knows any disease, two scarlet fever reports within the episode are filed.
            for (control, daysAgo) in [("S-1", 20.0), ("S-2", 2.0)] {
                let at = ChronicCareRecordTests.hl7Time(hoursAgo: daysAgo * 24)
                try await Self.ok(gateway, Self.visit(control, "DG1|1|ICD10|A38^猩红热^ICD10||\(at)|F\r"))
            }
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.cases") == 0)
            let definitions = try Self.definitions()
            #expect(try await definitions.sync(client: gateway.postgres, logger: logger) == 2)
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.cases WHERE disease = 'scarlet-fever'") == 1)
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.case_events") == 2)
            // Starting again changes nothing.
            #expect(try await definitions.sync(client: gateway.postgres, logger: logger) == 0)
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.case_events") == 2)
            // The same version with different content is refused, and nothing changes.
            let path = TestDatabase.schemasDirectory + "/case-definitions/notifiable-diseases.json"
            let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(
                of: "\"episodeDays\": 90", with: "\"episodeDays\": 91")
            let changed = try CaseDefinitions(data: Data(text.utf8))
            await #expect(throws: SurveillanceError.self) { try await changed.sync(client: gateway.postgres, logger: logger) }
            #expect(try await gateway.count("SELECT count(*) FROM surveillance.diseases WHERE episode_days = 91") == 0)
        }
    }

    @Test func badDefinitionsAreNamed() throws {
        func load(_ text: String) throws(SurveillanceError) -> CaseDefinitions { try CaseDefinitions(data: Data(text.utf8)) }
        let base = """
            {"version": "t1", "defaults": {"reportWithinHours": {"A": 2, "B": 24, "C": 24}}, "diseases": [%@]}
            """
        func with(_ disease: String) -> String { base.replacingOccurrences(of: "%@", with: disease) }
        #expect(throws: SurveillanceError.self) {
            try load(with(#"{"code": "x", "name": {"zh": "x", "en": "x"}, "class": "B", "icd10": ["A00"], "episodeDays": 3}"#))
        }
        #expect(throws: SurveillanceError.self) {
            try load(with(#"{"code": "flu", "name": {"zh": "x", "en": "x"}, "class": "B", "icd10": ["J11-J09"], "episodeDays": 3}"#))
        }
        #expect(throws: SurveillanceError.self) {
            try load(with(#"{"code": "flu", "name": {"zh": "x", "en": "x"}, "class": "D", "icd10": ["J11"], "episodeDays": 3}"#))
        }
        #expect(throws: SurveillanceError.self) {
            try load(with(#"{"code": "flu", "name": {"zh": "x", "en": "x"}, "class": "B", "icd10": ["J11"], "episodeDays": 0}"#))
        }
        let good = try load(
            with(#"{"code": "flu", "name": {"zh": "x", "en": "x"}, "class": "C", "icd10": ["J09-J11", "B18.0-B18.1"], "episodeDays": 30}"#))
        #expect(good.diseases.count == 1)
        let shipped = try Self.definitions()
        #expect(shipped.diseases.count >= 40 && shipped.diseases.filter { $0.class == .a }.count == 2)
        #expect(shipped.signalMethods.map(\.method.rawValue) == ["C2", "CIDARS"])
    }
}

extension TestApp {
    /// One resident per report, in `division`, diagnosed `daysAgo` days back at `facility`, so
    /// each report is its own case (the trigger makes it, as for any diagnosis).
    func seedReports(
        _ code: String, division: String, daysAgo: [Int], sex: Int = 1, born: String = "1990-05-01", facility: String = "5201020001"
    ) async throws {
        try await postgres.query(
            """
            WITH input AS (SELECT d, n FROM unnest(\(daysAgo)::int[]) WITH ORDINALITY AS x(d, n)),
            people AS (
                INSERT INTO registry.residents (id, name, name_pinyin, sex, birth_date, division, pseudonym)
                SELECT gen_random_uuid(), '病例' || n, 'bingli', \(sex)::int2, \(born)::date, \(division), md5(random()::text)
                FROM input RETURNING id, name
            )
            INSERT INTO records.entries (id, resident_id, facility, kind, code, certainty, effective_at)
            SELECT gen_random_uuid(), p.id, \(facility), 'diagnosis', \(code), 'confirmed', now() - make_interval(days => i.d::int)
            FROM people p JOIN input i ON p.name = '病例' || i.n
            """, logger: TestDatabase.logger)
    }
}

/// The analyst's side over HTTP: counts with suppression, the de-identified line list and its
/// data classes, exports audited, case review, signals and the aberration endpoint.
@Suite(needsDatabase) struct SurveillanceAPITests {
    static let facility = "5201020001"
    static var today: String { CaseFilter.format(CaseFilter.today()) }
    static var yearAgo: String { CaseFilter.format(CaseFilter.today().addingTimeInterval(-300 * 86_400)) }

    func exports(_ app: TestApp) async throws -> Int {
        try await app.count("SELECT count(*) FROM access.audit_log WHERE action = 'surveillance.export' AND outcome = 'success'")
    }

    @Test func aDocumentOverTheAPIMakesACaseAndTheAnalystSeesItWithoutWhoItIs() async throws {
        try await withTestApp { app in
            try await app.addFacilities(Self.facility)
            let his = try await app.token(role: .his, facility: Self.facility)
            let patient = residentIDNumber("520103", "19900307", 447)
            // Scarlet fever diagnosed; a measles diagnosis the document rules out (negated) is no case.
            let refuted = """
                <entry><observation classCode="OBS" moodCode="EVN" negationInd="true">
                  <code code="DE05.01.024.00" codeSystem="2.16.156.10011.2.2.1" displayName="诊断代码"/>
                  <value xsi:type="CD" code="B05.9" codeSystem="2.16.156.10011.2.3.3.11" displayName="麻疹"/>
                </observation></entry>
                """
            let xml = CDASamples.document(patientId: patient, extraBody: refuted).replacingOccurrences(
                of: "<value xsi:type=\"CD\" code=\"E11.9\" codeSystem=\"2.16.156.10011.2.3.3.11\" displayName=\"2型糖尿病\"",
                with: "<effectiveTime><low value=\"20261128080000+0800\"/></effectiveTime>"
                    + "<value xsi:type=\"CD\" code=\"A38\" codeSystem=\"2.16.156.10011.2.3.3.11\" displayName=\"猩红热\"")
            #expect(try await app.submit(his, xml).status == .created)
            // The problem's onset (effectiveTime/low) is the case's onset.
            #expect(
                try await app.count(
                    "SELECT count(*) FROM surveillance.cases WHERE disease = 'scarlet-fever' AND sex = 1 AND onset_date = '2026-11-28'")
                    == 1)
            #expect(try await app.count("SELECT count(*) FROM surveillance.cases") == 1)
            let caseID = try #require(
                try await app.postgres.query("SELECT id::text, resident_id::text FROM surveillance.cases", logger: TestDatabase.logger)
                    .collect().first?.decode((String, String).self))

            let analyst = try await app.token(role: .analyst)
            let before = try await exports(app)
            let list = try await app.request(.get, "/api/v1/surveillance/cases?from=\(Self.yearAgo)&to=\(Self.today)", token: analyst)
            #expect(list.status == .ok)
            let body = String(buffer: list.body)
            let row = try #require((list.json["cases"] as? [[String: Any]])?.first)
            #expect(row["disease"] as? String == "scarlet-fever" && row["diseaseName"] as? String == "猩红热")
            #expect(row["sex"] as? String == "male" && (row["ageBand"] as? String)?.contains("-") == true)
            #expect((row["pseudonym"] as? String)?.count == 32 && row["caseId"] as? String == caseID.0)
            for secret in ["张三", patient, "MRN-0001", "13985012345", caseID.1] { #expect(!body.contains(secret), "\(secret) leaked") }
            #expect(try await exports(app) == before + 1)

            // Red fields are never exported; gray ones need an approval naming them.
            for field in ["name", "idNumber", "phone", "address", "facilityPatientId", "birthDate"] {
                let refused = try await app.request(.get, "/api/v1/surveillance/cases?fields=disease,\(field)", token: analyst)
                #expect(refused.status == .forbidden && refused.problemCode == "restricted-field", "\(field)")
            }
            let gray = try await app.request(.get, "/api/v1/surveillance/cases?fields=caseId,reportingFacility,ageYears", token: analyst)
            #expect(gray.status == .forbidden && gray.problemCode == "restricted-field")
            #expect(try await exports(app) == before + 1)
            let analystID = try #require(
                try await app.postgres.query(
                    "SELECT id FROM access.clients WHERE role = 'analyst' ORDER BY created_at DESC LIMIT 1", logger: TestDatabase.logger
                ).collect().first?.decode(String.self))
            let admin = try await app.token(role: .admin)
            let expires = Date().addingTimeInterval(30 * 86_400).formatted(.iso8601)
            let redApproval = try await app.request(
                .post, "/api/v1/surveillance/approvals", token: admin,
                json: #"{"client": "\#(analystID)", "fields": ["name"], "purpose": "x", "expiresAt": "\#(expires)"}"#)
            #expect(redApproval.status == .unprocessableContent)
            let approval = try await app.request(
                .post, "/api/v1/surveillance/approvals", token: admin,
                json:
                    #"{"client": "\#(analystID)", "fields": ["reportingFacility", "ageYears"], "purpose": "暴发调查", "expiresAt": "\#(expires)"}"#
            )
            #expect(approval.status == .created)
            let selfApproval = try await app.request(
                .post, "/api/v1/surveillance/approvals", token: analyst,
                json: #"{"client": "\#(analystID)", "fields": ["ageYears"], "purpose": "x", "expiresAt": "\#(expires)"}"#)
            #expect(selfApproval.status == .forbidden)
            let approved = try await app.request(
                .get, "/api/v1/surveillance/cases?fields=caseId,reportingFacility,ageYears&from=\(Self.yearAgo)", token: analyst)
            #expect(approved.status == .ok)
            let approvedRow = try #require((approved.json["cases"] as? [[String: Any]])?.first)
            #expect(approvedRow["reportingFacility"] as? String == Self.facility && approvedRow["ageYears"] as? String != nil)
            let csv = try await app.request(
                .get, "/api/v1/surveillance/cases?from=\(Self.yearAgo)", token: analyst, headers: [.accept: "text/csv"])
            #expect(csv.headers[.contentType]?.hasPrefix("text/csv") == true)
            #expect(String(buffer: csv.body).hasPrefix("caseId,pseudonym,disease,"))
            #expect(try await exports(app) == before + 3)

            // No other route shows the analyst a resident.
            let resident = caseID.1
            let item = try #require(
                try await app.postgres.query("SELECT id::text FROM records.entries LIMIT 1", logger: TestDatabase.logger).collect().first?
                    .decode(String.self))
            for path in [
                "/api/v1/residents?name=张三", "/api/v1/residents/\(resident)", "/api/v1/residents/\(resident)/record",
                "/api/v1/residents/\(resident)/identifiers", "/api/v1/residents/\(resident)/history", "/api/v1/residents/\(resident)/cards",
                "/api/v1/residents/\(resident)/reports", "/api/v1/residents/\(resident)/readings", "/api/v1/record/items/\(item)",
                "/fhir/r4/Patient/\(resident)", "/fhir/r4/Patient?identifier=urn:qianyun:document:resident-id%7C\(patient)",
                "/fhir/r4/Patient/\(resident)/$everything",
                "/fhir/r4/Condition?patient=\(resident)", "/fhir/r4/Observation?patient=\(resident)",
                "/api/v1/identifiers/\(Self.facility)/MRN-0001", "/api/v1/interop/messages", "/api/v1/enrolments?resident=\(resident)",
                "/api/v1/alerts", "/api/v1/bookings?patient=\(resident)", "/api/v1/consultations",
            ] {
                let response = try await app.request(.get, path, token: analyst)
                #expect(response.status == .forbidden, "\(path): \(response.status)")
                let text = String(buffer: response.body)
                #expect(!text.contains("张三") && !text.contains(patient) && !text.contains("MRN-0001"), "\(path)")
            }
            // And a hospital's token reads no surveillance export.
            #expect(try await app.request(.get, "/api/v1/surveillance/counts", token: his).status == .forbidden)
            #expect(try await app.request(.get, "/api/v1/surveillance/cases", token: his).status == .forbidden)
        }
    }

    @Test func countsAreFilteredGroupedSuppressedSoNoSmallCellFollowsFromTheTotalsAndExportedAsCSV() async throws {
        try await withTestApp { app in
            try await app.addFacilities(Self.facility)
            // Influenza and measles in three Guiyang districts (the small ones in a rectangle that
            // protects itself), scarlet fever in two Qianxinan counties (one small, needing a partner).
            try await app.seedReports("J10.1", division: "520102", daysAgo: Array(repeating: 3, count: 12))
            try await app.seedReports("J11", division: "520103", daysAgo: [4, 5, 6])
            try await app.seedReports("J09", division: "520111", daysAgo: [1, 2, 3, 4], sex: 2, born: "2020-01-01")
            try await app.seedReports("B05", division: "520102", daysAgo: [2, 2, 3, 3, 4, 9])
            try await app.seedReports("B05.9", division: "520103", daysAgo: [8, 9])
            try await app.seedReports("B05.9", division: "520111", daysAgo: [8])
            try await app.seedReports("A38", division: "522301", daysAgo: [1, 2, 3, 4, 5, 6])
            try await app.seedReports("A38", division: "522302", daysAgo: [1, 2, 3])
            let analyst = try await app.token(role: .analyst)
            let range = "from=\(Self.yearAgo)&to=\(Self.today)"
            let response = try await app.request(.get, "/api/v1/surveillance/counts?groupBy=disease,division&\(range)", token: analyst)
            #expect(response.status == .ok)
            #expect(response.json["threshold"] as? Int == 5 && response.json["divisionLevel"] as? String == "county")
            let cells = try #require(response.json["cells"] as? [[String: Any]])
            func cell(_ disease: String, _ division: String) -> [String: Any]? {
                cells.first { $0["disease"] as? String == disease && $0["division"] as? String == division }
            }
            #expect(cell("influenza", "520102")?["count"] as? Int == 12 && cell("influenza", "520102")?["suppressed"] as? Bool == false)
            #expect(cell("influenza", "520102")?["divisionName"] as? String == "南明区")
            #expect(cell("influenza", "520102")?["diseaseName"] as? String == "流行性感冒")
            for small in [
                ("influenza", "520103"), ("influenza", "520111"), ("measles", "520103"), ("measles", "520111"), ("scarlet-fever", "522302"),
            ] {
                #expect(cell(small.0, small.1)?["suppressed"] as? Bool == true && cell(small.0, small.1)?["count"] is NSNull)
            }
            // Rates per 100,000 registered residents of the county.
            let population = try await app.count("SELECT count(*) FROM registry.residents WHERE division = '520102'")
            #expect(cell("influenza", "520102")?["population"] as? Int == population)
            let rate = try #require(cell("influenza", "520102")?["rate"] as? Double)
            #expect(abs(rate - 12 * 100_000 / Double(population)) < 0.01)
            // An attacker with the visible cells, row and column totals and the grand total learns no hidden cell.
            let margins = try #require(response.json["margins"] as? [String: [[String: Any]]])
            func totals(_ name: String) -> [String: Int?] {
                Dictionary(uniqueKeysWithValues: (margins[name] ?? []).map { ($0[name] as! String, $0["count"] as? Int) })
            }
            let total = (response.json["total"] as? [String: Any])?["count"] as? Int
            #expect(total == 37)
            // Scarlet fever's 3 alone in its row would follow from the row total: its 6 is hidden too.
            #expect(cell("scarlet-fever", "522301")?["suppressed"] as? Bool == true)
            let keys = cells.map { [$0["disease"] as! String, $0["division"] as! String] }
            let values = cells.map { $0["count"] as? Int }
            #expect(values.filter { $0 == nil }.count >= 2)
            #expect(
                SuppressionTests.attack(keys: keys, values: values, margins: [totals("disease"), totals("division")], total: total).isEmpty)

            // Filters: a prefecture, one disease, by ISO week; a classification with no cases; age and sex.
            let weekly = try await app.request(
                .get, "/api/v1/surveillance/counts?groupBy=week&disease=influenza&division=5201&\(range)", token: analyst)
            let weeks = try #require(weekly.json["cells"] as? [[String: Any]])
            #expect(weeks.allSatisfy { ($0["week"] as? String)?.contains("-W") == true })
            #expect((weekly.json["total"] as? [String: Any])?["count"] as? Int == 19)
            let suspected = try await app.request(.get, "/api/v1/surveillance/counts?classification=suspected&\(range)", token: analyst)
            #expect((suspected.json["total"] as? [String: Any])?["count"] as? Int == 0)
            let ages = try await app.request(
                .get, "/api/v1/surveillance/counts?groupBy=ageGroup,sex&disease=influenza&\(range)", token: analyst)
            let ageCells = try #require(ages.json["cells"] as? [[String: Any]])
            // Four girls under ten are hidden; then the 15 men follow from the total, so they are hidden too.
            #expect(
                ageCells.contains {
                    $0["ageGroup"] as? String == "35-39" && $0["sex"] as? String == "male" && $0["suppressed"] as? Bool == true
                })
            #expect((ages.json["total"] as? [String: Any])?["count"] as? Int == 19)
            #expect(
                ageCells.contains {
                    $0["ageGroup"] as? String == "5-9" && $0["sex"] as? String == "female" && $0["suppressed"] as? Bool == true
                })
            let prefectures = try await app.request(
                .get, "/api/v1/surveillance/counts?groupBy=division&divisionLevel=prefecture&\(range)", token: analyst)
            let prefectureCells = try #require(prefectures.json["cells"] as? [[String: Any]])
            #expect(prefectureCells.contains { $0["division"] as? String == "5201" && $0["count"] as? Int == 28 })
            #expect(prefectureCells.contains { $0["division"] as? String == "5223" && $0["divisionName"] as? String == "黔西南布依族苗族自治州" })

            // CSV with the same cells.
            let csv = try await app.request(
                .get, "/api/v1/surveillance/counts?groupBy=disease,division&\(range)", token: analyst, headers: [.accept: "text/csv"])
            let lines = String(buffer: csv.body).split(separator: "\r\n")
            #expect(lines.first == "disease,diseaseName,division,divisionName,count,suppressed,population,ratePer100k")
            #expect(lines.count == cells.count + 1)
            #expect(lines.contains { $0.hasPrefix("influenza,流行性感冒,520102,南明区,12,false,") })
            #expect(lines.contains { $0.hasPrefix("influenza,流行性感冒,520103,云岩区,,true,") })

            // Bad queries are named and not audited as exports.
            let before = try await exports(app)
            for (query, field) in [
                ("groupBy=disease,colour", "groupBy"), ("from=2026-02-30", "from"), ("disease=nope", "disease"), ("division=5", "division"),
                ("dateBasis=admission", "dateBasis"), ("from=2026-05-01&to=2026-04-01", "from"),
                ("classification=probable", "classification"),
                ("groupBy=disease,division,sex,day,week", "groupBy"),
            ] {
                let refused = try await app.request(.get, "/api/v1/surveillance/counts?\(query)", token: analyst)
                #expect(refused.status == .unprocessableContent, "\(query)")
                #expect(((refused.json["errors"] as? [[String: Any]])?.first?["field"] as? String) == field, "\(query)")
            }
            #expect(try await exports(app) == before)
        }
    }

    @Test func reportsOfOneResidentArrivingAtOnceMakeOneCase() async throws {
        try await withTestApp { app in
            try await app.addFacilities(Self.facility, "5201020002")
            try await app.seedReports("Z00", division: "520102", daysAgo: [0])
            let resident = try #require(
                try await app.postgres.query("SELECT id FROM registry.residents LIMIT 1", logger: TestDatabase.logger).collect().first?
                    .decode(UUID.self))
            // Twelve diagnoses of tuberculosis from two hospitals, each in its own transaction, at once.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in 0..<12 {
                    group.addTask {
                        let facility = n % 2 == 0 ? Self.facility : "5201020002"
                        let certainty = n % 3 == 0 ? "suspected" : "confirmed"
                        try await app.postgres.query(
                            """
                            INSERT INTO records.entries (id, resident_id, facility, kind, code, certainty, effective_at)
                            VALUES (gen_random_uuid(), \(resident), \(facility), 'diagnosis', 'A15.0', \(certainty), now())
                            """, logger: TestDatabase.logger)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await app.count("SELECT count(*) FROM surveillance.cases WHERE disease = 'tuberculosis-pulmonary'") == 1)
            #expect(try await app.count("SELECT count(*) FROM surveillance.case_events") == 12)
            #expect(try await app.count("SELECT count(*) FROM surveillance.case_events WHERE effect = 'created'") == 1)
            // Tuberculosis names a confirming result, so a confirmed diagnosis is a clinical case.
            #expect(try await app.count("SELECT count(*) FROM surveillance.cases WHERE classification = 'clinical'") == 1)
        }
    }

    @Test func mangledQueriesAndBodiesGetClearErrorsNeverA5xx() async throws {
        try await withTestApp { app in
            try await app.addFacilities(Self.facility)
            try await app.seedReports("J10", division: "520102", daysAgo: [1, 2, 3])
            let analyst = try await app.token(role: .analyst)
            var generator = SplitMix(seed: 8)
            let pieces = [
                "groupBy=", "disease=", "division=", "from=", "to=", "dateBasis=", "classification=", "limit=", "cursor=", "fields=",
                "divisionLevel=", "includeExcluded=", "week", "day", "sex", "5201", "52", "2026-13-01", "-1", "%00", "%E4%B8%AD", "'; DROP",
                "influenza", ",", "&", "999999999999999999999", "true", "onset", "county", "caseId", "name",
            ]
            for n in 0..<150 {
                let query = (0..<Int.random(in: 1...6, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
                let path = ["counts", "cases", "timeliness", "signals"][n % 4]
                let response = try await app.request(.get, "/api/v1/surveillance/\(path)?\(query)", token: analyst)
                #expect(response.status.code < 500, "\(path)?\(query): \(response.status)")
            }
            let bodies = [
                "", "{", "[]", "null", #"{"method": "C1"}"#, #"{"method": "C1", "counts": []}"#,
                #"{"method": "CUSUM", "counts": [1, 2], "range": [1, 2]}"#,
                #"{"method": "CIDARS", "counts": [1, 2, 3]}"#, #"{"method": "C1", "counts": [1e99]}"#,
                #"{"method": "C1", "counts": [1, 2], "range": [2, 1]}"#,
                #"{"method": "C3", "counts": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "range": [13, 13]}"#,
                #"{"method": "CUSUM", "counts": [0, 0, 0, 5], "range": [2, 4], "k": -1e308, "h": 1e308}"#,
                #"{"method": "C1", "counts": [1, 2, 3, 4, 5, 6, 7, 8, 9], "range": [9, 9], "baseline": 99999999999}"#,
            ]
            for body in bodies {
                let response = try await app.request(.post, "/api/v1/surveillance/aberration", token: analyst, json: body)
                #expect(response.status.code < 500, "\(body): \(response.status)")
            }
            for body in ["", "{", #"{"status": 5}"#, #"{"status": "new"}"#] {
                let response = try await app.request(.post, "/api/v1/surveillance/signals/\(UUID())/status", token: analyst, json: body)
                #expect(response.status.code < 500, "\(body): \(response.status)")
            }
            #expect(try await app.request(.get, "/api/v1/surveillance/counts", token: analyst).status == .ok)
        }
    }

    @Test func reviewConfirmsOrExcludesWithANoteAndExcludedCasesLeaveTheCounts() async throws {
        try await withTestApp { app in
            try await app.addFacilities(Self.facility)
            try await app.seedReports("A09", division: "520102", daysAgo: [1, 1, 2, 2, 3, 3])
            let analyst = try await app.token(role: .analyst)
            let ids = try await app.postgres.query("SELECT id::text FROM surveillance.cases ORDER BY id", logger: TestDatabase.logger)
                .collect().map { try $0.decode(String.self) }
            #expect(ids.count == 6)
            let confirm = try await app.request(
                .post, "/api/v1/surveillance/cases/\(ids[0])/review", token: analyst, json: #"{"decision": "confirmed"}"#)
            #expect(confirm.status == .ok && confirm.json["reviewStatus"] as? String == "confirmed")
            let again = try await app.request(
                .post, "/api/v1/surveillance/cases/\(ids[0])/review", token: analyst, json: #"{"decision": "confirmed"}"#)
            #expect(again.status == .conflict && again.problemCode == "already-reviewed")
            let noNote = try await app.request(
                .post, "/api/v1/surveillance/cases/\(ids[1])/review", token: analyst, json: #"{"decision": "excluded"}"#)
            #expect(noNote.status == .unprocessableContent)
            let excluded = try await app.request(
                .post, "/api/v1/surveillance/cases/\(ids[1])/review", token: analyst,
                json: #"{"decision": "excluded", "note": "复核为非感染性腹泻，误诊"}"#)
            #expect(excluded.status == .ok)
            for body in [
                #"{"decision": "maybe"}"#, #"{"decision": 1}"#, "{",
                #"{"decision": "excluded", "note": "\#(String(repeating: "x", count: 2001))"}"#,
            ] {
                let bad = try await app.request(.post, "/api/v1/surveillance/cases/\(ids[2])/review", token: analyst, json: body)
                #expect([.badRequest, .unprocessableContent].contains(bad.status), "\(body)")
            }
            #expect(
                try await app.request(
                    .post, "/api/v1/surveillance/cases/\(UUID())/review", token: analyst, json: #"{"decision": "confirmed"}"#
                )
                .status == .notFound)
            let his = try await app.token(role: .his, facility: Self.facility)
            #expect(
                try await app.request(.post, "/api/v1/surveillance/cases/\(ids[2])/review", token: his, json: #"{"decision": "confirmed"}"#)
                    .status == .forbidden)
            #expect(try await app.count("SELECT count(*) FROM surveillance.cases WHERE review_status = 'reported'") == 4)
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE action = 'surveillance.case.review'") == 2)
            let counts = try await app.request(.get, "/api/v1/surveillance/counts?from=\(Self.yearAgo)", token: analyst)
            #expect((counts.json["total"] as? [String: Any])?["count"] as? Int == 5)
            let all = try await app.request(.get, "/api/v1/surveillance/counts?from=\(Self.yearAgo)&includeExcluded=true", token: analyst)
            #expect((all.json["total"] as? [String: Any])?["count"] as? Int == 6)
            // Timeliness: every case here reached the record days after its diagnosis, so all are late.
            let timeliness = try await app.request(
                .get, "/api/v1/surveillance/timeliness?groupBy=disease&from=\(Self.yearAgo)", token: analyst)
            let row = try #require((timeliness.json["rows"] as? [[String: Any]])?.first)
            #expect(row["key"] as? String == "infectious-diarrhoea" && row["cases"] as? Int == 5 && row["limitHours"] as? Int == 24)
            // Exactly 24 hours is within the limit; more is late.
            let late = try await app.count(
                "SELECT count(*) FROM surveillance.cases WHERE review_status <> 'excluded' AND delay_minutes > limit_hours * 60")
            #expect(row["late"] as? Int == late && late >= 3)
            #expect(try await app.count("SELECT count(*) FROM surveillance.cases WHERE delay_minutes = 1440") == 2)
        }
    }

    @Test func signalsAreRaisedOnceFollowedThroughTheirLifecycleAndNotifyTheCounty() async throws {
        try await withTestApp { app in
            try await app.addFacilities(Self.facility)
            // A quiet fortnight of hand, foot and mouth disease in one county, then 12 cases today.
            try await app.seedReports("B08.4", division: "520111", daysAgo: [4, 6, 6, 7, 8, 9, 9, 11, 12, 13])
            try await app.seedReports("B08.4", division: "520111", daysAgo: Array(repeating: 0, count: 12))
            let analyst = try await app.token(role: .analyst)
            let run = try await app.request(.post, "/api/v1/surveillance/signals/run", token: analyst, json: "{}")
            #expect(run.status == .ok)
            #expect(run.json["series"] as? Int == 1 && (run.json["alarms"] as? Int ?? 0) >= 1)
            let list = try await app.request(.get, "/api/v1/surveillance/signals", token: analyst)
            let signals = try #require(list.json["signals"] as? [[String: Any]])
            let c2 = try #require(signals.first { $0["method"] as? String == "C2" })
            #expect(c2["disease"] as? String == "hfmd" && c2["division"] as? String == "520111" && c2["status"] as? String == "new")
            #expect(c2["observed"] as? Int == 12 && c2["lastAlarmOn"] as? String == Self.today && c2["divisionName"] as? String == "花溪区")
            #expect(
                try await app.count("SELECT count(*) FROM surveillance.outbox WHERE topic = 'signal.raised' AND division = '520111'")
                    == signals.count)
            // Running again adds nothing.
            let rerun = try await app.request(
                .post, "/api/v1/surveillance/signals/run", token: analyst, json: #"{"date": "\#(Self.today)"}"#)
            #expect(rerun.json["signalsRaised"] as? Int == 0)
            #expect(try await app.count("SELECT count(*) FROM surveillance.signals") == signals.count)
            // Its series: 56 days, today's alarm marked, small days suppressed.
            let id = try #require(c2["id"] as? String)
            let detail = try await app.request(.get, "/api/v1/surveillance/signals/\(id)", token: analyst)
            let series = try #require(detail.json["series"] as? [[String: Any]])
            #expect(series.count == 56)
            #expect(series.last?["alarm"] as? Bool == true && series.last?["count"] as? Int == 12)
            #expect(series.contains { $0["suppressed"] as? Bool == true })
            #expect(
                try await app.count(
                    "SELECT count(*) FROM access.audit_log WHERE action = 'surveillance.export' AND resource LIKE 'surveillance/signal%'")
                    == 2)
            // new → investigating → confirmed, with notes; no way back.
            let closeEarly = try await app.request(
                .post, "/api/v1/surveillance/signals/\(id)/status", token: analyst, json: #"{"status": "confirmed", "note": "x"}"#)
            #expect(closeEarly.status == .conflict && closeEarly.problemCode == "invalid-transition")
            let investigating = try await app.request(
                .post, "/api/v1/surveillance/signals/\(id)/status", token: analyst,
                json: #"{"status": "investigating", "note": "已通知花溪区疾控"}"#)
            #expect(investigating.status == .ok && investigating.json["status"] as? String == "investigating")
            let noNote = try await app.request(
                .post, "/api/v1/surveillance/signals/\(id)/status", token: analyst, json: #"{"status": "confirmed"}"#)
            #expect(noNote.status == .unprocessableContent)
            let confirmed = try await app.request(
                .post, "/api/v1/surveillance/signals/\(id)/status", token: analyst, json: #"{"status": "confirmed", "note": "幼儿园聚集性疫情"}"#)
            #expect(confirmed.status == .ok && (confirmed.json["notes"] as? [[String: Any]])?.count == 2)
            #expect(
                try await app.request(
                    .post, "/api/v1/surveillance/signals/\(id)/status", token: analyst, json: #"{"status": "dismissed", "note": "x"}"#
                )
                .status == .conflict)
            #expect(try await app.request(.get, "/api/v1/surveillance/signals/\(UUID())", token: analyst).status == .notFound)
            let his = try await app.token(role: .his, facility: Self.facility)
            #expect(try await app.request(.post, "/api/v1/surveillance/signals/run", token: his, json: "{}").status == .forbidden)
            #expect(try await app.request(.get, "/api/v1/surveillance/signals", token: his).status == .forbidden)
            // A confirmed signal's days do not raise another signal when the job runs again.
            let third = try await app.request(.post, "/api/v1/surveillance/signals/run", token: analyst, json: "{}")
            #expect(third.json["signalsRaised"] as? Int == 0)
        }
    }

    @Test func theAberrationEndpointAnswersAsTheLibraryAndRefusesBadInput() async throws {
        try await withTestApp { app in
            let analyst = try await app.token(role: .analyst)
            let counts = [3, 5, 2, 4, 6, 3, 4, 5, 2, 3, 4, 15, 4, 3]
            for method in ["C1", "C2", "C3", "CUSUM"] {
                let response = try await app.request(
                    .post, "/api/v1/surveillance/aberration", token: analyst,
                    json:
                        #"{"method": "\#(method)", "counts": \#(counts), "range": [13, 14], "baseline": 7, "alpha": 0.001, "k": 1.04, "h": 2.26, "m": null}"#
                )
                #expect(response.status == .ok, "\(method)")
                let points = try #require(response.json["points"] as? [[String: Any]])
                #expect(points.map { $0["index"] as? Int } == [13, 14], "\(method)")
                #expect(points.map { $0["observed"] as? Int } == [4, 3], "\(method)")
            }
            let c1 = try await app.request(
                .post, "/api/v1/surveillance/aberration", token: analyst,
                json: #"{"method": "C1", "counts": \#(counts), "range": [12, 12]}"#)
            let point = try #require((c1.json["points"] as? [[String: Any]])?.first)
            let baseline = counts[4..<11].map(Double.init)
            let mean = baseline.reduce(0, +) / 7
            let sd = (baseline.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 6).squareRoot()
            #expect(abs((point["upperbound"] as? Double ?? 0) - (mean + 3.090232306167813 * sd)) < 1e-6)
            #expect(point["alarm"] as? Bool == true)
            for (body, field) in [
                (#"{"method": "C4", "counts": [1, 2]}"#, "method"), (#"{"method": "C1", "counts": [1, 2], "range": [1, 2]}"#, "range"),
                (#"{"method": "C1", "counts": [1, -2, 3, 4, 5, 6, 7, 8, 9], "range": [9, 9]}"#, "counts"),
                (#"{"method": "C1", "counts": [1, 2, 3, 4, 5, 6, 7, 8, 9], "range": [9, 10]}"#, "range"),
                (#"{"method": "C1", "counts": [1, 2, 3, 4, 5, 6, 7, 8, 9], "range": [9, 9], "alpha": 1.5}"#, "alpha"),
            ] {
                let refused = try await app.request(.post, "/api/v1/surveillance/aberration", token: analyst, json: body)
                #expect(refused.status == .unprocessableContent, "\(body)")
                #expect(((refused.json["errors"] as? [[String: Any]])?.first?["field"] as? String) == field, "\(body)")
            }
            #expect(
                try await app.request(.post, "/api/v1/surveillance/aberration", token: analyst, json: #"{"method": "C1", "counts": "x"}"#)
                    .status
                    == .badRequest)
        }
    }
}
