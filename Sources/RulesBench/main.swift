// The chronic-disease rules engine in process (bench/chronic-rules):
//   qianyun-rules-bench --rules FILE --programmes FILE [--residents N] [--days N] [--seed N]
//                       [--repetitions N] [--only throughput|backtest]
// 1. Throughput: every reading of a dense synthetic population (a fifth of --residents, 90 days)
//    evaluated as if it had just arrived, single-threaded; reading- and rule-evaluations per second.
// 2. Backtest: a generated year (--days) of home readings and follow-ups for --residents residents
//    replayed through the rule set; alerts per rule per 1,000 residents per week.
import ChronicRules
import Foundation

struct Options: Sendable {
    var rules = "schemas/rules/chronic-rules.json"
    var programmes = "schemas/rules/programmes.json"
    var residents = 10_000
    var days = 365
    var seed: UInt64 = 2026
    var repetitions = 7
    var only: String?

    init(_ arguments: [String]) {
        var rest = arguments.dropFirst()
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { Self.usage("\(flag) needs a value") }
            switch flag {
            case "--rules": rules = value
            case "--programmes": programmes = value
            case "--residents": residents = Self.positive(flag, value)
            case "--days": days = Self.positive(flag, value)
            case "--seed":
                guard let number = UInt64(value) else { Self.usage("--seed takes a whole number") }
                seed = number
            case "--repetitions": repetitions = Self.positive(flag, value)
            case "--only":
                guard value == "throughput" || value == "backtest" else { Self.usage("--only takes throughput or backtest") }
                only = value
            default: Self.usage("unknown option \(flag)")
            }
        }
    }

    static func positive(_ flag: String, _ value: String) -> Int {
        guard let number = Int(value), number >= 1 else { usage("\(flag) takes a whole number of at least 1") }
        return number
    }

    static func usage(_ problem: String) -> Never {
        FileHandle.standardError.write(
            Data(
                ("\(problem)\nusage: qianyun-rules-bench [--rules FILE] [--programmes FILE] [--residents N] [--days N] [--seed N] "
                    + "[--repetitions N] [--only throughput|backtest]\n").utf8))
        exit(2)
    }
}

struct ProgrammeFile: Decodable {
    var programmes: [Programme]
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("qianyun-rules-bench: \(message)\n".utf8))
    exit(1)
}

let options = Options(CommandLine.arguments)
let ruleSet: RuleSet
let programmes: [Programme]
do {
    ruleSet = try JSONDecoder().decode(RuleSet.self, from: Data(contentsOf: URL(fileURLWithPath: options.rules)))
    programmes = try JSONDecoder().decode(ProgrammeFile.self, from: Data(contentsOf: URL(fileURLWithPath: options.programmes))).programmes
    try ruleSet.validate(programmes: Set(programmes.map(\.code)))
} catch {
    fail("cannot load the rules: \(error)")
}
let missing = ProgrammeCode.all.filter { code in !programmes.contains { $0.code == code } }
guard missing.isEmpty else { fail("the generator simulates \(missing.joined(separator: ", ")), missing from \(options.programmes)") }
var followUpDays: [String: Int] = [:]
for programme in programmes { followUpDays[programme.code] = programme.followUpDays }

let engine = RuleEngine(ruleSet: ruleSet)
let enabled = ruleSet.rules.filter(\.enabled)
print(
    "Chronic-disease rules engine (ChronicRules), rule set \(ruleSet.version): \(enabled.count) rules enabled, "
        + "\(enabled.filter { !$0.needsSweep }.count) decided by readings, \(enabled.filter(\.needsSweep).count) by the sweep; "
        + "programmes \(programmes.map(\.code).joined(separator: ", "))")
print()
if options.only != "backtest" {
    runThroughput(engine: engine, options: options, followUpDays: followUpDays)
    print()
}
if options.only != "throughput" {
    runBacktest(engine: engine, options: options, followUpDays: followUpDays)
}
