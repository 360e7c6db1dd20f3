import Testing

@testable import HL7v2

@Suite("HL7v2 escape sequences")
struct HL7v2EscapingTests {
    @Test(
        "delimiter, hex and formatting sequences",
        arguments: [
            ("a\\F\\b", "a|b"), ("\\S\\", "^"), ("\\T\\", "&"), ("\\R\\", "~"), ("\\E\\", "\\"), ("x\\X41\\y", "xAy"),
            ("\\XE5BCA0\\", "张"), ("\\X0D0A\\", "\r\n"), ("\\XZZ\\", "\\XZZ\\"), ("\\X4\\", "\\X4\\"), ("\\XE9\\", "\\XE9\\"),
            ("l1\\.br\\l2", "l1\\.br\\l2"), ("\\.sp\\", "\\.sp\\"), ("\\.sp 2\\", "\\.sp 2\\"), ("\\.in+4\\", "\\.in+4\\"),
            ("\\.ti-2\\", "\\.ti-2\\"), ("\\.sk 3\\", "\\.sk 3\\"), ("\\.ce\\", "\\.ce\\"), ("\\.fi\\", "\\.fi\\"),
            ("\\.nf\\", "\\.nf\\"), ("\\H\\bold\\N\\", "\\H\\bold\\N\\"), ("\\C2842\\", "\\C2842\\"),
            ("\\M244A42\\", "\\M244A42\\"), ("\\Z99\\", "\\Z99\\"), ("open\\F", "open\\F"), ("\\", "\\"), ("a\\\\b", "a\\\\b"),
            ("\\Q\\", "\\Q\\"), ("\\P\\", "\\P\\"),
        ])
    func decode(escaped: String, plain: String) {
        #expect(HL7Escaping.decode(escaped) == plain)
    }

    @Test("hex is read in the message's charset")
    func hexCharset() {
        #expect(HL7Escaping.decode("\\XD5C5\\", charset: .gb18030) == "张")
        #expect(HL7Escaping.decode("\\XE9\\", charset: .latin1) == "é")
        #expect(HL7Escaping.decode("\\XD5C5\\", charset: .utf8) == "\\XD5C5\\")
        #expect(HL7Escaping.decode("\\XE9\\", charset: .ascii) == "\\XE9\\")
    }

    @Test("encoding escapes delimiters, the escape character and control characters")
    func encode() {
        #expect(HL7Escaping.encode("a|b^c&d~e\\f") == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f")
        #expect(HL7Escaping.encode("l1\r\nl2") == "l1\\X0D\\\\X0A\\l2")
        #expect(HL7Escaping.encode("张三") == "张三")
        #expect(HL7Escaping.encode("x\\.br\\y", preservingFormatting: true) == "x\\.br\\y")
        #expect(HL7Escaping.encode("x\\F\\y", preservingFormatting: true) == "x\\E\\F\\E\\y")
        #expect(HL7Escaping.encode("x\\.br|\\y", preservingFormatting: true) == "x\\E\\.br\\F\\\\E\\y")
        for text in ["a|b^c&d~e\\f", "\\", "line\rbreak", "张三|李四", "\\X41\\"] {
            #expect(HL7Escaping.decode(HL7Escaping.encode(text)) == text)
        }
        let custom = HL7Delimiters(
            field: UInt8(ascii: "*"), component: UInt8(ascii: "%"), repetition: UInt8(ascii: "$"), escape: UInt8(ascii: "/"),
            subcomponent: UInt8(ascii: "!"))
        #expect(HL7Escaping.encode("a*b/c", delimiters: custom) == "a/F/b/E/c")
        #expect(HL7Escaping.decode("a/F/b/E/c", delimiters: custom) == "a*b/c")
    }

    @Test("deep and unterminated escapes stay linear and never crash")
    func adversarial() {
        let many = String(repeating: "\\E\\", count: 200_000)
        #expect(HL7Escaping.decode(many).count == 200_000)
        let unterminated = "x" + String(repeating: "\\F", count: 1) + String(repeating: "y", count: 100_000)
        #expect(HL7Escaping.decode(unterminated).utf8.count == unterminated.utf8.count)
        let backslashes = String(repeating: "\\", count: 100_001)
        #expect(HL7Escaping.decode(backslashes).utf8.count == 100_001)
        let nested = String(repeating: "\\X", count: 50_000) + String(repeating: "\\", count: 50_000)
        _ = HL7Escaping.decode(nested)
    }

    @Test("field reads unescape; MSH-2 is never unescaped")
    func inMessage() throws {
        let message = try HL7Message.parse(sampleADT)
        #expect(message["OBX-5"] == "a|b^c&d~e\\f")
        #expect(message["MSH-2"] == "^~\\&")
    }
}
