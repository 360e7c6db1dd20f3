import ChronicRules
import Dispatch
import Foundation
import Synchronization

/// What a slice of the population contributed to the backtest; slices are merged in any order.
struct Tally {
    var residents = 0
    var residentsIn: [String: Int] = [:]
    var enrolledDays: [String: Double] = [:]
    var adherence = [Int](repeating: 0, count: Adherence.allCases.count)
    /// Readings measured inside the period, by kind, and before it (the warm-up).
    var readings: [String: Int] = [:]
    var warmUpReadings = 0
    var followUps = 0
    /// Residents with home readings in the period, and those of them whose mean is below the
    /// rules' thresholds (blood pressure below 140/90 in hypertension, fasting glucose below 7.0 in diabetes).
    var measured: [String: Int] = [:]
    var controlled: [String: Int] = [:]
    var alerts: [Int]
    /// Alerts raised for residents not controlled at home in the rule's programme.
    var alertsUncontrolled: [Int]
    var affected: [Int]
    /// Instants (a reading, or a sweep) at which a resident was raised alerts; those raising
    /// several at once, and several urgent ones at once.
    var alertEvents = 0
    var multipleAlertEvents = 0
    var multipleUrgentEvents = 0
    var severityAlerts = [Int](repeating: 0, count: Severity.allCases.count)
    var severityAffected = [Int](repeating: 0, count: Severity.allCases.count)
    var anyAffected = 0
    var weekly: [Int]
    var weeklyUrgent: [Int]
    var generationSeconds = 0.0
    var replaySeconds = 0.0

    init(rules: Int, weeks: Int) {
        alerts = [Int](repeating: 0, count: rules)
        alertsUncontrolled = alerts
        affected = alerts
        weekly = [Int](repeating: 0, count: weeks)
        weeklyUrgent = weekly
    }

    mutating func merge(_ other: Tally) {
        residents += other.residents
        residentsIn.merge(other.residentsIn, uniquingKeysWith: +)
        enrolledDays.merge(other.enrolledDays, uniquingKeysWith: +)
        readings.merge(other.readings, uniquingKeysWith: +)
        warmUpReadings += other.warmUpReadings
        followUps += other.followUps
        measured.merge(other.measured, uniquingKeysWith: +)
        controlled.merge(other.controlled, uniquingKeysWith: +)
        anyAffected += other.anyAffected
        alertEvents += other.alertEvents
        multipleAlertEvents += other.multipleAlertEvents
        multipleUrgentEvents += other.multipleUrgentEvents
        generationSeconds += other.generationSeconds
        replaySeconds += other.replaySeconds
        for index in adherence.indices { adherence[index] += other.adherence[index] }
        for index in alerts.indices {
            alerts[index] += other.alerts[index]
            alertsUncontrolled[index] += other.alertsUncontrolled[index]
            affected[index] += other.affected[index]
        }
        for index in severityAlerts.indices {
            severityAlerts[index] += other.severityAlerts[index]
            severityAffected[index] += other.severityAffected[index]
        }
        for index in weekly.indices {
            weekly[index] += other.weekly[index]
            weeklyUrgent[index] += other.weeklyUrgent[index]
        }
    }
}

func readingKind(_ values: Values) -> String {
    if values.present.contains(.systolic) { return "blood pressure (with heart rate)" }
    if values.present.contains(.fastingGlucose) { return "fasting glucose" }
    if values.present.contains(.randomGlucose) { return "random glucose" }
    if values.present.contains(.spo2) { return "SpO2" }
    if values.present.contains(.weight) { return "weight" }
    return "other"
}

/// CPU time of the calling thread, so that the split between generating and replaying is right
/// even when the threads share cores with other work.
func threadCPUSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Generates and replays residents `range` of the population.
func backtestSlice(_ range: Range<Int>, population: Population, engine: RuleEngine, options: ReplayOptions) -> Tally {
    let weeks = (population.days + 6) / 7
    var tally = Tally(rules: engine.rules.count, weeks: weeks)
    let severityOf = engine.rules.map { Severity.allCases.firstIndex(of: $0.severity)! }
    let urgent = Severity.allCases.firstIndex(of: .urgent)!
    for number in range {
        let started = threadCPUSeconds()
        let resident = population.resident(number)
        let generated = threadCPUSeconds()
        // The replay starts with the warm-up, so that the alerts open on the period's first day
        // are those a running service would have open; only alerts raised in the period count.
        let alerts = engine.replay(
            history: resident.history, enrolments: resident.enrolments, from: population.from - Int64(population.warmUpDays) * 86_400,
            to: population.to, options: options
        ).filter { $0.raisedAt >= population.from }
        tally.replaySeconds += threadCPUSeconds() - generated
        tally.generationSeconds += generated - started

        tally.residents += 1
        tally.adherence[resident.adherence.rawValue] += 1
        tally.followUps += resident.followUps
        for enrolment in resident.enrolments {
            tally.residentsIn[enrolment.programme, default: 0] += 1
            let start = max(enrolment.enrolledAt, population.from)
            tally.enrolledDays[enrolment.programme, default: 0] += Double(max(0, population.to - start)) / 86_400
        }
        var sums = (systolic: 0.0, diastolic: 0.0, pressures: 0, glucose: 0.0, glucoses: 0)
        for reading in resident.history {
            if reading.time < population.from {
                tally.warmUpReadings += 1
            } else if reading.time <= population.to {
                tally.readings[readingKind(reading.values), default: 0] += 1
                if reading.values.present.contains(.systolic) {
                    sums.systolic += reading.values[.systolic]
                    sums.diastolic += reading.values[.diastolic]
                    sums.pressures += 1
                }
                if reading.values.present.contains(.fastingGlucose) {
                    sums.glucose += reading.values[.fastingGlucose]
                    sums.glucoses += 1
                }
            }
        }
        var uncontrolled = Set<String>()
        if resident.programmes.contains(ProgrammeCode.hypertension) && sums.pressures > 0 {
            tally.measured[ProgrammeCode.hypertension, default: 0] += 1
            let count = Double(sums.pressures)
            if sums.systolic / count < 140 && sums.diastolic / count < 90 {
                tally.controlled[ProgrammeCode.hypertension, default: 0] += 1
            } else {
                uncontrolled.insert(ProgrammeCode.hypertension)
            }
        }
        if resident.programmes.contains(ProgrammeCode.diabetes) && sums.glucoses > 0 {
            tally.measured[ProgrammeCode.diabetes, default: 0] += 1
            if sums.glucose / Double(sums.glucoses) < 7 {
                tally.controlled[ProgrammeCode.diabetes, default: 0] += 1
            } else {
                uncontrolled.insert(ProgrammeCode.diabetes)
            }
        }
        var rulesHit = Set<Int>()
        var severitiesHit = Set<Int>()
        var previous: (time: Int64, alerts: Int, urgent: Int) = (Int64.min, 0, 0)
        func closeEvent() {
            if previous.alerts > 1 { tally.multipleAlertEvents += 1 }
            if previous.urgent > 1 { tally.multipleUrgentEvents += 1 }
        }
        for alert in alerts {
            if alert.raisedAt != previous.time {
                closeEvent()
                previous = (alert.raisedAt, 0, 0)
                tally.alertEvents += 1
            }
            previous.alerts += 1
            if severityOf[alert.rule] == urgent { previous.urgent += 1 }
            if uncontrolled.contains(engine.rules[alert.rule].programme) { tally.alertsUncontrolled[alert.rule] += 1 }
            tally.alerts[alert.rule] += 1
            tally.severityAlerts[severityOf[alert.rule]] += 1
            rulesHit.insert(alert.rule)
            severitiesHit.insert(severityOf[alert.rule])
            let week = min(weeks - 1, max(0, Int((alert.raisedAt - population.from) / (7 * 86_400))))
            tally.weekly[week] += 1
            if severityOf[alert.rule] == urgent { tally.weeklyUrgent[week] += 1 }
        }
        closeEvent()
        for rule in rulesHit { tally.affected[rule] += 1 }
        for severity in severitiesHit { tally.severityAffected[severity] += 1 }
        if !alerts.isEmpty { tally.anyAffected += 1 }
    }
    return tally
}

/// A year (by default) of generated readings replayed through the rule set for every resident:
/// the alerts a clinic would have faced, per rule and per severity.
func runBacktest(engine: RuleEngine, options: Options, followUpDays: [String: Int]) {
    let population = Population(seed: options.seed, days: options.days, followUpDays: followUpDays)
    let replayOptions = ReplayOptions(closeAfterDays: 7, sweepEveryHours: 24)
    let threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
    let chunk = 100
    let chunks = (options.residents + chunk - 1) / chunk
    let results = Mutex<[Int: Tally]>([:])

    let clock = ContinuousClock()
    let started = clock.now
    DispatchQueue.concurrentPerform(iterations: chunks) { index in
        let range = (index * chunk)..<min(options.residents, (index + 1) * chunk)
        let tally = backtestSlice(range, population: population, engine: engine, options: replayOptions)
        results.withLock { $0[index] = tally }
    }
    let wall = seconds(clock.now - started)
    var total = Tally(rules: engine.rules.count, weeks: (options.days + 6) / 7)
    results.withLock { parts in
        for index in parts.keys.sorted() { total.merge(parts[index]!) }
    }

    let residents = Double(max(1, total.residents))
    let weeks = Double(options.days) / 7
    func enrolledThousandWeeks(_ programme: String) -> Double { (total.enrolledDays[programme] ?? 0) / 7 / 1000 }

    print("Backtest: RuleEngine.replay(history:enrolments:from:to:options:) over a generated population")
    print(
        "  \(grouped(total.residents)) residents, \(options.days) days from 2026-01-01 (+08:00), seed \(options.seed); "
            + "alerts close after \(replayOptions.closeAfterDays) days, sweep every \(replayOptions.sweepEveryHours) h")
    print()
    print("Population")
    var programmes = TextTable(["programme", "residents", "share", "enrolled resident-weeks", "controlled at home"])
    for code in ProgrammeCode.all {
        let count = total.residentsIn[code] ?? 0
        let measured = total.measured[code] ?? 0
        programmes.add([
            code, grouped(count), String(format: "%.1f%%", 100 * Double(count) / residents),
            grouped(Int(((total.enrolledDays[code] ?? 0) / 7).rounded())),
            measured > 0 ? String(format: "%.0f%%", 100 * Double(total.controlled[code] ?? 0) / Double(measured)) : "-",
        ])
    }
    print(programmes.render())
    print(
        "  controlled at home: the period's mean home reading below 140/90 mmHg (hypertension) "
            + "or fasting glucose below 7.0 mmol/L (diabetes)")
    print()
    var adherence = TextTable(["measures at home", "residents", "share"])
    for pattern in Adherence.allCases {
        let count = total.adherence[pattern.rawValue]
        adherence.add([pattern.label, grouped(count), String(format: "%.1f%%", 100 * Double(count) / residents)])
    }
    print(adherence.render())
    print()
    var readings = TextTable(["readings in the period", "count", "per resident per week"])
    var inPeriod = 0
    for (kind, count) in total.readings.sorted(by: { $0.value > $1.value }) {
        readings.add([kind, grouped(count), String(format: "%.2f", Double(count) / residents / weeks)])
        inPeriod += count
    }
    readings.rule()
    readings.add(["all", grouped(inPeriod), String(format: "%.2f", Double(inPeriod) / residents / weeks)])
    print(readings.render())
    print(
        "  plus \(grouped(total.warmUpReadings)) readings in the \(population.warmUpDays) days before the period; "
            + "\(grouped(total.followUps)) face-to-face follow-ups in the period")
    print()

    print("Alerts by rule (per 1,000 residents per week: of the whole population / of those enrolled in the rule's programme)")
    var table = TextTable(
        ["rule", "programme", "severity", "alerts", "residents", "/1,000/week", "/1,000 enrolled/week", "to uncontrolled"], leftAligned: 3)
    for (index, rule) in engine.rules.enumerated() {
        let alerts = total.alerts[index]
        let enrolled = enrolledThousandWeeks(rule.programme)
        let judged = total.measured[rule.programme] != nil && alerts > 0 && !rule.needsSweep
        table.add([
            rule.id + (rule.enabled ? "" : " (disabled)"), rule.programme, rule.severity.rawValue, grouped(alerts),
            grouped(total.affected[index]), rate(Double(alerts) / (residents / 1000) / weeks),
            enrolled > 0 ? rate(Double(alerts) / enrolled) : "-",
            judged ? String(format: "%.0f%%", 100 * Double(total.alertsUncontrolled[index]) / Double(alerts)) : "",
        ])
    }
    table.rule()
    for severity in Severity.allCases.reversed() {
        let index = Severity.allCases.firstIndex(of: severity)!
        let alerts = total.severityAlerts[index]
        table.add([
            "all \(severity.rawValue)", "", severity.rawValue, grouped(alerts), grouped(total.severityAffected[index]),
            rate(Double(alerts) / (residents / 1000) / weeks), "",
        ])
    }
    let alerts = total.alerts.reduce(0, +)
    table.add(["all alerts", "", "", grouped(alerts), grouped(total.anyAffected), rate(Double(alerts) / (residents / 1000) / weeks), ""])
    print(table.render())
    func uncontrolledShare(_ code: String) -> String {
        let measured = total.measured[code] ?? 0
        return String(format: "%.0f%%", 100 * Double(measured - (total.controlled[code] ?? 0)) / Double(max(1, measured)))
    }
    print(
        "  to uncontrolled: the share of the rule's alerts raised for residents not controlled at home in its programme ("
            + "\(uncontrolledShare(ProgrammeCode.hypertension)) of hypertension and \(uncontrolledShare(ProgrammeCode.diabetes)) "
            + "of diabetes residents are not)")
    let perEvent = Double(alerts) / Double(max(1, total.alertEvents))
    print(
        "  \(grouped(total.alertEvents)) readings or sweeps raised alerts, \(String(format: "%.2f", perEvent)) alerts each on average; "
            + "\(grouped(total.multipleAlertEvents)) raised two or more at once, "
            + "\(grouped(total.multipleUrgentEvents)) two or more urgent ones")
    print()

    // Whole weeks only: the last, partial week would look quiet.
    let fullWeeks = options.days / 7
    if fullWeeks > 0 {
        let perThousand = total.weekly.prefix(fullWeeks).map { Double($0) / (residents / 1000) }
        let urgentPerThousand = total.weeklyUrgent.prefix(fullWeeks).map { Double($0) / (residents / 1000) }
        let quietest = perThousand.indices.min { perThousand[$0] < perThousand[$1] }!
        let busiest = perThousand.indices.max { perThousand[$0] < perThousand[$1] }!
        print(
            "  all alerts per 1,000 residents, week by week: quietest \(rate(perThousand[quietest])) (week \(quietest + 1)), "
                + "busiest \(rate(perThousand[busiest])) (week \(busiest + 1)); urgent from \(rate(urgentPerThousand.min()!)) "
                + "to \(rate(urgentPerThousand.max()!))")
        let urgentAlerts = Double(total.severityAlerts[Severity.allCases.firstIndex(of: .urgent)!])
        print(
            "  a clinic managing 1,000 of these residents would open \(rate(Double(alerts) / (residents / 1000) / weeks)) alerts a week, "
                + "\(rate(urgentAlerts / (residents / 1000) / weeks)) of them urgent")
    }
    print(
        "  wall time \(String(format: "%.1f", wall)) s on \(threads) threads (generation \(String(format: "%.1f", total.generationSeconds)) "
            + "CPU seconds, replay \(String(format: "%.1f", total.replaySeconds)) CPU seconds, "
            + "\(String(format: "%.0f", total.replaySeconds / residents * 1e6)) us of replay per resident-"
            + "\(options.days == 365 ? "year" : "period"))")
}
