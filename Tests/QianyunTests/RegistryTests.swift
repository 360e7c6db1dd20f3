import Access
import Foundation
import HTTPTypes
import HummingbirdTesting
import IdentityNumbers
import PostgresNIO
import Registry
import Testing

/// A valid 18-digit number for a division, birth date (`YYYYMMDD`) and sequence (odd: male).
func residentIDNumber(_ division: String = "520102", _ birth: String, _ sequence: Int) -> String {
    let body = division + birth + String(format: "%03d", sequence)
    return body + String(ResidentIDNumber.checkCharacter(for: body.map { $0.wholeNumberValue! }))
}

extension TestApp {
    func addFacilities(_ codes: String...) async throws {
        for code in codes {
            try await postgres.query(
                "INSERT INTO registry.facilities (code, name, level, division) VALUES (\(code), \(code + " hospital"), 'secondary', '520102')"
            )
        }
    }

    func count(_ sql: String) async throws -> Int {
        try await postgres.query(PostgresQuery(unsafeSQL: sql)).collect().first!.decode(Int.self)
    }

    func register(_ token: String, _ body: String) async throws -> TestResponse {
        try await request(.post, "/api/v1/residents", token: token, json: body)
    }
}

extension TestResponse {
    var matchKind: String? { (json["match"] as? [String: Any])?["kind"] as? String }
    var residentID: String? { (json["resident"] as? [String: Any])?["id"] as? String }
}

@Suite(needsDatabase) struct ResidentRegistrationTests {
    @Test func aHISRegistersOnceAndASecondFacilityIsLinkedThroughAHomophoneName() async throws {
        try await withTestApp { app in
            try await app.addFacilities("H1", "H2")
            let h1 = try await app.token(role: .his, facility: "H1")
            let h2 = try await app.token(role: .his, facility: "H2")
            let id = residentIDNumber("520102", "19900307", 123)
            let body = #"{"localId":"P-1","name":"张伟","idNumber":"\#(id)","phone":"13800001111","division":"520102","ethnicity":"01"}"#
            let created = try await app.register(h1, body)
            #expect(created.status == .created)
            #expect(created.matchKind == "created")
            let resident = try #require(created.json["resident"] as? [String: Any])
            #expect(resident["birthDate"] as? String == "1990-03-07")
            #expect(resident["sex"] as? String == "male")
            #expect((resident["document"] as? [String: Any])?["masked"] as? String == FieldProtector.mask(id))
            #expect(!String(decoding: created.body.readableBytesView, as: UTF8.self).contains(id))
            // At rest: ciphertext and a keyed hash, never the number.
            #expect(
                try await app.count(
                    "SELECT count(*) FROM registry.residents WHERE position('\(id)' in encode(document_ciphertext, 'escape')) > 0") == 0)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM registry.residents WHERE document_hash IS NOT NULL AND document_masked = '\(FieldProtector.mask(id))'"
                ) == 1)

            let again = try await app.register(h1, body)
            #expect(again.status == .ok)
            #expect(again.matchKind == "existing")
            #expect(again.residentID == created.residentID)

            let linked = try await app.register(h2, #"{"localId":"X9","name":"张玮","idNumber":"\#(id.lowercased())","phone":"13800001111"}"#)
            #expect(linked.status == .ok)
            #expect(linked.matchKind == "linked")
            #expect(linked.residentID == created.residentID)
            #expect(try await app.count("SELECT count(*) FROM registry.residents") == 1)
            #expect(try await app.count("SELECT count(*) FROM registry.identifiers") == 2)
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE action = 'resident.create'") == 1)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM access.audit_log WHERE action = 'resident.link' AND resident_pseudonym IS NOT NULL") == 1)
        }
    }

    @Test func eachKindOfBadIdentityNumberIsRefusedAndWritesNothing() async throws {
        try await withTestApp { app in
            try await app.addFacilities("H1")
            let his = try await app.token(role: .his, facility: "H1")
            let good = residentIDNumber("520102", "19900307", 123)
            let wrongCheck = String(good.dropLast()) + (good.last == "1" ? "2" : "1")
            let cases: [(String, String)] = [
                ("52010219900307", "length"), ("52010219900307A234", "character"), ("990102199003071234", "division"),
                ("520102199013071234", "birth-date"), (wrongCheck, "check-digit"),
            ]
            for (number, code) in cases {
                let response = try await app.register(his, #"{"localId":"L","name":"李四","idNumber":"\#(number)"}"#)
                #expect(response.status == .unprocessableContent, "\(code)")
                #expect(response.json["type"] as? String == "urn:qianyun:problem:invalid-identity-number")
                let problems = response.json["problems"] as? [[String: Any]] ?? []
                #expect(problems.contains { $0["code"] as? String == code }, "\(code): \(problems)")
            }
            // The birth date in the number and the one given must agree.
            let disagree = try await app.register(his, #"{"localId":"L","name":"李四","idNumber":"\#(good)","birthDate":"1990-03-08"}"#)
            #expect(disagree.status == .unprocessableContent)
            #expect((disagree.json["errors"] as? [[String: Any]])?.first?["field"] as? String == "birthDate")
            // A 15-digit first-generation number is upgraded; `x` is accepted as `X`.
            let upgraded = try await app.register(his, #"{"localId":"L15","name":"王五","idNumber":"520102900307123"}"#)
            #expect(upgraded.status == .created)
            #expect(try await app.count("SELECT count(*) FROM registry.residents") == 1)
            let malformed = try await app.register(his, #"{"localId":"L","name":"","sex":"Q"}"#)
            #expect(malformed.status == .unprocessableContent)
            let notJSON = try await app.register(his, #"{"localId":"#)
            #expect(notJSON.status == .badRequest)
            #expect(try await app.count("SELECT count(*) FROM registry.residents") == 1)
        }
    }

    @Test func oneIdentityNumberNamesOneResident() async throws {
        try await withTestApp { app in
            try await app.addFacilities("H1", "H2")
            let h1 = try await app.token(role: .his, facility: "H1")
            let h2 = try await app.token(role: .his, facility: "H2")
            let id = residentIDNumber("520102", "19751010", 71)
            #expect(try await app.register(h1, #"{"localId":"U1","name":"张伟","idNumber":"\#(id)"}"#).matchKind == "created")
            // Another name on the same number (a parent's number used for a child, a typo on the desk):
            // a new resident without the number, and the number held on the review of the pair.
            let other = try await app.register(h2, #"{"localId":"U2","name":"李强","idNumber":"\#(id)"}"#)
            #expect(other.status == .created)
            #expect(other.matchKind == "review")
            #expect((other.json["resident"] as? [String: Any])?["document"] == nil)
            #expect(!String(buffer: other.body).contains(id))
            let queue = try await app.request(.get, "/api/v1/matching/review", token: try await app.token(role: .admin))
            let review = try #require((queue.json["items"] as? [[String: Any]])?.first)
            #expect((review["heldDocument"] as? [String: Any])?["masked"] as? String == FieldProtector.mask(id))
            #expect(try await app.count("SELECT count(*) FROM registry.match_reviews WHERE held_document_ciphertext IS NOT NULL") == 1)
            let later = try #require(try await app.register(h2, #"{"localId":"U3","name":"王芳"}"#).residentID)
            let patch = try await app.request(.patch, "/api/v1/residents/\(later)", token: h2, json: #"{"idNumber":"\#(id)"}"#)
            #expect(patch.status == .conflict)
            #expect(try await app.count("SELECT count(*) FROM registry.residents") == 3)
            #expect(try await app.count("SELECT count(*) FROM registry.residents WHERE document_hash IS NOT NULL") == 1)
            #expect(try await app.count("SELECT count(*) FROM registry.identifiers") == 3)
        }
    }

    @Test func twinsAreNeverMergedAndAnUncertainPairGoesToReview() async throws {
        try await withTestApp { app in
            try await app.addFacilities("H1")
            let his = try await app.token(role: .his, facility: "H1")
            let twinA = residentIDNumber("520102", "20150601", 11)
            let twinB = residentIDNumber("520102", "20150601", 13)
            let shared = #""sex":"male","birthDate":"2015-06-01","phone":"13900002222","division":"520102","address":"贵阳市南明区花果园1栋""#
            let a = try await app.register(his, #"{"localId":"T1","name":"王子豪","idNumber":"\#(twinA)",\#(shared)}"#)
            let b = try await app.register(his, #"{"localId":"T2","name":"王子杰","idNumber":"\#(twinB)",\#(shared)}"#)
            #expect(a.matchKind == "created")
            #expect(b.matchKind == "created")
            // Without identity numbers the twins still never link automatically.
            let c = try await app.register(his, #"{"localId":"T3","name":"王子轩",\#(shared)}"#)
            #expect(c.matchKind != "linked")
            #expect(try await app.count("SELECT count(*) FROM registry.residents") == 3)

            // Same name and birth date, no ID, another phone: perhaps the same child → review.
            let maybe = try await app.register(his, #"{"localId":"T4","name":"王子豪","sex":"male","birthDate":"2015-06-01"}"#)
            #expect(maybe.status == .created)
            #expect(maybe.matchKind == "review")
            let admin = try await app.token(role: .admin)
            let queue = try await app.request(.get, "/api/v1/matching/review", token: admin)
            #expect(queue.status == .ok)
            let items = try #require(queue.json["items"] as? [[String: Any]])
            let review = try #require(items.first { ($0["resident"] as? [String: Any])?["id"] as? String == maybe.residentID })
            #expect((review["candidate"] as? [String: Any])?["id"] as? String == a.residentID)
            #expect(try await app.request(.get, "/api/v1/matching/review", token: his).status == .forbidden)

            let reviewID = try #require(review["id"] as? Int)
            let resolved = try await app.request(.post, "/api/v1/matching/review/\(reviewID)", token: admin, json: #"{"decision":"same"}"#)
            #expect(resolved.status == .ok)
            #expect(resolved.json["status"] as? String == "same")
            #expect(
                try await app.count("SELECT count(*) FROM registry.identifiers WHERE local_id = 'T4' AND resident_id = '\(a.residentID!)'")
                    == 1)
            #expect(try await app.count("SELECT count(*) FROM registry.residents WHERE status = 'merged'") == 1)
            let twice = try await app.request(
                .post, "/api/v1/matching/review/\(reviewID)", token: admin, json: #"{"decision":"different"}"#)
            #expect(twice.status == .conflict)
        }
    }

    @Test func concurrentRegistrationsOfOneNewPersonCreateOneResident() async throws {
        try await withTestApp { app in
            let facilities = (1...8).map { "C\($0)" }
            for code in facilities { try await app.addFacilities(code) }
            var tokens: [String] = []
            for code in facilities { tokens.append(try await app.token(role: .his, facility: code)) }
            let id = residentIDNumber("520103", "19800101", 35)
            let outcomes = try await withThrowingTaskGroup(of: String?.self) { group in
                for token in tokens {
                    group.addTask {
                        try await app.register(token, #"{"localId":"same","name":"赵敏","idNumber":"\#(id)"}"#).matchKind
                    }
                }
                var kinds: [String?] = []
                for try await kind in group { kinds.append(kind) }
                return kinds
            }
            #expect(outcomes.filter { $0 == "created" }.count == 1)
            #expect(outcomes.filter { $0 == "linked" }.count == 7)
            #expect(try await app.count("SELECT count(*) FROM registry.residents") == 1)
            #expect(try await app.count("SELECT count(*) FROM registry.identifiers") == 8)
        }
    }
}

@Suite(needsDatabase) struct ResidentAccessTests {
    @Test func patientsReadOnlyThemselvesAndHISOnlyItsRegistrantsUnlessItPresentsAnIdentifier() async throws {
        try await withTestApp { app in
            try await app.addFacilities("H1", "H2")
            let h1 = try await app.token(role: .his, facility: "H1")
            let h2 = try await app.token(role: .his, facility: "H2")
            let mine = try #require(
                try await app.register(h1, #"{"localId":"A","name":"陈静","birthDate":"1985-02-03","sex":"F"}"#).residentID)
            let other = try #require(
                try await app.register(h1, #"{"localId":"B","name":"刘洋","birthDate":"1979-11-30","sex":"M"}"#).residentID)
            let patient = try await app.token(role: .patient, resident: mine)
            #expect(try await app.request(.get, "/api/v1/residents/\(mine)", token: patient).status == .ok)
            let denied = try await app.request(.get, "/api/v1/residents/\(other)", token: patient)
            #expect(denied.status == .forbidden)
            #expect(denied.json["type"] as? String == "urn:qianyun:problem:forbidden")
            #expect(try await app.request(.get, "/fhir/r4/Patient/\(other)", token: patient).status == .forbidden)
            #expect(
                try await app.request(.patch, "/api/v1/residents/\(mine)", token: patient, json: #"{"name":"别人"}"#).status == .forbidden)
            let phone = try await app.request(.patch, "/api/v1/residents/\(mine)", token: patient, json: #"{"phone":"13712345678"}"#)
            #expect(phone.status == .ok)
            #expect(phone.json["version"] as? Int == 2)

            #expect(try await app.request(.get, "/api/v1/residents/\(mine)", token: h2).status == .forbidden)
            #expect(
                try await app.request(.get, "/api/v1/residents/\(mine)", token: try await app.token(role: .analyst)).status == .forbidden)
            let pix = try await app.request(.get, "/api/v1/identifiers/H1/A", token: h2)
            #expect(pix.status == .ok)
            #expect(pix.json["id"] as? String == mine)
            #expect((pix.json["identifiers"] as? [[String: Any]])?.first?["localId"] as? String == "A")
            #expect(try await app.request(.get, "/api/v1/identifiers/H1/nobody", token: h2).status == .notFound)
            // Demographic search by another facility does not reveal H1's registrants.
            let search = try await app.request(.get, "/api/v1/residents?name=%E9%99%88%E9%9D%99", token: h2)
            #expect(search.status == .ok)
            #expect((search.json["items"] as? [Any])?.isEmpty == true)
            let ownSearch = try await app.request(.get, "/api/v1/residents?name=Chen%20Jing", token: h1)
            #expect(((ownSearch.json["items"] as? [[String: Any]])?.first?["resident"] as? [String: Any])?["id"] as? String == mine)

            let reads = try await app.count(
                "SELECT count(*) FROM access.audit_log WHERE action IN ('resident.read','resident.pix','resident.update','resident.search')"
            )
            #expect(reads >= 5)
        }
    }
}

@Suite(needsDatabase) struct HealthCardTests {
    @Test func theCardLifecycleAndVerification() async throws {
        try await withTestApp { app in
            try await app.addFacilities("H1", "H2")
            let h1 = try await app.token(role: .his, facility: "H1")
            let h2 = try await app.token(role: .his, facility: "H2")
            let id = residentIDNumber("520102", "19700512", 57)
            let resident = try #require(
                try await app.register(h1, #"{"localId":"K1","name":"孙丽","idNumber":"\#(id)","phone":"13600001234"}"#).residentID)
            let issued = try await app.request(
                .post, "/api/v1/residents/\(resident)/cards", token: h1, json: #"{"cardNumber":"GZ0000000001"}"#)
            #expect(issued.status == .created)
            #expect(issued.json["status"] as? String == "active")
            let second = try await app.request(
                .post, "/api/v1/residents/\(resident)/cards", token: h1, json: #"{"cardNumber":"GZ0000000002"}"#)
            #expect(second.status == .conflict)
            #expect(second.json["type"] as? String == "urn:qianyun:problem:card-already-active")

            // Any HIS may verify: the desk gets the masked summary, and its own local id if any.
            let verified = try await app.request(.post, "/api/v1/cards/gz0000000001/verify", token: h2)
            #expect(verified.status == .ok)
            #expect(verified.json["valid"] as? Bool == true)
            let summary = try #require(verified.json["resident"] as? [String: Any])
            #expect(summary["name"] as? String == "孙丽")
            #expect((summary["document"] as? [String: Any])?["masked"] as? String == FieldProtector.mask(id))
            #expect(summary["localId"] == nil)
            #expect(summary["phoneMasked"] as? String == "13*******34")
            let own = try await app.request(.post, "/api/v1/cards/GZ0000000001/verify", token: h1)
            #expect((own.json["resident"] as? [String: Any])?["localId"] as? String == "K1")

            let lost = try await app.request(
                .post, "/api/v1/cards/GZ0000000001/status", token: h1, json: #"{"status":"suspended","reason":"lost"}"#)
            #expect(lost.status == .ok)
            #expect(
                try await app.request(.post, "/api/v1/cards/GZ0000000001/verify", token: h2).json["type"] as? String
                    == "urn:qianyun:problem:card-lost")
            let replacement = try await app.request(
                .post, "/api/v1/cards/GZ0000000001/replace", token: h1, json: #"{"cardNumber":"GZ0000000003"}"#)
            #expect(replacement.status == .created)
            #expect(replacement.json["replaces"] as? String == "GZ0000000001")
            #expect(replacement.json["status"] as? String == "active")
            #expect(
                try await app.request(.post, "/api/v1/cards/GZ0000000001/verify", token: h2).json["type"] as? String
                    == "urn:qianyun:problem:card-replaced")
            #expect(try await app.request(.post, "/api/v1/cards/GZ0000000003/verify", token: h2).status == .ok)
            let reactivate = try await app.request(.post, "/api/v1/cards/GZ0000000001/status", token: h1, json: #"{"status":"active"}"#)
            #expect(reactivate.status == .conflict)
            let history = try await app.request(.get, "/api/v1/residents/\(resident)/cards", token: h1)
            #expect((history.json["items"] as? [[String: Any]])?.count == 2)

            let unknown = try await app.request(.post, "/api/v1/cards/NOSUCHCARD1/verify", token: h2)
            #expect(unknown.status == .notFound)
            #expect(unknown.json["type"] as? String == "urn:qianyun:problem:card-unknown")
            #expect(try await app.request(.post, "/api/v1/cards/%3Cx%3E/verify", token: h2).status == .unprocessableContent)

            #expect(
                try await app.request(.patch, "/api/v1/residents/\(resident)", token: h1, json: #"{"deceasedDate":"2026-01-02"}"#).status
                    == .ok)
            #expect(
                try await app.request(.post, "/api/v1/cards/GZ0000000003/verify", token: h2).json["type"] as? String
                    == "urn:qianyun:problem:resident-deceased")
            let revoked = try await app.request(.post, "/api/v1/cards/GZ0000000003/status", token: h1, json: #"{"status":"revoked"}"#)
            #expect(revoked.status == .ok)
            #expect(
                try await app.request(.post, "/api/v1/cards/GZ0000000003/verify", token: h2).json["type"] as? String
                    == "urn:qianyun:problem:card-revoked")
            #expect(
                try await app.request(.post, "/api/v1/cards/GZ0000000003/verify", token: try await app.token(role: .analyst)).status
                    == .forbidden)
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE action = 'card.verify'") == 8)
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE action = 'card.verify' AND detail = 'unknown'") == 1)
            // Rows written by the verification statement's own CTE join the sealing queue like any other.
            #expect(
                try await app.count(
                    """
                    SELECT count(*) FROM access.audit_log a
                    WHERE a.action = 'card.verify'
                      AND (EXISTS (SELECT 1 FROM access.audit_unsealed u WHERE u.id = a.id)
                           OR EXISTS (SELECT 1 FROM access.audit_chain c WHERE c.audit_id = a.id))
                    """) == 8)
        }
    }
}

@Suite(needsDatabase) struct MergeTests {
    @Test func mergeAndUnmergeRoundTrip() async throws {
        try await withTestApp { app in
            try await app.addFacilities("H1", "H2")
            let h1 = try await app.token(role: .his, facility: "H1")
            let h2 = try await app.token(role: .his, facility: "H2")
            let admin = try await app.token(role: .admin)
            let a = try #require(try await app.register(h1, #"{"localId":"M1","name":"周杰","birthDate":"1988-08-08","sex":"M"}"#).residentID)
            let b = try #require(try await app.register(h2, #"{"localId":"M2","name":"吴芳","birthDate":"1992-01-01","sex":"F"}"#).residentID)
            #expect(
                try await app.request(.post, "/api/v1/residents/\(a)/cards", token: h1, json: #"{"cardNumber":"CARDA00001"}"#).status
                    == .created)
            #expect(
                try await app.request(.post, "/api/v1/residents/\(b)/cards", token: h2, json: #"{"cardNumber":"CARDB00001"}"#).status
                    == .created)
            #expect(
                try await app.request(.post, "/api/v1/residents/\(a)/merge", token: h1, json: #"{"mergedId":"\#(b)"}"#).status == .forbidden
            )

            let merged = try await app.request(.post, "/api/v1/residents/\(a)/merge", token: admin, json: #"{"mergedId":"\#(b)"}"#)
            #expect(merged.status == .ok)
            #expect(merged.json["identifiersMoved"] as? [String] == ["H2/M2"])
            let pix = try await app.request(.get, "/api/v1/identifiers/H2/M2", token: h2)
            #expect(pix.json["id"] as? String == a)
            #expect(try await app.count("SELECT count(*) FROM registry.health_cards WHERE resident_id = '\(a)' AND status = 'active'") == 1)
            let old = try await app.request(.get, "/api/v1/residents/\(b)", token: admin)
            #expect(old.json["status"] as? String == "merged")
            #expect(old.json["mergedInto"] as? String == a)
            let fhir = try await app.request(.get, "/fhir/r4/Patient/\(b)", token: admin)
            #expect(fhir.json["active"] as? Bool == false)
            #expect(
                try await app.request(.post, "/api/v1/residents/\(a)/merge", token: admin, json: #"{"mergedId":"\#(b)"}"#).status
                    == .conflict)

            let unmerged = try await app.request(.post, "/api/v1/residents/\(b)/unmerge", token: admin)
            #expect(unmerged.status == .ok)
            #expect(try await app.request(.get, "/api/v1/identifiers/H2/M2", token: h2).json["id"] as? String == b)
            #expect(try await app.count("SELECT count(*) FROM registry.health_cards WHERE resident_id = '\(b)' AND status = 'active'") == 1)
            #expect(try await app.count("SELECT count(*) FROM registry.residents WHERE status = 'active'") == 2)
            #expect(try await app.request(.post, "/api/v1/residents/\(b)/unmerge", token: admin).status == .conflict)
            let history = try await app.request(.get, "/api/v1/residents/\(b)/history", token: admin)
            let kinds = (history.json["items"] as? [[String: Any]])?.compactMap { $0["kind"] as? String }
            #expect(kinds == ["created", "card.issue", "merged", "unmerged"])
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE action LIKE 'resident.%merge%'") == 4)
        }
    }
}

@Suite(needsDatabase) struct FHIRPatientTests {
    @Test func patientReadAndSearchAreValidFHIR() async throws {
        try await withTestApp { app in
            try await app.addFacilities("H1")
            let his = try await app.token(role: .his, facility: "H1")
            let id = residentIDNumber("520102", "19650420", 99)
            let resident = try #require(
                try await app.register(
                    his,
                    #"{"localId":"F1","name":"欧阳娜娜","idNumber":"\#(id)","phone":"13500001234","division":"520102","address":"贵阳市南明区","guardian":{"name":"欧阳明","relation":"father"}}"#
                ).residentID)
            let read = try await app.request(.get, "/fhir/r4/Patient/\(resident)", token: his)
            #expect(read.status == .ok)
            #expect(read.headers[.contentType] == "application/fhir+json; charset=utf-8")
            #expect(read.json["resourceType"] as? String == "Patient")
            let names = read.json["name"] as? [[String: Any]]
            #expect(names?.first?["family"] as? String == "欧阳")
            try validateFHIR(read.body, type: "Patient")

            let byIdentifier = try await app.request(.get, "/fhir/r4/Patient?identifier=urn:qianyun:facility:H1%7CF1", token: his)
            #expect(byIdentifier.json["total"] as? Int == 1)
            try validateFHIR(byIdentifier.body, type: "Bundle")
            let byNumber = try await app.request(.get, "/fhir/r4/Patient?identifier=urn:qianyun:document:resident-id%7C\(id)", token: his)
            #expect(byNumber.json["total"] as? Int == 1)
            let byName = try await app.request(.get, "/fhir/r4/Patient?name=ouyang%20nana&birthdate=1965-04-20", token: his)
            #expect(byName.json["total"] as? Int == 1, "\(String(buffer: byName.body))")
            let none = try await app.request(.get, "/fhir/r4/Patient?name=%E6%97%A0%E5%90%8D", token: his)
            #expect(none.json["total"] as? Int == 0)
            try validateFHIR(none.body, type: "Bundle")
            let bad = try await app.request(.get, "/fhir/r4/Patient?colour=blue", token: his)
            #expect(bad.status == .unprocessableContent)
            #expect(bad.json["resourceType"] as? String == "OperationOutcome")
            try validateFHIR(bad.body, type: "OperationOutcome")
            let unauthenticated = try await app.request(.get, "/fhir/r4/Patient/\(resident)")
            #expect(unauthenticated.status == .unauthorized)
            #expect(unauthenticated.json["resourceType"] as? String == "OperationOutcome")
            #expect(try await app.request(.get, "/fhir/r4/metadata").status == .ok)
        }
    }

    /// Parses the body with Python's `fhir.resources` (R4B models: R4 data) when it is installed
    /// (deploy/test installs it); a model error fails the test with the library's message.
    func validateFHIR(_ body: ByteBuffer, type: String) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fhir-\(UUID().uuidString).json")
        try Data(body.readableBytesView).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            """
            import json, sys
            try:
                from fhir.resources.R4B import get_fhir_model_class
            except ImportError:
                sys.exit(3)
            data = json.load(open(sys.argv[1]))
            get_fhir_model_class(data["resourceType"]).model_validate(data)
            """,
            file.path,
        ]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        if process.terminationStatus == 3 {
            Issue.record("fhir.resources is not installed: run deploy/test, which installs it")
            return
        }
        #expect(process.terminationStatus == 0, "\(type) is not valid FHIR R4: \(message)")
    }
}
