import ChronicRules
import Foundation

/// The programme codes of `schemas/rules/programmes.json` the generator knows how to simulate.
enum ProgrammeCode {
    static let hypertension = "hypertension"
    static let diabetes = "type2-diabetes"
    static let heartDisease = "coronary-heart-disease"
    static let all = [hypertension, diabetes, heartDisease]
}

/// How often a resident measures at home.
enum Adherence: Int, CaseIterable, Sendable {
    /// Every day (blood pressure morning and evening, fasting glucose), missing a slot now and then.
    case daily
    /// Every two to four days.
    case everyFewDays
    /// About once a week, now and then skipping one.
    case weekly
    /// Measures most days but stops for weeks at a time, some for good.
    case dropOut

    var label: String {
        switch self {
        case .daily: "daily"
        case .everyFewDays: "every few days"
        case .weekly: "weekly"
        case .dropOut: "drop-out (gaps of 3-10 weeks)"
        }
    }
}

/// One generated resident: programmes, home readings (sorted by measured time) and enrolments
/// with their face-to-face follow-ups.
struct SyntheticResident {
    var programmes: [String]
    var adherence: Adherence
    var history: [Reading]
    var enrolments: [ReplayEnrolment]
    /// Follow-ups done inside the period.
    var followUps: Int
}

/// A synthetic population of residents under chronic-disease management, measured at home in
/// +08:00 (a managed majority, as community programmes report: roughly two thirds of
/// hypertensives and half of diabetics controlled at home).
struct Population: Sendable {
    /// Local midnight (+08:00) of the period's first day, in seconds since 1970.
    static let defaultStart: Int64 = 1_767_196_800  // 2026-01-01T00:00:00+08:00
    static let utcOffset: Int32 = 8 * 3600

    var seed: UInt64
    var from: Int64 = Population.defaultStart
    var days: Int
    /// Days of readings generated before the period, so windows and absence are right on its first day.
    var warmUpDays = 28
    /// For the throughput run: everyone measures every slot every day, all enrolled before the period.
    var dense = false
    var followUpDays: [String: Int] = [:]

    var to: Int64 { from + Int64(days) * 86_400 }

    /// Programme combinations and their shares: ~65% hypertension, ~35% diabetes, ~15% coronary
    /// heart disease, everyone in at least one.
    static let combinations: [(share: Double, programmes: [String])] = [
        (0.51, [ProgrammeCode.hypertension]),
        (0.24, [ProgrammeCode.diabetes]),
        (0.10, [ProgrammeCode.hypertension, ProgrammeCode.diabetes]),
        (0.10, [ProgrammeCode.heartDisease]),
        (0.04, [ProgrammeCode.hypertension, ProgrammeCode.heartDisease]),
        (0.005, [ProgrammeCode.diabetes, ProgrammeCode.heartDisease]),
        (0.005, [ProgrammeCode.hypertension, ProgrammeCode.diabetes, ProgrammeCode.heartDisease]),
    ]
    static let adherenceShares: [Double] = [0.40, 0.30, 0.18, 0.12]

    func resident(_ number: Int) -> SyntheticResident {
        var random = SplitMix64(seed: seed, stream: number)
        let programmes = Self.combinations[random.pick(Self.combinations.map(\.share))].programmes
        let hypertension = programmes.contains(ProgrammeCode.hypertension)
        let diabetes = programmes.contains(ProgrammeCode.diabetes)
        let heartDisease = programmes.contains(ProgrammeCode.heartDisease)
        let adherence = dense ? Adherence.daily : Adherence(rawValue: random.pick(Self.adherenceShares))!

        // The resident's usual home values under treatment. Home pressures run below clinic ones:
        // N(132, 12) rather than a clinic's N(138, 14) leaves about two thirds of hypertensives
        // controlled at home, and N(6.8, 1.3) mmol/L about half of diabetics.
        var systolicBase = random.normal(132, 12).clamped(102...185)
        if !hypertension { systolicBase -= 6 }
        let diastolicBase = (80 + 0.4 * (systolicBase - 132) + random.normal(0, 6)).clamped(55...112)
        let heartRateBase = heartDisease ? random.normal(68, 7).clamped(56...105) : random.normal(74, 10).clamped(55...110)
        let glucoseBase = random.normal(6.8, 1.3).clamped(5.2...14)
        let spo2Base = random.normal(97, 1.2).clamped(93.5...99.5)
        let weightBase = random.normal(68, 11).clamped(40...120)
        let dayDeviation = random.uniform(3, 6)
        let badWeeksPerYear = random.uniform(0.5, 3)
        let bloodPressureCrisesPerYear = systolicBase > 150 ? 0.4 : 0.1
        let hyperglycaemiaPerYear = glucoseBase > 9 ? 1.0 : 0.05
        let hypoglycaemiaPerYear = random.chance(0.25) ? 1.5 : 0.1  // on insulin or a sulfonylurea, or not
        let arrhythmiaPerYear = 0.4
        let desaturationPerYear = 0.3

        // Enrolment: most before the period, some during it (the device arrives the next day).
        let enrolledDuring = !dense && random.chance(0.08) && days > 30
        let enrolledDay = enrolledDuring ? random.int(0...(days - 30)) : -random.int(120...1800)
        let enrolledAt = from + Int64(enrolledDay) * 86_400 + Int64(random.int(9 * 3600...16 * 3600))
        let firstDay = max(-(dense ? 0 : warmUpDays), enrolledDay + 1)

        var gaps: [Range<Int>] = []
        if adherence == .dropOut {
            for _ in 0..<random.int(1...3) {
                let start = random.int(firstDay...max(firstDay, days - 1))
                gaps.append(start..<(start + random.int(21...70)))
            }
            if random.chance(0.35) {
                let start = random.int((days / 2)...max(days / 2, days - 1))
                gaps.append(start..<Int.max)
            }
        }
        let step = random.int(2...4)
        var nextMeasureDay = firstDay + random.int(0...(adherence == .weekly ? 6 : step - 1))

        var history: [Reading] = []
        history.reserveCapacity(max(0, days - firstDay) * (hypertension ? 2 : 1) + (diabetes ? days : 0))
        var drift = random.normal(0, 3)
        var glucoseDrift = random.normal(0, 0.05)
        var badDaysLeft = 0
        for day in firstDay..<days {
            let midnight = from + Int64(day) * 86_400
            func at(_ earliest: Double, _ latest: Double) -> Int64 {
                midnight + Int64(random.uniform(earliest, latest) * 3600)
            }
            func append(_ time: Int64, _ pairs: KeyValuePairs<Measure, Double>) {
                var values = Values()
                for (measure, value) in pairs { values[measure] = value }
                history.append(Reading(time: time, utcOffset: Self.utcOffset, values: values))
            }

            // Winter pressures run higher (peak mid-January), and everyone drifts slowly.
            let dayOfYear = Double(((day % 365) + 365) % 365)
            let season = cos(2 * Double.pi * (dayOfYear - 15) / 365.25)
            drift = 0.95 * drift + random.normal(0, 1)
            glucoseDrift = 0.95 * glucoseDrift + random.normal(0, 0.016)
            if badDaysLeft > 0 {
                badDaysLeft -= 1
            } else if random.chance(badWeeksPerYear / 365) {
                badDaysLeft = random.int(6...9)
            }
            let bad = badDaysLeft > 0
            let dayNoise = random.normal(0, dayDeviation)
            let systolicDay = systolicBase + 4 * season + drift + dayNoise + (bad ? 15 : 0)
            let diastolicDay = diastolicBase + 2 * season + 0.5 * drift + 0.5 * dayNoise + random.normal(0, 2) + (bad ? 7 : 0)
            // Glucose varies in proportion to its level (about 8% from day to day).
            let glucoseDay = glucoseBase * exp(glucoseDrift + random.normal(0, 0.07)) + (bad ? 2 : 0)
            let bloodPressureCrisis = (hypertension || heartDisease) && random.chance(bloodPressureCrisesPerYear / 365)
            let hyperglycaemia = diabetes && random.chance(hyperglycaemiaPerYear / 365)
            let hypoglycaemia = diabetes && random.chance(hypoglycaemiaPerYear / 365)
            let arrhythmia = heartDisease && random.chance(arrhythmiaPerYear / 365)
            let desaturation = heartDisease && random.chance(desaturationPerYear / 365)

            var measuring: Bool
            switch adherence {
            case .daily:
                measuring = true
            case .everyFewDays, .weekly:
                measuring = day >= nextMeasureDay
                if measuring {
                    nextMeasureDay = day + (adherence == .weekly ? 7 + random.int(-1...1) : step + random.int(0...1))
                    if adherence == .weekly && random.chance(0.1) { measuring = false }
                }
            case .dropOut:
                measuring = random.chance(0.65)
            }
            if gaps.contains(where: { $0.contains(day) }) { measuring = false }
            // Feeling unwell makes some measure on a day they would not have.
            let unwell = bloodPressureCrisis || hyperglycaemia || hypoglycaemia || arrhythmia || desaturation
            if !measuring && unwell && !gaps.contains(where: { $0.contains(day) }) && random.chance(0.5) { measuring = true }
            guard measuring else { continue }

            let slots: (morning: Double, evening: Double, glucose: Double) =
                switch adherence {
                case _ where dense: (1, 1, 1)
                case .daily: (0.93, 0.8, 0.9)
                case .everyFewDays: (0.9, 0.4, 0.95)
                case .weekly: (1, 0.2, 1)
                case .dropOut: (0.9, 0.5, 0.9)
                }
            if diabetes && (random.chance(slots.glucose) || hyperglycaemia) {
                var value = glucoseDay * exp(random.normal(0, 0.04))
                if hyperglycaemia { value = 16.7 + abs(random.normal(0, 2.5)) }
                append(at(6, 7), [.fastingGlucose: (value.clamped(3.0...30) * 10).rounded() / 10])
            }
            if hypertension || heartDisease {
                let heartRate = heartRateBase + (bad ? 3 : 0)
                func bloodPressure(_ time: Int64, shift: Double, crisis: Bool) {
                    let noise = random.normal(0, 5)
                    var systolic = systolicDay + shift + noise
                    var diastolic = diastolicDay + shift / 2 + 0.4 * noise + random.normal(0, 3)
                    if crisis {
                        systolic = max(systolic, random.uniform(180, 205))
                        diastolic = max(diastolic, random.normal(102, 7))
                    }
                    systolic = systolic.clamped(85...260).rounded()
                    diastolic = min(diastolic.clamped(40...150), systolic - 15).rounded()
                    let pulse = arrhythmia ? random.uniform(121, 150) : heartRate + random.normal(0, 4)
                    append(time, [.systolic: systolic, .diastolic: diastolic, .heartRate: pulse.clamped(35...190).rounded()])
                }
                if random.chance(slots.morning) || bloodPressureCrisis || arrhythmia {
                    bloodPressure(at(6.5, 8), shift: 3, crisis: bloodPressureCrisis)
                }
                let evening = hypertension ? slots.evening : slots.evening * 0.3
                if random.chance(evening) { bloodPressure(at(19.5, 21.5), shift: -3, crisis: bloodPressureCrisis && random.chance(0.5)) }
            }
            if diabetes {
                if hypoglycaemia {
                    append(at(10, 22), [.randomGlucose: (random.uniform(2.5, 3.9) * 10).rounded() / 10])
                } else if random.chance(dense ? 0.1 : 0.12) {
                    let value = glucoseDay * random.uniform(1.25, 1.7)
                    append(at(13, 14.5), [.randomGlucose: (value.clamped(3.0...33) * 10).rounded() / 10])
                }
                if random.chance(0.12) { append(at(7, 8), [.weight: ((weightBase + random.normal(0, 0.6)) * 10).rounded() / 10]) }
            }
            if heartDisease && (random.chance(dense ? 1 : 0.5) || desaturation) {
                let value = desaturation ? Double(random.int(85...89)) : min(100, spo2Base + random.normal(0, 1)).rounded()
                append(at(8, 9), [.spo2: value])
            }
        }
        history.sort { $0.time < $1.time }

        // Face-to-face follow-ups, one visit for all of the resident's programmes: mostly on time
        // (78-90 days), some late, drop-outs more often.
        let onTime = adherence == .dropOut ? 0.4 : 0.65
        var visits: [Int64] = []
        var lastVisitDay = max(enrolledDay, -random.int(0...100))
        if lastVisitDay < 0 || dense { visits.append(from + Int64(lastVisitDay) * 86_400 + Int64(random.int(9 * 3600...11 * 3600))) }
        var followUps = 0
        while true {
            let draw = random.uniform()
            let interval =
                draw < onTime ? random.int(78...90) : draw < onTime + (1 - onTime) * 0.65 ? random.int(91...105) : random.int(106...150)
            lastVisitDay += interval
            guard lastVisitDay < days else { break }
            visits.append(from + Int64(lastVisitDay) * 86_400 + Int64(random.int(9 * 3600...11 * 3600)))
            followUps += 1
        }
        let enrolments = programmes.map { code in
            ReplayEnrolment(programme: code, enrolledAt: enrolledAt, followUpDays: followUpDays[code], followUps: visits)
        }
        return SyntheticResident(
            programmes: programmes, adherence: adherence, history: history, enrolments: enrolments, followUps: followUps)
    }
}
