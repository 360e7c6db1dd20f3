import Foundation
import Testing

@testable import HL7v2

/// A GB 18030 message: 亅 (81 7C) and 乗 (81 5C) have trail bytes equal to `|` and `\`, 乛 (81 5E)
/// and 亊 (81 7E) equal to `^` and `~` (checked with Python's gb18030 codec).
func chineseMessage(msh18: String, facility: String = "贵州省人民医院亅") -> String {
    "MSH|^~\\&|HIS|\(facility)|EMPI|区域平台|20240131083000||ADT^A01^ADT_A01|CN001|P|2.4|||AL|AL||\(msh18)\r"
        + "PID|1||440101198001010011^^^GZ^NI||张亅乗^乛亊^^^^^L||19800101|M\r"
}

@Suite("HL7v2 character sets")
struct HL7v2CharsetTests {
    @Test("trail bytes equal to delimiters are what GB18030 says they are")
    func trailBytes() {
        #expect(GB18030.encode("亅") == [0x81, 0x7C])
        #expect(GB18030.encode("乗") == [0x81, 0x5C])
        #expect(GB18030.encode("乛") == [0x81, 0x5E])
        #expect(GB18030.encode("亊") == [0x81, 0x7E])
        #expect(GB18030.encode("张三") == [0xD5, 0xC5, 0xC8, 0xFD])
        #expect(GB18030.encode("€") == [0xA2, 0xE3])
        #expect(GB18030.encode("\u{80}") == [0x81, 0x30, 0x81, 0x30])
        #expect(GB18030.encode("\u{10000}") == [0x90, 0x30, 0x81, 0x30])
        #expect(GB18030.encode("\u{10FFFF}") == [0xE3, 0x32, 0x9A, 0x35])
    }

    @Test(
        "GB 18030 bytes decode before splitting, for every MSH-18 spelling",
        arguments: ["GB 18030-2000", "GB18030", "GBK", "GB2312", "CHINESE", "gb18030"])
    func gb18030Message(msh18: String) throws {
        let bytes = GB18030.encode(chineseMessage(msh18: msh18))
        #expect(UTF8Validation.firstInvalidOffset(bytes[...]) != nil)
        let message = try HL7Message.parse(bytes)
        #expect(message.charset == .gb18030)
        #expect(message["MSH-4"] == "贵州省人民医院亅")
        #expect(message["MSH-6"] == "区域平台")
        #expect(message["MSH-10"] == "CN001")
        #expect(message["MSH-18"] == msh18)
        #expect(message["PID-5.1"] == "张亅乗")
        #expect(message["PID-5.2"] == "乛亊")
        #expect(message["PID-5.7"] == "L")
        #expect(message.value(XPN.self, try HL7Path("PID-5"))?.familyName == "张亅乗")
        #expect(message.encoded() == bytes)
        #expect(message.er7 == chineseMessage(msh18: msh18))
    }

    @Test("GBK without MSH-18 needs the sender's default charset")
    func senderDefault() throws {
        let bytes = GB18030.encode(chineseMessage(msh18: ""))
        do {
            _ = try HL7Message.parse(bytes)
            Issue.record("GBK parsed as UTF-8")
        } catch {
            #expect(error.code == .invalidEncoding)
            #expect(error.hl7Code == .tableValueNotFound)
            #expect(error.location.field == 18)
        }
        let message = try HL7Message.parse(bytes, options: HL7ParseOptions(defaultCharset: .gb18030))
        #expect(message.charset == .gb18030)
        #expect(message["PID-5.1"] == "张亅乗")
        // UTF-8 from the same sender is still read as UTF-8.
        let utf8 = try HL7Message.parse(Array(chineseMessage(msh18: "").utf8), options: HL7ParseOptions(defaultCharset: .gb18030))
        #expect(utf8.charset == .utf8)
        #expect(utf8["PID-5.1"] == "张亅乗")
    }

    @Test("a facility name with a | trail byte in MSH-4 does not hide MSH-18")
    func shiftedHeader() throws {
        let bytes = GB18030.encode(chineseMessage(msh18: "GB18030", facility: "亅亅亅"))
        let message = try HL7Message.parse(bytes)
        #expect(message["MSH-4"] == "亅亅亅")
        #expect(message["MSH-18"] == "GB18030")
    }

    @Test("UTF-8, ASCII and Latin-1 declarations")
    func declarations() throws {
        let utf8 = try HL7Message.parse(Array(chineseMessage(msh18: "UNICODE UTF-8").utf8))
        #expect(utf8.charset == .utf8)
        #expect(utf8["PID-5.1"] == "张亅乗")
        let withBOM = try HL7Message.parse([0xEF, 0xBB, 0xBF] + Array(chineseMessage(msh18: "").utf8))
        #expect(withBOM.er7 == chineseMessage(msh18: ""))
        let ascii = try HL7Message.parse(Array("MSH|^~\\&|A||||||ADT^A01|1|P|2.5||||||ASCII\rPID|1".utf8))
        #expect(ascii.charset == .ascii)
        var latin = Array("MSH|^~\\&|A||||||ADT^A01|1|P|2.5||||||8859/1\rPID|1||||Jos".utf8)
        latin.append(0xE9)
        let latin1 = try HL7Message.parse(latin)
        #expect(latin1.charset == .latin1)
        #expect(latin1["PID-5"] == "José")
        #expect(latin1.encoded() == latin)
        // GBK bytes under a UTF-8 declaration: the sender default that works wins.
        let mislabelled = GB18030.encode(chineseMessage(msh18: "UNICODE UTF-8"))
        #expect(throws: HL7Error.self) { try HL7Message.parse(mislabelled) }
        let recovered = try HL7Message.parse(mislabelled, options: HL7ParseOptions(defaultCharset: .gb18030))
        #expect(recovered["PID-5.2"] == "乛亊")
    }

    @Test("bytes invalid in the declared charset and unknown charsets are typed errors")
    func invalid() {
        var bytes = GB18030.encode(chineseMessage(msh18: "GB18030"))
        bytes.append(contentsOf: [0x0D, 0x4E, 0x54, 0x45, 0x7C, 0xFF, 0x41])
        #expect(
            throws: HL7Error(
                .invalidEncoding, HL7Location(segmentIndex: 0, segmentID: "MSH", segmentSequence: 1, field: 18, byteOffset: bytes.count - 2)
            )
        ) {
            try HL7Message.parse(bytes)
        }
        var unknown = Array("MSH|^~\\&|A||||||ADT^A01|1|P|2.5||||||ISO IR87\rPID|1||".utf8)
        unknown.append(contentsOf: [0xB0, 0xA1])
        #expect(throws: HL7Error.self) { try HL7Message.parse(unknown) }
        do {
            _ = try HL7Message.parse(unknown)
        } catch {
            #expect(error.code == .unsupportedCharset)
        }
        #expect(HL7Charset.gb18030.decode([0x81]) == nil)
        #expect(HL7Charset.gb18030.decode([0x81, 0x30, 0x81]) == nil)
        #expect(HL7Charset.gb18030.decode([0x84, 0x31, 0xA5, 0x30]) == nil)
        #expect(HL7Charset.gb18030.decode([0xE3, 0x32, 0x9A, 0x36]) == nil)
        #expect(HL7Charset.gb18030.decode([0x80]) == nil)
        #expect(HL7Charset.utf8.decode([0xED, 0xA0, 0x80]) == nil)
        #expect(HL7Charset.utf8.decode([0xC0, 0x80]) == nil)
    }

    @Test("MSH-18 names map to charsets")
    func names() {
        #expect(HL7Charset(msh18: "UNICODE UTF-8") == .utf8)
        #expect(HL7Charset(msh18: "UNICODE") == .utf8)
        #expect(HL7Charset(msh18: "utf-8") == .utf8)
        #expect(HL7Charset(msh18: "ISO-8859-1") == .latin1)
        #expect(HL7Charset(msh18: "ISO IR100") == .latin1)
        #expect(HL7Charset(msh18: "GB 18030-2000") == .gb18030)
        #expect(HL7Charset(msh18: "CP936") == .gb18030)
        #expect(HL7Charset(msh18: "8859/5") == nil)
    }

    @Test("every code point round-trips against Python's gb18030 codec")
    func againstPython() throws {
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let script = """
            import sys
            out = bytearray()
            for code in list(range(0x80, 0xD800)) + list(range(0xE000, 0x110000)):
                out += chr(code).encode("gb18030")
            sys.stdout.buffer.write(out)
            """
        python.arguments = ["python3", "-c", script]
        let pipe = Pipe()
        python.standardOutput = pipe
        python.standardError = FileHandle.nullDevice
        do {
            try python.run()
        } catch {
            print("python3 absent: skipping the GB18030 cross-check")
            return
        }
        let expected = Array(pipe.fileHandleForReading.readDataToEndOfFile())
        python.waitUntilExit()
        guard python.terminationStatus == 0 else {
            print("python3 failed: skipping the GB18030 cross-check")
            return
        }
        var text = String.UnicodeScalarView()
        for code in Array(0x80..<0xD800) + Array(0xE000..<0x110000) { text.append(Unicode.Scalar(UInt32(code))!) }
        let string = String(text)
        let encoded = GB18030.encode(string)
        #expect(encoded.count == expected.count)
        #expect(encoded == expected)
        let decoded = try GB18030.decode(expected[...]).get()
        #expect(decoded == Array(string.utf8))
    }
}
