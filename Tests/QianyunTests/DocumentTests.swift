import Access
import ClinicalXML
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing

extension TestApp {
    func submit(_ token: String, _ xml: String, type: String = "application/xml") async throws -> TestResponse {
        try await client.execute(
            uri: "/api/v1/documents", method: .post, headers: [.authorization: "Bearer \(token)", .contentType: type],
            body: ByteBuffer(string: xml))
    }

    func read(_ path: String, _ token: String, breakGlass: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [.authorization: "Bearer \(token)"]
        if let breakGlass { headers[HTTPField.Name("X-Break-Glass-Reason")!] = breakGlass }
        return try await client.execute(uri: path, method: .get, headers: headers)
    }
}

extension TestResponse {
    var document: [String: Any] { json["document"] as? [String: Any] ?? [:] }
}

/// Clinical documents over HTTP against PostgreSQL: filing, the schema's verdict, hostile XML,
/// versions, and who may read them.
@Suite(needsDatabase) struct DocumentTests {
    static var schemaOverrides: [String: String] {
        CDASamples.schemaAvailable ? ["QIANYUN_CDA_SCHEMA": CDASamples.schemaPath] : [:]
    }

    static let patient = residentIDNumber("520102", "19900307", 447)

    @Test func aDocumentIsFiledWithItsPatientAndItemsAndReadBackByteForByte() async throws {
        try await withTestApp(Self.schemaOverrides) { app in
            try await app.addFacilities("H1")
            let his = try await app.token(role: .his, facility: "H1")
            let xml = CDASamples.document(patientId: Self.patient)
            let filed = try await app.submit(his, xml)
            #expect(filed.status == .created)
            #expect(filed.json["status"] as? String == "created" && filed.json["entries"] as? Int == 2)
            #expect(filed.json["patient"] as? String == "created")
            let id = try #require(filed.document["id"] as? String)
            #expect(filed.document["schemaValid"] as? Bool == true || !CDASamples.schemaAvailable)
            #expect(filed.document["version"] as? Int == 1 && filed.document["current"] as? Bool == true)
            #expect(filed.headers[.location] == "/api/v1/documents/\(id)")
            #expect(try await app.count("SELECT count(*) FROM records.documents") == 1)
            #expect(
                try await app.count("SELECT count(*) FROM records.entries WHERE kind = 'diagnosis' AND code = 'E11.9' AND current") == 1)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM records.entries WHERE kind = 'observation' AND code = '1558-6' AND value_number = 7.8 "
                        + "AND unit = 'mmol/L' AND abnormal_flag = 'H' AND reference_range = '3.9–6.1 mmol/L'") == 1)
            // The patient went through the matcher and is linked to the facility's own id.
            #expect(try await app.count("SELECT count(*) FROM registry.identifiers WHERE facility = 'H1' AND local_id = 'MRN-0001'") == 1)
            // The original is sealed at rest, and comes back exactly as sent.
            #expect(
                try await app.count(
                    "SELECT count(*) FROM records.documents WHERE position(convert_to('张三', 'UTF8') IN raw_ciphertext) > 0") == 0)
            let content = try await app.read("/api/v1/documents/\(id)/content", his)
            #expect(content.status == .ok && Array(content.body.readableBytesView) == Array(xml.utf8))
            #expect(try await app.read("/api/v1/documents/\(id)", his).json["title"] as? String == "门诊病历")

            // The same bytes again: the document on file, nothing added.
            let again = try await app.submit(his, xml)
            #expect(again.status == .ok && again.json["status"] as? String == "duplicate" && again.document["id"] as? String == id)
            // The same id with other content is a conflict, not an overwrite.
            let changed = try await app.submit(his, xml.replacingOccurrences(of: "7.8", with: "7.9"))
            #expect(changed.status == .conflict && changed.json["type"] as? String == "urn:qianyun:problem:document-id-conflict")
            #expect(try await app.count("SELECT count(*) FROM records.documents") == 1)
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE action = 'record.document.create'") == 1)

            // A second document for the same facility patient finds the same resident.
            let second = try await app.submit(his, CDASamples.document(id: "DOC-2", setId: "SET-2", patientId: Self.patient))
            #expect(second.json["patient"] as? String == "existing")
            #expect(second.document["residentId"] as? String == filed.document["residentId"] as? String)
        }
    }

    @Test(.enabled(if: CDASamples.schemaAvailable, "the CDA schema in ../shared/corpora/cda is not here"))
    func aDocumentFailingTheSchemaIsFiledFlaggedUnlessItsSenderIsStrict() async throws {
        try await withTestApp(Self.schemaOverrides) { app in
            try await app.addFacilities("H1")
            let his = try await app.token(role: .his, facility: "H1")
            let wrong = CDASamples.document(patientId: Self.patient, extraHeader: "<notACDAElement/>")
            let filed = try await app.submit(his, wrong)
            #expect(filed.status == .created && filed.document["schemaValid"] as? Bool == false)
            let findings = try #require(filed.document["findings"] as? [[String: Any]])
            #expect(!findings.isEmpty && findings.allSatisfy { ($0["line"] as? Int ?? 0) > 1 })

            try await app.postgres.query("INSERT INTO records.document_policies (facility, strict_schema) VALUES ('H1', true)")
            let refused = try await app.submit(
                his, CDASamples.document(id: "DOC-2", patientId: Self.patient, extraHeader: "<notACDAElement/>"))
            #expect(refused.status == .unprocessableContent && refused.json["type"] as? String == "urn:qianyun:problem:schema-invalid")
            let listed = try #require(refused.json["findings"] as? [[String: Any]])
            #expect(listed.contains { ($0["message"] as? String ?? "").contains("notACDAElement") && ($0["line"] as? Int ?? 0) > 1 })
            #expect(try await app.count("SELECT count(*) FROM records.documents") == 1)
        }
    }

    @Test func hostileOrMalformedXMLIsRefusedAndChangesNothing() async throws {
        try await withTestApp(Self.schemaOverrides) { app in
            try await app.addFacilities("H1")
            let his = try await app.token(role: .his, facility: "H1")
            let xxe =
                "<?xml version=\"1.0\"?><!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
                + "<ClinicalDocument xmlns=\"urn:hl7-org:v3\">&x;</ClinicalDocument>"
            let refused = try await app.submit(his, xxe)
            #expect(refused.status == .badRequest && refused.json["type"] as? String == "urn:qianyun:problem:xml-doctype-refused")
            #expect(!(refused.json["detail"] as? String ?? "").contains("root:"))

            let broken = try await app.submit(his, "<ClinicalDocument xmlns=\"urn:hl7-org:v3\">\n<id>\n</ClinicalDocument>")
            #expect(broken.status == .badRequest && broken.json["type"] as? String == "urn:qianyun:problem:xml-unreadable")
            #expect((broken.json["detail"] as? String ?? "").hasPrefix("line 3"))

            let notCDA = try await app.submit(his, "<note>hello</note>")
            #expect(notCDA.status == .unprocessableContent && notCDA.json["type"] as? String == "urn:qianyun:problem:not-cda")

            let noLocalId = CDASamples.document(patientId: Self.patient).replacingOccurrences(
                of: "<id root=\"2.16.156.10011.1.12\" extension=\"MRN-0001\"/>", with: "")
            let unfiled = try await app.submit(his, noLocalId)
            #expect(unfiled.status == .unprocessableContent && unfiled.json["type"] as? String == "urn:qianyun:problem:validation")

            let json = try await app.submit(his, "{}", type: "application/json")
            #expect(json.status == .unsupportedMediaType)
            // A clinician may read documents but not file them.
            let clinician = try await app.token(role: .clinician, facility: "H1")
            #expect(try await app.submit(clinician, CDASamples.document(patientId: Self.patient)).status == .forbidden)

            #expect(try await app.count("SELECT count(*) FROM records.documents") == 0)
            #expect(try await app.count("SELECT count(*) FROM registry.residents") == 0)
        }
    }

    @Test func aNewVersionReplacesTheCurrentOneAndALateOlderOneStaysInHistory() async throws {
        try await withTestApp(Self.schemaOverrides) { app in
            try await app.addFacilities("H1")
            let his = try await app.token(role: .his, facility: "H1")
            let first = try await app.submit(his, CDASamples.document(id: "V1", setId: "S", version: 1, patientId: Self.patient))
            let second = try await app.submit(his, CDASamples.document(id: "V2", setId: "S", version: 2, patientId: Self.patient))
            #expect(first.status == .created && second.status == .created)
            let v1 = try #require(first.document["id"] as? String)
            let v2 = try #require(second.document["id"] as? String)
            let old = try await app.read("/api/v1/documents/\(v1)", his)
            #expect(old.json["current"] as? Bool == false && old.json["supersededBy"] as? String == v2)
            #expect(try await app.count("SELECT count(*) FROM records.entries WHERE current") == 2)
            #expect(try await app.count("SELECT count(*) FROM records.entries") == 4)
            // Version 1 of the same set arriving late, under another id: kept, not current.
            let late = try await app.submit(his, CDASamples.document(id: "V1-resent", setId: "S", version: 1, patientId: Self.patient))
            #expect(late.status == .created && late.document["current"] as? Bool == false)
            #expect(try await app.count("SELECT count(*) FROM records.documents WHERE current") == 1)
            #expect(try await app.count("SELECT count(*) FROM records.entries WHERE current") == 2)
        }
    }

    @Test func anotherFacilityReadsOnlyWithARelationshipConsentOrBreakingTheGlass() async throws {
        try await withTestApp(Self.schemaOverrides) { app in
            try await app.addFacilities("H1", "H2")
            let h1 = try await app.token(role: .his, facility: "H1")
            let filed = try await app.submit(h1, CDASamples.document(patientId: Self.patient))
            let id = try #require(filed.document["id"] as? String)
            let resident = try #require(filed.document["residentId"] as? String)
            let path = "/api/v1/documents/\(id)"

            let h2 = try await app.token(role: .clinician, facility: "H2")
            let denied = try await app.read(path, h2)
            #expect(denied.status == .forbidden && (denied.json["detail"] as? String ?? "").contains("break-the-glass"))
            #expect(try await app.read(path + "/content", h2, breakGlass: " ").status == .forbidden)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM access.audit_log WHERE action LIKE 'record.document.%' AND outcome = 'denied' AND facility = 'H2'"
                )
                    == 2)

            let emergency = try await app.read(path, h2, breakGlass: "unconscious patient in the emergency room")
            #expect(emergency.status == .ok)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM access.audit_log WHERE action = 'record.document.read' AND purpose = 'break-glass' "
                        + "AND detail = 'break-glass' AND facility = 'H2'") == 1)

            // The resident's consent lets H2 read; revoked, it no longer does. Only the resident gives it.
            let own = try await app.token(role: .patient, resident: resident)
            let consents = "/api/v1/residents/\(resident)/consents"
            #expect(try await app.request(.post, consents, token: h2, json: #"{"facility":"H2"}"#).status == .forbidden)
            #expect(try await app.request(.post, consents, token: own, json: #"{"facility":"NOPE"}"#).status == .unprocessableContent)
            #expect(
                try await app.request(.post, consents, token: own, json: #"{"facility":"H2","expiresAt":"2001-01-01T00:00:00Z"}"#).status
                    == .unprocessableContent)
            let stranger = try await app.token(role: .patient, resident: UUID().uuidString.lowercased())
            #expect(try await app.request(.post, consents, token: stranger, json: #"{"facility":"H2"}"#).status == .forbidden)
            let given = try await app.request(.post, consents, token: own, json: #"{"facility":"H2"}"#)
            #expect(given.status == .created)
            let consentID = try #require(given.json["id"] as? Int)
            #expect(try await app.read(path, h2).status == .ok)
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE detail = 'consent' AND facility = 'H2'") == 1)
            let revoked = try await app.request(.delete, consents + "/\(consentID)", token: own)
            #expect(revoked.status == .ok && revoked.json["revokedAt"] != nil)
            #expect(try await app.read(path, h2).status == .forbidden)
            let listed = try await app.request(.get, consents, token: own)
            #expect((listed.json["items"] as? [[String: Any]])?.count == 1)
            #expect(try await app.request(.delete, consents + "/999999", token: own).status == .notFound)

            // A recent encounter at H2 is a treatment relationship; one long ago is not.
            try await app.postgres.query(
                """
                INSERT INTO records.encounters (id, resident_id, facility, class, status, started_at, source_kind)
                VALUES (gen_random_uuid(), \(UUID(uuidString: resident)!), 'H2', 'outpatient', 'finished', now() - interval '200 days', 'api')
                """)
            #expect(try await app.read(path, h2).status == .forbidden)
            try await app.postgres.query(
                """
                INSERT INTO records.encounters (id, resident_id, facility, class, status, started_at, source_kind)
                VALUES (gen_random_uuid(), \(UUID(uuidString: resident)!), 'H2', 'outpatient', 'finished', now() - interval '3 days', 'api')
                """)
            let related = try await app.read(path, h2)
            #expect(related.status == .ok)
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE detail = 'relationship' AND facility = 'H2'") == 1)

            // The patient reads their own document; another patient does not; nor does an analyst.
            #expect(try await app.read(path + "/content", own).status == .ok)
            let other = try await app.token(role: .patient, resident: UUID().uuidString.lowercased())
            #expect(try await app.read(path, other).status == .forbidden)
            #expect(try await app.read(path, try await app.token(role: .analyst)).status == .forbidden)
            #expect(try await app.read("/api/v1/documents/\(UUID().uuidString)", h1).status == .notFound)
        }
    }

    @Test func theTimelineShowsOwnEntriesAlwaysOthersOnlyWithABasisFilteredAndPaged() async throws {
        try await withTestApp(Self.schemaOverrides) { app in
            try await app.addFacilities("H1", "H2")
            let h1 = try await app.token(role: .his, facility: "H1")
            let h2 = try await app.token(role: .his, facility: "H2")
            let first = try await app.submit(h1, CDASamples.document(id: "T1", setId: "T1", patientId: Self.patient))
            // The same person at H2, under H2's own patient id: the matcher links them by identity number.
            let second = try await app.submit(
                h2,
                CDASamples.document(id: "T2", setId: "T2", patientId: Self.patient).replacingOccurrences(of: "MRN-0001", with: "H2-77"))
            let resident = try #require(first.document["residentId"] as? String)
            #expect(second.document["residentId"] as? String == resident)
            let path = "/api/v1/residents/\(resident)/record"

            func items(_ response: TestResponse) -> [[String: Any]] { response.json["items"] as? [[String: Any]] ?? [] }
            let own = try await app.read(path, h1)
            #expect(own.status == .ok && own.json["scope"] as? String == "own-facility")
            #expect(items(own).count == 3 && items(own).allSatisfy { $0["facility"] as? String == "H1" })
            let full = try await app.read(path, h1, breakGlass: "transfer from the emergency room")
            #expect(full.json["scope"] as? String == "full" && full.json["basis"] as? String == "break-glass" && items(full).count == 6)
            // Newest first: the documents' observations (08:00) come after their documents (09:30).
            let times = items(full).compactMap { $0["time"] as? String }
            #expect(times == times.sorted(by: >))

            let diagnoses = try await app.read(path + "?type=diagnosis&code=E11.9", h1, breakGlass: "emergency")
            #expect(items(diagnoses).count == 2 && items(diagnoses).allSatisfy { $0["type"] as? String == "diagnosis" })
            let atH2 = try await app.read(path + "?facility=H2&type=document", h1, breakGlass: "emergency")
            #expect(items(atH2).count == 1 && items(atH2)[0]["documentId"] as? String == second.document["id"] as? String)
            let later = try await app.read(path + "?from=2026-12-02", h1, breakGlass: "emergency")
            #expect(items(later).isEmpty)

            // Paged two at a time: every item once, in the same order.
            var seen: [String] = []
            var cursor: String?
            repeat {
                let page = try await app.read(path + "?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""), h1, breakGlass: "emergency")
                #expect(page.status == .ok)
                seen += items(page).compactMap { $0["id"] as? String }
                cursor = page.json["nextCursor"] as? String
            } while cursor != nil
            #expect(seen == items(full).compactMap { $0["id"] as? String })

            let patient = try await app.token(role: .patient, resident: resident)
            #expect(try await app.read(path, patient).json["scope"] as? String == "full")

            // The patient's report view: one report per document, the high glucose flagged in words.
            let reports = try await app.read("/api/v1/residents/\(resident)/reports", patient)
            let listed = try #require(reports.json["items"] as? [[String: Any]])
            #expect(listed.count == 2 && listed.allSatisfy { $0["abnormal"] as? Int == 1 && $0["status"] as? String == "final" })
            let result = (listed.first?["results"] as? [[String: Any]])?.first
            #expect(result?["interpretation"] as? String == "偏高" && result?["value"] as? String == "7.8")
            #expect((try await app.read("/api/v1/residents/\(resident)/reports", h1).json["items"] as? [Any])?.count == 1)

            // One item by id: its facility decides who may read it.
            let itemID = try #require(
                items(full).first { $0["facility"] as? String == "H1" && $0["type"] as? String == "diagnosis" }?["id"] as? String)
            let one = try await app.read("/api/v1/record/items/\(itemID)", h1)
            #expect(one.status == .ok && one.json["residentId"] as? String == resident && one.json["code"] as? String == "E11.9")
            #expect(try await app.read("/api/v1/record/items/\(itemID)", h2).status == .forbidden)
            #expect(try await app.read("/api/v1/record/items/\(UUID().uuidString)", h1).status == .notFound)
            #expect(try await app.read(path, try await app.token(role: .analyst)).status == .forbidden)
            #expect(try await app.read("/api/v1/residents/\(UUID().uuidString)/record", h1).status == .notFound)
            #expect(try await app.read(path + "?type=gossip", h1).status == .unprocessableContent)
            #expect(try await app.read(path + "?cursor=nonsense", h1).status == .badRequest)
            #expect(try await app.read(path + "?from=yesterday", h1).status == .unprocessableContent)
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE action = 'record.timeline.read'") >= 10)
        }
    }
}

/// The FHIR R4 view of the record, checked with a FHIR library nobody on the team wrote.
@Suite(needsDatabase) struct FHIRRecordTests {
    @Test func everyRecordResourceIsValidR4AndFollowsTheRecordsAccessRules() async throws {
        try await withTestApp(DocumentTests.schemaOverrides) { app in
            try await app.addFacilities("H1", "H2")
            let his = try await app.token(role: .his, facility: "H1")
            let xml = CDASamples.document(patientId: DocumentTests.patient)
            let filed = try await app.submit(his, xml)
            let resident = try #require(filed.document["residentId"] as? String)
            let residentID = try #require(UUID(uuidString: resident))
            // A visit, a medication and an allergy beside the document's result and diagnosis.
            try await app.postgres.query(
                """
                INSERT INTO records.encounters (id, resident_id, facility, encounter_key, class, status, started_at, ended_at, source_kind)
                VALUES (gen_random_uuid(), \(residentID), 'H1', 'V1', 'inpatient', 'finished', now() - interval '3 days', now(), 'api')
                """)
            try await app.postgres.query(
                """
                INSERT INTO records.entries (id, resident_id, facility, kind, code, code_system, display, status, effective_at)
                VALUES (gen_random_uuid(), \(residentID), 'H1', 'medication', '860975', 'RXNORM', '二甲双胍', 'active', now()),
                       (gen_random_uuid(), \(residentID), 'H1', 'allergy', '7980', 'RXNORM', '青霉素', 'active', now())
                """)

            let everything = try await app.read("/fhir/r4/Patient/\(resident)/$everything", his)
            #expect(everything.status == .ok && everything.headers[.contentType]?.hasPrefix("application/fhir+json") == true)
            let entries = try #require(everything.json["entry"] as? [[String: Any]])
            let resources = entries.compactMap { $0["resource"] as? [String: Any] }
            let types = Set(resources.compactMap { $0["resourceType"] as? String })
            #expect(
                types == ["Encounter", "Condition", "Observation", "MedicationRequest", "AllergyIntolerance", "DocumentReference"],
                "\(types)")
            try FHIRPatientTests().validateFHIR(everything.body, type: "Bundle")
            let glucose = try #require(resources.first { $0["resourceType"] as? String == "Observation" })
            let quantity = glucose["valueQuantity"] as? [String: Any]
            #expect((quantity?["value"] as? NSNumber)?.doubleValue == 7.8 && quantity?["code"] as? String == "mmol/L")
            #expect(
                (glucose["code"] as? [String: Any]).flatMap { ($0["coding"] as? [[String: Any]])?.first?["system"] as? String }
                    == "http://loinc.org")

            for resource in resources {
                let type = try #require(resource["resourceType"] as? String)
                let id = try #require(resource["id"] as? String)
                let read = try await app.read("/fhir/r4/\(type)/\(id)", his)
                #expect(read.status == .ok, "\(type) read")
                try FHIRPatientTests().validateFHIR(read.body, type: type)
                if type == "DocumentReference" {
                    let content = (read.json["content"] as? [[String: Any]])?.first?["attachment"] as? [String: Any]
                    let data = try #require((content?["data"] as? String).flatMap { Data(base64Encoded: $0) })
                    #expect(Array(data) == Array(xml.utf8))
                }
                // The same id under another type is not that resource.
                #expect(try await app.read("/fhir/r4/\(type == "Encounter" ? "Condition" : "Encounter")/\(id)", his).status == .notFound)
            }

            let search = try await app.read("/fhir/r4/Condition?patient=Patient/\(resident)&code=E11.9", his)
            #expect((search.json["entry"] as? [[String: Any]])?.count == 1)
            try FHIRPatientTests().validateFHIR(search.body, type: "Bundle")
            #expect(
                (try await app.read("/fhir/r4/Observation?patient=\(resident)&date=ge2030-01-01", his).json["entry"] as? [Any] ?? [])
                    .isEmpty)

            // Errors are OperationOutcomes; H2 without a basis sees none of H1's entries and may not read them.
            let missing = try await app.read("/fhir/r4/Observation", his)
            #expect(missing.status == .unprocessableContent && missing.json["resourceType"] as? String == "OperationOutcome")
            #expect(try await app.read("/fhir/r4/Observation?patient=\(resident)&colour=red", his).status == .unprocessableContent)
            let h2 = try await app.token(role: .clinician, facility: "H2")
            #expect((try await app.read("/fhir/r4/Observation?patient=\(resident)", h2).json["entry"] as? [Any] ?? []).isEmpty)
            let observationID = try #require(glucose["id"] as? String)
            let denied = try await app.read("/fhir/r4/Observation/\(observationID)", h2)
            #expect(denied.status == .forbidden && denied.json["resourceType"] as? String == "OperationOutcome")
            #expect(try await app.read("/fhir/r4/Observation/\(observationID)", h2, breakGlass: "unconscious on arrival").status == .ok)
            let metadata = try await app.client.execute(uri: "/fhir/r4/metadata", method: .get)
            #expect(String(buffer: metadata.body).contains("\"DocumentReference\""))
            try FHIRPatientTests().validateFHIR(metadata.body, type: "CapabilityStatement")
        }
    }
}

/// HL7's own CDA and C-CDA examples (`../shared/corpora/cda`), filed as a hospital would send them.
@Suite(needsDatabase) struct CDACorpusFilingTests {
    @Test(.enabled(if: CDASamples.schemaAvailable, "../shared/corpora/cda is not here"))
    func everyCorpusDocumentIsFiledWithItsFindingsAndEntries() async throws {
        try await withTestApp(DocumentTests.schemaOverrides) { app in
            try await app.addFacilities("H1")
            let his = try await app.token(role: .his, facility: "H1")
            let files = Corpus.files(in: Corpus.root + "/cda", suffixes: [".xml", ".XML"]).filter { file in
                !file.name.hasPrefix("schema/")
                    && (try? XMLDocument.parse(file.bytes)).map {
                        $0.root?.name == "ClinicalDocument" && $0.root?.namespace == CDA.namespace
                    }
                        == true
            }
            #expect(files.count == 12)
            var outcomes: [String: Int] = [:]
            for file in files {
                let response = try await app.client.execute(
                    uri: "/api/v1/documents", method: .post, headers: [.authorization: "Bearer \(his)", .contentType: "application/xml"],
                    body: ByteBuffer(bytes: file.bytes))
                outcomes["\(response.status.code)", default: 0] += 1
                // Filed (201), or the same document id as an earlier example (200 duplicate / 409),
                // or a patient the registry cannot take (422, saying why): never a 500.
                #expect([200, 201, 409, 422].contains(response.status.code), "\(file.name): \(String(buffer: response.body))")
                if response.status == .unprocessableContent {
                    #expect((response.json["detail"] as? String ?? "").isEmpty == false)
                }
            }
            // HL7's examples reuse document ids across different documents: those are conflicts, not overwrites.
            #expect(outcomes["201", default: 0] == 7 && outcomes["409", default: 0] == 5, "\(outcomes)")
            #expect(try await app.count("SELECT count(*) FROM records.entries") > 20)
            #expect(try await app.count("SELECT count(*) FROM records.documents WHERE NOT schema_valid") >= 1)
        }
    }
}
