/// A rule that fired, with the readings that made it fire (positions in the history given).
public struct Firing: Sendable, Equatable {
    public var rule: Int
    public var evidence: [Int]

    public init(rule: Int, evidence: [Int]) {
        self.rule = rule
        self.evidence = evidence
    }
}

/// What the sweep knows about one enrolment besides its readings.
public struct EnrolmentState: Sendable, Equatable {
    public var programme: String
    public var enrolledAt: Int64
    /// When the next face-to-face follow-up is due, if the programme schedules them.
    public var followUpDue: Int64?

    public init(programme: String, enrolledAt: Int64, followUpDue: Int64? = nil) {
        self.programme = programme
        self.enrolledAt = enrolledAt
        self.followUpDue = followUpDue
    }
}

/// Evaluates a rule set. Pure: it is given a resident's history (sorted by measured time) and
/// says which rules fire; storing readings and raising alerts is the service's business.
///
/// A new reading is evaluated as of its own measured time, against the history measured up to
/// it; a late reading (measured before others already on file) is also evaluated, for its window
/// rules, as of the latest reading, since it may complete a window there.
public struct RuleEngine: Sendable {
    public let ruleSet: RuleSet
    /// Enabled rules decided by readings, by programme.
    let readingRules: [String: [Int]]
    /// Enabled rules decided by the sweep, by programme.
    let sweepRules: [String: [Int]]

    public init(ruleSet: RuleSet) {
        self.ruleSet = ruleSet
        var reading: [String: [Int]] = [:]
        var sweep: [String: [Int]] = [:]
        for (index, rule) in ruleSet.rules.enumerated() where rule.enabled {
            if rule.needsSweep {
                sweep[rule.programme, default: []].append(index)
            } else {
                reading[rule.programme, default: []].append(index)
            }
        }
        readingRules = reading
        sweepRules = sweep
    }

    public var rules: [Rule] { ruleSet.rules }

    /// Rules of `programmes` that fire as of `history[index]`. `now` decides staleness: a reading
    /// measured more than `staleAfterHours` before `now` raises nothing on its own.
    /// `windowRulesOnly` limits the evaluation to rules that look back (for re-evaluating the
    /// latest reading after a late one).
    public func evaluate(
        history: UnsafeBufferPointer<Reading>, at index: Int, programmes: some Sequence<String>, now: Int64, windowRulesOnly: Bool = false
    ) -> [Firing] {
        let reading = history[index]
        if reading.time < now - Int64(ruleSet.staleAfterHours) * 3600 { return [] }
        var fired: [Firing] = []
        for programme in programmes {
            guard let indices = readingRules[programme] else { continue }
            for ruleIndex in indices {
                let rule = ruleSet.rules[ruleIndex]
                if windowRulesOnly && !rule.looksBack { continue }
                guard rule.measures.intersects(reading.values.present) else { continue }
                let context = EvaluationContext(history: history, current: index, end: index + 1, at: reading.time, state: nil)
                if context.holds(rule.condition) {
                    var evidence: [Int] = []
                    _ = context.holds(rule.condition, evidence: &evidence)
                    fired.append(Firing(rule: ruleIndex, evidence: Array(Set(evidence)).sorted()))
                }
            }
        }
        return fired
    }

    /// Convenience over an array.
    public func evaluate(
        history: [Reading], at index: Int, programmes: some Sequence<String>, now: Int64, windowRulesOnly: Bool = false
    ) -> [Firing] {
        history.withUnsafeBufferPointer {
            evaluate(history: $0, at: index, programmes: programmes, now: now, windowRulesOnly: windowRulesOnly)
        }
    }

    /// The sweep's rules (absence, overdue follow-up) for one enrolment as of `now`; `history`
    /// holds the resident's readings measured before `now`.
    public func sweep(history: [Reading], enrolment: EnrolmentState, now: Int64) -> [Firing] {
        guard let indices = sweepRules[enrolment.programme] else { return [] }
        return history.withUnsafeBufferPointer { buffer in
            var end = buffer.count
            while end > 0 && buffer[end - 1].time > now { end -= 1 }
            let context = EvaluationContext(history: buffer, current: nil, end: end, at: now, state: enrolment)
            return indices.compactMap { ruleIndex in
                context.holds(ruleSet.rules[ruleIndex].condition) ? Firing(rule: ruleIndex, evidence: []) : nil
            }
        }
    }
}

/// One evaluation: the history up to `end` (exclusive), the reading that triggered it (nil in a
/// sweep) and the instant windows end at.
struct EvaluationContext {
    let history: UnsafeBufferPointer<Reading>
    let current: Int?
    let end: Int
    let at: Int64
    let state: EnrolmentState?

    /// The fast path: no evidence collected.
    @inline(__always) func holds(_ condition: Condition) -> Bool {
        var none: [Int]? = nil
        return evaluate(condition, &none)
    }

    func holds(_ condition: Condition, evidence: inout [Int]) -> Bool {
        var collected: [Int]? = []
        let result = evaluate(condition, &collected)
        evidence = collected ?? []
        return result
    }

    func evaluate(_ condition: Condition, _ evidence: inout [Int]?) -> Bool {
        switch condition {
        case .threshold:
            guard let current, Self.matches(condition, history[current]) else { return false }
            evidence?.append(current)
            return true

        case .count(let of, let atLeast, let lastReadings, let withinDays):
            let needed = of.measures
            let since = withinDays.map { at - Int64($0) * 86_400 } ?? Int64.min
            var seen = 0
            var met = 0
            var position = end - 1
            var found: [Int] = []
            while position >= 0 {
                let reading = history[position]
                if reading.time <= since { break }
                if let lastReadings, seen >= lastReadings { break }
                if reading.values.present.intersects(needed) {
                    seen += 1
                    if Self.matches(of, reading) {
                        met += 1
                        if evidence != nil { found.append(position) }
                    }
                }
                position -= 1
            }
            guard met >= atLeast else { return false }
            evidence?.append(contentsOf: found)
            return true

        case .consecutiveDays(let of, let days):
            // The run must end on the day evaluated: the reading's own day, or today in a sweep.
            guard end > 0 else { return false }
            let lastDay =
                current.map { history[$0].localDay }
                ?? floorDivide(at + Int64(history[end - 1].utcOffset), 86_400)
            var day = lastDay
            var daysMet = 0
            var dayHasMatch = false
            var found: [Int] = []
            var position = end - 1
            while position >= 0 && daysMet < days {
                let reading = history[position]
                let readingDay = reading.localDay
                if readingDay > day {
                    position -= 1
                    continue
                }
                if readingDay < day {
                    guard dayHasMatch else { return false }
                    daysMet += 1
                    if daysMet == days { break }
                    guard readingDay == day - 1 else { return false }
                    day -= 1
                    dayHasMatch = false
                }
                if Self.matches(of, reading) {
                    dayHasMatch = true
                    if evidence != nil { found.append(position) }
                }
                position -= 1
            }
            if daysMet < days && dayHasMatch { daysMet += 1 }
            guard daysMet >= days else { return false }
            evidence?.append(contentsOf: found)
            return true

        case .trend(let measure, let days, let risesBy, let minimumReadings):
            let span = Int64(days) * 86_400
            var recent = (sum: 0.0, count: 0)
            var earlier = (sum: 0.0, count: 0)
            var found: [Int] = []
            var position = end - 1
            while position >= 0 {
                let reading = history[position]
                let age = at - reading.time
                if age >= 2 * span { break }
                let value = reading.values[measure]
                if !value.isNaN {
                    if age < span {
                        recent.sum += value
                        recent.count += 1
                    } else {
                        earlier.sum += value
                        earlier.count += 1
                    }
                    if evidence != nil { found.append(position) }
                }
                position -= 1
            }
            guard recent.count >= minimumReadings, earlier.count >= minimumReadings,
                recent.sum / Double(recent.count) - earlier.sum / Double(earlier.count) > risesBy
            else { return false }
            evidence?.append(contentsOf: found)
            return true

        case .absence(let days, let measures):
            guard let state else { return false }
            var last = state.enrolledAt
            var position = end - 1
            while position >= 0 {
                let reading = history[position]
                if measures.isEmpty || reading.values.present.intersects(measures) {
                    last = max(last, reading.time)
                    break
                }
                position -= 1
            }
            return at - last >= Int64(days) * 86_400

        case .followUpOverdue(let graceDays):
            guard let due = state?.followUpDue else { return false }
            return at > due + Int64(graceDays) * 86_400

        case .all(let parts):
            for part in parts where !evaluate(part, &evidence) { return false }
            return true

        case .any(let parts):
            for part in parts where evaluate(part, &evidence) { return true }
            return false
        }
    }

    /// A reading condition against one reading; a reading without the measure does not match.
    @inline(__always) static func matches(_ condition: Condition, _ reading: Reading) -> Bool {
        switch condition {
        case .threshold(let measure, let comparison, let value):
            let observed = reading.values[measure]
            return !observed.isNaN && comparison.holds(observed, value)
        case .all(let parts): return parts.allSatisfy { matches($0, reading) }
        case .any(let parts): return parts.contains { matches($0, reading) }
        default: return false
        }
    }
}
