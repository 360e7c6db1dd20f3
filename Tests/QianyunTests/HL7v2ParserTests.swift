import Foundation
import Testing

@testable import HL7v2

let sampleADT =
    "MSH|^~\\&|HIS|贵州省人民医院|EMPI|QIANYUN|20240131083000+0800||ADT^A01^ADT_A01|MSG0001|P|2.5|||AL|NE||UNICODE UTF-8\r"
    + "EVN|A01|20240131083000\r"
    + "PID|1||12345^^^HOSP&1.2.3&ISO^MR~67890^5^M10^CARD^PI||张三^^^^^^L||19800101|M|||贵阳市^^贵阳^GZ^550000^CHN^H||^PRN^PH^^86^851^1234567\r"
    + "PV1|1|I|W1^101^1\r"
    + "OBX|1|ST|X^Y||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f||||||F\r"
    + "OBX|2|NM|Z^W||42||||||F\r"
    + "ZPI|1|custom^value\r"

@Suite("HL7v2 ER7 parsing")
struct HL7v2ParserTests {
    @Test("fields, repetitions, components and subcomponents are 1-based")
    func access() throws {
        let message = try HL7Message.parse(sampleADT)
        #expect(message.segmentCount == 7)
        #expect(message["MSH-3"] == "HIS")
        #expect(message["MSH-4"] == "贵州省人民医院")
        #expect(message["MSH-9.2"] == "A01")
        #expect(message["MSH-10"] == "MSG0001")
        #expect(message["PID-3"] == "12345")
        #expect(message["PID-3.4.2"] == "1.2.3")
        #expect(message["PID-3(2).1"] == "67890")
        #expect(message["PID-3(2).4"] == "CARD")
        #expect(message["PID-3(3).1"] == nil)
        #expect(message["PID-5.1.1"] == "张三")
        #expect(message["OBX(2)-5"] == "42")
        #expect(message["OBX(3)-5"] == nil)
        #expect(message["ZPI-2.2"] == "value")
        #expect(message["PID-99"] == nil)
        let pid = try #require(message.segment("PID"))
        #expect(pid.fieldCount == 13)
        #expect(pid.field(3)?.repetitionCount == 2)
        #expect(message.segment("MSH")?.fieldCount == 18)
        #expect(message.segment("MSH")?.field(2)?.er7 == "^~\\&")
    }

    @Test("line ends: \\n and \\r\\n are read as \\r; the final terminator state is kept")
    func lineEnds() throws {
        let base = "MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5\rPID|1||X"
        for (input, expected) in [
            (base, base), (base + "\r", base + "\r"), (base.replacingOccurrences(of: "\r", with: "\n") + "\n", base + "\r"),
            (base.replacingOccurrences(of: "\r", with: "\r\n") + "\r\n\r\n", base + "\r\r"),
        ] {
            let message = try HL7Message.parse(Array(input.utf8))
            #expect(message.er7 == expected)
            #expect(message.segmentCount == 2)
        }
    }

    @Test("MSH-2 with three or five characters")
    func encodingCharacterVariants() throws {
        let three = try HL7Message.parse("MSH|^~\\|A||||||ADT^A01|1|P|2.5\rPID|1||a&b^c")
        #expect(three.delimiters.subcomponent == 0)
        #expect(three["PID-3.1"] == "a&b")
        let five = try HL7Message.parse("MSH|^~\\&#|A||||||ADT^A01|1|P|2.7\rPID|1||a\\P\\b")
        #expect(five.delimiters.truncation == UInt8(ascii: "#"))
        #expect(five["PID-3"] == "a#b")
        #expect(five.er7.hasPrefix("MSH|^~\\&#|A"))
        let custom = try HL7Message.parse("MSH*%$/!*A******ADT%A01*1\rPID*1**a%b$c")
        #expect(custom["PID-3(2)"] == "c")
        #expect(custom["MSH-9.2"] == "A01")
    }

    @Test(
        "malformed input is refused with a typed error",
        arguments: [
            ("", HL7Error.Code.empty), ("\r\n \r", .empty), ("PID|1", .missingHeader), ("MSH", .truncatedHeader),
            ("MSH|", .truncatedHeader), ("MSH|^~", .truncatedHeader), ("MSH|^~\\&", .truncatedHeader),
            ("MSH|^|A", .invalidDelimiters), ("MSH|^^\\&|A", .duplicateDelimiters), ("MSH|^~||A", .invalidDelimiters),
            ("MSH|^~\\^|A", .duplicateDelimiters), ("MSHA^~\\&A", .invalidDelimiters), ("MSH|a~\\&|", .invalidDelimiters),
            ("MSH|^~\\&|A\rPID|1\u{0}x", .controlCharacter), ("MSH|^~\\&|A\rpid|1", .invalidSegmentID),
            ("MSH|^~\\&|A\rPIDX|1", .invalidSegmentID), ("MSH|^~\\&|A\rMSH|^~\\&|B", .multipleMessages),
            ("FHS|^~\\&|A\rMSH|^~\\&|B", .batchNotSupported), ("MSH|^~\\&|A\rBTS|1", .batchNotSupported),
        ])
    func malformed(input: String, code: HL7Error.Code) {
        do {
            _ = try HL7Message.parse(Array(input.utf8))
            Issue.record("parsed: \(input.debugDescription)")
        } catch {
            #expect(error.code == code, "\(input.debugDescription)")
            #expect(!error.description.contains("|A"))
        }
    }

    @Test("error descriptions carry positions, never content")
    func errorDescriptions() {
        do {
            _ = try HL7Message.parse("MSH|^~\\&|A\rPID|1||张三\u{1}")
            Issue.record("parsed")
        } catch {
            #expect(error.code == .controlCharacter)
            #expect(error.location.segmentIndex == 1)
            #expect(!error.description.contains("张三"))
            #expect(error.hl7Code == .dataTypeError)
        }
    }

    @Test("random binary is refused, never crashes")
    func binary() {
        var generator = HL7Fuzzing.SeededGenerator(seed: 7)
        for length in [1, 3, 4, 9, 100, 5000] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(throws: HL7Error.self) { try HL7Message.parse(bytes) }
            #expect(throws: HL7Error.self) { try HL7Message.parse([0x4D, 0x53, 0x48] + bytes) }
        }
    }

    @Test("a 50 MB field is refused at once under a 16 MiB limit")
    func tooLarge() {
        var bytes = [UInt8](repeating: UInt8(ascii: "A"), count: 50_000_000)
        let header = Array("MSH|^~\\&|A||||||ADT^A01|1|P|2.5\rOBX|1|ED|X||".utf8)
        bytes.replaceSubrange(0..<header.count, with: header)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(throws: HL7Error(.tooLarge, HL7Location(byteOffset: 16 << 20))) { try HL7Message.parse(bytes) }
        #expect(clock.now - start < .seconds(1))
    }

    @Test("a 10 MB field under a larger limit parses in linear time")
    func largeField() throws {
        func input(_ size: Int) -> [UInt8] {
            var bytes = Array("MSH|^~\\&|A||||||ORU^R01|1|P|2.5\rOBX|1|ED|X||".utf8)
            bytes.append(contentsOf: repeatElement(UInt8(ascii: "Q"), count: size))
            bytes.append(contentsOf: Array("|F\r".utf8))
            return bytes
        }
        let options = HL7ParseOptions(maxMessageBytes: 64 << 20)
        let clock = ContinuousClock()
        let small = input(1_000_000)
        let big = input(10_000_000)
        var start = clock.now
        _ = try HL7Message.parse(small, options: options)
        let smallTime = clock.now - start
        start = clock.now
        let message = try HL7Message.parse(big, options: options)
        let bigTime = clock.now - start
        #expect(message["OBX-5"]?.utf8.count == 10_000_000)
        #expect(message["OBX-6"] == "F")
        // Linear: ten times the input must not take much more than ten times as long.
        #expect(bigTime < smallTime * 40 + .milliseconds(200))
    }

    @Test("building and editing messages")
    func editing() throws {
        var message = HL7Message()
        try message.set("MSH-3", to: "HIS")
        try message.set("MSH-9.1", to: "ADT")
        try message.set("MSH-9.2", to: "A04")
        try message.set("MSH-10", to: "42")
        try message.appendSegment("PID", fields: ["1", "", "a|b"])
        try message.set("PID-5.1", to: "张")
        try message.set("PID-5.2", to: "三")
        try message.set("PID-3(2).4.2", to: "1.2.3")
        try message.appendSegment("ZPI|x")
        #expect(message.er7 == "MSH|^~\\&|HIS||||||ADT^A04|42\rPID|1||a\\F\\b~^^^&1.2.3||张^三\rZPI|x\r")
        #expect(message["PID-3"] == "a|b")
        try message.set("PID-3", to: nil)
        #expect(message["PID-3"] == nil)
        #expect(throws: HL7Error.self) { try message.set("MSH-1", to: "#") }
        #expect(throws: HL7Error.self) { try message.set("NK1-1", to: "x") }
        #expect(throws: HL7Error.self) { try message.appendSegment("MSH|^~\\&|x") }
        #expect(throws: HL7Error.self) { try message.appendSegment("PID|1\rEVN") }
    }
}
