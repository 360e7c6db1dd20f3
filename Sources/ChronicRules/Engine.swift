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

/// A resident's programmes resolved to the rules they run, once, rather than looked up by name
/// for every reading.
public struct ProgrammeRules: Sendable, Equatable {
    /// Indices into the rule set of the enabled reading rules, in rule-set order.
    let rules: [Int32]
}

/// Evaluates a rule set. Pure: it is given a resident's history (sorted by measured time) and
/// says which rules fire; storing readings and raising alerts is the service's business.
///
/// A new reading is evaluated as of its own measured time, against the history measured up to
/// it; a late reading (measured before others already on file) is also evaluated, for its window
/// rules, as of the latest reading, since it may complete a window there.
///
/// Conditions are compiled into a flat table of plain values, so that the hot path touches no
/// reference counts: the rule values themselves (strings, messages, nested enums) are kept for
/// the callers and never read while evaluating.
public struct RuleEngine: Sendable {
    public let ruleSet: RuleSet
    /// Enabled rules decided by readings, by programme.
    let readingRules: [String: [Int32]]
    /// Enabled rules decided by the sweep, by programme.
    let sweepRules: [String: [Int]]
    let program: CompiledConditions
    /// Per rule: its root node, measures, whether it looks back, and its group.
    let heads: [RuleHead]

    public init(ruleSet: RuleSet) {
        self.ruleSet = ruleSet
        var reading: [String: [Int32]] = [:]
        var sweep: [String: [Int]] = [:]
        var program = CompiledConditions()
        var heads: [RuleHead] = []
        var groups: [String: Int32] = [:]
        for (index, rule) in ruleSet.rules.enumerated() {
            let root = program.compile(rule.condition)
            var group: Int32 = -1
            if let name = rule.group {
                group = groups[name] ?? Int32(groups.count)
                groups[name] = group
            }
            heads.append(RuleHead(root: root, measures: rule.measures, looksBack: rule.looksBack, group: group))
            guard rule.enabled else { continue }
            if rule.needsSweep {
                sweep[rule.programme, default: []].append(index)
            } else {
                reading[rule.programme, default: []].append(Int32(index))
            }
        }
        readingRules = reading
        sweepRules = sweep
        self.program = program
        self.heads = heads
    }

    public var rules: [Rule] { ruleSet.rules }

    /// The reading rules of `programmes`, resolved once for a resident.
    public func rules(for programmes: some Sequence<String>) -> ProgrammeRules {
        var indices: [Int32] = []
        for programme in programmes { indices += readingRules[programme] ?? [] }
        return ProgrammeRules(rules: indices.sorted())
    }

    /// Rules of `programmes` that fire as of `history[index]`. `now` decides staleness: a reading
    /// measured more than `staleAfterHours` before `now` raises nothing on its own.
    /// `windowRulesOnly` limits the evaluation to rules that look back (for re-evaluating the
    /// latest reading after a late one). Of rules sharing a `group`, only the first that fires
    /// is reported (one urgent alert for one blood pressure, whichever programme asks).
    public func evaluate(
        history: UnsafeBufferPointer<Reading>, at index: Int, rules programmeRules: ProgrammeRules, now: Int64,
        windowRulesOnly: Bool = false
    ) -> [Firing] {
        let reading = history[index]
        if reading.time < now - Int64(ruleSet.staleAfterHours) * 3600 { return [] }
        var fired: [Firing] = []
        var firedGroups: UInt64 = 0
        program.nodes.withUnsafeBufferPointer { nodes in
            program.children.withUnsafeBufferPointer { children in
                heads.withUnsafeBufferPointer { heads in
                    let context = EvaluationContext(
                        nodes: nodes, children: children, history: history, current: index, end: index + 1, at: reading.time, state: nil)
                    for ruleIndex in programmeRules.rules {
                        let head = heads[Int(ruleIndex)]
                        if windowRulesOnly && !head.looksBack { continue }
                        guard head.measures.intersects(reading.values.present) else { continue }
                        if head.group >= 0 && head.group < 64 && firedGroups & (1 << UInt64(head.group)) != 0 { continue }
                        guard context.holds(head.root) else { continue }
                        if head.group >= 0 && head.group < 64 { firedGroups |= 1 << UInt64(head.group) }
                        fired.append(Firing(rule: Int(ruleIndex), evidence: context.evidence(head.root)))
                    }
                }
            }
        }
        return fired
    }

    /// Convenience: programmes by name.
    public func evaluate(
        history: UnsafeBufferPointer<Reading>, at index: Int, programmes: some Sequence<String>, now: Int64, windowRulesOnly: Bool = false
    ) -> [Firing] {
        evaluate(history: history, at: index, rules: rules(for: programmes), now: now, windowRulesOnly: windowRulesOnly)
    }

    /// Convenience over an array.
    public func evaluate(
        history: [Reading], at index: Int, programmes: some Sequence<String>, now: Int64, windowRulesOnly: Bool = false
    ) -> [Firing] {
        history.withUnsafeBufferPointer {
            evaluate(history: $0, at: index, rules: rules(for: programmes), now: now, windowRulesOnly: windowRulesOnly)
        }
    }

    /// The sweep's rules (absence, overdue follow-up) for one enrolment as of `now`; `history`
    /// holds the resident's readings (those measured after `now` are not looked at).
    public func sweep(history: [Reading], enrolment: EnrolmentState, now: Int64) -> [Firing] {
        history.withUnsafeBufferPointer { sweep(history: $0, enrolment: enrolment, now: now) }
    }

    public func sweep(history: UnsafeBufferPointer<Reading>, enrolment: EnrolmentState, now: Int64) -> [Firing] {
        guard let indices = sweepRules[enrolment.programme] else { return [] }
        var end = history.count
        while end > 0 && history[end - 1].time > now { end -= 1 }
        return program.nodes.withUnsafeBufferPointer { nodes in
            program.children.withUnsafeBufferPointer { children in
                let context = EvaluationContext(
                    nodes: nodes, children: children, history: history, current: nil, end: end, at: now, state: enrolment)
                return indices.compactMap { ruleIndex in
                    context.holds(heads[ruleIndex].root) ? Firing(rule: ruleIndex, evidence: []) : nil
                }
            }
        }
    }
}

struct RuleHead: Sendable, Equatable {
    var root: Int32
    var measures: MeasureSet
    var looksBack: Bool
    var group: Int32
}

/// One node of a compiled condition: plain values only.
struct Node: Sendable, Equatable {
    enum Kind: UInt8, Sendable {
        case threshold, count, consecutiveDays, trend, absence, followUpOverdue, all, any
    }

    var kind: Kind
    var measure: Measure = .systolic
    var comparison: Comparison = .greaterOrEqual
    var value: Double = 0
    /// count: atLeast; consecutiveDays, trend, absence: days; followUpOverdue: grace days.
    var first: Int32 = 0
    /// count: lastReadings (-1 none); trend: minimum readings.
    var second: Int32 = -1
    /// count: withinDays (-1 none).
    var third: Int32 = -1
    /// count, consecutiveDays: the `of` node; all, any: the start of the children.
    var child: Int32 = -1
    var childCount: Int32 = 0
    /// count: the measures of `of`; absence: the measures asked about.
    var measures = MeasureSet()
}

struct CompiledConditions: Sendable, Equatable {
    var nodes: [Node] = []
    var children: [Int32] = []

    mutating func compile(_ condition: Condition) -> Int32 {
        let index = Int32(nodes.count)
        switch condition {
        case .threshold(let measure, let comparison, let value):
            nodes.append(Node(kind: .threshold, measure: measure, comparison: comparison, value: value))
        case .count(let of, let atLeast, let lastReadings, let withinDays):
            nodes.append(
                Node(
                    kind: .count, first: Int32(atLeast), second: Int32(lastReadings ?? -1), third: Int32(withinDays ?? -1),
                    measures: of.measures))
            let child = compile(of)
            nodes[Int(index)].child = child
        case .consecutiveDays(let of, let days):
            nodes.append(Node(kind: .consecutiveDays, first: Int32(days)))
            let child = compile(of)
            nodes[Int(index)].child = child
        case .trend(let measure, let days, let risesBy, let minimumReadings):
            nodes.append(Node(kind: .trend, measure: measure, value: risesBy, first: Int32(days), second: Int32(minimumReadings)))
        case .absence(let days, let measures):
            nodes.append(Node(kind: .absence, first: Int32(days), measures: measures))
        case .followUpOverdue(let graceDays):
            nodes.append(Node(kind: .followUpOverdue, first: Int32(graceDays)))
        case .all(let parts), .any(let parts):
            nodes.append(Node(kind: condition.isAll ? .all : .any))
            let compiled = parts.map { compile($0) }
            nodes[Int(index)].child = Int32(children.count)
            nodes[Int(index)].childCount = Int32(compiled.count)
            children += compiled
        }
        return index
    }
}

extension Condition {
    var isAll: Bool {
        if case .all = self { return true }
        return false
    }
}

/// One evaluation: the history up to `end` (exclusive), the reading that triggered it (nil in a
/// sweep) and the instant windows end at.
struct EvaluationContext {
    let nodes: UnsafeBufferPointer<Node>
    let children: UnsafeBufferPointer<Int32>
    let history: UnsafeBufferPointer<Reading>
    let current: Int?
    let end: Int
    let at: Int64
    let state: EnrolmentState?

    /// The fast path: no evidence collected.
    func holds(_ node: Int32) -> Bool {
        var none: [Int]? = nil
        return evaluate(node, &none)
    }

    /// The readings behind a condition that holds, in history order, each once.
    func evidence(_ node: Int32) -> [Int] {
        var collected: [Int]? = []
        _ = evaluate(node, &collected)
        var positions = collected ?? []
        positions.sort()
        var unique: [Int] = []
        unique.reserveCapacity(positions.count)
        for position in positions where unique.last != position { unique.append(position) }
        return unique
    }

    func evaluate(_ index: Int32, _ evidence: inout [Int]?) -> Bool {
        let node = nodes[Int(index)]
        switch node.kind {
        case .threshold:
            guard let current, matches(index, history[current]) else { return false }
            evidence?.append(current)
            return true

        case .count:
            let since = node.third >= 0 ? at - Int64(node.third) * 86_400 : Int64.min
            let lastReadings = node.second
            var seen: Int32 = 0
            var met: Int32 = 0
            var position = end - 1
            let mark = evidence?.count ?? 0
            while position >= 0 {
                let reading = history[position]
                if reading.time <= since { break }
                if lastReadings >= 0 && seen >= lastReadings { break }
                if reading.values.present.intersects(node.measures) {
                    seen += 1
                    if matches(node.child, reading) {
                        met += 1
                        evidence?.append(position)
                    }
                }
                position -= 1
            }
            guard met >= node.first else {
                evidence?.removeSubrange(mark...)
                return false
            }
            return true

        case .consecutiveDays:
            // The run must end on the day evaluated: the reading's own day, or today in a sweep.
            guard end > 0 else { return false }
            let days = node.first
            let lastDay = current.map { history[$0].localDay } ?? floorDivide(at + Int64(history[end - 1].utcOffset), 86_400)
            var day = lastDay
            var daysMet: Int32 = 0
            var dayHasMatch = false
            var position = end - 1
            let mark = evidence?.count ?? 0
            func fail() -> Bool {
                evidence?.removeSubrange(mark...)
                return false
            }
            while position >= 0 && daysMet < days {
                let reading = history[position]
                let readingDay = reading.localDay
                if readingDay > day {
                    position -= 1
                    continue
                }
                if readingDay < day {
                    guard dayHasMatch else { return fail() }
                    daysMet += 1
                    if daysMet == days { break }
                    guard readingDay == day - 1 else { return fail() }
                    day -= 1
                    dayHasMatch = false
                }
                if matches(node.child, reading) {
                    dayHasMatch = true
                    evidence?.append(position)
                }
                position -= 1
            }
            if daysMet < days && dayHasMatch { daysMet += 1 }
            return daysMet >= days ? true : fail()

        case .trend:
            let span = Int64(node.first) * 86_400
            var recent = (sum: 0.0, count: Int32(0))
            var earlier = (sum: 0.0, count: Int32(0))
            var position = end - 1
            let mark = evidence?.count ?? 0
            while position >= 0 {
                let reading = history[position]
                let age = at - reading.time
                if age >= 2 * span { break }
                let value = reading.values[node.measure]
                if !value.isNaN {
                    if age < span {
                        recent.sum += value
                        recent.count += 1
                    } else {
                        earlier.sum += value
                        earlier.count += 1
                    }
                    evidence?.append(position)
                }
                position -= 1
            }
            guard recent.count >= node.second, earlier.count >= node.second,
                recent.sum / Double(recent.count) - earlier.sum / Double(earlier.count) > node.value
            else {
                evidence?.removeSubrange(mark...)
                return false
            }
            return true

        case .absence:
            guard let state else { return false }
            var last = state.enrolledAt
            var position = end - 1
            while position >= 0 {
                let reading = history[position]
                if node.measures.isEmpty || reading.values.present.intersects(node.measures) {
                    last = max(last, reading.time)
                    break
                }
                position -= 1
            }
            return at - last >= Int64(node.first) * 86_400

        case .followUpOverdue:
            guard let due = state?.followUpDue else { return false }
            return at > due + Int64(node.first) * 86_400

        case .all:
            // Evidence of parts that held is dropped when a later part fails.
            let mark = evidence?.count ?? 0
            for offset in 0..<Int(node.childCount) where !evaluate(children[Int(node.child) + offset], &evidence) {
                evidence?.removeSubrange(mark...)
                return false
            }
            return true

        case .any:
            for offset in 0..<Int(node.childCount) where evaluate(children[Int(node.child) + offset], &evidence) { return true }
            return false
        }
    }

    /// A reading condition against one reading; a reading without the measure does not match.
    func matches(_ index: Int32, _ reading: Reading) -> Bool {
        let node = nodes[Int(index)]
        switch node.kind {
        case .threshold:
            let observed = reading.values[node.measure]
            return !observed.isNaN && node.comparison.holds(observed, node.value)
        case .all:
            for offset in 0..<Int(node.childCount) where !matches(children[Int(node.child) + offset], reading) { return false }
            return true
        case .any:
            for offset in 0..<Int(node.childCount) where matches(children[Int(node.child) + offset], reading) { return true }
            return false
        default:
            return false
        }
    }
}
