import Foundation
import NameMatching

// Matching-quality benchmark: a synthetic Guizhou population, registrations from other
// facilities with the errors HIS data has, twins and namesakes; every registration goes through
// the matcher (blocking keys, then Fellegi–Sunter scoring). Prints precision, recall and F1 of
// the automatic links; with --out DIR also writes the data as CSV for the peer (bench/match).
var residentsCount = 20_000
var seed: UInt64 = 2026
var outDirectory: String?
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--residents": residentsCount = Int(arguments.popFirst() ?? "") ?? residentsCount
    case "--seed": seed = UInt64(arguments.popFirst() ?? "") ?? seed
    case "--out": outDirectory = arguments.popFirst()
    default:
        FileHandle.standardError.write(Data("usage: qianyun-match-bench [--residents N] [--seed S] [--out DIR]\n".utf8))
        exit(2)
    }
}

var generator = PopulationGenerator(seed: seed)
var registry: [Person] = (0..<residentsCount).map { generator.person(truth: $0) }
var nextTruth = residentsCount
enum Kind: String { case duplicate, twin, namesake, new }
var incoming: [(Person, Kind)] = []
for _ in 0..<(residentsCount * 30 / 100) {
    incoming.append((generator.corrupted(generator.pick(registry)), .duplicate))
}
for _ in 0..<(residentsCount * 2 / 100) {
    incoming.append((generator.twin(of: generator.pick(registry), truth: nextTruth), .twin))
    nextTruth += 1
}
for _ in 0..<(residentsCount * 2 / 100) {
    incoming.append((generator.namesake(of: generator.pick(registry), truth: nextTruth), .namesake))
    nextTruth += 1
}
for _ in 0..<(residentsCount * 10 / 100) {
    incoming.append((generator.person(truth: nextTruth), .new))
    nextTruth += 1
}

let matcher = Matcher()
let records = registry.map(\.record)
var index: [String: [Int]] = [:]
for (position, record) in records.enumerated() {
    for key in Matcher.blockingKeys(record) { index[key, default: []].append(position) }
}

var truePositives = 0
var falsePositives = 0
var reviews = 0
var twinsMerged = 0
var namesakesMerged = 0
var candidatesScored = 0
var missedByCorruption: [String: Int] = [:]
let started = ContinuousClock.now
for (person, kind) in incoming {
    let record = person.record
    var candidates = Set<Int>()
    for key in Matcher.blockingKeys(record) { candidates.formUnion(index[key] ?? []) }
    candidatesScored += candidates.count
    var best: (Int, MatchScore)?
    var reviewed = false
    for candidate in candidates {
        let score = matcher.score(record, records[candidate])
        if score.decision == .review { reviewed = true }
        if score.decision == .link, best == nil || score.weight > best!.1.weight { best = (candidate, score) }
    }
    if let (resident, _) = best {
        if registry[resident].truth == person.truth { truePositives += 1 } else { falsePositives += 1 }
        if kind == .twin { twinsMerged += 1 }
        if kind == .namesake { namesakesMerged += 1 }
    } else {
        if reviewed { reviews += 1 }
        if kind == .duplicate {
            for corruption in Set(person.corruptions) { missedByCorruption[corruption, default: 0] += 1 }
        }
    }
}
let elapsed = ContinuousClock.now - started
let duplicates = incoming.filter { $0.1 == .duplicate }.count
let precision = truePositives + falsePositives == 0 ? 0 : Double(truePositives) / Double(truePositives + falsePositives)
let recall = Double(truePositives) / Double(duplicates)
let f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall)

func format(_ value: Double) -> String { String(format: "%.4f", value) }
print(
    "population: \(residentsCount) residents; \(incoming.count) registrations: \(duplicates) duplicates (1–3 corruptions each), "
        + "\(residentsCount * 2 / 100) twins, \(residentsCount * 2 / 100) namesakes, \(residentsCount * 10 / 100) new people")
print("| matcher | precision | recall | F1 | twins merged | namesakes merged | sent to review |")
print("|---|---|---|---|---|---|---|")
print(
    "| qianyun NameMatching | \(format(precision)) | \(format(recall)) | \(format(f1)) | \(twinsMerged) | \(namesakesMerged) | \(reviews) |"
)
print(
    "candidates scored per registration: \(String(format: "%.1f", Double(candidatesScored) / Double(incoming.count))); "
        + "\(String(format: "%.1f", Double(elapsed.components.attoseconds) / 1e12 / Double(incoming.count) + Double(elapsed.components.seconds) * 1e6 / Double(incoming.count))) µs per registration"
)
print(
    "duplicates not linked, by corruption present: "
        + missedByCorruption.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))

if let outDirectory {
    func csv(_ people: [(Person, String)]) -> String {
        var text = "rec_id,truth,kind,name,sex,birth,id,phone,division,address\n"
        for (number, (person, kind)) in people.enumerated() {
            text +=
                "\(number),\(person.truth),\(kind),\(person.name),\(person.sex),\(person.birth),\(person.idNumber ?? ""),"
                + "\(person.phone ?? ""),\(person.division),\(person.address)\n"
        }
        return text
    }
    try FileManager.default.createDirectory(atPath: outDirectory, withIntermediateDirectories: true)
    try csv(registry.map { ($0, "registry") }).write(toFile: outDirectory + "/registry.csv", atomically: true, encoding: .utf8)
    try csv(incoming.map { ($0.0, $0.1.rawValue) }).write(toFile: outDirectory + "/incoming.csv", atomically: true, encoding: .utf8)
}
