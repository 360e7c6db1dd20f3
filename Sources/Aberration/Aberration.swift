/// The aberration-detection methods. EARS C1–C3 and CUSUM follow R's `surveillance` 1.20.3
/// (`earsC`, `algo.cusum` with `trans = "standard"`); CIDARS is China's moving-percentile method,
/// which R does not have.
public enum AberrationMethod: String, Sendable, CaseIterable, Codable {
    case c1 = "C1"
    case c2 = "C2"
    case c3 = "C3"
    case cusum = "CUSUM"
    case cidars = "CIDARS"
}

/// Every method's settings in one value; each method reads only its own.
public struct AberrationParameters: Sendable, Equatable {
    /// EARS: days in the reference window (R refuses fewer than 3).
    public var baseline: Int = 7
    /// EARS: the threshold is the normal quantile at 1 − alpha. R's own default for C3 is 0.025
    /// whenever `control` is given without `alpha`; here it is 0.001 for every method unless set.
    public var alpha: Double = 0.001
    /// EARS: a floor on the reference window's standard deviation.
    public var minSigma: Double = 0
    /// CUSUM: the reference value subtracted from each standardised count.
    public var k: Double = 1.04
    /// CUSUM: the decision limit on the cumulative sum.
    public var h: Double = 2.26
    /// CUSUM: the expected count; nil (R's `NULL`) estimates it as the mean of every day before
    /// the range.
    public var m: Double? = nil
    /// CIDARS: days between the same week in successive years.
    public var period: Int = 365
    /// CIDARS: how many earlier years give baseline weeks.
    public var years: Int = 3
    /// CIDARS: weeks either side of the same week in each earlier year.
    public var neighbours: Int = 1
    /// CIDARS: the percentile (0–100, R's `quantile` type 7) of the baseline weeks.
    public var percentile: Double = 80
    /// CIDARS: a week with fewer cases never alarms.
    public var minCount: Int = 1

    public init() {}
}

/// One evaluated day.
public struct AberrationPoint: Sendable, Equatable {
    /// 1-based, as R's indices.
    public let index: Int
    /// The day's count; for CIDARS the sum over the 7 days ending at `index`.
    public let observed: Int
    /// Nil where R gives NA or NaN (EARS C3 on a reference window with no spread).
    public let upperbound: Double?
    /// False where R's alarm is NA: an undefined statistic never alarms.
    public let alarm: Bool

    public init(index: Int, observed: Int, upperbound: Double?, alarm: Bool) {
        self.index = index
        self.observed = observed
        self.upperbound = upperbound
        self.alarm = alarm
    }
}

public enum AberrationError: Error, Equatable, CustomStringConvertible {
    case emptyCounts
    /// `index` is 1-based. A count must be a whole number of cases that R's integer can hold.
    case invalidCount(index: Int, value: Int)
    case rangeOutOfBounds(range: ClosedRange<Int>, count: Int)
    /// The method needs history before `minimum` that the range's first day does not have.
    case rangeTooEarly(first: Int, minimum: Int)
    case invalidParameter(name: String, reason: String)

    public var description: String {
        switch self {
        case .emptyCounts: "the series has no counts"
        case .invalidCount(let index, let value):
            value < 0
                ? "the count at position \(index) is negative"
                : "the count at position \(index) exceeds \(Aberration.maximumCount)"
        case .rangeOutOfBounds(let range, let count):
            "the range \(range.lowerBound)...\(range.upperBound) is outside the series' positions 1...\(count)"
        case .rangeTooEarly(let first, let minimum):
            "the range starts at \(first), before \(minimum), the first position with the history the method needs"
        case .invalidParameter(let name, let reason): "parameter \(name) \(reason)"
        }
    }
}

public enum Aberration {
    /// R's integer maximum: R could not hold a larger count, and below it every sum formed here
    /// is exact.
    public static let maximumCount = Int(Int32.max)

    /// Evaluates `counts[range]`. `range` is 1-based and inclusive, as R's `range`. For EARS and
    /// CIDARS a day's result does not depend on the rest of the range; CUSUM's sum starts at 0 on
    /// the range's first day and its `m = nil` estimate is the mean of the days before it.
    public static func detect(
        _ method: AberrationMethod, counts: [Int], range: ClosedRange<Int>, parameters: AberrationParameters = .init()
    ) throws(AberrationError) -> [AberrationPoint] {
        try validate(method, parameters)
        guard !counts.isEmpty else { throw .emptyCounts }
        // One pass over the whole series: a bad count is a bad feed, wherever it lies.
        for (offset, count) in counts.enumerated() where count < 0 || count > maximumCount {
            throw .invalidCount(index: offset + 1, value: count)
        }
        guard range.lowerBound >= 1, range.upperBound <= counts.count else {
            throw .rangeOutOfBounds(range: range, count: counts.count)
        }
        let minimum = minimumFirstIndex(method, parameters: parameters)
        guard range.lowerBound >= minimum else { throw .rangeTooEarly(first: range.lowerBound, minimum: minimum) }

        switch method {
        case .c1, .c2, .c3:
            let z = normalQuantile(1 - parameters.alpha)
            return EARS.detect(
                method, counts: counts, range: range, baseline: parameters.baseline, minSigma: parameters.minSigma, zAlpha: z)
        case .cusum:
            return CUSUM.detect(counts: counts, range: range, k: parameters.k, h: parameters.h, m: parameters.m)
        case .cidars:
            return CIDARS.detect(counts: counts, range: range, parameters: parameters)
        }
    }

    /// The smallest first position the method can evaluate (for a daily job picking its range).
    /// `Int.max` when the parameters ask for more history than any series can have.
    public static func minimumFirstIndex(_ method: AberrationMethod, parameters: AberrationParameters) -> Int {
        switch method {
        // R's check is `range[1] - maxLag >= 1`, maxLag being the oldest day read.
        case .c1: return sum(parameters.baseline, 1)
        case .c2: return sum(parameters.baseline, 3)
        case .c3: return sum(parameters.baseline, 5)
        // R estimates m from `observed[1:(range[1] - 1)]`, which for a range starting at 1 is
        // `observed[c(1, 0)]`, the first day itself: refused here instead.
        case .cusum: return parameters.m == nil ? 2 : 1
        // The oldest baseline week ends period·years + 7·neighbours days back and needs 7 days.
        case .cidars:
            return sum(product(parameters.period, parameters.years), product(7, parameters.neighbours), 7)
        }
    }

    private static func sum(_ terms: Int...) -> Int {
        var total = 0
        for term in terms {
            let (value, overflow) = total.addingReportingOverflow(term)
            if overflow { return Int.max }
            total = value
        }
        return total
    }

    private static func product(_ a: Int, _ b: Int) -> Int {
        let (value, overflow) = a.multipliedReportingOverflow(by: b)
        return overflow ? Int.max : value
    }

    private static func validate(_ method: AberrationMethod, _ p: AberrationParameters) throws(AberrationError) {
        switch method {
        case .c1, .c2, .c3:
            guard p.baseline >= 3 else { throw .invalidParameter(name: "baseline", reason: "must be at least 3 (as in R)") }
            // 1 − alpha must stay below 1 in double precision, or the threshold is infinite.
            guard p.alpha > 0, p.alpha < 1, 1 - p.alpha < 1 else {
                throw .invalidParameter(name: "alpha", reason: "must lie strictly between 0 and 1")
            }
            guard p.minSigma >= 0, p.minSigma.isFinite else {
                throw .invalidParameter(name: "minSigma", reason: "must be a finite number at least 0")
            }
        case .cusum:
            guard p.k.isFinite else { throw .invalidParameter(name: "k", reason: "must be a finite number") }
            guard p.h.isFinite else { throw .invalidParameter(name: "h", reason: "must be a finite number") }
            if let m = p.m, !(m >= 0 && m.isFinite) {
                throw .invalidParameter(name: "m", reason: "must be a finite number at least 0, or nil to estimate it")
            }
        case .cidars:
            guard p.period >= 1 else { throw .invalidParameter(name: "period", reason: "must be at least 1") }
            guard p.years >= 1 else { throw .invalidParameter(name: "years", reason: "must be at least 1") }
            guard p.neighbours >= 0 else { throw .invalidParameter(name: "neighbours", reason: "must be at least 0") }
            // A baseline week overlapping the observed one would compare the week with itself.
            guard p.period >= sum(product(7, p.neighbours), 7) else {
                throw .invalidParameter(name: "period", reason: "must be at least 7 × (neighbours + 1) days")
            }
            guard p.percentile >= 0, p.percentile <= 100 else {
                throw .invalidParameter(name: "percentile", reason: "must lie between 0 and 100")
            }
            guard p.minCount >= 0 else { throw .invalidParameter(name: "minCount", reason: "must be at least 0") }
        }
    }
}
