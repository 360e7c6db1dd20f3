import Access
import Consultation
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import QianyunServer
import Registry
import Testing

/// Hospital H1 with two departments (cardiology, dermatology), clinicians bound to their API
/// clients, a registered resident with a patient token, and a HIS token.
struct ConsultationDesk: Sendable {
    let app: TestApp
    let resident: String
    let patient: String
    let cardiology: String
    let dermatology: String
    /// Cardiology's clinicians: provider id and token; the first `onDuty` have a shift now.
    let clinicians: [(provider: String, token: String)]
    let his: String

    func ask(_ complaint: String = "胸闷三天", urgency: String = "routine", department: String? = nil, preferred: String? = nil)
        async throws -> TestResponse
    {
        let preferredField = preferred.map { #","preferredClinician":"\#($0)""# } ?? ""
        return try await app.request(
            .post, "/api/v1/consultations", token: patient,
            json: #"{"department":"\#(department ?? cardiology)","complaint":"\#(complaint)","urgency":"\#(urgency)"\#(preferredField)}"#)
    }

    func askID(_ complaint: String = "胸闷三天", urgency: String = "routine", department: String? = nil) async throws -> String {
        let response = try await ask(complaint, urgency: urgency, department: department)
        #expect(response.status == .created)
        return try #require(response.json["id"] as? String)
    }

    func claim(_ clinician: Int) async throws -> TestResponse {
        try await app.request(.post, "/api/v1/consultations/claim", token: clinicians[clinician].token)
    }

    func post(_ id: String, _ action: String, _ clinician: Int, json: String? = nil) async throws -> TestResponse {
        try await app.request(.post, "/api/v1/consultations/\(id)/\(action)", token: clinicians[clinician].token, json: json)
    }

    /// Adds a clinician (bound to a new clinician client) to `department`, on duty now unless not.
    func addClinician(department: String, onDuty: Bool = true, code: String) async throws -> (provider: String, token: String) {
        try await app.clinician(department: department, onDuty: onDuty, code: code)
    }

    func status(_ id: String) async throws -> String? {
        try await app.postgres.query("SELECT status FROM consultation.consultations WHERE id = \(UUID(uuidString: id)!)").collect()
            .first?.decode(String.self)
    }

    /// The service behind the routes, for the escalation pass.
    func service(escalateAfterMinutes: Int = 10) throws -> ConsultationService {
        ConsultationService(
            client: app.postgres,
            registry: ResidentRegistry(
                client: app.postgres, protector: try QianyunServer.fieldProtector(app.configuration), logger: TestDatabase.logger),
            configuration: ConsultationConfiguration(escalateAfterMinutes: escalateAfterMinutes), logger: TestDatabase.logger)
    }
}

extension TestApp {
    /// Registers a client and returns its id with a bearer token.
    func client(role: Role, facility: String? = nil, resident: String? = nil) async throws -> (id: String, token: String) {
        let id = "t-\(role.rawValue)-\(UUID().uuidString.prefix(8).lowercased())"
        let secret = "secret-\(UUID().uuidString)"
        try await APIClients(client: postgres, logger: TestDatabase.logger).register(
            role: role, facility: facility, resident: resident, name: "test", id: id, secret: secret)
        let response = try await client.execute(
            uri: "/oauth/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
            body: ByteBuffer(string: "grant_type=client_credentials&client_id=\(id)&client_secret=\(secret)"))
        let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
        return (id, try #require(json?["access_token"] as? String))
    }

    func clinician(department: String, onDuty: Bool = true, code: String) async throws -> (provider: String, token: String) {
        let (clientID, token) = try await client(role: .clinician, facility: "H1")
        let provider = UUID()
        let departmentID = UUID(uuidString: department)!
        try await postgres.query(
            """
            INSERT INTO scheduling.providers (id, facility, department_id, kind, code, name, client_id)
            VALUES (\(provider), 'H1', \(departmentID), 'clinician', \(code), \("医生 " + code), \(clientID))
            """)
        if onDuty {
            try await postgres.query(
                """
                INSERT INTO consultation.duty_shifts (id, provider_id, department_id, starts_at, ends_at, created_by)
                VALUES (\(UUID()), \(provider), \(departmentID), now() - interval '1 hour', now() + interval '7 hours', 'test')
                """)
        }
        return (provider.uuidString.lowercased(), token)
    }

    func consultationDesk(clinicians: Int = 2, onDuty: Int? = nil, sequence: Int = 601) async throws -> ConsultationDesk {
        try await postgres.query(
            """
            INSERT INTO registry.facilities (code, name, level, primary_kind, division) VALUES
                ('H1', '贵州省人民医院', 'tertiary', NULL, '520102'), ('H2', '贵阳市第一人民医院', 'tertiary', NULL, '520102')
            ON CONFLICT DO NOTHING
            """)
        let his = try await client(role: .his, facility: "H1").token
        let registered = try await request(
            .post, "/api/v1/residents", token: his,
            json:
                #"{"localId":"P-\#(sequence)","name":"李秀英","idNumber":"\#(residentIDNumber("520102", "19620415", sequence))","division":"520102"}"#
        )
        #expect(registered.status == .created)
        let resident = try #require((registered.json["resident"] as? [String: Any])?["id"] as? String)
        let cardiology = UUID()
        let dermatology = UUID()
        try await postgres.query(
            """
            INSERT INTO scheduling.departments (id, facility, code, name) VALUES
                (\(cardiology), 'H1', 'CARD', '心内科'), (\(dermatology), 'H1', 'DERM', '皮肤科')
            """)
        var desk: [(provider: String, token: String)] = []
        for index in 0..<clinicians {
            desk.append(
                try await clinician(
                    department: cardiology.uuidString.lowercased(), onDuty: index < (onDuty ?? clinicians), code: "C\(index)"))
        }
        return ConsultationDesk(
            app: self, resident: resident, patient: try await client(role: .patient, resident: resident).token,
            cardiology: cardiology.uuidString.lowercased(), dermatology: dermatology.uuidString.lowercased(), clinicians: desk, his: his)
    }
}

@Suite struct ConsultationStateTests {
    @Test func onlyTheDocumentedTransitionsAreAllowed() {
        #expect(ConsultationState.allowedFrom(.claim) == [.queued])
        #expect(ConsultationState.allowedFrom(.accept) == [.claimed])
        #expect(ConsultationState.allowedFrom(.complete) == [.inProgress])
        #expect(ConsultationState.allowedFrom(.cancel) == [.queued, .claimed])
        #expect(ConsultationState.allowedFrom(.transfer) == [.claimed, .inProgress])
        #expect(ConsultationState.allowedFrom(.escalate) == [.queued])
        var state = ConsultationState()
        try? state.on(.escalate)
        #expect(state.escalated)
        #expect(throws: ConsultationTransitionError.notAllowed(from: .queued, event: .escalate)) { try state.on(.escalate) }
        var transferred = ConsultationState(status: .inProgress)
        try? transferred.on(.transfer)
        #expect(transferred.status == .queued)
    }
}

/// The consultation queue over HTTP against PostgreSQL: every transition and refusal, queue
/// order, duty, concurrent claims, transfer, completion into the record, messages, live streams,
/// escalation and malformed input.
@Suite(needsDatabase) struct ConsultationTests {
    @Test func aRequestIsClaimedAcceptedAndCompletedIntoExactlyOneOnlineEncounter() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk()
            let asked = try await desk.ask()
            #expect(asked.status == .created)
            let id = try #require(asked.json["id"] as? String)
            #expect(asked.json["status"] as? String == "queued" && asked.json["position"] as? Int == 1)
            // One position × the default 10 minutes ÷ two clinicians on duty.
            #expect(asked.json["estimatedWaitMinutes"] as? Int == 5 && asked.json["cliniciansOnDuty"] as? Int == 2)

            let read = try await app.request(.get, "/api/v1/consultations/\(id)", token: desk.patient)
            #expect(read.status == .ok && read.json["complaint"] as? String == "胸闷三天" && read.json["position"] as? Int == 1)

            let claimed = try await desk.claim(0)
            #expect(claimed.status == .ok && claimed.json["id"] as? String == id && claimed.json["status"] as? String == "claimed")
            #expect(claimed.json["clinician"] as? String == desk.clinicians[0].provider)
            #expect(try await desk.post(id, "accept", 1).status == .forbidden)
            let accepted = try await desk.post(id, "accept", 0)
            #expect(accepted.status == .ok && accepted.json["status"] as? String == "in-progress")
            let completed = try await desk.post(id, "complete", 0, json: #"{"summary":"稳定型心绞痛可能","advice":"门诊复查心电图"}"#)
            #expect(completed.status == .ok && completed.json["status"] as? String == "completed")
            let encounter = try #require(completed.json["encounter"] as? String)
            #expect(
                try await app.count(
                    """
                    SELECT count(*) FROM records.encounters WHERE id = '\(encounter)' AND class = 'online' AND status = 'finished'
                    AND source_kind = 'api' AND facility = 'H1' AND department = 'CARD' AND resident_id = '\(desk.resident)'
                    AND started_at IS NOT NULL AND ended_at IS NOT NULL
                    """) == 1)
            #expect(try await app.count("SELECT count(*) FROM records.encounters") == 1)

            // Completing again is refused and files nothing more.
            let again = try await desk.post(id, "complete", 0, json: #"{"summary":"x","advice":"y"}"#)
            #expect(again.status == .conflict && again.json["type"] as? String == "urn:qianyun:problem:consultation-completed")
            #expect(try await app.count("SELECT count(*) FROM records.encounters") == 1)
            let final = try await app.request(.get, "/api/v1/consultations/\(id)", token: desk.patient)
            #expect(final.json["summary"] as? String == "稳定型心绞痛可能" && final.json["advice"] as? String == "门诊复查心电图")
            #expect(final.json["position"] == nil)

            // Every step left an audit row, none of them with the complaint.
            #expect(
                try await app.count(
                    """
                    SELECT count(DISTINCT action) FROM access.audit_log WHERE action IN ('consultation.create', 'consultation.read',
                        'consultation.claim', 'consultation.accept', 'consultation.complete') AND resident_pseudonym IS NOT NULL
                    """) == 5)
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE detail LIKE '%胸闷%' OR resource LIKE '%胸闷%'") == 0)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM consultation.events WHERE consultation_id = '\(id)' AND kind IN ('created', 'claimed', 'accepted', 'completed')"
                ) == 4)
        }
    }

    @Test func claimsTakeUrgentFirstThenOldestAndAnEmptyQueueIs404() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 1)
            let first = try await desk.askID("头晕")
            let second = try await desk.askID("心悸")
            let urgent = try await desk.askID("胸痛", urgency: "urgent")
            let third = try await desk.ask("气短")
            #expect(third.json["position"] as? Int == 4)
            let view = try await app.request(.get, "/api/v1/consultations/\(urgent)", token: desk.patient)
            #expect(view.json["position"] as? Int == 1)
            var order: [String] = []
            for _ in 0..<4 { order.append(try await desk.claim(0).json["id"] as? String ?? "none") }
            #expect(order == [urgent, first, second, third.json["id"] as? String ?? "?"])
            let empty = try await desk.claim(0)
            #expect(empty.status == .notFound && empty.json["type"] as? String == "urn:qianyun:problem:queue-empty")
        }
    }

    @Test func offDutyOrUnboundCliniciansCannotClaim() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 2, onDuty: 1)
            _ = try await desk.askID()
            let offDuty = try await desk.claim(1)
            #expect(offDuty.status == .conflict && offDuty.json["type"] as? String == "urn:qianyun:problem:off-duty")
            // A shift that ended, and one not yet begun, are not duty now.
            try await app.postgres.query(
                """
                INSERT INTO consultation.duty_shifts (id, provider_id, department_id, starts_at, ends_at, created_by) VALUES
                    (\(UUID()), \(UUID(uuidString: desk.clinicians[1].provider)!), \(UUID(uuidString: desk.cardiology)!),
                     now() - interval '9 hours', now() - interval '1 hour', 'test'),
                    (\(UUID()), \(UUID(uuidString: desk.clinicians[1].provider)!), \(UUID(uuidString: desk.cardiology)!),
                     now() + interval '1 hour', now() + interval '9 hours', 'test')
                """)
            #expect(try await desk.claim(1).json["type"] as? String == "urn:qianyun:problem:off-duty")
            // A clinician client no provider is bound to; a patient.
            let unbound = try await app.token(role: .clinician, facility: "H1")
            let refused = try await app.request(.post, "/api/v1/consultations/claim", token: unbound)
            #expect(refused.status == .forbidden && refused.json["type"] as? String == "urn:qianyun:problem:not-a-clinician")
            #expect(try await app.request(.post, "/api/v1/consultations/claim", token: desk.patient).status == .forbidden)
            // On duty in dermatology only: cardiology's queue is not theirs.
            let dermatologist = try await desk.addClinician(department: desk.dermatology, code: "D1")
            let other = try await app.request(.post, "/api/v1/consultations/claim", token: dermatologist.token)
            #expect(other.status == .notFound)
            #expect(try await app.count("SELECT count(*) FROM consultation.consultations WHERE status = 'queued'") == 1)
        }
    }

    @Test func twentyConcurrentClaimsByTenCliniciansTakeFifteenRequestsOnceEach() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 10)
            for index in 0..<15 { _ = try await desk.askID("请求 \(index)", urgency: index % 4 == 0 ? "urgent" : "routine") }
            let results = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for index in 0..<20 {
                    group.addTask {
                        let response = try await desk.claim(index % 10)
                        return (Int(response.status.code), response.json["id"] as? String)
                    }
                }
                var all: [(Int, String?)] = []
                for try await result in group { all.append(result) }
                return all
            }
            let claimed = results.filter { $0.0 == 200 }.compactMap(\.1)
            #expect(claimed.count == 15 && Set(claimed).count == 15)
            #expect(results.filter { $0.0 == 404 }.count == 5)
            #expect(
                try await app.count("SELECT count(*) FROM consultation.consultations WHERE status = 'claimed' AND provider_id IS NOT NULL")
                    == 15)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM (SELECT consultation_id FROM consultation.events WHERE kind = 'claimed' GROUP BY 1 HAVING count(*) > 1) d"
                ) == 0)
            #expect(try await app.count("SELECT count(*) FROM consultation.events WHERE kind = 'claimed'") == 15)
        }
    }

    @Test func aTransferRequeuesInTheOtherDepartmentKeepingItsQueueTime() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 2)
            let dermatologist = try await desk.addClinician(department: desk.dermatology, code: "D1")
            let id = try await desk.askID("皮疹伴瘙痒")
            _ = try await desk.claim(0)
            #expect(try await desk.post(id, "transfer", 1, json: #"{"department":"\#(desk.dermatology)"}"#).status == .forbidden)
            #expect(try await desk.post(id, "transfer", 0, json: #"{"department":"\#(desk.cardiology)"}"#).status == .unprocessableContent)
            #expect(try await desk.post(id, "transfer", 0, json: #"{"department":"\#(UUID())"}"#).status == .unprocessableContent)
            #expect(try await desk.post(id, "accept", 0).status == .ok)
            // A newer request already waiting in dermatology.
            let newer = try await desk.askID("痤疮", department: desk.dermatology)
            let moved = try await desk.post(id, "transfer", 0, json: #"{"department":"\#(desk.dermatology)"}"#)
            #expect(
                moved.status == .ok && moved.json["status"] as? String == "queued"
                    && moved.json["department"] as? String == desk.dermatology)
            #expect(moved.json["transfers"] as? Int == 1 && moved.json["clinician"] == nil)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM consultation.consultations WHERE id = '\(id)' AND queued_at < (SELECT queued_at FROM consultation.consultations WHERE id = '\(newer)')"
                ) == 1)
            // The cardiologist no longer holds it, and dermatology takes it before the newer request.
            #expect(try await desk.post(id, "accept", 0).status == .notFound)
            let next = try await app.request(.post, "/api/v1/consultations/claim", token: dermatologist.token)
            #expect(next.json["id"] as? String == id)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM consultation.events WHERE consultation_id = '\(id)' AND kind = 'transferred' AND from_department_id = '\(desk.cardiology)'"
                ) == 1)
        }
    }

    @Test func illegalTransitionsAre409AndTheResidentCancelsOnlyBeforeAcceptance() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 1)
            let id = try await desk.askID()
            let early = try await desk.post(id, "accept", 0)
            #expect(early.status == .conflict && early.json["type"] as? String == "urn:qianyun:problem:consultation-queued")
            #expect(try await desk.post(id, "complete", 0, json: #"{"summary":"a","advice":"b"}"#).status == .conflict)
            #expect(try await desk.post(id, "transfer", 0, json: #"{"department":"\#(desk.dermatology)"}"#).status == .conflict)
            _ = try await desk.claim(0)
            let unaccepted = try await desk.post(id, "complete", 0, json: #"{"summary":"a","advice":"b"}"#)
            #expect(unaccepted.json["type"] as? String == "urn:qianyun:problem:consultation-claimed")
            // The resident may withdraw a claimed request; then nothing else happens to it.
            let cancelled = try await app.request(.post, "/api/v1/consultations/\(id)/cancel", token: desk.patient)
            #expect(cancelled.status == .ok && cancelled.json["status"] as? String == "cancelled")
            #expect(try await desk.post(id, "accept", 0).status == .conflict)
            #expect(try await app.request(.post, "/api/v1/consultations/\(id)/cancel", token: desk.patient).status == .conflict)

            let second = try await desk.askID()
            _ = try await desk.claim(0)
            _ = try await desk.post(second, "accept", 0)
            let late = try await app.request(.post, "/api/v1/consultations/\(second)/cancel", token: desk.patient)
            #expect(late.status == .conflict && late.json["type"] as? String == "urn:qianyun:problem:consultation-in-progress")
            // A clinician cannot cancel; another resident cannot see it.
            #expect(try await desk.post(second, "cancel", 0).status == .forbidden)
            let stranger = try await app.token(role: .patient, resident: UUID().uuidString.lowercased())
            #expect(try await app.request(.post, "/api/v1/consultations/\(second)/cancel", token: stranger).status == .notFound)
            #expect(try await app.request(.get, "/api/v1/consultations/\(second)", token: stranger).status == .notFound)
            #expect(try await app.request(.get, "/api/v1/consultations/not-an-id", token: desk.patient).status == .notFound)
            #expect(try await desk.status(second) == "in-progress")
        }
    }

    @Test func listsShowTheResidentTheirOwnAndTheDeskItsDepartment() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 1)
            _ = try await desk.askID()
            _ = try await desk.askID("皮疹", department: desk.dermatology)
            let own = try await app.request(.get, "/api/v1/consultations", token: desk.patient)
            #expect((own.json["items"] as? [[String: Any]])?.count == 2)
            let queue = try await app.request(.get, "/api/v1/consultations?status=queued", token: desk.clinicians[0].token)
            #expect((queue.json["items"] as? [[String: Any]])?.count == 1)
            let elsewhere = try await app.request(
                .get, "/api/v1/consultations?department=\(desk.dermatology)", token: desk.clinicians[0].token)
            #expect(elsewhere.status == .forbidden)
            #expect(
                try await app.request(.get, "/api/v1/consultations?status=waiting", token: desk.patient).status == .unprocessableContent)
        }
    }

    @Test func messagesAreForTheResidentAndTheClinicianHoldingTheConsultation() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 2)
            let id = try await desk.askID()
            let early = try await app.request(
                .post, "/api/v1/consultations/\(id)/messages", token: desk.patient, json: #"{"text":"昨晚加重"}"#)
            #expect(early.status == .created && early.json["sender"] as? String == "resident")
            _ = try await desk.claim(0)
            let reply = try await app.request(
                .post, "/api/v1/consultations/\(id)/messages", token: desk.clinicians[0].token,
                json:
                    #"{"text":"请上传心电图","attachments":[{"reference":"DocumentReference/ecg-1","contentType":"application/pdf","title":"心电图"}]}"#
            )
            #expect(reply.status == .created)
            let thread = try await app.request(.get, "/api/v1/consultations/\(id)/messages", token: desk.patient)
            let items = try #require(thread.json["items"] as? [[String: Any]])
            #expect(items.map { $0["sender"] as? String } == ["resident", "clinician"])
            #expect(((items[1]["attachments"] as? [[String: Any]])?.first?["reference"] as? String) == "DocumentReference/ecg-1")

            // The other clinician of the desk may see the request but not the thread.
            let other = try await app.request(.get, "/api/v1/consultations/\(id)/messages", token: desk.clinicians[1].token)
            #expect(other.status == .forbidden && other.json["type"] as? String == "urn:qianyun:problem:not-a-participant")
            #expect(
                try await app.request(
                    .post, "/api/v1/consultations/\(id)/messages", token: desk.clinicians[1].token, json: #"{"text":"x"}"#
                )
                .status == .forbidden)
            let stranger = try await app.token(role: .patient, resident: UUID().uuidString.lowercased())
            #expect(try await app.request(.get, "/api/v1/consultations/\(id)/messages", token: stranger).status == .notFound)
            let badAttachment = try await app.request(
                .post, "/api/v1/consultations/\(id)/messages", token: desk.patient,
                json: #"{"text":"看这里","attachments":[{"reference":"x","contentType":"not a type"}]}"#)
            #expect(badAttachment.status == .unprocessableContent)

            _ = try await desk.post(id, "accept", 0)
            _ = try await desk.post(id, "complete", 0, json: #"{"summary":"a","advice":"b"}"#)
            let closed = try await app.request(.post, "/api/v1/consultations/\(id)/messages", token: desk.patient, json: #"{"text":"谢谢"}"#)
            #expect(closed.status == .conflict)
            #expect(try await app.count("SELECT count(*) FROM consultation.messages") == 2)
        }
    }

    @Test func streamsDeliverNewMessagesAndStateChangesAsServerSentEvents() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 1)
            let id = try await desk.askID()
            let latest = try await app.count("SELECT max(id)::int8 FROM consultation.events")
            let streams = try await withThrowingTaskGroup(of: (String, TestResponse).self) { group in
                group.addTask {
                    (
                        "resident",
                        try await app.request(
                            .get, "/api/v1/consultations/\(id)/events?timeout=10", token: desk.patient,
                            headers: [HTTPField.Name("Last-Event-ID")!: String(latest)])
                    )
                }
                group.addTask {
                    (
                        "desk",
                        try await app.request(
                            .get, "/api/v1/consultations/stream?department=\(desk.cardiology)&timeout=10", token: desk.clinicians[0].token)
                    )
                }
                // The streams stay open 10 s: on a loaded machine the claim and the message below
                // can take seconds, and must still reach them.
                try await Task.sleep(for: .milliseconds(700))
                _ = try await desk.claim(0)
                _ = try await app.request(.post, "/api/v1/consultations/\(id)/messages", token: desk.patient, json: #"{"text":"在吗"}"#)
                var found: [String: TestResponse] = [:]
                for try await (name, response) in group { found[name] = response }
                return found
            }
            let resident = try #require(streams["resident"])
            #expect(resident.status == .ok && resident.headers[.contentType]?.hasPrefix("text/event-stream") == true)
            let text = String(buffer: resident.body)
            #expect(text.contains("event: claimed\n") && text.contains("event: message\n"))
            // Only what came after Last-Event-ID: the creation is not sent again.
            #expect(!text.contains("event: created"))
            #expect(!text.contains("在吗"))
            let events = text.components(separatedBy: "\n").filter { $0.hasPrefix("id: ") }.compactMap { Int($0.dropFirst(4)) }
            #expect(events.count == 2 && events == events.sorted() && events.allSatisfy { $0 > latest })
            let deskText = String(buffer: try #require(streams["desk"]).body)
            #expect(deskText.contains("event: created") && deskText.contains("event: claimed") && deskText.contains("event: message"))

            let stranger = try await app.token(role: .patient, resident: UUID().uuidString.lowercased())
            #expect(try await app.request(.get, "/api/v1/consultations/\(id)/events?timeout=1", token: stranger).status == .notFound)
            #expect(
                try await app.request(.get, "/api/v1/consultations/stream?department=\(desk.cardiology)", token: desk.patient).status
                    == .forbidden)
        }
    }

    @Test func noComplaintMessageOrSummaryReachesTheLogs() async throws {
        let logs = CapturedLogs()
        try await withTestApp(logger: logs.logger) { app in
            let desk = try await app.consultationDesk(clinicians: 1)
            let id = try await desk.askID("夜间阵发性呼吸困难")
            _ = try await desk.claim(0)
            _ = try await app.request(.post, "/api/v1/consultations/\(id)/messages", token: desk.patient, json: #"{"text":"服用硝酸甘油后缓解"}"#)
            _ = try await desk.post(id, "accept", 0)
            _ = try await desk.post(id, "complete", 0, json: #"{"summary":"心力衰竭待排","advice":"尽快心内科门诊"}"#)
            _ = try await desk.ask(String(repeating: "咳", count: 4001))
        }
        let text = logs.text
        #expect(!text.isEmpty)
        for secret in ["夜间阵发性呼吸困难", "硝酸甘油", "心力衰竭待排", "尽快心内科门诊", "咳咳咳", "李秀英"] {
            #expect(!text.contains(secret), "\(secret) reached the logs")
        }
    }

    /// The wake-up behind the streams comes from PostgreSQL (pg_notify at commit), not from the
    /// process that made the change: a hub on its own connection sees a change made with plain SQL.
    @Test func theEventHubWakesOnACommittedChangeMadeElsewhere() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 1)
            let id = try await desk.askID()
            let hub = ConsultationEventHub(client: app.postgres, logger: TestDatabase.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await hub.run() }
                // Listening: the hub bumps once when its LISTEN is in place.
                let deadline = ContinuousClock.now + .seconds(10)
                while await hub.current() == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                let seen = await hub.current()
                #expect(seen > 0)
                // A change rolled back wakes nobody; a committed one does, well before the timeout.
                _ = try? await app.postgres.withTransaction(logger: TestDatabase.logger) { connection in
                    try await connection.query(
                        "UPDATE consultation.consultations SET status = 'cancelled', cancelled_at = now() WHERE id = \(UUID(uuidString: id)!)",
                        logger: TestDatabase.logger)
                    throw CancellationError()
                }
                let quiet = ContinuousClock.now
                await hub.wait(beyond: seen, timeout: .milliseconds(500))
                #expect(await hub.current() == seen && ContinuousClock.now - quiet >= .milliseconds(450))
                let started = ContinuousClock.now
                try await app.postgres.query(
                    "UPDATE consultation.consultations SET status = 'cancelled', cancelled_at = now() WHERE id = \(UUID(uuidString: id)!)")
                await hub.wait(beyond: seen, timeout: .seconds(5))
                #expect(await hub.current() > seen && ContinuousClock.now - started < .seconds(4))
                group.cancelAll()
            }
        }
    }

    @Test func escalationFlagsAndBumpsARequestOnceWithOneOutboxRow() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 2)
            let waiting = try await desk.ask(preferred: desk.clinicians[1].provider)
            let id = try #require(waiting.json["id"] as? String)
            // Named for clinician 1: clinician 0 cannot take it until it is escalated.
            #expect(try await desk.claim(0).status == .notFound)
            let fresh = try await desk.askID("新的请求")
            let service = try desk.service()
            #expect(try await service.escalate() == 0)
            try await app.postgres.query(
                "UPDATE consultation.consultations SET queued_at = now() - interval '11 minutes' WHERE id = \(UUID(uuidString: id)!)")
            #expect(try await service.escalate() == 1)
            #expect(try await service.escalate() == 0)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM consultation.outbox WHERE topic = 'consultation.escalated' AND facility = 'H1' AND payload->>'consultation' = '\(id)'"
                ) == 1)
            #expect(try await app.count("SELECT count(*) FROM consultation.outbox") == 1)
            let row = try await app.request(.get, "/api/v1/consultations/\(id)", token: desk.patient)
            #expect(row.json["escalated"] as? Bool == true && row.json["escalatedAt"] != nil)
            #expect(try await app.count("SELECT count(*) FROM consultation.events WHERE kind = 'escalated'") == 1)
            // Escalated, it is open to every clinician on duty, and ahead of newer routine requests.
            #expect(try await desk.claim(0).json["id"] as? String == id)
            #expect(try await desk.claim(0).json["id"] as? String == fresh)
        }
    }

    @Test func malformedBodiesAndFieldsChangeNothing() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 1)
            let id = try await desk.askID()
            let before = try await app.count("SELECT count(*) FROM consultation.events")
            let bad: [(String, HTTPResponse.Status)] = [
                (#"{"department": 12"#, .badRequest),
                (#"{"department": 12, "complaint": "x"}"#, .badRequest),
                (#"{"complaint":"x"}"#, .unprocessableContent),
                (#"{"department":"\#(desk.cardiology)","complaint":"   "}"#, .unprocessableContent),
                (#"{"department":"\#(desk.cardiology)","complaint":"\#(String(repeating: "痛", count: 4001))"}"#, .unprocessableContent),
                (#"{"department":"\#(desk.cardiology)","complaint":"x","urgency":"soon"}"#, .unprocessableContent),
                (#"{"department":"\#(UUID())","complaint":"x"}"#, .unprocessableContent),
                (#"{"department":"\#(desk.cardiology)","complaint":"x","preferredClinician":"\#(UUID())"}"#, .unprocessableContent),
                (#"[]"#, .badRequest),
            ]
            for (body, status) in bad {
                let response = try await app.request(.post, "/api/v1/consultations", token: desk.patient, json: body)
                #expect(response.status == status, "\(body.prefix(60))")
                #expect(response.headers[.contentType] == "application/problem+json")
            }
            _ = try await desk.claim(0)
            _ = try await desk.post(id, "accept", 0)
            for body in [#"{"summary":"","advice":"b"}"#, #"{"summary":"a"}"#, #"{"summary":1}"#, "not json"] {
                #expect(try await desk.post(id, "complete", 0, json: body).status.code >= 400)
            }
            for body in [#"{"department":"nope"}"#, #"{}"#] {
                #expect(try await desk.post(id, "transfer", 0, json: body).status == .unprocessableContent)
            }
            for body in [#"{"text":""}"#, #"{"text":5}"#, #"{"text":"x","attachments":"no"}"#] {
                #expect(
                    try await app.request(.post, "/api/v1/consultations/\(id)/messages", token: desk.patient, json: body).status.code >= 400
                )
            }
            #expect(try await app.count("SELECT count(*) FROM consultation.consultations") == 1)
            #expect(try await app.count("SELECT count(*) FROM consultation.events") == before + 2)
            #expect(try await app.count("SELECT count(*) FROM consultation.messages") == 0)
            #expect(try await app.count("SELECT count(*) FROM records.encounters") == 0)
            #expect(try await desk.status(id) == "in-progress")
        }
    }

    @Test func rostersAreWrittenByTheFacilityAndRefuseOverlaps() async throws {
        try await withTestApp { app in
            let desk = try await app.consultationDesk(clinicians: 1, onDuty: 0)
            let provider = desk.clinicians[0].provider
            let shift =
                #"{"clinician":"\#(provider)","department":"\#(desk.cardiology)","startsAt":"2026-12-01T00:00:00Z","endsAt":"2026-12-01T08:00:00Z"}"#
            let added = try await app.request(.post, "/api/v1/duty-rosters", token: desk.his, json: shift)
            #expect(added.status == .created && added.json["clinician"] as? String == provider)
            let overlap = try await app.request(
                .post, "/api/v1/duty-rosters", token: desk.his,
                json:
                    #"{"clinician":"\#(provider)","department":"\#(desk.dermatology)","startsAt":"2026-12-01T07:00:00Z","endsAt":"2026-12-01T09:00:00Z"}"#
            )
            #expect(overlap.status == .conflict && overlap.json["type"] as? String == "urn:qianyun:problem:shift-overlap")
            let backwards = try await app.request(
                .post, "/api/v1/duty-rosters", token: desk.his,
                json:
                    #"{"clinician":"\#(provider)","department":"\#(desk.cardiology)","startsAt":"2026-12-02T08:00:00Z","endsAt":"2026-12-02T07:00:00Z"}"#
            )
            #expect(backwards.status == .unprocessableContent)
            let otherHIS = try await app.token(role: .his, facility: "H2")
            #expect(try await app.request(.post, "/api/v1/duty-rosters", token: otherHIS, json: shift).status == .forbidden)
            #expect(try await app.request(.post, "/api/v1/duty-rosters", token: desk.clinicians[0].token, json: shift).status == .forbidden)
            let listed = try await app.request(
                .get, "/api/v1/duty-rosters?department=\(desk.cardiology)&from=2026-11-30T00:00:00Z&to=2026-12-03T00:00:00Z",
                token: desk.clinicians[0].token)
            #expect((listed.json["items"] as? [[String: Any]])?.count == 1)
            #expect(try await app.count("SELECT count(*) FROM consultation.duty_shifts") == 1)
        }
    }
}
