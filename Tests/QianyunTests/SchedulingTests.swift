import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Testing

@testable import QianyunServer
import Scheduling

/// A tertiary hospital (H1) with a cardiology clinic, a community clinic (C1) that refers to it,
/// residents with their own app tokens, and helpers to make schedules and find their slots.
struct BookingDesk {
    let app: TestApp
    let h1: String
    let c1: String
    let department: String
    let provider: String

    static func open(_ app: TestApp) async throws -> BookingDesk {
        try await app.postgres.query(
            """
            INSERT INTO registry.facilities (code, name, level, primary_kind, division) VALUES
                ('H1', '贵州省人民医院', 'tertiary', NULL, '520102'), ('C1', '中华路社区卫生服务中心', 'primary', 'community', '520102'),
                ('H2', '贵阳市第二人民医院', 'secondary', NULL, '520103')
            ON CONFLICT DO NOTHING
            """)
        let h1 = try await app.token(role: .his, facility: "H1")
        let department = try await app.request(.post, "/api/v1/departments", token: h1, json: #"{"code":"cardiology","name":"心血管内科"}"#)
        #expect(department.status == .created)
        let provider = try await app.request(
            .post, "/api/v1/providers", token: h1,
            json: #"{"department":"cardiology","kind":"clinician","code":"D001","name":"李主任","title":"主任医师"}"#)
        #expect(provider.status == .created)
        return BookingDesk(
            app: app, h1: h1, c1: try await app.token(role: .his, facility: "C1"),
            department: try #require(department.json["id"] as? String), provider: try #require(provider.json["id"] as? String))
    }

    /// A daily evening session, released at once; `extra` adds or overrides fields of the schedule.
    func schedule(_ extra: [String: Any] = [:], provider: String? = nil) async throws -> [String: Any] {
        var body: [String: Any] = [
            "provider": provider ?? self.provider, "weekdays": [1, 2, 3, 4, 5, 6, 7], "session": "evening", "start": "18:00",
            "end": "21:00",
            "capacity": 5, "feeClass": "expert", "feeCents": 5000, "releaseDaysAhead": 14, "releaseTime": "00:00",
        ]
        body.merge(extra) { $1 }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        let response = try await app.request(.post, "/api/v1/schedules", token: h1, json: json)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        return response.json
    }

    /// Tomorrow in Guizhou: the first day whose evening session is surely ahead.
    static var tomorrow: String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "Asia/Shanghai")!
        let date = calendar.date(byAdding: .day, value: 1, to: Date())!
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
    }

    func slots(_ schedule: [String: Any], date: String = BookingDesk.tomorrow) async throws -> [[String: Any]] {
        let provider = schedule["provider"] as? String ?? self.provider
        let response = try await app.request(.get, "/api/v1/slots?provider=\(provider)&date=\(date)", token: h1)
        #expect(response.status == .ok)
        let all = response.json["items"] as? [[String: Any]] ?? []
        return all.filter { $0["schedule"] as? String == schedule["id"] as? String }
    }

    /// A resident registered at H1, with a patient token of their own.
    func resident(_ sequence: Int) async throws -> (id: String, token: String) {
        let registered = try await app.request(
            .post, "/api/v1/residents", token: h1,
            json:
                #"{"localId":"S-\#(sequence)","name":"张\#(sequence)","idNumber":"\#(residentIDNumber("520102", "19800101", sequence))","division":"520102"}"#
        )
        #expect(registered.status == .created)
        let id = try #require((registered.json["resident"] as? [String: Any])?["id"] as? String)
        return (id, try await app.token(role: .patient, resident: id))
    }

    func book(_ slot: Any?, token: String, extra: String = "") async throws -> TestResponse {
        try await app.request(.post, "/api/v1/bookings", token: token, json: #"{"slot":"\#(slot as? String ?? "")"\#(extra)}"#)
    }

    func count(_ sql: String) async throws -> Int {
        let rows = try await app.postgres.query(PostgresQuery(unsafeSQL: sql)).collect()
        return Int(try rows.first?.decode(Int64.self) ?? -1)
    }
}

extension TestResponse {
    var problemCode: String? { (json["type"] as? String)?.replacingOccurrences(of: "urn:qianyun:problem:", with: "") }
}

/// Appointments over HTTP against PostgreSQL: schedules and slot generation, the release instant,
/// races for the last place, every booking rule, waiting lists, referrals, check-in and FHIR.
@Suite(needsDatabase) struct SchedulingTests {
    static let overrides = ["QIANYUN_SCHEDULING_INTERVAL_SECONDS": "3600"]

    @Test func schedulesGenerateLocalSlotsAndRefuseBadInput() async throws {
        try await withTestApp(Self.overrides) { app in
            let desk = try await BookingDesk.open(app)
            let schedule = try await desk.schedule(["slotMinutes": 30, "referralCapacity": 1])
            // 15 days (today and 14 ahead), six half-hour slots each.
            #expect(schedule["slotsGenerated"] as? Int == 15 * 6)
            let slots = try await desk.slots(schedule)
            #expect(slots.count == 6)
            let first = try #require(slots.first)
            // 18:00 in Guizhou is 10:00 UTC.
            #expect((first["start"] as? String)?.hasSuffix("T10:00:00Z") == true)
            #expect((first["end"] as? String)?.hasSuffix("T10:30:00Z") == true)
            #expect(first["available"] as? Int == 4)
            #expect(first["referralAvailable"] as? Int == 5)
            #expect(first["released"] as? Bool == true)
            // Generating again creates nothing new.
            #expect(
                try await desk.count(
                    "SELECT scheduling.generate_slots(id, current_date, current_date + 14)::int8 FROM scheduling.schedules") == 0)

            for (body, field) in [
                (
                    #"{"provider":"\#(desk.provider)","weekdays":[8],"session":"evening","start":"18:00","end":"21:00","capacity":5,"feeClass":"expert"}"#,
                    "weekdays"
                ),
                (
                    #"{"provider":"\#(desk.provider)","weekdays":[1],"session":"evening","start":"21:00","end":"18:00","capacity":5,"feeClass":"expert"}"#,
                    "end"
                ),
                (
                    #"{"provider":"\#(desk.provider)","weekdays":[1],"session":"evening","start":"18:00","end":"21:00","capacity":0,"feeClass":"expert"}"#,
                    "capacity"
                ),
                (
                    #"{"provider":"\#(desk.provider)","weekdays":[1],"session":"brunch","start":"18:00","end":"21:00","capacity":5,"feeClass":"expert"}"#,
                    "session"
                ),
                (
                    #"{"provider":"\#(desk.provider)","weekdays":[1],"session":"evening","start":"18:00","end":"21:00","capacity":5,"feeClass":"expert","timeZone":"Mars/Olympus"}"#,
                    "timeZone"
                ),
                (
                    #"{"provider":"\#(desk.provider)","weekdays":[1],"session":"evening","start":"18:00","end":"21:00","capacity":5,"feeClass":"expert","referralCapacity":6}"#,
                    "referralCapacity"
                ),
            ] {
                let refused = try await app.request(.post, "/api/v1/schedules", token: desk.h1, json: body)
                #expect(refused.status == .unprocessableContent)
                #expect((refused.json["errors"] as? [[String: Any]])?.first?["field"] as? String == field)
            }
            #expect(try await app.request(.post, "/api/v1/schedules", token: desk.h1, json: "{not json").status == .badRequest)
            #expect(try await desk.count("SELECT count(*) FROM scheduling.schedules") == 1)
            // Another facility's HIS and a patient may not change H1's schedules.
            let c1Schedule = try await app.request(
                .post, "/api/v1/schedules", token: desk.c1,
                json:
                    #"{"provider":"\#(desk.provider)","weekdays":[1],"session":"evening","start":"18:00","end":"21:00","capacity":5,"feeClass":"expert"}"#
            )
            #expect(c1Schedule.status == .forbidden)
            let patient = try await desk.resident(1)
            #expect(
                try await app.request(.post, "/api/v1/departments", token: patient.token, json: #"{"code":"x","name":"x"}"#).status
                    == .forbidden)
            #expect(
                try await app.request(.post, "/api/v1/departments", token: desk.h1, json: #"{"code":"cardiology","name":"again"}"#)
                    .problemCode == "department-exists")
            // An exam resource needs its modality.
            let ct = try await app.request(
                .post, "/api/v1/providers", token: desk.h1,
                json: #"{"department":"cardiology","kind":"resource","code":"CT-1","name":"64排CT"}"#)
            #expect(ct.status == .unprocessableContent)
            let ctOK = try await app.request(
                .post, "/api/v1/providers", token: desk.h1,
                json: #"{"department":"cardiology","kind":"resource","code":"CT-1","name":"64排CT","modality":"CT"}"#)
            #expect(ctOK.status == .created)
            let exam = try await desk.schedule(["feeClass": "exam", "slotMinutes": 15], provider: ctOK.json["id"] as? String)
            #expect(exam["slotsGenerated"] as? Int == 15 * 12)
        }
    }

    @Test func aSlotIsRefusedBeforeItsReleaseInstantAndNothingIsQueued() async throws {
        try await withTestApp(Self.overrides) { app in
            let desk = try await BookingDesk.open(app)
            // Released on the day itself at 23:59, after the session: tomorrow's slot is not open yet.
            let schedule = try await desk.schedule(["releaseDaysAhead": 0, "releaseTime": "23:59"])
            let slot = try #require(try await desk.slots(schedule).first)
            #expect(slot["released"] as? Bool == false)
            #expect(slot["available"] as? Int == 0)
            let resident = try await desk.resident(2)
            let early = try await desk.book(slot["id"], token: resident.token)
            #expect(early.status == .conflict)
            #expect(early.problemCode == "slot-not-released")
            #expect(early.json["retryAt"] as? String != nil)
            #expect(early.headers[.retryAfter] != nil)
            #expect(try await desk.count("SELECT count(*) FROM scheduling.bookings") == 0)
            // The instant passes: the same request now books.
            try await app.postgres.query("UPDATE scheduling.slots SET release_at = now() - interval '1 second'")
            let booked = try await desk.book(slot["id"], token: resident.token)
            #expect(booked.status == .created)
            #expect(booked.json["status"] as? String == "booked")
            #expect(booked.json["channel"] as? String == "app")
            #expect(try await desk.count("SELECT count(*) FROM scheduling.outbox WHERE topic = 'booking.confirmed'") == 1)
        }
    }

    @Test func manyResidentsRacingForTheLastPlacesGetExactlyThatMany() async throws {
        try await withTestApp(Self.overrides) { app in
            let desk = try await BookingDesk.open(app)
            let schedule = try await desk.schedule(["capacity": 5])
            let slot = try #require(try await desk.slots(schedule).first?["id"] as? String)
            var residents: [(id: String, token: String)] = []
            for sequence in 10..<50 { residents.append(try await desk.resident(sequence)) }
            let statuses = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String?).self) { group in
                for resident in residents {
                    group.addTask {
                        let response = try await desk.book(slot, token: resident.token)
                        return (response.status, response.problemCode)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0.0 == .created }.count == 5)
            #expect(statuses.filter { $0.1 == "slot-full" }.count == 35)
            #expect(try await desk.count("SELECT count(*) FROM scheduling.bookings WHERE status = 'booked'") == 5)
            #expect(try await desk.count("SELECT public_booked::int8 FROM scheduling.slots WHERE id = '\(slot)'") == 5)
            #expect(try await desk.count("SELECT count(*) FROM scheduling.outbox") == 5)
            // One resident's own burst from two phones at once: one booking, not two.
            let other = try #require(try await desk.slots(schedule, date: nextDay(BookingDesk.tomorrow)).first?["id"] as? String)
            let phone = residents[0].token
            let twice = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<4 { group.addTask { try await desk.book(other, token: phone).status } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(twice.filter { $0 == .created }.count == 1)
        }
    }

    @Test func theBookingRulesEachRefuseWithTheirOwnCode() async throws {
        try await withTestApp(Self.overrides.merging(["QIANYUN_BOOKING_ACTIVE_LIMIT": "2"]) { $1 }) { app in
            let desk = try await BookingDesk.open(app)
            let schedule = try await desk.schedule(["slotMinutes": 60, "cancelDeadlineHours": 48])
            let slots = try await desk.slots(schedule)
            let resident = try await desk.resident(3)
            #expect(try await desk.book(slots[0]["id"], token: resident.token).status == .created)
            // One booking per resident per provider per day.
            let again = try await desk.book(slots[1]["id"], token: resident.token)
            #expect(again.status == .conflict)
            #expect(again.problemCode == "one-booking-per-provider-per-day")
            // The active-booking cap (2 here): a second provider, then a third day.
            let day2 = try await desk.slots(schedule, date: nextDay(BookingDesk.tomorrow))
            #expect(try await desk.book(day2[0]["id"], token: resident.token).status == .created)
            let day3 = try await desk.slots(schedule, date: nextDay(nextDay(BookingDesk.tomorrow)))
            let capped = try await desk.book(day3[0]["id"], token: resident.token)
            #expect(capped.problemCode == "active-booking-limit")
            // A patient books only for themselves, a HIS only its own slots without a referral.
            let stranger = try await desk.resident(4)
            let forOther = try await desk.book(day3[0]["id"], token: resident.token, extra: #","resident":"\#(stranger.id)""#)
            #expect(forOther.status == .forbidden)
            let c1Books = try await desk.book(day3[0]["id"], token: desk.c1, extra: #","resident":"\#(stranger.id)""#)
            #expect(c1Books.status == .forbidden)
            // The cancellation deadline (48 h) has passed for tomorrow's slot: the resident cannot, the hospital can.
            let bookings = try await app.request(.get, "/api/v1/bookings", token: resident.token).json["items"] as? [[String: Any]] ?? []
            let tomorrows = try #require(bookings.first { $0["day"] as? String == BookingDesk.tomorrow }?["id"] as? String)
            let late = try await app.request(.post, "/api/v1/bookings/\(tomorrows)/cancel", token: resident.token)
            #expect(late.problemCode == "cancellation-deadline-passed")
            let byHospital = try await app.request(
                .post, "/api/v1/bookings/\(tomorrows)/cancel", token: desk.h1, json: #"{"reason":"doctor ill"}"#)
            #expect(byHospital.status == .ok)
            #expect(byHospital.json["status"] as? String == "cancelled")
            let twice = try await app.request(.post, "/api/v1/bookings/\(tomorrows)/cancel", token: desk.h1)
            #expect(twice.problemCode == "invalid-transition")
            #expect(try await desk.count("SELECT public_booked::int8 FROM scheduling.slots WHERE id = '\(slots[0]["id"] as! String)'") == 0)
            // Nobody else reads the booking.
            #expect(try await app.request(.get, "/api/v1/bookings/\(tomorrows)", token: stranger.token).status == .notFound)
            #expect(try await app.request(.get, "/api/v1/bookings/\(tomorrows)", token: desk.c1).status == .forbidden)
            #expect(try await app.request(.get, "/api/v1/bookings/\(tomorrows)", token: resident.token).status == .ok)
            #expect(try await desk.count("SELECT count(*) FROM access.audit_log WHERE action LIKE 'booking.%'") >= 5)
        }
    }

    @Test func threeNoShowsSuspendOnlineBooking() async throws {
        try await withTestApp(Self.overrides) { app in
            let desk = try await BookingDesk.open(app)
            let schedule = try await desk.schedule()
            let resident = try await desk.resident(5)
            var day = BookingDesk.tomorrow
            for round in 0..<3 {
                let slot = try #require(try await desk.slots(schedule, date: day).first?["id"] as? String)
                let booked = try await desk.book(slot, token: resident.token)
                let id = try #require(booked.json["id"] as? String)
                let tooEarly = try await app.request(.post, "/api/v1/bookings/\(id)/no-show", token: desk.h1)
                #expect(tooEarly.problemCode == "slot-not-over")
                // The session passes.
                try await app.postgres.query(
                    "UPDATE scheduling.slots SET starts_at = now() - interval '3 hours', ends_at = now() - interval '1 hour' WHERE id = \(UUID(uuidString: slot)!)"
                )
                #expect(try await app.request(.post, "/api/v1/bookings/\(id)/no-show", token: resident.token).status == .forbidden)
                let marked = try await app.request(.post, "/api/v1/bookings/\(id)/no-show", token: desk.h1)
                #expect(marked.json["status"] as? String == "no-show")
                #expect(try await desk.count("SELECT count(*) FROM scheduling.suspensions") == (round == 2 ? 1 : 0))
                day = nextDay(day)
            }
            let slot = try #require(try await desk.slots(schedule, date: day).first?["id"] as? String)
            let suspended = try await desk.book(slot, token: resident.token)
            #expect(suspended.problemCode == "booking-suspended")
            #expect(suspended.json["retryAt"] as? String != nil)
        }
    }

    @Test func aFreedPlaceGoesToTheFirstResidentWaitingWhoMayStillBook() async throws {
        try await withTestApp(Self.overrides) { app in
            let desk = try await BookingDesk.open(app)
            let schedule = try await desk.schedule(["capacity": 1, "cancelDeadlineHours": 0])
            let slot = try #require(try await desk.slots(schedule).first?["id"] as? String)
            let holder = try await desk.resident(20)
            let first = try await desk.resident(21)
            let second = try await desk.resident(22)
            // Waiting is for full slots only.
            let early = try await app.request(.post, "/api/v1/waitlist", token: first.token, json: #"{"slot":"\#(slot)"}"#)
            #expect(early.problemCode == "slot-available")
            let held = try await desk.book(slot, token: holder.token)
            let holding = try #require(held.json["id"] as? String)
            let joined = try await app.request(.post, "/api/v1/waitlist", token: first.token, json: #"{"slot":"\#(slot)"}"#)
            #expect(joined.status == .created)
            #expect(joined.json["position"] as? Int == 1)
            #expect(
                try await app.request(.post, "/api/v1/waitlist", token: first.token, json: #"{"slot":"\#(slot)"}"#).problemCode
                    == "already-waiting")
            let secondJoined = try await app.request(.post, "/api/v1/waitlist", token: second.token, json: #"{"slot":"\#(slot)"}"#)
            #expect(secondJoined.json["position"] as? Int == 2)
            // The first in line has meanwhile booked this provider elsewhere that day: passed over.
            let sameDay = try await desk.schedule(["session": "night", "start": "21:00", "end": "23:00"])
            let night = try #require(try await desk.slots(sameDay).first?["id"] as? String)
            #expect(try await desk.book(night, token: first.token).status == .created)

            let cancelled = try await app.request(.post, "/api/v1/bookings/\(holding)/cancel", token: holder.token)
            #expect(cancelled.status == .ok)
            let entries =
                try await app.request(.get, "/api/v1/waitlist?slot=\(slot)", token: desk.h1).json["items"] as? [[String: Any]] ?? []
            #expect(entries.map { $0["status"] as? String } == ["skipped", "booked"])
            #expect(entries.first?["skippedReason"] as? String == "one-booking-per-provider-per-day")
            let mine = try await app.request(.get, "/api/v1/bookings", token: second.token).json["items"] as? [[String: Any]] ?? []
            #expect(mine.first?["channel"] as? String == "waitlist")
            #expect(mine.first?["slot"] as? String == slot)
            #expect(try await desk.count("SELECT count(*) FROM scheduling.outbox WHERE topic = 'waitlist.booked'") == 1)
            #expect(try await desk.count("SELECT public_booked::int8 FROM scheduling.slots WHERE id = '\(slot)'") == 1)
        }
    }

    @Test func referralsTakeHeldPlacesThatGoPublicWhenUnused() async throws {
        try await withTestApp(Self.overrides) { app in
            let desk = try await BookingDesk.open(app)
            let schedule = try await desk.schedule(["capacity": 2, "referralCapacity": 1])
            let slot = try #require(try await desk.slots(schedule).first?["id"] as? String)
            let a = try await desk.resident(30)
            let b = try await desk.resident(31)
            let referred = try await desk.resident(32)
            #expect(try await desk.book(slot, token: a.token).status == .created)
            #expect(try await desk.book(slot, token: b.token).problemCode == "slot-full")
            // Only upward: a tertiary hospital does not refer to a community clinic.
            let down = try await app.request(
                .post, "/api/v1/referrals", token: desk.h1,
                json: #"{"resident":"\#(referred.id)","fromClinician":"李主任","toFacility":"C1"}"#)
            #expect(down.problemCode == "referral-not-upward")
            let referral = try await app.request(
                .post, "/api/v1/referrals", token: desk.c1,
                json: #"{"resident":"\#(referred.id)","fromClinician":"王医生","toFacility":"H1","toDepartment":"cardiology","reason":"胸痛待查"}"#
            )
            #expect(referral.status == .created)
            let referralID = try #require(referral.json["id"] as? String)
            // The referral is for `referred`; it does not book anyone else.
            let wrong = try await desk.book(slot, token: desk.c1, extra: #","resident":"\#(b.id)","referral":"\#(referralID)""#)
            #expect(wrong.problemCode == "referral-mismatch")
            let booked = try await desk.book(slot, token: desk.c1, extra: #","resident":"\#(referred.id)","referral":"\#(referralID)""#)
            #expect(booked.status == .created, "\(String(buffer: booked.body))")
            #expect(booked.json["pool"] as? String == "referral")
            #expect(booked.json["channel"] as? String == "his")
            let used = try await app.request(.get, "/api/v1/referrals?direction=received", token: desk.h1).json["items"] as? [[String: Any]]
            #expect(used?.first?["status"] as? String == "booked")
            let nextSlot = try #require(try await desk.slots(schedule, date: nextDay(BookingDesk.tomorrow)).first?["id"] as? String)
            let reused = try await desk.book(nextSlot, token: desk.c1, extra: #","resident":"\#(referred.id)","referral":"\#(referralID)""#)
            #expect(reused.problemCode == "referral-not-open")
            // The referring clinic reads the booking it made; cancelling frees the held place and reopens the referral.
            let id = try #require(booked.json["id"] as? String)
            #expect(try await app.request(.get, "/api/v1/bookings/\(id)", token: desk.c1).status == .ok)
            #expect(try await app.request(.post, "/api/v1/bookings/\(id)/cancel", token: desk.c1).status == .ok)
            // Unused held places go public when the hold lapses.
            try await app.postgres.query("UPDATE scheduling.slots SET referral_release_at = now() - interval '1 second'")
            #expect(try await desk.book(slot, token: b.token).status == .created)
            #expect(
                try await desk.book(slot, token: desk.c1, extra: #","resident":"\#(referred.id)","referral":"\#(referralID)""#).problemCode
                    == "slot-full")
        }
    }

    @Test func aCancelledSlotCancelsItsBookingsAndTellsEveryone() async throws {
        try await withTestApp(Self.overrides) { app in
            let desk = try await BookingDesk.open(app)
            let schedule = try await desk.schedule(["capacity": 2, "referralCapacity": 1])
            let slot = try #require(try await desk.slots(schedule).first?["id"] as? String)
            let a = try await desk.resident(80)
            let referred = try await desk.resident(81)
            let waiting = try await desk.resident(82)
            #expect(try await desk.book(slot, token: a.token).status == .created)
            let referral = try await app.request(
                .post, "/api/v1/referrals", token: desk.c1, json: #"{"resident":"\#(referred.id)","fromClinician":"王医生","toFacility":"H1"}"#
            )
            let referralID = try #require(referral.json["id"] as? String)
            #expect(
                try await desk.book(slot, token: desk.c1, extra: #","resident":"\#(referred.id)","referral":"\#(referralID)""#).status
                    == .created)
            #expect(
                try await app.request(.post, "/api/v1/waitlist", token: waiting.token, json: #"{"slot":"\#(slot)"}"#).status == .created)
            #expect(try await app.request(.post, "/api/v1/slots/\(slot)/cancel", token: desk.c1).status == .forbidden)
            #expect(try await app.request(.post, "/api/v1/slots/\(slot)/cancel", token: a.token).status == .forbidden)
            let cancelled = try await app.request(.post, "/api/v1/slots/\(slot)/cancel", token: desk.h1, json: #"{"reason":"专家临时停诊"}"#)
            #expect(cancelled.status == .ok)
            #expect(cancelled.json["bookingsCancelled"] as? Int == 2)
            #expect(try await desk.count("SELECT count(*) FROM scheduling.outbox WHERE topic = 'slot.cancelled'") == 2)
            #expect(try await desk.count("SELECT count(*) FROM scheduling.bookings WHERE status = 'booked'") == 0)
            #expect(try await desk.count("SELECT count(*) FROM scheduling.waitlist WHERE status = 'waiting'") == 0)
            #expect(try await desk.count("SELECT count(*) FROM scheduling.referrals WHERE status = 'open'") == 1)
            #expect(try await desk.book(slot, token: waiting.token).problemCode == "slot-cancelled")
            #expect(try await app.request(.post, "/api/v1/slots/\(slot)/cancel", token: desk.h1).problemCode == "invalid-transition")
            let fhir = try await app.request(.get, "/fhir/r4/Slot/\(slot)", token: desk.h1)
            #expect(fhir.json["status"] as? String == "busy-unavailable")
        }
    }

    @Test func checkInGivesQueueNumbersAndReschedulingMovesAtomically() async throws {
        try await withTestApp(Self.overrides) { app in
            let desk = try await BookingDesk.open(app)
            let schedule = try await desk.schedule(["slotMinutes": 60, "cancelDeadlineHours": 0])
            let slots = try await desk.slots(schedule)
            let a = try await desk.resident(40)
            let b = try await desk.resident(41)
            let first = try #require(try await desk.book(slots[0]["id"], token: a.token).json["id"] as? String)
            let second = try #require(try await desk.book(slots[1]["id"], token: b.token).json["id"] as? String)
            #expect(try await app.request(.post, "/api/v1/bookings/\(first)/check-in", token: desk.h1).problemCode == "check-in-closed")
            // The day comes: the slots are today's.
            try await app.postgres.query(
                """
                UPDATE scheduling.slots SET day = (now() AT TIME ZONE 'Asia/Shanghai')::date, ends_at = now() + interval '1 hour'
                WHERE schedule_id = \(UUID(uuidString: schedule["id"] as! String)!) AND day = \(BookingDesk.tomorrow)::date
                """)
            try await app.postgres.query("UPDATE scheduling.bookings SET day = (now() AT TIME ZONE 'Asia/Shanghai')::date")
            let checkedB = try await app.request(.post, "/api/v1/bookings/\(second)/check-in", token: b.token)
            #expect(checkedB.json["queueNumber"] as? Int == 1)
            let checkedA = try await app.request(.post, "/api/v1/bookings/\(first)/check-in", token: desk.h1)
            #expect(checkedA.json["queueNumber"] as? Int == 2)
            #expect(checkedA.json["status"] as? String == "checked-in")
            #expect(try await app.request(.post, "/api/v1/bookings/\(first)/check-in", token: desk.h1).problemCode == "invalid-transition")

            // Rescheduling to a full slot keeps the booking where it was.
            let c = try await desk.resident(42)
            let later = try await desk.slots(schedule, date: nextDay(BookingDesk.tomorrow))
            let original = try #require(try await desk.book(later[0]["id"], token: c.token).json["id"] as? String)
            try await app.postgres.query(
                "UPDATE scheduling.slots SET public_booked = capacity WHERE id = \(UUID(uuidString: later[1]["id"] as! String)!)")
            let refused = try await app.request(
                .post, "/api/v1/bookings/\(original)/reschedule", token: c.token, json: #"{"slot":"\#(later[1]["id"] as! String)"}"#)
            #expect(refused.problemCode == "slot-full")
            #expect(try await app.request(.get, "/api/v1/bookings/\(original)", token: c.token).json["status"] as? String == "booked")
            let moved = try await app.request(
                .post, "/api/v1/bookings/\(original)/reschedule", token: c.token, json: #"{"slot":"\#(later[2]["id"] as! String)"}"#)
            #expect(moved.status == .created)
            #expect(moved.json["rescheduledFrom"] as? String == original)
            #expect(try await app.request(.get, "/api/v1/bookings/\(original)", token: c.token).json["status"] as? String == "cancelled")
            #expect(try await desk.count("SELECT public_booked::int8 FROM scheduling.slots WHERE id = '\(later[0]["id"] as! String)'") == 0)
        }
    }

    @Test func scriptedBookingIsRateLimitedPerResident() async throws {
        try await withTestApp(Self.overrides.merging(["QIANYUN_BOOKING_RESIDENT_PER_MINUTE": "3"]) { $1 }) { app in
            let desk = try await BookingDesk.open(app)
            let schedule = try await desk.schedule(["releaseDaysAhead": 0, "releaseTime": "23:59"])
            let slot = try #require(try await desk.slots(schedule).first?["id"] as? String)
            let scalper = try await desk.resident(50)
            var codes: [String?] = []
            for _ in 0..<5 { codes.append(try await desk.book(slot, token: scalper.token).problemCode) }
            #expect(codes == ["slot-not-released", "slot-not-released", "slot-not-released", "rate-limited", "rate-limited"])
            let limited = try await desk.book(slot, token: scalper.token)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter] != nil)
            // Someone else is not held back by it.
            let person = try await desk.resident(51)
            #expect(try await desk.book(slot, token: person.token).problemCode == "slot-not-released")
        }
    }

    @Test func appointmentsAreFHIRScheduleSlotAndAppointment() async throws {
        try await withTestApp(Self.overrides) { app in
            let desk = try await BookingDesk.open(app)
            let schedule = try await desk.schedule(["slotMinutes": 60])
            let slot = try #require(try await desk.slots(schedule).first?["id"] as? String)
            let resident = try await desk.resident(60)
            let booking = try #require(try await desk.book(slot, token: resident.token).json["id"] as? String)
            let scheduleID = try #require(schedule["id"] as? String)
            let validator = FHIRPatientTests()
            for (path, type) in [
                ("/fhir/r4/Schedule/\(scheduleID)", "Schedule"), ("/fhir/r4/Schedule?actor=Practitioner/\(desk.provider)", "Bundle"),
                ("/fhir/r4/Slot/\(slot)", "Slot"), ("/fhir/r4/Slot?schedule=\(scheduleID)&start=ge\(BookingDesk.tomorrow)", "Bundle"),
                ("/fhir/r4/Appointment/\(booking)", "Appointment"), ("/fhir/r4/Appointment?patient=\(resident.id)", "Bundle"),
            ] {
                let response = try await app.request(.get, path, token: path.contains("Appointment") ? resident.token : desk.h1)
                #expect(response.status == .ok, "\(path): \(String(buffer: response.body))")
                #expect(response.json["resourceType"] as? String == type)
                try validator.validateFHIR(response.body, type: type)
            }
            let appointment = try await app.request(.get, "/fhir/r4/Appointment/\(booking)", token: resident.token).json
            #expect(appointment["status"] as? String == "booked")
            let slots = try await app.request(.get, "/fhir/r4/Slot?schedule=\(scheduleID)&start=\(BookingDesk.tomorrow)", token: desk.h1)
                .json
            #expect((slots["entry"] as? [Any])?.count == 3)
            let other = try await desk.resident(61)
            let denied = try await app.request(.get, "/fhir/r4/Appointment/\(booking)", token: other.token)
            #expect(denied.status == .notFound)
            #expect(denied.json["resourceType"] as? String == "OperationOutcome")
            #expect(try await app.request(.get, "/fhir/r4/Slot?bogus=1", token: desk.h1).status == .unprocessableContent)
            let capabilities = try await app.request(.get, "/fhir/r4/metadata")
            #expect(String(buffer: capabilities.body).contains(#""type":"Appointment""#))
        }
    }

    @Test func theWorkerRemindsTheDayBeforeAndDrainsTheOutbox() async throws {
        try await withTestApp(Self.overrides) { app in
            let desk = try await BookingDesk.open(app)
            let schedule = try await desk.schedule()
            let slot = try #require(try await desk.slots(schedule).first?["id"] as? String)
            let later = try #require(try await desk.slots(schedule, date: nextDay(nextDay(BookingDesk.tomorrow))).first?["id"] as? String)
            let resident = try await desk.resident(70)
            #expect(try await desk.book(slot, token: resident.token).status == .created)
            let other = try await desk.resident(71)
            #expect(try await desk.book(later, token: other.token).status == .created)
            let admin = try await app.token(role: .admin)
            let run = try await app.request(.post, "/api/v1/scheduling/run", token: admin)
            #expect(run.status == .ok)
            #expect(run.json["reminders"] as? Int == 1)
            #expect(run.json["delivered"] as? Int == 3)
            #expect(try await desk.count("SELECT count(*) FROM scheduling.outbox WHERE delivered_at IS NULL") == 0)
            let again = try await app.request(.post, "/api/v1/scheduling/run", token: admin)
            #expect(again.json["reminders"] as? Int == 0)
            #expect(try await app.request(.post, "/api/v1/scheduling/run", token: desk.h1).status == .forbidden)
        }
    }
}

func nextDay(_ day: String) -> String {
    let formatter = DateFormatter()
    formatter.dateFormat = "yyyy-MM-dd"
    formatter.timeZone = TimeZone(identifier: "UTC")
    let date = formatter.date(from: day)!.addingTimeInterval(86_400)
    return formatter.string(from: date)
}

/// The token buckets behind the booking rate limits, on a clock the test controls.
@Suite struct RateLimiterTests {
    @Test func aBurstThenTheSteadyRateAndOtherKeysUntouched() async {
        let limiter = RateLimiter(burst: 3, perSecond: 0.5)
        var answers: [Int?] = []
        for _ in 0..<4 { answers.append(await limiter.take("resident-a", now: 1000)) }
        #expect(answers == [nil, nil, nil, 2])
        #expect(await limiter.take("resident-b", now: 1000) == nil)
        // One token back after two seconds, not two.
        #expect(await limiter.take("resident-a", now: 1002) == nil)
        #expect(await limiter.take("resident-a", now: 1002) != nil)
        // A long pause refills to the burst, never beyond it.
        for _ in 0..<3 { #expect(await limiter.take("resident-a", now: 2000) == nil) }
        #expect(await limiter.take("resident-a", now: 2000) != nil)
    }
}
