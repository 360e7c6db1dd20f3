// HL7 v2 parser benchmark and fuzzer over a folder of ER7 messages (bench/hl7-parse, bench/hl7-fuzz).
//   qianyun-hl7-bench parse FOLDER [--seconds S] [--dump FILE]
//   qianyun-hl7-bench fuzz FOLDER [--seconds S] [--seed N]
// `--dump` writes the messages it measured, one per line with `\r` segment ends, so a peer can
// parse exactly the same ones.
import Foundation
import HL7v2

struct Options {
    var mode = "parse"
    var folder = ""
    var seconds = 5.0
    var dump: String?
    var seed = UInt64(Date().timeIntervalSince1970)

    init(_ arguments: [String]) {
        var rest = arguments.dropFirst()
        guard let mode = rest.popFirst(), let folder = rest.popFirst() else { Self.usage() }
        self.mode = mode
        self.folder = folder
        while let flag = rest.popFirst() {
            guard let value = rest.popFirst() else { Self.usage() }
            switch flag {
            case "--seconds": seconds = Double(value) ?? seconds
            case "--dump": dump = value
            case "--seed": seed = UInt64(value) ?? seed
            default: Self.usage()
            }
        }
    }

    static func usage() -> Never {
        FileHandle.standardError.write(
            Data("usage: qianyun-hl7-bench parse|fuzz FOLDER [--seconds S] [--dump FILE] [--seed N]\n".utf8))
        exit(2)
    }
}

/// Every message under `folder` (files holding one message, several, or a batch), as UTF-8 with `\r` ends.
func loadMessages(_ folder: String) -> [[UInt8]] {
    var loaded: [(String, [[UInt8]])] = []
    let enumerator = FileManager.default.enumerator(atPath: folder)
    while let path = enumerator?.nextObject() as? String {
        guard !path.hasSuffix(".md"), let data = FileManager.default.contents(atPath: folder + "/" + path),
            let batch = try? HL7Batch.parse(Array(data))
        else { continue }
        loaded.append((path, batch.messages.map(\.utf8Bytes)))
    }
    return loaded.sorted { $0.0 < $1.0 }.flatMap(\.1)
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func measure(_ name: String, _ messages: [[UInt8]], budget: Double, _ body: ([UInt8]) -> Int) {
    var parsed = 0
    var bytes = 0
    var checksum = 0
    let clock = ContinuousClock()
    let start = clock.now
    while seconds(clock.now - start) < budget {
        for message in messages {
            checksum &+= body(message)
            bytes += message.count
        }
        parsed += messages.count
    }
    let elapsed = seconds(clock.now - start)
    print(
        String(
            format: "QY_PARSE %@|%.0f|%.1f|%d", name, Double(parsed) / elapsed, Double(bytes) / elapsed / 1e6, checksum))
}

func parseBenchmark(_ options: Options, _ messages: [[UInt8]]) {
    if let dump = options.dump {
        var out: [UInt8] = []
        for message in messages {
            out.append(contentsOf: message)
            out.append(0x0A)
        }
        guard FileManager.default.createFile(atPath: dump, contents: Data(out)) else {
            print("cannot write \(dump)")
            exit(1)
        }
    }
    let paths = ["PID-3", "PID-5", "PID-7", "MSH-9", "MSH-10"].map { try! HL7Path($0) }
    measure("parse, every segment's fields counted", messages, budget: options.seconds) { bytes in
        guard let message = try? HL7Message.parse(bytes) else { return 0 }
        var fields = 0
        for position in 0..<message.segmentCount { fields += message.fieldCount(at: position) }
        return fields
    }
    measure("parse, then read PID-3, PID-5, PID-7, MSH-9, MSH-10", messages, budget: options.seconds) { bytes in
        guard let message = try? HL7Message.parse(bytes) else { return 0 }
        var length = 0
        for path in paths { length += message.value(path)?.utf8.count ?? 0 }
        return length
    }
}

/// Mutates corpus messages until the time is up. A crash stops the process (rerun with the printed
/// seed to reproduce); an input whose parse is slow for its size is reported as a failure, since
/// parse time must stay linear.
func fuzz(_ options: Options, _ messages: [[UInt8]]) -> Int32 {
    print("fuzzing \(messages.count) seed messages for \(options.seconds) s with --seed \(options.seed)")
    var generator = HL7Fuzzing.SeededGenerator(seed: options.seed)
    let clock = ContinuousClock()
    let start = clock.now
    var runs = 0
    var parsed = 0
    var notRoundTripping = 0
    var slow = 0
    var worstMicrosPerKB = 0.0
    var rejections: [HL7Error.Code: Int] = [:]
    while seconds(clock.now - start) < options.seconds {
        var bytes = messages[Int.random(in: 0..<messages.count, using: &generator)]
        for _ in 0...Int.random(in: 0..<8, using: &generator) { bytes = HL7Fuzzing.mutate(bytes, using: &generator) }
        var began = clock.now
        let outcome = HL7Fuzzing.check(bytes)
        var micros = seconds(clock.now - began) * 1e6
        // A preempted run looks slow too: only an input that stays slow on its best of three counts.
        for _ in 0..<3 where micros > 1000 {
            began = clock.now
            _ = HL7Fuzzing.check(bytes)
            micros = min(micros, seconds(clock.now - began) * 1e6)
        }
        let perKB = micros / Double(max(bytes.count, 256)) * 1024
        worstMicrosPerKB = max(worstMicrosPerKB, perKB)
        // Parsing, reading every field and building an ACK runs near 10 µs per KB; 100 times that is a hang in the making.
        if perKB > 1000 && micros > 1000 {
            slow += 1
            if slow <= 10 { print("slow input: run \(runs), \(bytes.count) bytes, \(Int(micros)) µs") }
        }
        switch outcome {
        case .parsed(let roundTrips):
            parsed += 1
            if !roundTrips { notRoundTripping += 1 }
        case .rejected(let code): rejections[code, default: 0] += 1
        }
        runs += 1
    }
    print("runs \(runs), parsed \(parsed), rejected \(runs - parsed), parsed but not round-tripping \(notRoundTripping), slow \(slow)")
    print(String(format: "worst time per KB: %.0f µs", worstMicrosPerKB))
    for (code, count) in rejections.sorted(by: { $0.value > $1.value }) { print("  rejected \(code): \(count)") }
    return notRoundTripping == 0 && slow == 0 ? 0 : 1
}

let options = Options(CommandLine.arguments)
let messages = loadMessages(options.folder)
guard !messages.isEmpty else {
    print("no HL7 v2 messages under \(options.folder)")
    exit(1)
}
print("QY_CORPUS \(messages.count) messages, \(messages.reduce(0) { $0 + $1.count }) bytes")
switch options.mode {
case "parse": parseBenchmark(options, messages)
case "fuzz": exit(fuzz(options, messages))
default: Options.usage()
}
