import ChronicRules
import Foundation
import Testing

/// The rules engine on hand-built histories: every condition kind at its boundaries, the
/// resident's own calendar, late and stale readings, the sweep, the replay and the rule files.
@Suite struct ChronicRulesTests {
    static let day: Int64 = 86_400
    /// 2026-11-02 00:00 +08:00 as UTC seconds.
    static let start: Int64 = 1_793_548_800

    static func bp(_ systolic: Double, _ diastolic: Double, at time: Int64, offset: Int32 = 8 * 3600) -> Reading {
        Reading(time: time, utcOffset: offset, values: Values([.systolic: systolic, .diastolic: diastolic]))
    }

    static func glucose(_ value: Double, at time: Int64) -> Reading {
        Reading(time: time, values: Values([.fastingGlucose: value]))
    }

    static let high = Condition.any([.threshold(.systolic, .greaterOrEqual, 140), .threshold(.diastolic, .greaterOrEqual, 90)])

    static func engine(_ rules: [(String, Condition)], programme: String = "hypertension", staleAfterHours: Int = 72) -> RuleEngine {
        RuleEngine(
            ruleSet: RuleSet(
                version: "test", staleAfterHours: staleAfterHours,
                rules: rules.map {
                    Rule(id: $0.0, programme: programme, severity: .high, message: LocalizedMessage(zh: "测试", en: "test"), condition: $0.1)
                }))
    }

    func fired(_ engine: RuleEngine, _ history: [Reading], at index: Int? = nil, windowRulesOnly: Bool = false) -> [String] {
        let index = index ?? history.count - 1
        return engine.evaluate(
            history: history, at: index, programmes: ["hypertension"], now: history[index].time, windowRulesOnly: windowRulesOnly
        ).map { engine.rules[$0.rule].id }
    }

    @Test func thresholdsHoldAtTheirBoundaryAndNotBelow() {
        let engine = Self.engine([
            ("high", Self.high),
            ("urgent", .any([.threshold(.systolic, .greaterOrEqual, 180), .threshold(.diastolic, .greaterOrEqual, 110)])),
        ])
        #expect(fired(engine, [Self.bp(140, 80, at: Self.start)]) == ["high"])
        #expect(fired(engine, [Self.bp(139, 90, at: Self.start)]) == ["high"])
        #expect(fired(engine, [Self.bp(139, 89, at: Self.start)]).isEmpty)
        #expect(fired(engine, [Self.bp(139.9, 89.9, at: Self.start)]).isEmpty)
        #expect(fired(engine, [Self.bp(180, 100, at: Self.start)]) == ["high", "urgent"])
        #expect(fired(engine, [Self.bp(150, 110, at: Self.start)]) == ["high", "urgent"])
        #expect(fired(engine, [Self.bp(179, 109, at: Self.start)]) == ["high"])
        // A glucose reading carries no blood pressure: the rule is not even evaluated.
        #expect(fired(engine, [Self.glucose(20, at: Self.start)]).isEmpty)
        // Hypoglycaemia is a ≤ threshold.
        let hypo = Self.engine([("hypo", .threshold(.fastingGlucose, .lessOrEqual, 3.9))], programme: "hypertension")
        #expect(fired(hypo, [Self.glucose(3.9, at: Self.start)]) == ["hypo"])
        #expect(fired(hypo, [Self.glucose(4.0, at: Self.start)]).isEmpty)
    }

    @Test func countsLookAtTheLastReadingsThatCarryTheMeasure() {
        let engine = Self.engine([("3of5", .count(of: Self.high, atLeast: 3, lastReadings: 5, withinDays: nil))])
        let hour: Int64 = 3600
        var history = [
            Self.bp(150, 95, at: Self.start), Self.bp(120, 80, at: Self.start + hour), Self.bp(145, 85, at: Self.start + 2 * hour),
            Self.bp(118, 76, at: Self.start + 3 * hour),
        ]
        #expect(fired(engine, history).isEmpty)
        // A glucose reading in between is not one of "the last five blood pressures".
        history.append(Self.glucose(6, at: Self.start + 4 * hour))
        history.append(Self.bp(141, 70, at: Self.start + 5 * hour))
        #expect(fired(engine, history) == ["3of5"])
        let firing = engine.evaluate(history: history, at: history.count - 1, programmes: ["hypertension"], now: history.last!.time)[0]
        #expect(firing.evidence == [0, 2, 5])
        // A sixth blood pressure pushes the first high one out of the window.
        history.append(Self.bp(120, 70, at: Self.start + 6 * hour))
        #expect(fired(engine, history).isEmpty)

        // Within days: two high readings within 7 days, the third older.
        let weekly = Self.engine([("2in7", .count(of: Self.high, atLeast: 2, lastReadings: nil, withinDays: 7))])
        let spread = [
            Self.bp(150, 95, at: Self.start), Self.bp(150, 95, at: Self.start + 8 * Self.day),
            Self.bp(150, 95, at: Self.start + 9 * Self.day),
        ]
        #expect(fired(weekly, spread, at: 1).isEmpty)
        #expect(fired(weekly, spread, at: 2) == ["2in7"])
        // Exactly seven days back is outside the window (it is the window's open end).
        let edge = [Self.bp(150, 95, at: Self.start), Self.bp(150, 95, at: Self.start + 7 * Self.day)]
        #expect(fired(weekly, edge).isEmpty)
    }

    @Test func consecutiveDaysFollowTheResidentsOwnCalendar() {
        let engine = Self.engine([("2days", .consecutiveDays(of: Self.high, days: 2))])
        // 23:30 and 00:30 China time are two days; in UTC (15:30 and 16:30) they would be one.
        let late = Self.start + 23 * 3600 + 1800
        let early = late + 3600
        #expect(fired(engine, [Self.bp(150, 95, at: late), Self.bp(150, 95, at: early)]) == ["2days"])
        // The same instants for a resident in UTC fall on one day: no run of two days.
        #expect(fired(engine, [Self.bp(150, 95, at: late, offset: 0), Self.bp(150, 95, at: early, offset: 0)]).isEmpty)
        // A gap day breaks the run.
        #expect(fired(engine, [Self.bp(150, 95, at: Self.start), Self.bp(150, 95, at: Self.start + 2 * Self.day)]).isEmpty)
        // A day with a normal reading as well as a high one still counts as a high day.
        let mixed = [
            Self.bp(150, 95, at: Self.start), Self.bp(120, 80, at: Self.start + 3600), Self.bp(151, 96, at: Self.start + Self.day),
        ]
        #expect(fired(engine, mixed) == ["2days"])
        // A day with only normal readings does not.
        let normal = [Self.bp(120, 80, at: Self.start), Self.bp(151, 96, at: Self.start + Self.day)]
        #expect(fired(engine, normal).isEmpty)
    }

    @Test func trendsCompareTheLastWeeksMeanWithTheWeekBefore() {
        let engine = Self.engine([("rising", .trend(.systolic, days: 7, risesBy: 10, minimumReadings: 3))])
        var history: [Reading] = []
        for day in 0..<7 { history.append(Self.bp(130, 80, at: Self.start + Int64(day) * Self.day)) }
        for day in 7..<14 { history.append(Self.bp(140, 80, at: Self.start + Int64(day) * Self.day)) }
        // A rise of exactly 10 is not "more than 10".
        #expect(fired(engine, history).isEmpty)
        history[history.count - 1] = Self.bp(148, 80, at: history.last!.time)
        #expect(fired(engine, history) == ["rising"])
        // Too few readings in the earlier week: no verdict.
        let sparse = [Self.bp(120, 80, at: Self.start)] + history.suffix(7)
        #expect(fired(engine, sparse).isEmpty)
    }

    @Test func lateReadingsAreEvaluatedWhenMeasuredAndCompleteLaterWindows() {
        let engine = Self.engine([("high", Self.high), ("3of5", .count(of: Self.high, atLeast: 3, lastReadings: 5, withinDays: nil))])
        let history = [
            Self.bp(150, 95, at: Self.start), Self.bp(150, 95, at: Self.start + Self.day), Self.bp(120, 80, at: Self.start + 2 * Self.day),
            Self.bp(120, 80, at: Self.start + 3 * Self.day),
        ]
        // Without the late reading, no 3 of 5 at the latest reading.
        #expect(fired(engine, history).isEmpty)
        // A high reading measured on day 1.5 arrives last; as of its own time it is high and the
        // third high of the window is not yet there (two before it, itself): 3 of 5 fires there.
        var late = history
        late.insert(Self.bp(160, 100, at: Self.start + Self.day + Self.day / 2), at: 2)
        let now = Self.start + 3 * Self.day + 3600
        let atItsTime = engine.evaluate(history: late, at: 2, programmes: ["hypertension"], now: now).map { engine.rules[$0.rule].id }
        #expect(atItsTime == ["high", "3of5"])
        // And at the latest reading only window rules are looked at again.
        let atLatest = engine.evaluate(history: late, at: late.count - 1, programmes: ["hypertension"], now: now, windowRulesOnly: true)
        #expect(atLatest.map { engine.rules[$0.rule].id } == ["3of5"])
        // A reading measured longer ago than staleAfterHours raises nothing on its own.
        let stale = engine.evaluate(history: late, at: 2, programmes: ["hypertension"], now: now + 4 * Self.day)
        #expect(stale.isEmpty)
    }

    @Test func absenceAndOverdueFollowUpAreDecidedByTheSweep() {
        let engine = Self.engine([
            ("silent", .absence(days: 14, measures: MeasureSet([.systolic]))), ("overdue", .followUpOverdue(graceDays: 0)),
        ])
        let enrolled = Self.start
        let history = [Self.bp(130, 80, at: Self.start + Self.day), Self.glucose(6, at: Self.start + 20 * Self.day)]
        func sweep(_ now: Int64, due: Int64? = nil) -> [String] {
            engine.sweep(
                history: history, enrolment: EnrolmentState(programme: "hypertension", enrolledAt: enrolled, followUpDue: due), now: now
            )
            .map { engine.rules[$0.rule].id }
        }
        // Fourteen days after the last blood pressure exactly: silent. The glucose does not count.
        #expect(sweep(Self.start + 15 * Self.day - 1).isEmpty)
        #expect(sweep(Self.start + 15 * Self.day) == ["silent"])
        // With no reading at all, the clock starts at enrolment.
        let none = engine.sweep(
            history: [], enrolment: EnrolmentState(programme: "hypertension", enrolledAt: enrolled), now: enrolled + 13 * Self.day)
        #expect(none.isEmpty)
        #expect(sweep(Self.start + 10 * Self.day, due: Self.start + 10 * Self.day).isEmpty)
        #expect(sweep(Self.start + 10 * Self.day + 1, due: Self.start + 10 * Self.day) == ["overdue"])
        // A reading does not decide sweep rules.
        #expect(fired(engine, history, at: 0).isEmpty)
        // Sweep rules of another programme are not run.
        #expect(engine.sweep(history: [], enrolment: EnrolmentState(programme: "type2-diabetes", enrolledAt: 0), now: Self.start).isEmpty)
    }

    @Test func combinationsNeedAllOrAny() {
        let engine = Self.engine([
            (
                "both",
                .all([.threshold(.systolic, .greaterOrEqual, 140), .count(of: Self.high, atLeast: 2, lastReadings: 3, withinDays: nil)])
            )
        ])
        #expect(fired(engine, [Self.bp(150, 80, at: Self.start)]).isEmpty)
        #expect(fired(engine, [Self.bp(150, 80, at: Self.start), Self.bp(150, 80, at: Self.start + 60)]) == ["both"])
        #expect(fired(engine, [Self.bp(150, 80, at: Self.start), Self.bp(130, 95, at: Self.start + 60)]).isEmpty)
    }

    @Test func evidenceOfAFailedCombinationIsDropped() {
        // any(all(3 of 5 high, diastolic < 60), diastolic ≥ 90): the `all` fails on its second part,
        // so only the reading that met the second branch is evidence.
        let condition = Condition.any([
            .all([
                .count(of: .threshold(.systolic, .greaterOrEqual, 140), atLeast: 3, lastReadings: 5, withinDays: nil),
                .threshold(.diastolic, .less, 60),
            ]),
            .threshold(.diastolic, .greaterOrEqual, 90),
        ])
        let engine = Self.engine([("r", condition)])
        let history = (0..<3).map { Self.bp(150, 80, at: Self.start + Int64($0) * 60) } + [Self.bp(150, 95, at: Self.start + 600)]
        let firing = engine.evaluate(history: history, at: 3, programmes: ["hypertension"], now: history[3].time)
        #expect(firing.map(\.evidence) == [[3]])
    }

    @Test func oneReadingRaisesOneRuleOfAGroup() throws {
        let urgent = Condition.threshold(.systolic, .greaterOrEqual, 180)
        let engine = RuleEngine(
            ruleSet: RuleSet(
                version: "g",
                rules: [
                    Rule(
                        id: "htn", programme: "hypertension", severity: .urgent, message: .init(zh: "z", en: "e"), condition: urgent,
                        group: "bp"),
                    Rule(id: "chd", programme: "chd", severity: .urgent, message: .init(zh: "z", en: "e"), condition: urgent, group: "bp"),
                    Rule(id: "other", programme: "chd", severity: .high, message: .init(zh: "z", en: "e"), condition: urgent),
                ]))
        let history = [Self.bp(185, 100, at: Self.start)]
        let both = engine.evaluate(history: history, at: 0, programmes: ["chd", "hypertension"], now: Self.start)
        #expect(both.map { engine.rules[$0.rule].id } == ["htn", "other"])
        let chdOnly = engine.evaluate(history: history, at: 0, programmes: ["chd"], now: Self.start)
        #expect(chdOnly.map { engine.rules[$0.rule].id } == ["chd", "other"])
        // Setting a measure back to NaN removes it from the reading.
        var values = Values([.systolic: 120])
        values[.systolic] = .nan
        #expect(values.present.isEmpty)
    }

    @Test func theReplayRaisesOnceWhileAnAlertWouldBeOpen() {
        let engine = Self.engine([("high", Self.high), ("silent", .absence(days: 14, measures: MeasureSet()))])
        var history: [Reading] = []
        for day in 0..<10 { history.append(Self.bp(150, 95, at: Self.start + Int64(day) * Self.day + 8 * 3600)) }
        let replayed = engine.replay(
            history: history, enrolments: [ReplayEnrolment(programme: "hypertension", enrolledAt: Self.start, followUpDays: 90)],
            from: Self.start, to: Self.start + 40 * Self.day, options: ReplayOptions(closeAfterDays: 7))
        let highs = replayed.filter { engine.rules[$0.rule].id == "high" }
        // Ten high days, an alert closed a week after it was raised: raised on day 0 and day 7.
        #expect(highs.map { ($0.raisedAt - Self.start) / Self.day } == [0, 7])
        // Silence from day 9: the daily sweep finds it on day 23, then again a week later.
        let silences = replayed.filter { engine.rules[$0.rule].id == "silent" }.map { ($0.raisedAt - Self.start) / Self.day }
        #expect(silences == [24, 31, 38])
    }

    @Test func readingsAreNormalisedAndImpossibleOnesRefused() throws {
        let mgdl = try normalize(.glucoseFasting, RawValues(value: 126, unit: "mg/dL")).get()
        #expect(abs(mgdl[.fastingGlucose] - 6.99) < 0.01)
        let kpa = try normalize(.bloodPressure, RawValues(systolic: 20, diastolic: 12, unit: "kPa")).get()
        #expect(abs(kpa[.systolic] - 150.01) < 0.01)
        let fahrenheit = try normalize(.temperature, RawValues(value: 98.6, unit: "[degF]")).get()
        #expect(abs(fahrenheit[.temperature] - 37) < 0.01)
        #expect(try normalize(.weight, RawValues(value: 130, unit: "斤")).get()[.weight] == 65)
        func refused(_ type: ReadingType, _ raw: RawValues) -> String? {
            if case .failure(let rejection) = normalize(type, raw) { return rejection.field }
            return nil
        }
        #expect(refused(.bloodPressure, RawValues(systolic: 400, diastolic: 90)) == "systolic")
        #expect(refused(.bloodPressure, RawValues(systolic: 90, diastolic: 120)) == "diastolic")
        #expect(refused(.bloodPressure, RawValues(systolic: 120)) == "diastolic")
        #expect(refused(.glucoseFasting, RawValues(value: 126, unit: "g/L")) == "unit")
        #expect(refused(.glucoseFasting, RawValues(value: 0.1)) == "value")
        #expect(refused(.spo2, RawValues(value: 101)) == "value")
        #expect(refused(.heartRate, RawValues(value: .nan)) == "value")
        #expect(refused(.weight, RawValues(systolic: 120, diastolic: 80)) == "value")
        // The boundaries themselves are possible.
        #expect(refused(.bloodPressure, RawValues(systolic: 300, diastolic: 200 - 1)) == nil)
        #expect(refused(.spo2, RawValues(value: 50)) == nil)
    }

    @Test func deviceTimestampsAgreeWithFoundation() throws {
        let foundation = ISO8601DateFormatter()
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let seconds = Int64.random(in: -2_000_000_000...4_000_000_000, using: &generator)
            let offset = [0, 480, -300, 345, -570, 840][Int.random(in: 0..<6, using: &generator)]
            let text = DeviceTimestamp.format(seconds: seconds, offsetMinutes: offset)
            foundation.timeZone = TimeZone(secondsFromGMT: offset * 60)
            #expect(text == foundation.string(from: Date(timeIntervalSince1970: Double(seconds))))
            let parsed = try #require(DeviceTimestamp.parse(text))
            #expect(parsed.offsetMinutes == offset && parsed.instant(assumingOffsetMinutes: 0) == seconds)
        }
        let china = try #require(DeviceTimestamp.parse("2026-11-30 07:45"))
        #expect(china.offsetMinutes == nil && china.instant(assumingOffsetMinutes: 480) == 1_795_995_900)
        #expect(DeviceTimestamp.parse("2026-11-30T07:45:00.250-0500")?.nanoseconds == 250_000_000)
        #expect(DeviceTimestamp.parse("2024-02-29T00:00:00Z") != nil)
        for bad in [
            "2026-02-29T00:00:00Z", "2026-13-01T00:00", "2026-11-30T24:00", "2026-11-30", "2026-11-30T07:45:00+0800x", "30/11/2026 07:45",
            "2026-11-30T07:45:00.Z", "2026-11-30T07:45+15:00", "２０２６-11-30T07:45",
        ] {
            #expect(DeviceTimestamp.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func alertTransitionsFollowTheLifecycle() throws {
        var alert = AlertState()
        try alert.on(.triggered)
        try alert.on(.escalate)
        #expect(throws: AlertTransitionError.self) { try alert.on(.escalate) }
        #expect(throws: AlertTransitionError.noteRequired) { try alert.on(.close(note: "  ")) }
        try alert.on(.acknowledge)
        #expect(throws: AlertTransitionError.self) { try alert.on(.acknowledge) }
        try alert.on(.close(note: "电话随访，已调整用药"))
        #expect(alert.status == .closed)
        #expect(throws: AlertTransitionError.self) { try alert.on(.triggered) }
        #expect(AlertState.allowedFrom(.acknowledge) == [.open])
        #expect(AlertState.allowedFrom(.close(note: "x")) == [.open, .acknowledged])
    }

    @Test func theShippedRuleFilesLoadAndBadRulesAreNamed() throws {
        let directory = TestDatabase.schemasDirectory + "/rules"
        let ruleSet = try JSONDecoder().decode(
            RuleSet.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/chronic-rules.json")))
        struct File: Decodable { var programmes: [Programme] }
        let programmes = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/programmes.json")))
            .programmes
        try ruleSet.validate(programmes: Set(programmes.map(\.code)))
        #expect(ruleSet.rules.count >= 10)
        let hypertension = try #require(programmes.first { $0.code == "hypertension" })
        let prefixes = try hypertension.diagnosisPrefixes()
        #expect(prefixes == ["I10", "I11", "I12", "I13", "I14", "I15"])
        #expect(Programme.qualifies("I10.x00", prefixes: prefixes) && Programme.qualifies("i15.9", prefixes: prefixes))
        #expect(!Programme.qualifies("I16", prefixes: prefixes) && !Programme.qualifies("I100", prefixes: prefixes))

        func decode(_ json: String) -> String? {
            do {
                let set = try JSONDecoder().decode(RuleSet.self, from: Data(json.utf8))
                try set.validate(programmes: ["hypertension"])
                return nil
            } catch let error as RuleSetError {
                return error.description
            } catch {
                return "\(error)"
            }
        }
        func rule(_ when: String, programme: String = "hypertension") -> String {
            #"{"version":"x","rules":[{"id":"r1","programme":"\#(programme)","severity":"high","message":{"zh":"z","en":"e"},"when":\#(when)}]}"#
        }
        #expect(decode(rule(#"{"threshold":{"measure":"systolic","op":">=","value":140}}"#)) == nil)
        #expect(
            decode(rule(#"{"count":{"of":{"trend":{"measure":"systolic","days":7,"risesBy":5}},"atLeast":1,"lastReadings":2}}"#))?.contains(
                "count.of") == true)
        #expect(decode(rule(#"{"threshold":{"measure":"sugar","op":">=","value":1}}"#)) != nil)
        #expect(decode(rule(#"{"sometimes":{}}"#))?.contains("unknown condition") == true)
        #expect(
            decode(rule(#"{"threshold":{"measure":"systolic","op":">=","value":140}}"#, programme: "asthma"))?.contains("rule r1") == true)
        #expect(
            decode(rule(#"{"all":[{"absence":{"days":14}},{"threshold":{"measure":"systolic","op":">=","value":140}}]}"#))?.contains(
                "not both") == true)
    }
}
