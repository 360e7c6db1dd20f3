// Parse-rate benchmark over the shared ER7 corpus. Run in release mode:
//     swift run -c release HL7v2Bench [corpus-folder] [seconds]
import Foundation
import HL7v2

let arguments = CommandLine.arguments
let folder = arguments.count > 1 ? arguments[1] : "/work/shared/corpora/hl7v2"
let seconds = arguments.count > 2 ? Double(arguments[2]) ?? 3 : 3

var loaded: [[UInt8]] = []
let enumerator = FileManager.default.enumerator(atPath: folder)
while let path = enumerator?.nextObject() as? String {
    guard !path.hasSuffix(".md"), let data = FileManager.default.contents(atPath: folder + "/" + path) else { continue }
    guard let batch = try? HL7Batch.parse(Array(data)) else { continue }
    loaded.append(contentsOf: batch.messages.map(\.utf8Bytes))
}
let messages = loaded
guard !messages.isEmpty else {
    print("no messages under \(folder)")
    exit(1)
}
let totalBytes = messages.reduce(0) { $0 + $1.count }
print("\(messages.count) messages, \(totalBytes) bytes")

func run(_ name: String, _ messages: [[UInt8]], _ body: ([UInt8]) -> Int) {
    var parsed = 0
    var bytes = 0
    var checksum = 0
    let clock = ContinuousClock()
    let start = clock.now
    let budget = Duration.milliseconds(Int(seconds * 1000))
    while clock.now - start < budget {
        for message in messages {
            checksum &+= body(message)
            bytes += message.count
        }
        parsed += messages.count
    }
    let elapsed = clock.now - start
    let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let rate = Double(parsed) / elapsedSeconds
    let megabytes = Double(bytes) / elapsedSeconds / 1e6
    print(String(format: "%@: %.0f messages/s, %.1f MB/s (checksum %d)", name, rate, megabytes, checksum))
}

let paths = ["PID-3", "PID-5", "PID-7", "MSH-9", "MSH-10"].map { try! HL7Path($0) }

run("parse + count fields", messages) { bytes in
    guard let message = try? HL7Message.parse(bytes) else { return 0 }
    var fields = 0
    for position in 0..<message.segmentCount { fields += message.fieldCount(at: position) }
    return fields
}
run("parse + read PID-3, PID-5, PID-7, MSH-9, MSH-10", messages) { bytes in
    guard let message = try? HL7Message.parse(bytes) else { return 0 }
    var length = 0
    for path in paths { length += message.value(path)?.utf8.count ?? 0 }
    return length
}
