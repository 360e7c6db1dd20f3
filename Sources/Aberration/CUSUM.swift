/// CUSUM as `surveillance::algo.cusum` with `trans = "standard"`: each count standardised as
/// `(x − m) / √m`, the sum `C_t = max(0, C_{t−1} + z_t − k)` starting from 0 before the range's
/// first day, an alarm when `C_t ≥ h`.
enum CUSUM {
    static func detect(counts: [Int], range: ClosedRange<Int>, k: Double, h: Double, m: Double?) -> [AberrationPoint] {
        let m = m ?? meanBefore(range.lowerBound, counts)
        let root = m.squareRoot()
        var points: [AberrationPoint] = []
        points.reserveCapacity(range.count)
        var previous = 0.0
        for t in range {
            let observed = counts[t - 1]
            // With m = 0 the standardised count is +∞ or NaN, and R's NaN then persists through
            // `max` to every later day: alarms NA (false here), upper bounds 0.
            let standardised = (Double(observed) - m) / root
            let sum = rMax(0, previous + (standardised - k))
            // The smallest count that alarms, given yesterday's sum: C_t ≥ h ⇔ x ≥ m + √m(h + k − C_{t−1}).
            // So unlike EARS, a count equal to the bound alarms.
            var upperbound = (root * (h + k - previous) + m).rounded(.up)
            if upperbound.isNaN || upperbound < 0 { upperbound = 0 }
            points.append(AberrationPoint(index: t, observed: observed, upperbound: upperbound, alarm: sum >= h))
            previous = sum
        }
        return points
    }

    /// R's `mean(observed[1:(first - 1)])`: an integer sum divided once.
    private static func meanBefore(_ first: Int, _ counts: [Int]) -> Double {
        var total = 0
        for value in counts[0..<(first - 1)] { total += value }
        return Double(total) / Double(first - 1)
    }

    /// R's `max(0, x)`: NaN wins.
    private static func rMax(_ a: Double, _ b: Double) -> Double {
        a.isNaN || b.isNaN ? .nan : (a > b ? a : b)
    }
}
