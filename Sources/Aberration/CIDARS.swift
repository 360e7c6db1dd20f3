/// CIDARS's moving percentile: the week ending on day i against the same week, and its
/// neighbouring weeks, in each of the previous years.
enum CIDARS {
    static func detect(counts: [Int], range: ClosedRange<Int>, parameters p: AberrationParameters) -> [AberrationPoint] {
        let perYear = 2 * p.neighbours + 1
        let baselineCount = p.years * perYear
        // Offsets back from i of the baseline weeks' last days, oldest first.
        var offsets: [Int] = []
        offsets.reserveCapacity(baselineCount)
        for year in 1...p.years {
            for shift in -p.neighbours...p.neighbours { offsets.append(p.period * year - 7 * shift) }
        }
        // Week sums kept running across the range: each day adds one count and drops one.
        var sums = offsets.map { weekSum(counts, endingAt: range.lowerBound - $0) }
        var observed = weekSum(counts, endingAt: range.lowerBound)
        var sorted = [Int](repeating: 0, count: baselineCount)
        let probability = p.percentile / 100

        var points: [AberrationPoint] = []
        points.reserveCapacity(range.count)
        for i in range {
            if i > range.lowerBound {
                observed += counts[i - 1] - counts[i - 8]
                for j in 0..<baselineCount {
                    let end = i - offsets[j]
                    sums[j] += counts[end - 1] - counts[end - 8]
                }
            }
            insertionSort(sums, into: &sorted)
            let upperbound = quantileType7(sorted, probability)
            let alarm = Double(observed) > upperbound && observed >= p.minCount
            points.append(AberrationPoint(index: i, observed: observed, upperbound: upperbound, alarm: alarm))
        }
        return points
    }

    /// The sum of the 7 days ending at 1-based position `end`.
    private static func weekSum(_ counts: [Int], endingAt end: Int) -> Int {
        var total = 0
        for value in counts[(end - 7)..<end] { total += value }
        return total
    }

    /// A handful of values (9 by default): insertion sort into a buffer allocated once per call.
    private static func insertionSort(_ values: [Int], into sorted: inout [Int]) {
        for (n, value) in values.enumerated() {
            var position = n
            while position > 0, sorted[position - 1] > value {
                sorted[position] = sorted[position - 1]
                position -= 1
            }
            sorted[position] = value
        }
    }

    /// R's `quantile(x, probability, type = 7)` of sorted values: index `1 + (n − 1)·p`,
    /// interpolated between its floor and ceiling only when their values differ, as R does.
    static func quantileType7(_ sorted: [Int], _ probability: Double) -> Double {
        let index = 1 + Double(sorted.count - 1) * probability
        let lo = index.rounded(.down)
        let hi = index.rounded(.up)
        let low = Double(sorted[Int(lo) - 1])
        let high = Double(sorted[Int(hi) - 1])
        guard index > lo, high != low else { return low }
        let fraction = index - lo
        return (1 - fraction) * low + fraction * high
    }
}
