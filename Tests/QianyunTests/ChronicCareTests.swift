import Access
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing

/// A monitored resident: registered at hospital H1, living in 520102 where clinic C1 (supervised
/// by H1) manages chronic disease; C2 is another clinic.
struct MonitoredResident {
    let app: TestApp
    let id: String
    let c1: String
    let c2: String
    let h1: String
    let admin: String

    /// ISO time `hoursAgo` hours before now, in China time.
    static func time(hoursAgo: Double, from now: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(secondsFromGMT: 8 * 3600)
        return formatter.string(from: now.addingTimeInterval(-hoursAgo * 3600))
    }

    static func bp(_ resident: String, _ systolic: Double, _ diastolic: Double, hoursAgo: Double, device: String = "omron-1") -> String {
        #"{"resident":"\#(resident)","deviceId":"\#(device)","measuredAt":"\#(time(hoursAgo: hoursAgo))","type":"blood-pressure","systolic":\#(systolic),"diastolic":\#(diastolic),"unit":"mmHg"}"#
    }

    func send(_ readings: [String], token: String? = nil) async throws -> TestResponse {
        try await app.request(.post, "/api/v1/readings", token: token ?? c1, json: #"{"readings":[\#(readings.joined(separator: ","))]}"#)
    }

    func sweep() async throws -> [String: Any] {
        let response = try await app.request(.post, "/api/v1/rules/sweep", token: admin)
        #expect(response.status == .ok)
        return response.json
    }

    func alerts(_ query: String = "", token: String? = nil) async throws -> [[String: Any]] {
        try await app.request(.get, "/api/v1/alerts" + query, token: token ?? c1).json["items"] as? [[String: Any]] ?? []
    }
}

extension TestApp {
    /// Facilities, a resident registered by H1, and tokens; enrolled in `programmes` at C1 unless empty.
    func monitoredResident(programmes: [String] = ["hypertension"], sequence: Int = 501) async throws -> MonitoredResident {
        try await postgres.query(
            """
            INSERT INTO registry.facilities (code, name, level, primary_kind, division) VALUES
                ('H1', '贵州省人民医院', 'tertiary', NULL, '520102'), ('C1', '中华路社区卫生服务中心', 'primary', 'community', '520102'),
                ('C2', '另一社区卫生服务中心', 'primary', 'community', '520103')
            ON CONFLICT DO NOTHING
            """)
        try await postgres.query("UPDATE registry.facilities SET supervisor = 'H1' WHERE code = 'C1'")
        let his = try await token(role: .his, facility: "H1")
        let registered = try await request(
            .post, "/api/v1/residents", token: his,
            json:
                #"{"localId":"P-\#(sequence)","name":"王建国","idNumber":"\#(residentIDNumber("520102", "19560307", sequence))","division":"520102"}"#
        )
        #expect(registered.status == .created)
        let id = try #require((registered.json["resident"] as? [String: Any])?["id"] as? String)
        let c1 = try await token(role: .clinician, facility: "C1")
        for programme in programmes {
            let enrolled = try await request(
                .post, "/api/v1/enrolments", token: c1, json: #"{"resident":"\#(id)","programme":"\#(programme)","riskLevel":"medium"}"#)
            #expect(enrolled.status == .created)
        }
        return MonitoredResident(
            app: self, id: id, c1: c1, c2: try await token(role: .clinician, facility: "C2"),
            h1: try await token(role: .clinician, facility: "H1"), admin: try await token(role: .admin))
    }
}

/// Chronic-disease monitoring over HTTP against PostgreSQL: ingest, dedup, the alert lifecycle,
/// escalation, the sweep, work lists, the dry run, enrolment from the record, and who may see what.
@Suite(needsDatabase) struct ChronicCareTests {
    /// The worker's own loop waits an hour between passes, so each test drives it explicitly.
    static let overrides = ["QIANYUN_MONITOR_INTERVAL_SECONDS": "3600"]

    @Test func aBatchKeepsGoodReadingsRefusesBadOnesAloneAndIgnoresResends() async throws {
        try await withTestApp(Self.overrides) { app in
            let resident = try await app.monitoredResident(programmes: ["hypertension", "type2-diabetes"])
            let id = resident.id
            let now = MonitoredResident.time(hoursAgo: 1)
            let batch = [
                MonitoredResident.bp(id, 150, 95, hoursAgo: 2),
                #"{"resident":"\#(id)","deviceId":"gm-1","measuredAt":"\#(now)","type":"glucose-fasting","value":126,"unit":"mg/dL"}"#,
                MonitoredResident.bp(id, 400, 95, hoursAgo: 3),
                #"{"resident":"\#(id)","deviceId":"gm-1","measuredAt":"\#(now)","type":"glucose-random","value":7,"unit":"g/L"}"#,
                MonitoredResident.bp(id, 150, 95, hoursAgo: -2),
                MonitoredResident.bp("0190d7b4-0000-7000-8000-000000000000", 150, 95, hoursAgo: 2),
                #"{"resident":"\#(id)","deviceId":"omron-1","measuredAt":"\#(now)","type":"blood-pressure","systolic":"high","diastolic":90}"#,
                #"{"resident":"\#(id)","measuredAt":"\#(now)","type":"spo2","value":97}"#,
                #"{"resident":"\#(id)","deviceId":"x","measuredAt":"yesterday","type":"weight","value":60}"#,
                #"{"resident":"\#(id)","deviceId":"x","measuredAt":"\#(now)","type":"cholesterol","value":5}"#,
                #""not an object""#,
                // Without an offset: read in the resident's zone.
                #"{"resident":"\#(id)","deviceId":"scale","measuredAt":"2026-11-30T07:00:00","timeZone":"Asia/Shanghai","type":"weight","value":130,"unit":"斤"}"#,
            ]
            let first = try await resident.send(batch)
            #expect(first.status == .ok)
            #expect(first.json["accepted"] as? Int == 3 && first.json["rejected"] as? Int == 9 && first.json["duplicates"] as? Int == 0)
            let results = try #require(first.json["results"] as? [[String: Any]])
            let verdicts = results.map { "\($0["index"]!) \($0["status"]!) \($0["field"] ?? "")" }
            #expect(
                verdicts == [
                    "0 accepted ", "1 accepted ", "2 rejected systolic", "3 rejected unit", "4 rejected measuredAt", "5 rejected resident",
                    "6 rejected systolic", "7 rejected deviceId", "8 rejected measuredAt", "9 rejected type", "10 rejected reading",
                    "11 accepted ",
                ])
            #expect((results[2]["reason"] as? String)?.contains("not physiologically possible") == true)
            #expect(try await app.count("SELECT count(*) FROM chronic_care.readings") == 3)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM chronic_care.readings WHERE type = 'glucose-fasting' AND abs(value - 6.994) < 0.01 AND reported_unit = 'mg/dL'"
                )
                    == 1)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM chronic_care.readings WHERE type = 'weight' AND value = 65 AND utc_offset_minutes = 480 "
                        + "AND measured_at = '2026-11-29T23:00:00Z'") == 1)
            // 150/95 is high (moderate); the glucose 6.99 mmol/L is not.
            let alerts = try #require(first.json["alerts"] as? [[String: Any]])
            #expect(alerts.map { $0["rule"] as? String } == ["htn-bp-high"] && alerts[0]["new"] as? Bool == true)
            #expect(try await app.count("SELECT count(*) FROM chronic_care.outbox WHERE topic = 'alert.raised' AND facility = 'C1'") == 1)

            // A device re-syncing: every reading a duplicate, nothing new written or raised.
            let again = try await resident.send(batch)
            #expect(again.json["accepted"] as? Int == 0 && again.json["duplicates"] as? Int == 3)
            #expect(try await app.count("SELECT count(*) FROM chronic_care.readings") == 3)
            #expect(try await app.count("SELECT count(*) FROM chronic_care.alerts") == 1)

            // Whole-batch faults change nothing.
            #expect(try await resident.send([]).status == .unprocessableContent)
            let tooMany = try await resident.send(Array(repeating: MonitoredResident.bp(id, 120, 80, hoursAgo: 5), count: 1001))
            #expect(tooMany.status == .unprocessableContent && tooMany.json["type"] as? String == "urn:qianyun:problem:validation")
            let garbage = try await app.request(.post, "/api/v1/readings", token: resident.c1, json: "{\"readings\": 12")
            #expect(garbage.status == .badRequest)
            #expect(try await app.count("SELECT count(*) FROM chronic_care.readings") == 3)
            // Reading them back, newest first, in the resident's clock.
            let listed = try await app.request(.get, "/api/v1/residents/\(id)/readings?limit=2", token: resident.c1)
            let items = try #require(listed.json["items"] as? [[String: Any]])
            #expect(listed.status == .ok && items.count == 2 && listed.json["nextCursor"] is String)
            #expect((items[0]["measuredAt"] as? String)?.hasSuffix("+08:00") == true)
            let next = try await app.request(
                .get, "/api/v1/residents/\(id)/readings?limit=2&cursor=\(listed.json["nextCursor"] as! String)", token: resident.c1)
            #expect((next.json["items"] as? [[String: Any]])?.count == 1 && next.json["nextCursor"] == nil)
            let byQuery = try await app.request(.get, "/api/v1/readings?resident=\(id)&type=weight", token: resident.c1)
            #expect((byQuery.json["items"] as? [[String: Any]])?.map { $0["value"] as? Double } == [65])
            #expect(try await app.request(.get, "/api/v1/readings", token: resident.c1).status == .unprocessableContent)
        }
    }

    /// Mangled batches (bytes flipped, cut, repeated, wrong types) get a 200 with verdicts or a
    /// 4xx problem: never a 5xx, and the service keeps answering.
    @Test func mangledBatchesNeverMakeTheServiceFail() async throws {
        try await withTestApp(Self.overrides) { app in
            let resident = try await app.monitoredResident()
            let valid = Array(
                #"{"readings":[\#(MonitoredResident.bp(resident.id, 150, 95, hoursAgo: 2)),{"resident":"\#(resident.id)","deviceId":"g","measuredAt":"2026-11-30T07:45:00+08:00","type":"glucose-fasting","value":7.2,"unit":"mmol/L","timeZone":"Asia/Shanghai"}]}"#
                    .utf8)
            var generator = SystemRandomNumberGenerator()
            let replacements: [[UInt8]] = [
                Array("null".utf8), Array("[]".utf8), Array("{}".utf8), Array("-1e309".utf8), Array("\"\\u0000\"".utf8),
                Array("99999999999999999999".utf8),
                Array("\"2026-02-30T25:61:00+99:00\"".utf8), Array("\"你好\"".utf8), [0xFF, 0xFE],
            ]
            for _ in 0..<300 {
                var body = valid
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    let position = Int.random(in: 0..<body.count, using: &generator)
                    switch Int.random(in: 0..<4, using: &generator) {
                    case 0: body[position] = UInt8.random(in: 0...255, using: &generator)
                    case 1: body.removeSubrange(position..<min(body.count, position + Int.random(in: 1...20, using: &generator)))
                    case 2: body.insert(contentsOf: replacements.randomElement(using: &generator)!, at: position)
                    default: body.insert(contentsOf: body[position..<min(body.count, position + 30)], at: position)
                    }
                    if body.isEmpty { body = [0x7B] }
                }
                let response = try await app.client.execute(
                    uri: "/api/v1/readings", method: .post,
                    headers: [.authorization: "Bearer \(resident.c1)", .contentType: "application/json"],
                    body: ByteBuffer(bytes: body))
                #expect(response.status.code < 500, "\(String(decoding: body, as: UTF8.self))")
            }
            #expect(try await resident.send([MonitoredResident.bp(resident.id, 120, 80, hoursAgo: 0.5)]).status == .ok)
        }
    }

    @Test func alertsAreDeduplicatedEscalatedAcknowledgedAndClosed() async throws {
        try await withTestApp(Self.overrides) { app in
            let resident = try await app.monitoredResident()
            let id = resident.id
            _ = try await resident.send([MonitoredResident.bp(id, 150, 95, hoursAgo: 5)])
            _ = try await resident.send([MonitoredResident.bp(id, 152, 96, hoursAgo: 4)])
            // One open alert per resident per rule; the second firing joined the first.
            #expect(try await app.count("SELECT count(*) FROM chronic_care.alerts WHERE rule_id = 'htn-bp-high'") == 1)
            #expect(
                try await app.count("SELECT coalesce((SELECT trigger_count FROM chronic_care.alerts WHERE rule_id = 'htn-bp-high'), -1)")
                    == 2)
            #expect(
                try await app.count(
                    "SELECT coalesce((SELECT cardinality(reading_ids) FROM chronic_care.alerts WHERE rule_id = 'htn-bp-high'), -1)") == 2)

            let urgent = try await resident.send([MonitoredResident.bp(id, 185, 112, hoursAgo: 1)])
            let raised = try #require((urgent.json["alerts"] as? [[String: Any]])?.first { $0["rule"] as? String == "htn-bp-urgent" })
            let alertID = try #require(raised["id"] as? String)
            // 3 of the last 5 were high, and two consecutive days may or may not apply by the clock: at least these.
            let rules = Set((urgent.json["alerts"] as? [[String: Any]] ?? []).compactMap { $0["rule"] as? String })
            #expect(rules.isSuperset(of: ["htn-bp-urgent", "htn-bp-high", "htn-bp-3-of-5"]))

            // Not acknowledged within 30 minutes: escalated to the clinic's supervising hospital.
            try await app.postgres.query(
                "UPDATE chronic_care.alerts SET raised_at = now() - interval '31 minutes' WHERE id = \(UUID(uuidString: alertID)!)")
            _ = try await resident.sweep()
            #expect(try await app.count("SELECT count(*) FROM chronic_care.alerts WHERE escalated_to = 'H1'") == 1)
            #expect(
                try await app.count(
                    "SELECT count(*) FROM chronic_care.outbox WHERE topic = 'alert.escalated' AND facility = 'H1' AND payload->>'alert' = '\(alertID)'"
                )
                    == 1)
            // Escalation happens once.
            _ = try await resident.sweep()
            #expect(try await app.count("SELECT count(*) FROM chronic_care.outbox WHERE topic = 'alert.escalated'") == 1)
            // The hospital now sees it; the other clinic does not.
            #expect(try await resident.alerts("?status=open", token: resident.h1).map { $0["id"] as? String } == [alertID])
            #expect(try await resident.alerts(token: resident.c2).isEmpty)
            #expect(try await app.request(.get, "/api/v1/alerts/\(alertID)", token: resident.c2).status == .notFound)
            let detail = try await app.request(.get, "/api/v1/alerts/\(alertID)", token: resident.c1)
            #expect((detail.json["message"] as? [String: Any])?["zh"] as? String == "血压≥180/110 mmHg，需立即处理")
            #expect((detail.json["readings"] as? [String])?.count == 1)

            let acknowledged = try await app.request(.post, "/api/v1/alerts/\(alertID)/acknowledge", token: resident.c1)
            #expect(acknowledged.status == .ok && acknowledged.json["status"] as? String == "acknowledged")
            let twice = try await app.request(.post, "/api/v1/alerts/\(alertID)/acknowledge", token: resident.c1)
            #expect(twice.status == .conflict && twice.json["type"] as? String == "urn:qianyun:problem:alert-acknowledged")
            let noNote = try await app.request(.post, "/api/v1/alerts/\(alertID)/close", token: resident.c1, json: #"{"note":" "}"#)
            #expect(noNote.status == .unprocessableContent)
            #expect(
                try await app.request(.post, "/api/v1/alerts/\(alertID)/close", token: resident.c2, json: #"{"note":"x"}"#).status
                    == .notFound)
            let closed = try await app.request(
                .post, "/api/v1/alerts/\(alertID)/close", token: resident.c1, json: #"{"note":"电话随访，已转诊至上级医院"}"#)
            #expect(closed.status == .ok && closed.json["status"] as? String == "closed" && closed.json["closedBy"] is String)
            #expect(
                try await app.request(.post, "/api/v1/alerts/\(alertID)/close", token: resident.c1, json: #"{"note":"again"}"#).status
                    == .conflict)
            // The next urgent reading raises a new alert.
            let next = try await resident.send([MonitoredResident.bp(id, 190, 100, hoursAgo: 0.5)])
            #expect(
                (next.json["alerts"] as? [[String: Any]])?.contains {
                    $0["rule"] as? String == "htn-bp-urgent" && $0["new"] as? Bool == true
                } == true)
            #expect(try await app.count("SELECT count(*) FROM chronic_care.alerts WHERE rule_id = 'htn-bp-urgent'") == 2)
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE action = 'chronic.alert.close'") == 1)
        }
    }

    @Test func aLateReadingCompletesAWindowAndAStaleOneRaisesNothingAlone() async throws {
        try await withTestApp(Self.overrides) { app in
            let resident = try await app.monitoredResident()
            let id = resident.id
            // Today high; yesterday's high reading arrives afterwards: two consecutive days.
            let today = try await resident.send([MonitoredResident.bp(id, 145, 85, hoursAgo: 1)])
            #expect((today.json["alerts"] as? [[String: Any]])?.compactMap { $0["rule"] as? String } == ["htn-bp-high"])
            let late = try await resident.send([MonitoredResident.bp(id, 146, 86, hoursAgo: 25)])
            let rules = (late.json["alerts"] as? [[String: Any]])?.compactMap { $0["rule"] as? String } ?? []
            #expect(rules.contains("htn-bp-2-days"))
            // A reading from ten days ago, synced only now, is kept but raises nothing by itself.
            let other = try await app.monitoredResident(sequence: 502)
            let stale = try await other.send([MonitoredResident.bp(other.id, 200, 120, hoursAgo: 240)])
            #expect(stale.json["accepted"] as? Int == 1 && (stale.json["alerts"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func concurrentBatchesForOneResidentNeitherWaitNorMissAWindow() async throws {
        try await withTestApp(Self.overrides) { app in
            let resident = try await app.monitoredResident()
            let deferred = try await withThrowingTaskGroup(of: (Bool, Int).self) { group in
                for index in 0..<12 {
                    group.addTask {
                        let response = try await resident.send([
                            MonitoredResident.bp(resident.id, 150 + Double(index), 95, hoursAgo: 1 + Double(index) / 10)
                        ])
                        return (response.status == .ok, response.json["deferred"] as? Int ?? -1)
                    }
                }
                var ok = 0
                var deferred = 0
                for try await (status, count) in group {
                    ok += status ? 1 : 0
                    deferred += count
                }
                #expect(ok == 12)
                return deferred
            }
            // A batch that found the resident being evaluated by another stored its reading for the worker.
            #expect(try await app.count("SELECT count(*) FROM chronic_care.readings") == 12)
            #expect(try await app.count("SELECT count(*) FROM chronic_care.readings WHERE evaluated_at IS NULL") == deferred)
            let swept = try await resident.sweep()
            #expect(swept["evaluated"] as? Int == deferred)
            #expect(try await app.count("SELECT count(*) FROM chronic_care.readings WHERE evaluated_at IS NULL") == 0)
            #expect(try await app.count("SELECT count(*) FROM chronic_care.alerts WHERE rule_id = 'htn-bp-high'") == 1)
            #expect(
                try await app.count("SELECT coalesce((SELECT trigger_count FROM chronic_care.alerts WHERE rule_id = 'htn-bp-high'), -1)")
                    >= 1)
            // Whatever order they committed in, one of the evaluations saw five readings: 3 of 5 fired, once.
            #expect(try await app.count("SELECT count(*) FROM chronic_care.alerts WHERE rule_id = 'htn-bp-3-of-5'") == 1)
            // One open alert per rule, however many batches raised it.
            #expect(
                try await app.count(
                    "SELECT count(*) - count(DISTINCT rule_id) FROM chronic_care.alerts WHERE status = 'open'") == 0)
        }
    }

    @Test func theSweepFindsSilenceAndOverdueFollowUpsAndTheWorkListsShowThem() async throws {
        try await withTestApp(Self.overrides) { app in
            let resident = try await app.monitoredResident()
            let enrolment = try #require(
                (try await app.request(.get, "/api/v1/enrolments?resident=\(resident.id)", token: resident.c1).json["items"]
                    as? [[String: Any]])?
                    .first?["id"] as? String)
            // Enrolled 100 days ago, last seen 20 days ago, follow-up due 10 days ago.
            try await app.postgres.query(
                """
                UPDATE chronic_care.enrolments SET enrolled_at = now() - interval '100 days', next_follow_up_due = now() - interval '10 days'
                """)
            _ = try await resident.send([MonitoredResident.bp(resident.id, 120, 80, hoursAgo: 20 * 24)])
            #expect(try await app.count("SELECT count(*) FROM chronic_care.alerts") == 0)
            let swept = try await resident.sweep()
            #expect(swept["swept"] as? Int == 2)
            let rules = Set(try await resident.alerts().compactMap { $0["rule"] as? String })
            #expect(rules == ["htn-no-readings", "htn-follow-up-overdue"])
            // The sweep again joins the open alerts rather than raising new ones.
            _ = try await resident.sweep()
            #expect(try await app.count("SELECT count(*) FROM chronic_care.alerts") == 2)

            let overdue = try await app.request(.get, "/api/v1/worklists/overdue-follow-ups", token: resident.c1)
            #expect((overdue.json["items"] as? [[String: Any]])?.map { $0["resident"] as? String } == [resident.id])
            #expect((overdue.json["items"] as? [[String: Any]])?.first?["name"] as? String == "王建国")
            let silent = try await app.request(.get, "/api/v1/worklists/no-readings?days=14", token: resident.c1)
            #expect((silent.json["items"] as? [[String: Any]])?.count == 1)
            #expect(
                (try await app.request(.get, "/api/v1/worklists/no-readings?days=30", token: resident.c1).json["items"] as? [Any])?.isEmpty
                    == true)
            #expect(
                (try await app.request(.get, "/api/v1/worklists/overdue-follow-ups", token: resident.c2).json["items"] as? [Any])?.isEmpty
                    == true)

            // A phone call does not count; a face-to-face follow-up moves the due date 90 days on.
            let phone = try await app.request(
                .post, "/api/v1/enrolments/\(enrolment)/follow-ups", token: resident.c1, json: #"{"kind":"phone"}"#)
            #expect(phone.status == .ok)
            #expect(
                (try await app.request(.get, "/api/v1/worklists/overdue-follow-ups", token: resident.c1).json["items"] as? [Any])?.count
                    == 1)
            let visit = try await app.request(
                .post, "/api/v1/enrolments/\(enrolment)/follow-ups", token: resident.c1,
                json: #"{"kind":"face-to-face","riskLevel":"high","note":"血压控制可"}"#)
            #expect(visit.status == .ok && visit.json["riskLevel"] as? String == "high")
            #expect(
                try await app.count("SELECT count(*) FROM chronic_care.enrolments WHERE next_follow_up_due > now() + interval '89 days'")
                    == 1)
            #expect(
                (try await app.request(.get, "/api/v1/worklists/overdue-follow-ups", token: resident.c1).json["items"] as? [Any])?.isEmpty
                    == true)
            #expect(
                try await app.request(.post, "/api/v1/enrolments/\(enrolment)/follow-ups", token: resident.c2, json: "{}").status
                    == .notFound)
            #expect(
                try await app.request(
                    .post, "/api/v1/enrolments/\(enrolment)/follow-ups", token: resident.c1, json: #"{"kind":"by pigeon"}"#
                ).status
                    == .unprocessableContent)

            // Enrolling twice is a conflict; discharge ends it, and then the sweep leaves the resident alone.
            let twice = try await app.request(
                .post, "/api/v1/enrolments", token: resident.c1, json: #"{"resident":"\#(resident.id)","programme":"hypertension"}"#)
            #expect(twice.status == .conflict && twice.json["type"] as? String == "urn:qianyun:problem:already-enrolled")
            let unknown = try await app.request(
                .post, "/api/v1/enrolments", token: resident.c1, json: #"{"resident":"\#(resident.id)","programme":"asthma"}"#)
            #expect(unknown.status == .unprocessableContent)
            let discharged = try await app.request(
                .post, "/api/v1/enrolments/\(enrolment)/discharge", token: resident.c1, json: #"{"reason":"迁出辖区"}"#)
            #expect(discharged.status == .ok && discharged.json["status"] as? String == "discharged")
            #expect(
                try await app.request(.post, "/api/v1/enrolments/\(enrolment)/discharge", token: resident.c1, json: #"{"reason":"x"}"#)
                    .status == .conflict)
            #expect((try await resident.sweep())["swept"] as? Int == 0)
        }
    }

    @Test func onlyTheResidentAndTheManagingClinicSeeReadingsAndAlerts() async throws {
        try await withTestApp(Self.overrides) { app in
            let resident = try await app.monitoredResident()
            let id = resident.id
            _ = try await resident.send([MonitoredResident.bp(id, 182, 100, hoursAgo: 1)])
            let patient = try await app.token(role: .patient, resident: id)
            let stranger = try await app.token(role: .patient, resident: UUID().uuidString.lowercased())
            let analyst = try await app.token(role: .analyst)
            #expect(try await app.request(.get, "/api/v1/residents/\(id)/readings", token: patient).status == .ok)
            #expect(try await app.request(.get, "/api/v1/residents/\(id)/readings", token: resident.c2).status == .forbidden)
            #expect(try await app.request(.get, "/api/v1/residents/\(id)/readings", token: stranger).status == .forbidden)
            #expect(try await app.request(.get, "/api/v1/residents/\(id)/readings", token: analyst).status == .forbidden)
            #expect(try await app.request(.get, "/api/v1/residents/\(id)/readings", token: resident.admin).status == .forbidden)
            // The hospital that registered the resident does not manage them.
            #expect(try await app.request(.get, "/api/v1/residents/\(id)/readings", token: resident.h1).status == .forbidden)
            #expect(try await resident.alerts(token: patient).count == 2)
            #expect(try await resident.alerts(token: stranger).isEmpty)
            #expect(try await app.request(.get, "/api/v1/alerts", token: analyst).status == .forbidden)
            // A patient sends their own readings only; the resident field may be left out.
            let own = try await app.request(
                .post, "/api/v1/readings", token: patient,
                json:
                    #"{"readings":[{"deviceId":"phone","measuredAt":"\#(MonitoredResident.time(hoursAgo: 2))","type":"heart-rate","value":72}]}"#
            )
            #expect(own.json["accepted"] as? Int == 1)
            let others = try await resident.send([MonitoredResident.bp(id, 120, 80, hoursAgo: 3)], token: stranger)
            #expect(others.json["rejected"] as? Int == 1)
            #expect(try await app.request(.post, "/api/v1/readings", token: analyst, json: #"{"readings":[{}]}"#).status == .forbidden)
            // A patient cannot work alerts.
            let alert = try #require(try await resident.alerts().first?["id"] as? String)
            #expect(try await app.request(.post, "/api/v1/alerts/\(alert)/acknowledge", token: patient).status == .forbidden)
            #expect(try await app.request(.post, "/api/v1/rules/sweep", token: resident.c1).status == .forbidden)
            // Every read left an audit row, none with the identity number.
            #expect(try await app.count("SELECT count(*) FROM access.audit_log WHERE action = 'chronic.readings.read'") >= 1)
        }
    }

    @Test func aDiagnosisInAClinicalDocumentEnrolsTheResident() async throws {
        try await withTestApp(Self.overrides.merging(DocumentTests.schemaOverrides) { $1 }) { app in
            try await app.addFacilities("H1")
            let his = try await app.token(role: .his, facility: "H1")
            let filed = try await app.submit(his, CDASamples.document(patientId: DocumentTests.patient))
            #expect(filed.status == .created)
            // The sample's E11.9 (type 2 diabetes) enrols; with no clinic around, the diagnosing hospital manages.
            #expect(
                try await app.count(
                    "SELECT count(*) FROM chronic_care.enrolments WHERE programme = 'type2-diabetes' AND source = 'diagnosis' AND facility = 'H1'"
                )
                    == 1)
            // The same document again files nothing and enrols nobody twice.
            _ = try await app.submit(his, CDASamples.document(patientId: DocumentTests.patient))
            #expect(try await app.count("SELECT count(*) FROM chronic_care.enrolments") == 1)
        }
    }

    @Test func aClinicNamesTheHospitalItsAlertsEscalateTo() async throws {
        try await withTestApp(Self.overrides) { app in
            let admin = try await app.token(role: .admin)
            let hospital = #"{"code":"H7","name":"贵州医科大学附属医院","level":"tertiary","division":"520102"}"#
            #expect(try await app.request(.post, "/api/v1/facilities", token: admin, json: hospital).status == .created)
            let clinic = #"{"code":"C7","name":"社区卫生服务中心","level":"community","division":"520102","supervisor":"H7"}"#
            let created = try await app.request(.post, "/api/v1/facilities", token: admin, json: clinic)
            #expect(created.status == .created && created.json["supervisor"] as? String == "H7")
            let unknown = #"{"code":"C8","name":"社区","level":"community","division":"520102","supervisor":"NOPE"}"#
            let refused = try await app.request(.post, "/api/v1/facilities", token: admin, json: unknown)
            #expect(refused.status == .unprocessableContent)
            #expect(try await app.count("SELECT count(*) FROM registry.facilities WHERE code = 'C8'") == 0)
            let cleared = try await app.request(.patch, "/api/v1/facilities/C7", token: admin, json: #"{"supervisor":""}"#)
            #expect(cleared.status == .ok && cleared.json["supervisor"] == nil)
            let itself = try await app.request(.patch, "/api/v1/facilities/C7", token: admin, json: #"{"supervisor":"C7"}"#)
            #expect(itself.status == .unprocessableContent)
            let read = try await app.request(.get, "/api/v1/facilities/C7", token: admin)
            #expect(read.json["supervisor"] == nil)
        }
    }

    @Test func readingsAreFHIRObservations() async throws {
        try await withTestApp(Self.overrides) { app in
            let resident = try await app.monitoredResident()
            let sent = try await resident.send([
                MonitoredResident.bp(resident.id, 150, 95, hoursAgo: 1),
                #"{"resident":"\#(resident.id)","deviceId":"gm","measuredAt":"\#(MonitoredResident.time(hoursAgo: 2))","type":"glucose-fasting","value":6.1}"#,
            ])
            let id = try #require((sent.json["results"] as? [[String: Any]])?.first?["id"] as? String)
            let search = try await app.request(.get, "/fhir/r4/Observation?patient=\(resident.id)&category=vital-signs", token: resident.c1)
            #expect(search.status == .ok)
            let entries = try #require(search.json["entry"] as? [[String: Any]])
            #expect(entries.count == 2)
            try FHIRPatientTests().validateFHIR(search.body, type: "Bundle")
            let read = try await app.request(.get, "/fhir/r4/Observation/\(id)", token: resident.c1)
            #expect(read.status == .ok && read.json["resourceType"] as? String == "Observation")
            let components = try #require(read.json["component"] as? [[String: Any]])
            #expect(components.count == 2)
            try FHIRPatientTests().validateFHIR(read.body, type: "Observation")
            #expect(try await app.request(.get, "/fhir/r4/Observation/\(id)", token: resident.c2).status == .notFound)
        }
    }

    @Test func aDryRunReportsWhatAChangedRuleSetWouldRaiseAndChangesNothing() async throws {
        try await withTestApp(Self.overrides) { app in
            let resident = try await app.monitoredResident()
            _ = try await resident.send(
                (0..<10).map { MonitoredResident.bp(resident.id, 132 + Double($0), 82, hoursAgo: Double(10 - $0) * 24) })
            let alertsBefore = try await app.count("SELECT count(*) FROM chronic_care.alerts")
            let current = try await app.request(.post, "/api/v1/rules/dry-run", token: resident.c1, json: #"{"closeAfterDays":7}"#)
            #expect(current.status == .ok && current.json["residents"] as? Int == 1 && current.json["readings"] as? Int == 10)
            func count(_ report: [String: Any], _ rule: String) -> Int? {
                (report["rules"] as? [[String: Any]])?.first { $0["rule"] as? String == rule }?["alerts"] as? Int
            }
            // 132 … 141: the last two readings are high (≥ 140): one alert, open for the week.
            #expect(count(current.json, "htn-bp-high") == 1)
            let stricter = #"""
                {"ruleSet": {"version": "try-130", "rules": [{"id": "bp-130", "programme": "hypertension", "severity": "moderate",
                 "message": {"zh": "血压≥130", "en": "BP at or above 130"},
                 "when": {"threshold": {"measure": "systolic", "op": ">=", "value": 130}}}]}, "closeAfterDays": 3}
                """#
            let tried = try await app.request(.post, "/api/v1/rules/dry-run", token: resident.c1, json: stricter)
            #expect(tried.status == .ok && tried.json["ruleSetVersion"] as? String == "try-130")
            // Ten days of readings ≥ 130, an alert closed after three days: raised on days 0, 3, 6, 9.
            #expect(count(tried.json, "bp-130") == 4)
            #expect(try await app.count("SELECT count(*) FROM chronic_care.alerts") == alertsBefore)
            let broken = try await app.request(
                .post, "/api/v1/rules/dry-run", token: resident.c1,
                json:
                    #"{"ruleSet": {"version": "x", "rules": [{"id": "r", "programme": "asthma", "severity": "low", "message": {"zh": "z", "en": "e"}, "when": {"threshold": {"measure": "systolic", "op": ">=", "value": 1}}}]}}"#
            )
            #expect(broken.status == .unprocessableContent && (broken.json["detail"] as? String)?.contains("rule r") == true)
            // Numbers that would overflow the engine's counters are refused, not run.
            let huge = try await app.request(
                .post, "/api/v1/rules/dry-run", token: resident.c1,
                json:
                    #"{"ruleSet": {"version": "x", "staleAfterHours": 99999999999999999, "rules": [{"id": "r", "programme": "hypertension", "severity": "low", "message": {"zh": "z", "en": "e"}, "when": {"count": {"of": {"threshold": {"measure": "systolic", "op": ">=", "value": 1}}, "atLeast": 9999999999999, "lastReadings": 99999999999999}}}]}}"#
            )
            #expect(huge.status == .badRequest || huge.status == .unprocessableContent)
            let rules = try await app.request(.get, "/api/v1/rules", token: resident.c1)
            #expect(rules.json["version"] as? String == "2026.12-1" && ((rules.json["items"] as? [Any])?.count ?? 0) >= 10)
            #expect(((try await app.request(.get, "/api/v1/programmes", token: resident.c1)).json["items"] as? [Any])?.count == 3)
        }
    }
}
