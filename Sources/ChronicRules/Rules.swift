/// How a measure is compared with a threshold.
public enum Comparison: String, Sendable, Codable {
    case greaterOrEqual = ">="
    case greater = ">"
    case lessOrEqual = "<="
    case less = "<"

    func holds(_ value: Double, _ threshold: Double) -> Bool {
        switch self {
        case .greaterOrEqual: value >= threshold
        case .greater: value > threshold
        case .lessOrEqual: value <= threshold
        case .less: value < threshold
        }
    }
}

/// A rule's condition. Reading conditions (`threshold`, and `all`/`any` of them) look at one
/// reading; window conditions look back over the resident's history from the reading (or, in a
/// sweep, from now); absence conditions are decided only by the periodic sweep.
public indirect enum Condition: Sendable, Equatable {
    /// The triggering reading's measure against a value: `{"threshold": {"measure": "systolic", "op": ">=", "value": 140}}`.
    case threshold(Measure, Comparison, Double)
    /// At least `atLeast` readings meeting `of` among the last `lastReadings` readings that carry
    /// its measures, or within the last `withinDays` days (both when both are given).
    case count(of: Condition, atLeast: Int, lastReadings: Int?, withinDays: Int?)
    /// Each of the last `days` calendar days (the resident's own days, ending on the reading's
    /// day) has a reading meeting `of`.
    case consecutiveDays(of: Condition, days: Int)
    /// The mean of the last `days` days exceeds the mean of the `days` days before by more than
    /// `risesBy`, each window holding at least `minimumReadings` values.
    case trend(Measure, days: Int, risesBy: Double, minimumReadings: Int)
    /// No reading carrying `measures` (any measure when empty) for `days` days, counted from
    /// enrolment when there has been none since.
    case absence(days: Int, measures: MeasureSet)
    /// The next face-to-face follow-up is more than `graceDays` past due.
    case followUpOverdue(graceDays: Int)
    case all([Condition])
    case any([Condition])

    /// Whether the condition can be decided from one reading alone.
    public var isReadingCondition: Bool {
        switch self {
        case .threshold: true
        case .all(let parts), .any(let parts): parts.allSatisfy(\.isReadingCondition)
        default: false
        }
    }

    /// The measures the condition looks at.
    public var measures: MeasureSet {
        switch self {
        case .threshold(let measure, _, _), .trend(let measure, _, _, _): MeasureSet([measure])
        case .count(let of, _, _, _), .consecutiveDays(let of, _): of.measures
        case .absence(_, let measures): measures
        case .followUpOverdue: MeasureSet()
        case .all(let parts), .any(let parts): MeasureSet(bits: parts.reduce(0) { $0 | $1.measures.bits })
        }
    }

    /// Decided by the sweep (absence, overdue follow-up) rather than by a new reading.
    public var needsSweep: Bool {
        switch self {
        case .absence, .followUpOverdue: true
        case .all(let parts), .any(let parts): parts.contains(where: \.needsSweep)
        default: false
        }
    }

    /// Decided from readings (as opposed to the sweep's absence and follow-up checks).
    public var usesReadings: Bool {
        switch self {
        case .threshold, .count, .consecutiveDays, .trend: true
        case .absence, .followUpOverdue: false
        case .all(let parts), .any(let parts): parts.contains(where: \.usesReadings)
        }
    }

    /// Looks further back than the triggering reading.
    public var looksBack: Bool {
        switch self {
        case .count, .consecutiveDays, .trend: true
        case .threshold, .absence, .followUpOverdue: false
        case .all(let parts), .any(let parts): parts.contains(where: \.looksBack)
        }
    }

    /// How far back in time the condition can look, so the service loads enough history.
    /// A count over the last N readings has no time bound; `RuleSet.historyDays` caps it.
    public var lookbackDays: Int {
        switch self {
        case .threshold, .followUpOverdue: 0
        case .count(_, _, let last, let within): within ?? (last == nil ? 0 : Int.max)
        case .consecutiveDays(_, let days): days
        case .trend(_, let days, _, _): 2 * days
        case .absence(let days, _): days
        case .all(let parts), .any(let parts): parts.map(\.lookbackDays).max() ?? 0
        }
    }
}

public enum Severity: String, Sendable, Codable, CaseIterable, Comparable {
    case low, moderate, high, urgent

    var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
}

public struct LocalizedMessage: Sendable, Codable, Equatable {
    public var zh: String
    public var en: String

    public init(zh: String, en: String) {
        self.zh = zh
        self.en = en
    }
}

public struct Rule: Sendable, Equatable {
    public var id: String
    public var version: Int
    public var programme: String
    public var severity: Severity
    public var message: LocalizedMessage
    public var condition: Condition
    public var enabled: Bool
    /// Rules that say the same thing from different programmes (hypertension's and coronary
    /// heart disease's urgent blood pressure): one reading raises only the first that fires.
    public var group: String?
    /// Cached from `condition`: the measures a reading must carry to be worth evaluating.
    public let measures: MeasureSet
    public let needsSweep: Bool
    public let looksBack: Bool

    public init(
        id: String, version: Int = 1, programme: String, severity: Severity, message: LocalizedMessage, condition: Condition,
        enabled: Bool = true, group: String? = nil
    ) {
        self.id = id
        self.version = version
        self.programme = programme
        self.severity = severity
        self.message = message
        self.condition = condition
        self.enabled = enabled
        self.group = group
        measures = condition.measures
        needsSweep = condition.needsSweep
        looksBack = condition.looksBack
    }
}

/// When an unacknowledged alert of a severity is escalated, and to whom.
public struct Escalation: Sendable, Codable, Equatable {
    public enum Target: String, Sendable, Codable {
        /// The managing clinic's supervising hospital (医联体 lead hospital).
        case supervisor
        /// The managing clinic itself again, as a reminder.
        case clinic
    }

    public var afterMinutes: Int
    public var to: Target

    public init(afterMinutes: Int, to: Target) {
        self.afterMinutes = afterMinutes
        self.to = to
    }
}

/// A versioned set of rules, as kept in `schemas/rules/`.
public struct RuleSet: Sendable, Equatable {
    public var version: String
    /// A reading measured longer ago than this when it arrives (a device syncing a backlog) is
    /// kept and counted in windows, but raises nothing on its own.
    public var staleAfterHours: Int
    /// The most history a count over the last N readings may reach back.
    public var historyDays: Int
    public var escalation: [Severity: Escalation]
    public var rules: [Rule]

    public init(
        version: String, staleAfterHours: Int = 72, historyDays: Int = 90, escalation: [Severity: Escalation] = [:], rules: [Rule]
    ) {
        self.version = version
        self.staleAfterHours = staleAfterHours
        self.historyDays = historyDays
        self.escalation = escalation
        self.rules = rules
    }

    /// How many days of history a reading's evaluation needs.
    public var lookbackDays: Int {
        min(historyDays, rules.filter(\.enabled).map { $0.condition.lookbackDays }.max() ?? 0)
    }
}
