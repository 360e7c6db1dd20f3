import Testing

@testable import HL7v2

@Suite("HL7v2 XML encoding")
struct HL7v2XMLTests {
    @Test("corpus XML: XML → ER7 → XML → ER7 is stable", .enabled(if: Corpus.xmlAvailable, "XML corpus folder absent"))
    func corpus() throws {
        let files = Corpus.files(in: Corpus.xmlFolder, suffixes: [".xml"])
        #expect(files.count >= 9)
        var converted = 0
        for file in files {
            let text = String(decoding: file.bytes, as: UTF8.self)
            if text.contains("<!DOCTYPE") {
                #expect(
                    throws: HL7Error(
                        .xmlDoctype,
                        HL7Location(
                            byteOffset: text.utf8.distance(
                                from: text.utf8.startIndex, to: text.range(of: "<!DOCTYPE")!.lowerBound.samePosition(in: text.utf8)!)))
                ) {
                    try HL7XML.decode(file.bytes)
                }
                continue
            }
            let first = try HL7XML.decode(file.bytes)
            let xml = HL7XML.encode(first)
            let second = try HL7XML.decode(xml)
            #expect(first.er7 == second.er7, "\(file.name)")
            #expect(HL7XML.encode(second) == xml, "\(file.name)")
            converted += 1
        }
        #expect(converted >= 8)
    }

    @Test("what the HAPI examples say", .enabled(if: Corpus.xmlAvailable, "XML corpus folder absent"))
    func hapiExamples() throws {
        let files = Corpus.files(in: Corpus.xmlFolder, suffixes: [".xml"])
        let omd = try HL7XML.decode(try #require(files.first { $0.name.hasSuffix("OMD_O03.xml") }).bytes)
        #expect(omd.segment(at: 0)?.er7 == "MSH|^~\\&|TestSendingSystem||||200701011539||OMD^O03^OMD_O03|||2.5|123")
        #expect(omd["PID-3.4"] == "hellin")
        #expect(omd["PID-5.1"] == "Doe")
        #expect(omd["ODS-3.2"] == "320^1/2 HAM SANDWICH^99FD8")
        #expect(omd.segment("ODS")?.er7 == "ODS|S|^breakfast|^320\\S\\1/2 HAM SANDWICH\\S\\99FD8")
        let withNamespace = try HL7XML.decode(try #require(files.first { $0.name.hasSuffix("parse_and_encode_with_ns.xml") }).bytes)
        let plain = try HL7XML.decode(try #require(files.first { $0.name.hasSuffix("/parse_and_encode.xml") }).bytes)
        #expect(withNamespace.er7 == plain.er7)
        #expect(plain["MSH-9.2"] == "R01")
        let a17 = try HL7XML.decode(try #require(files.first { $0.name.hasSuffix("adt_a17.xml") }).bytes)
        #expect(a17["PID-3(2).1"] == "AST12345679")
        #expect(a17["PID-3.9.3"] == "ISO3166")
        let ed = try HL7XML.decode(try #require(files.first { $0.name.hasSuffix("ed_issue.xml") }).bytes)
        #expect(ed["OBX(2)-5.5"]?.hasPrefix("JVBERi0xLjMKJeLjz9MKCjEgMCBvYmoKPDwgL1R5cGUgL0NhdGFsb2cKL091dGxpbmVzID IgMCBS") == true)
        let encoded = HL7XML.encode(ed)
        #expect(encoded.contains("<ORU_R01.PATIENT_RESULT><ORU_R01.PATIENT><PID>"))
        #expect(encoded.contains("<ORU_R01.OBSERVATION><OBX><OBX.1>2</OBX.1><OBX.2>ED</OBX.2>"))
        #expect(encoded.contains("<OBX.5><ED.2>Application</ED.2>"))
    }

    @Test("ER7 → XML names by data type, falls back by position, and keeps escapes")
    func encodeNames() throws {
        let message = try HL7Message.parse(
            sampleADT.replacingOccurrences(of: "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", with: "l1\\.br\\l2 <b> \\X0D\\"))
        let xml = HL7XML.encode(message)
        #expect(xml.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ADT_A01 xmlns=\"urn:hl7-org:v2xml\"><MSH><MSH.1>|</MSH.1>"))
        #expect(xml.contains("<MSH.2>^~\\&amp;</MSH.2><MSH.3><HD.1>HIS</HD.1></MSH.3>"))
        #expect(xml.contains("<MSH.9><MSG.1>ADT</MSG.1><MSG.2>A01</MSG.2><MSG.3>ADT_A01</MSG.3></MSH.9>"))
        #expect(
            xml.contains("<PID.3><CX.1>12345</CX.1><CX.4><HD.1>HOSP</HD.1><HD.2>1.2.3</HD.2><HD.3>ISO</HD.3></CX.4><CX.5>MR</CX.5></PID.3>")
        )
        #expect(xml.contains("<PID.5><XPN.1><FN.1>张三</FN.1></XPN.1><XPN.7>L</XPN.7></PID.5>"))
        #expect(xml.contains("<OBX.5>l1<escape V=\".br\"/>l2 &lt;b&gt; <escape V=\"X0D\"/></OBX.5>"))
        #expect(xml.contains("<ZPI><ZPI.1>1</ZPI.1><ZPI.2><ZPI.2.1>custom</ZPI.2.1><ZPI.2.2>value</ZPI.2.2></ZPI.2></ZPI>"))
        let back = try HL7XML.decode(xml)
        #expect(back.er7 == message.er7)
        #expect(back["OBX-5"] == "l1\\.br\\l2 <b> \r")
    }

    @Test("ACK and ORU group structures")
    func groups() throws {
        let inbound = try HL7Message.parse(sampleADT)
        let ack = HL7Acknowledgement.build(
            for: inbound, code: .applicationError, controlID: "1", issues: [HL7AckIssue(code: .dataTypeError)])
        let ackXML = HL7XML.encode(ack)
        #expect(ackXML.contains("<ACK xmlns=\"urn:hl7-org:v2xml\"><MSH>"))
        #expect(try HL7XML.decode(ackXML).er7 == ack.er7)
        let oru = try HL7Message.parse(
            "MSH|^~\\&|A||||||ORU^R01|1|P|2.5\rPID|1\rPV1|1\rORC|RE\rOBR|1\rOBX|1\rNTE|1\rOBX|2\rOBR|2\rOBX|3\rPID|2\rOBR|3\r")
        let xml = HL7XML.encode(oru)
        let expected =
            "<ORU_R01 xmlns=\"urn:hl7-org:v2xml\"><MSH>" + "<MSH.1>|</MSH.1><MSH.2>^~\\&amp;</MSH.2><MSH.3><HD.1>A</HD.1></MSH.3>"
            + "<MSH.9><MSG.1>ORU</MSG.1><MSG.2>R01</MSG.2></MSH.9><MSH.10>1</MSH.10><MSH.11><PT.1>P</PT.1></MSH.11>"
            + "<MSH.12><VID.1>2.5</VID.1></MSH.12></MSH>"
            + "<ORU_R01.PATIENT_RESULT><ORU_R01.PATIENT><PID><PID.1>1</PID.1></PID>"
            + "<ORU_R01.VISIT><PV1><PV1.1>1</PV1.1></PV1></ORU_R01.VISIT></ORU_R01.PATIENT>"
            + "<ORU_R01.ORDER_OBSERVATION><ORC><ORC.1>RE</ORC.1></ORC><OBR><OBR.1>1</OBR.1></OBR>"
            + "<ORU_R01.OBSERVATION><OBX><OBX.1>1</OBX.1></OBX><NTE><NTE.1>1</NTE.1></NTE></ORU_R01.OBSERVATION>"
            + "<ORU_R01.OBSERVATION><OBX><OBX.1>2</OBX.1></OBX></ORU_R01.OBSERVATION></ORU_R01.ORDER_OBSERVATION>"
            + "<ORU_R01.ORDER_OBSERVATION><OBR><OBR.1>2</OBR.1></OBR>"
            + "<ORU_R01.OBSERVATION><OBX><OBX.1>3</OBX.1></OBX></ORU_R01.OBSERVATION></ORU_R01.ORDER_OBSERVATION>"
            + "</ORU_R01.PATIENT_RESULT>"
            + "<ORU_R01.PATIENT_RESULT><ORU_R01.PATIENT><PID><PID.1>2</PID.1></PID></ORU_R01.PATIENT>"
            + "<ORU_R01.ORDER_OBSERVATION><OBR><OBR.1>3</OBR.1></OBR></ORU_R01.ORDER_OBSERVATION></ORU_R01.PATIENT_RESULT></ORU_R01>\n"
        #expect(xml.hasSuffix(expected))
        #expect(try HL7XML.decode(xml).er7 == oru.er7)
        let adt = try HL7Message.parse("MSH|^~\\&|A||||||ADT^A04|1|P|2.5\rEVN|A04\rPID|1\rPV1|1\rPR1|1\rROL|1\rIN1|1\rIN2|1\rROL|2\r")
        let adtXML = HL7XML.encode(adt)
        #expect(adtXML.contains("<ADT_A01 xmlns"))
        #expect(adtXML.contains("<ADT_A01.PROCEDURE><PR1><PR1.1>1</PR1.1></PR1><ROL><ROL.1>1</ROL.1></ROL></ADT_A01.PROCEDURE>"))
        #expect(adtXML.contains("<ADT_A01.INSURANCE><IN1><IN1.1>1</IN1.1></IN1><IN2><IN2.1>1</IN2.1></IN2><ROL><ROL.1>2</ROL.1></ROL>"))
    }

    @Test(
        "hostile or malformed XML is refused",
        arguments: [
            ("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>", HL7Error.Code.xmlDoctype),
            ("<x>&e;</x>", .xmlMalformed), ("<x><y></x>", .xmlMalformed), ("<x>", .xmlMalformed), ("", .xmlMalformed),
            ("<x/><y/>", .xmlMalformed), ("text", .xmlMalformed), ("<x a=1/>", .xmlMalformed), ("<x>&#0;</x>", .xmlMalformed),
            (String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100), .xmlTooDeep),
            ("<M><PID><PID.1><X.1><Y.1><Z.1/></Y.1></X.1></PID.1></PID></M>", .xmlStructure),
            ("<M><PID>text</PID></M>", .xmlStructure), ("<M><PID><foo/></PID></M>", .xmlStructure),
        ])
    func hostile(xml: String, code: HL7Error.Code) {
        do {
            _ = try HL7XML.decode(xml)
            Issue.record("decoded \(xml)")
        } catch {
            #expect(error.code == code, "\(xml)")
        }
    }

    @Test("entities, CDATA, comments and processing instructions")
    func lexical() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?><!-- c --><?pi x?>
            <ADT_A01 xmlns="urn:hl7-org:v2xml"><MSH><MSH.1>|</MSH.1><MSH.2>^~\\&amp;</MSH.2><MSH.9><MSG.1>ADT</MSG.1></MSH.9></MSH>
            <PID><PID.5><XPN.1><FN.1>&#24352;&#x4E09;</FN.1></XPN.1><XPN.2><![CDATA[a<b>&c]]></XPN.2></PID.5>
            <PID.6>&lt;&gt;&quot;&apos;</PID.6></PID></ADT_A01>
            """
        let message = try HL7XML.decode(xml)
        #expect(message["PID-5.1"] == "张三")
        #expect(message["PID-5.2"] == "a<b>&c")
        #expect(message.segment("PID")?.er7 == "PID|||||张三^a<b>\\T\\c|<>\"'")
        #expect(throws: HL7Error.self) { try HL7XML.decode(xml, options: HL7XML.Options(maxBytes: 100)) }
    }
}
