import ChronicRules
import Foundation

/// Reading-evaluations per second in process: every reading of every history evaluated as if it
/// had just arrived (`now` is its own measured time, so nothing is stale), on one core.
func runThroughput(engine: RuleEngine, options: Options, followUpDays: [String: Int]) {
    let residents = max(1, options.residents / 5)
    let days = min(90, options.days)
    let population = Population(seed: options.seed ^ 0x7468_726F_7567_6870, days: days, dense: true, followUpDays: followUpDays)

    // One contiguous array of readings; each resident's history is a slice of it.
    var readings: [Reading] = []
    var spans: [(range: Range<Int>, programmes: [String], rules: ProgrammeRules)] = []
    var residentsIn: [String: Int] = [:]
    for number in 0..<residents {
        let resident = population.resident(number)
        // A service resolves a resident's programmes to their rules once, not per reading.
        spans.append(
            (readings.count..<(readings.count + resident.history.count), resident.programmes, engine.rules(for: resident.programmes)))
        readings.append(contentsOf: resident.history)
        for code in resident.programmes { residentsIn[code, default: 0] += 1 }
    }

    // The rules the engine evaluates for a reading: the reading rules of the resident's
    // programmes whose measures the reading carries.
    var ruleMasks: [String: [UInt8]] = [:]
    for rule in engine.rules where rule.enabled && !rule.needsSweep { ruleMasks[rule.programme, default: []].append(rule.measures.bits) }
    var ruleEvaluations = 0
    for span in spans {
        let masks = span.programmes.flatMap { ruleMasks[$0] ?? [] }
        for reading in readings[span.range] {
            let present = reading.values.present.bits
            for mask in masks where mask & present != 0 { ruleEvaluations += 1 }
        }
    }
    let evaluations = readings.count

    print("Throughput: RuleEngine.evaluate(history:at:rules:now:) on every reading, single-threaded")
    print(
        "  \(grouped(residents)) residents x \(days) days, every resident measuring every slot: "
            + ProgrammeCode.all.map { "\($0) \(grouped(residentsIn[$0] ?? 0))" }.joined(separator: ", "))
    print(
        "  per repetition: \(grouped(evaluations)) reading-evaluations, \(grouped(ruleEvaluations)) rule-evaluations "
            + "(\(String(format: "%.2f", Double(ruleEvaluations) / Double(max(1, evaluations)))) rules per reading); "
            + "1 warm-up + \(options.repetitions) timed repetitions")

    let clock = ContinuousClock()
    var timings: [Double] = []
    var firingsPerRepetition: [Int] = []
    var checksum = 0
    readings.withUnsafeBufferPointer { all in
        for repetition in 0...options.repetitions {
            var firings = 0
            var sum = 0
            let start = clock.now
            for span in spans {
                let history = UnsafeBufferPointer(rebasing: all[span.range])
                for index in 0..<history.count {
                    let fired = engine.evaluate(history: history, at: index, rules: span.rules, now: history[index].time)
                    firings &+= fired.count
                    for firing in fired { sum &+= firing.rule &* 31 &+ firing.evidence.count }
                }
            }
            let elapsed = seconds(clock.now - start)
            if repetition > 0 { timings.append(elapsed) }
            firingsPerRepetition.append(firings)
            checksum = sum
        }
    }
    guard !timings.isEmpty else { return }
    let sorted = timings.sorted()
    let best = sorted[0]
    let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2

    var table = TextTable(["single core", "best", "median"])
    table.add(["reading-evaluations/s", grouped(Int(Double(evaluations) / best)), grouped(Int(Double(evaluations) / median))])
    table.add(["rule-evaluations/s", grouped(Int(Double(ruleEvaluations) / best)), grouped(Int(Double(ruleEvaluations) / median))])
    table.add([
        "ns per reading-evaluation", String(format: "%.0f", best * 1e9 / Double(evaluations)),
        String(format: "%.0f", median * 1e9 / Double(evaluations)),
    ])
    table.add(["seconds per repetition", String(format: "%.3f", best), String(format: "%.3f", median)])
    print()
    print(table.render())
    print()
    let consistent = Set(firingsPerRepetition).count == 1
    print(
        "  firings per repetition: \(grouped(firingsPerRepetition.last ?? 0)) "
            + "(\(String(format: "%.2f", Double(firingsPerRepetition.last ?? 0) / Double(max(1, evaluations)))) per reading-evaluation), "
            + "checksum \(checksum)\(consistent ? "" : ", DIFFERED between repetitions: \(firingsPerRepetition)")")
    let target = 1_000_000.0
    let bestRate = Double(evaluations) / best
    let medianRate = Double(evaluations) / median
    let verdict: String
    if medianRate > target {
        verdict = "met (median \(String(format: "%.2f", medianRate / target))x the target)"
    } else if bestRate > target {
        verdict = "met at best only (median \(String(format: "%.2f", medianRate / target))x the target)"
    } else {
        verdict = "NOT met (best \(String(format: "%.2f", bestRate / target))x the target)"
    }
    print("  target over 1,000,000 reading-evaluations/s on one core: \(verdict)")
}
