import Foundation
import Testing

@testable import Aberration

/// R's values, written by Fixtures/aberration/make_reference.R (which records R's and
/// surveillance's versions in the file). Every object has distinct keys; cases are an array.
private struct Reference: Decodable {
    struct NormalQuantile: Decodable {
        let alpha: Double
        let z: Double
    }

    struct Series: Decodable {
        let name: String
        let counts: [Int]
    }

    struct Parameters: Decodable {
        var baseline: Int?
        var alpha: Double?
        var minSigma: Double?
        var k: Double?
        var h: Double?
        var m: Double?
        var period: Int?
        var years: Int?
        var neighbours: Int?
        var percentile: Double?
        var minCount: Int?

        var value: AberrationParameters {
            var p = AberrationParameters()
            if let baseline { p.baseline = baseline }
            if let alpha { p.alpha = alpha }
            if let minSigma { p.minSigma = minSigma }
            if let k { p.k = k }
            if let h { p.h = h }
            p.m = m
            if let period { p.period = period }
            if let years { p.years = years }
            if let neighbours { p.neighbours = neighbours }
            if let percentile { p.percentile = percentile }
            if let minCount { p.minCount = minCount }
            return p
        }
    }

    struct Case: Decodable, CustomStringConvertible {
        let series: String
        let method: AberrationMethod
        let first: Int
        let last: Int
        let parameters: Parameters
        let observed: [Int]
        let upperbound: [Double?]
        /// Null where R's alarm is NA.
        let alarm: [Bool?]

        var description: String { "\(method.rawValue) on \(series) \(first)...\(last) \(parameters)" }
    }

    let R: String
    let surveillance: String
    let normalQuantiles: [NormalQuantile]
    let series: [Series]
    let cases: [Case]

    static let shared: Reference = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/aberration/aberration-reference.json")
        do {
            return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot read \(url.path): \(error)")
        }
    }()

    func counts(_ name: String) -> [Int] {
        series.first { $0.name == name }?.counts ?? []
    }
}

/// Within 1e-9 relative, or 1e-9 absolute near 0.
private func close(_ a: Double, _ b: Double) -> Bool {
    abs(a - b) <= 1e-9 * max(1, abs(b))
}

@Suite struct AberrationTests {
    @Test func referenceComesFromSurveillance1_20_3() {
        let reference = Reference.shared
        #expect(reference.surveillance == "1.20.3")
        #expect(reference.R.hasPrefix("R version"))
        for method in AberrationMethod.allCases {
            #expect(reference.cases.contains { $0.method == method }, "no \(method.rawValue) cases")
        }
        // NA bounds (C3 on flat windows) and NA alarms (CUSUM with m = 0) are both exercised.
        #expect(reference.cases.contains { $0.upperbound.contains(nil) })
        #expect(reference.cases.contains { $0.method == .cusum && $0.alarm.contains(nil) })
    }

    @Test func normalQuantileMatchesQnorm() {
        for row in Reference.shared.normalQuantiles {
            #expect(close(normalQuantile(1 - row.alpha), row.z), "alpha \(row.alpha)")
        }
    }

    @Test(arguments: AberrationMethod.allCases)
    func everyPointMatchesR(_ method: AberrationMethod) throws {
        let reference = Reference.shared
        var compared = 0
        for test in reference.cases where test.method == method {
            let points = try Aberration.detect(
                method, counts: reference.counts(test.series), range: test.first...test.last, parameters: test.parameters.value)
            try #require(points.count == test.alarm.count, "\(test)")
            for (n, point) in points.enumerated() {
                #expect(point.index == test.first + n, "\(test)")
                #expect(point.observed == test.observed[n], "\(test) at \(point.index)")
                #expect(point.alarm == (test.alarm[n] ?? false), "\(test) at \(point.index)")
                switch (point.upperbound, test.upperbound[n]) {
                case (nil, nil): break
                case (let mine?, let theirs?): #expect(close(mine, theirs), "\(test) at \(point.index): \(mine) vs R's \(theirs)")
                case (let mine, let theirs):
                    Issue.record("\(test) at \(point.index): \(String(describing: mine)) vs R's \(String(describing: theirs))")
                }
                compared += 1
            }
        }
        #expect(compared > 500)
    }

    /// An EARS or CIDARS day does not depend on the rest of the range, so the daily job's single-day
    /// evaluation gives what the whole range gave. (R itself fails on a one-day C3 range: it assigns
    /// a column of `baseline` NAs into one cell.)
    @Test(arguments: [AberrationMethod.c1, .c2, .c3, .cidars])
    func singleDaysMatchTheirRange(_ method: AberrationMethod) throws {
        let reference = Reference.shared
        for test in reference.cases where test.method == method {
            let counts = reference.counts(test.series)
            let whole = try Aberration.detect(method, counts: counts, range: test.first...test.last, parameters: test.parameters.value)
            for point in whole {
                let alone = try Aberration.detect(
                    method, counts: counts, range: point.index...point.index, parameters: test.parameters.value)
                #expect(alone == [point], "\(test) at \(point.index)")
            }
        }
    }

    /// Default parameters on a series of 1,109 days, the earliest CIDARS can evaluate
    /// (365·3 + 7·1 + 7). At i = 1109 the baseline weeks end at 1109 − 365y + 7s:
    ///   y = 3: days 7, 14, 21; y = 2: 372, 379, 386; y = 1: 737, 744, 751.
    /// Each week's cases sit on its last day, so the sums are the values placed there:
    ///   2, 0, 5; 3, 1, 4; 6, 2, 3 → sorted 0 1 2 2 3 3 4 5 6.
    /// Type 7 at 0.8: index 1 + 8·0.8 = 7.4, between the 7th (4) and 8th (5): 4 + 0.4·(5 − 4) = 4.4.
    /// At 0.5: index 5, exactly the 5th value, 3.
    private static func handWorkedSeries(observedWeek: Int) -> [Int] {
        var counts = [Int](repeating: 0, count: 1109)
        for (day, cases) in [(7, 2), (14, 0), (21, 5), (372, 3), (379, 1), (386, 4), (737, 6), (744, 2), (751, 3)] {
            counts[day - 1] = cases
        }
        // Spread over the observed week 1103...1109.
        counts[1102] = observedWeek / 2
        counts[1108] = observedWeek - observedWeek / 2
        return counts
    }

    @Test func cidarsHandWorkedPercentile() throws {
        #expect(Aberration.minimumFirstIndex(.cidars, parameters: .init()) == 1109)

        let five = try #require(try Aberration.detect(.cidars, counts: Self.handWorkedSeries(observedWeek: 5), range: 1109...1109).first)
        #expect(five.observed == 5)
        #expect(abs((five.upperbound ?? .nan) - 4.4) < 1e-12)
        #expect(five.alarm)

        let four = try #require(try Aberration.detect(.cidars, counts: Self.handWorkedSeries(observedWeek: 4), range: 1109...1109).first)
        #expect(four.observed == 4)
        #expect(!four.alarm)

        var median = AberrationParameters()
        median.percentile = 50
        let atMedian = try Aberration.detect(
            .cidars, counts: Self.handWorkedSeries(observedWeek: 4), range: 1109...1109, parameters: median)
        #expect(atMedian == [AberrationPoint(index: 1109, observed: 4, upperbound: 3, alarm: true)])
    }

    /// Period 7, one year, no neighbours: for i = 14 the one baseline week ends at 14 − 7, days
    /// 1–7, and the percentile of a single value is that value, 0. The observed week 8–14 holds 1.
    @Test func cidarsMinimumCount() throws {
        var parameters = AberrationParameters()
        parameters.period = 7
        parameters.years = 1
        parameters.neighbours = 0
        var counts = [Int](repeating: 0, count: 14)
        counts[10] = 1
        #expect(Aberration.minimumFirstIndex(.cidars, parameters: parameters) == 14)
        let one = try Aberration.detect(.cidars, counts: counts, range: 14...14, parameters: parameters)
        #expect(one == [AberrationPoint(index: 14, observed: 1, upperbound: 0, alarm: true)])
        parameters.minCount = 2
        let notEnough = try Aberration.detect(.cidars, counts: counts, range: 14...14, parameters: parameters)
        #expect(notEnough == [AberrationPoint(index: 14, observed: 1, upperbound: 0, alarm: false)])
    }

    @Test func minimumFirstIndexIsTheFirstAccepted() throws {
        var withM = AberrationParameters()
        withM.m = 2
        let counts = [Int](repeating: 3, count: 1200)
        for (method, parameters) in AberrationMethod.allCases.map({ ($0, AberrationParameters()) }) + [(.cusum, withM)] {
            let minimum = Aberration.minimumFirstIndex(method, parameters: parameters)
            #expect(try Aberration.detect(method, counts: counts, range: minimum...minimum, parameters: parameters).count == 1)
            if minimum > 1 {
                #expect(throws: AberrationError.rangeTooEarly(first: minimum - 1, minimum: minimum)) {
                    try Aberration.detect(method, counts: counts, range: (minimum - 1)...minimum, parameters: parameters)
                }
            }
        }
        #expect(Aberration.minimumFirstIndex(.c1, parameters: .init()) == 8)
        #expect(Aberration.minimumFirstIndex(.c2, parameters: .init()) == 10)
        #expect(Aberration.minimumFirstIndex(.c3, parameters: .init()) == 12)
        #expect(Aberration.minimumFirstIndex(.cusum, parameters: .init()) == 2)
        #expect(Aberration.minimumFirstIndex(.cusum, parameters: withM) == 1)
        var huge = AberrationParameters()
        huge.period = Int.max / 2
        #expect(Aberration.minimumFirstIndex(.cidars, parameters: huge) == Int.max)
    }

    @Test func refusesRangesItCannotEvaluate() {
        let counts = [Int](repeating: 1, count: 20)
        #expect(throws: AberrationError.rangeTooEarly(first: 7, minimum: 8)) {
            try Aberration.detect(.c1, counts: counts, range: 7...20)
        }
        #expect(throws: AberrationError.rangeTooEarly(first: 11, minimum: 12)) {
            try Aberration.detect(.c3, counts: counts, range: 11...20)
        }
        // R would take m from `observed[c(1, 0)]`, the first day itself.
        #expect(throws: AberrationError.rangeTooEarly(first: 1, minimum: 2)) {
            try Aberration.detect(.cusum, counts: counts, range: 1...20)
        }
        #expect(throws: AberrationError.rangeTooEarly(first: 20, minimum: 1109)) {
            try Aberration.detect(.cidars, counts: counts, range: 20...20)
        }
        #expect(throws: AberrationError.rangeOutOfBounds(range: 8...21, count: 20)) {
            try Aberration.detect(.c1, counts: counts, range: 8...21)
        }
        #expect(throws: AberrationError.rangeOutOfBounds(range: 0...5, count: 20)) {
            try Aberration.detect(.cusum, counts: counts, range: 0...5)
        }
        #expect(throws: AberrationError.emptyCounts) {
            try Aberration.detect(.c2, counts: [], range: 1...1)
        }
    }

    @Test func refusesBadCounts() {
        var counts = [Int](repeating: 1, count: 20)
        counts[4] = -1
        #expect(throws: AberrationError.invalidCount(index: 5, value: -1)) {
            try Aberration.detect(.c1, counts: counts, range: 20...20)
        }
        counts[4] = Int(Int32.max) + 1
        #expect(throws: AberrationError.invalidCount(index: 5, value: Int(Int32.max) + 1)) {
            try Aberration.detect(.cusum, counts: counts, range: 20...20)
        }
        #expect(AberrationError.invalidCount(index: 5, value: -1).description == "the count at position 5 is negative")
    }

    @Test func refusesBadParameters() {
        let counts = [Int](repeating: 1, count: 2000)
        func refused(_ method: AberrationMethod, _ name: String, _ change: (inout AberrationParameters) -> Void) {
            var parameters = AberrationParameters()
            change(&parameters)
            do {
                _ = try Aberration.detect(method, counts: counts, range: 1900...2000, parameters: parameters)
                Issue.record("\(method.rawValue) accepted a bad \(name)")
            } catch {
                guard case .invalidParameter(let refused, _) = error else {
                    Issue.record("\(method.rawValue): \(error) instead of a refused \(name)")
                    return
                }
                #expect(refused == name)
                #expect(error.description.hasPrefix("parameter \(name) "))
            }
        }
        for alpha in [0, 1, -0.1, 1.5, .nan, 1e-17] { refused(.c1, "alpha") { $0.alpha = alpha } }
        refused(.c3, "baseline") { $0.baseline = 2 }
        refused(.c2, "minSigma") { $0.minSigma = -1 }
        refused(.c2, "minSigma") { $0.minSigma = .infinity }
        refused(.cusum, "k") { $0.k = .nan }
        refused(.cusum, "h") { $0.h = .infinity }
        refused(.cusum, "m") { $0.m = -0.5 }
        refused(.cidars, "percentile") { $0.percentile = 100.5 }
        refused(.cidars, "percentile") { $0.percentile = -1 }
        refused(.cidars, "period") { $0.period = 13 }
        refused(.cidars, "years") { $0.years = 0 }
        refused(.cidars, "neighbours") { $0.neighbours = -1 }
        refused(.cidars, "minCount") { $0.minCount = -1 }
        refused(.cidars, "period") { $0.neighbours = Int.max / 2 }
        #expect(
            AberrationError.invalidParameter(name: "alpha", reason: "must lie strictly between 0 and 1").description
                == "parameter alpha must lie strictly between 0 and 1")
    }
}
