/// EARS C1, C2 and C3 as `surveillance::earsC` computes them. Each day's reference window is
/// `baseline` days: for C1 the days just before it, for C2 and C3 the days before a two-day guard
/// band. Mean and standard deviation are two-pass over the window, O(baseline) a day.
enum EARS {
    static func detect(
        _ method: AberrationMethod, counts: [Int], range: ClosedRange<Int>, baseline: Int, minSigma: Double, zAlpha: Double
    ) -> [AberrationPoint] {
        var points: [AberrationPoint] = []
        points.reserveCapacity(range.count)
        switch method {
        case .c1, .c2:
            let guardBand = method == .c1 ? 0 : 2
            for t in range {
                let (mean, sd) = window(counts, endingBefore: t - guardBand, length: baseline)
                let observed = counts[t - 1]
                let upperbound = mean + zAlpha * pmax(sd, minSigma)
                points.append(point(t, observed, upperbound))
            }
        case .c3:
            // C3 sums max(0, C2 − 1) over t−2, t−1 and t. R turns it into a bound on the count,
            // `y_t + sd_t·(z − lags)` with only t−2 and t−1 in `lags`, floored at 0: y_t is compared
            // with itself plus a term free of it, so the two days before decide the alarm.
            var lag2 = c2Statistic(counts, at: range.lowerBound - 2, baseline: baseline, minSigma: minSigma)
            var lag1 = c2Statistic(counts, at: range.lowerBound - 1, baseline: baseline, minSigma: minSigma)
            for t in range {
                let (mean, sd) = window(counts, endingBefore: t - 2, length: baseline)
                let observed = counts[t - 1]
                let sigma = pmax(sd, minSigma)
                let parts = pmax(0, lag2 - 1) + pmax(0, lag1 - 1)
                let upperbound = pmax(0, Double(observed) + sigma * (zAlpha - parts))
                points.append(point(t, observed, upperbound))
                lag2 = lag1
                lag1 = (Double(observed) - mean) / sigma
            }
        case .cusum, .cidars:
            break
        }
        return points
    }

    /// R's alarm is `observed > upperbound`, NA when the bound is NaN.
    private static func point(_ t: Int, _ observed: Int, _ upperbound: Double) -> AberrationPoint {
        upperbound.isNaN
            ? AberrationPoint(index: t, observed: observed, upperbound: nil, alarm: false)
            : AberrationPoint(index: t, observed: observed, upperbound: upperbound, alarm: Double(observed) > upperbound)
    }

    /// `(y_t − mean) / max(sd, minSigma)` over C2's window; ±infinity or NaN when that is 0, as in R.
    private static func c2Statistic(_ counts: [Int], at t: Int, baseline: Int, minSigma: Double) -> Double {
        let (mean, sd) = window(counts, endingBefore: t - 2, length: baseline)
        return (Double(counts[t - 1]) - mean) / pmax(sd, minSigma)
    }

    /// Mean and sample standard deviation of the `length` days before 1-based position `end`.
    /// Counts are integers below 2^31, so the sum is exact and the mean correctly rounded; the
    /// correcting pass R's `var` makes over the residuals moves it by an ulp at most.
    private static func window(_ counts: [Int], endingBefore end: Int, length: Int) -> (mean: Double, sd: Double) {
        let slice = counts[(end - 1 - length)..<(end - 1)]
        let n = Double(length)
        var total = 0
        for value in slice { total += value }
        let mean = Double(total) / n
        var squares = 0.0
        for value in slice {
            let deviation = Double(value) - mean
            squares += deviation * deviation
        }
        return (mean, (squares / (n - 1)).squareRoot())
    }
}

/// R's `pmax` for two numbers: NaN if either is.
@inline(__always)
func pmax(_ a: Double, _ b: Double) -> Double {
    a.isNaN || b.isNaN ? .nan : (a > b ? a : b)
}
