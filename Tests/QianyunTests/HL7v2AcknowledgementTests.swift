import Testing

@testable import HL7v2

@Suite("HL7v2 acknowledgements")
struct HL7v2AcknowledgementTests {
    let stamp = HL7DateTime(epochSeconds: 1_706_661_005, offsetMinutes: 480)

    @Test("AA swaps the header, echoes MSH-10 and keeps version and charset")
    func accept() throws {
        let inbound = try HL7Message.parse(sampleADT)
        let ack = HL7Acknowledgement.build(for: inbound, code: .applicationAccept, controlID: "ACK1", timestamp: stamp)
        #expect(
            ack.er7
                == "MSH|^~\\&|EMPI|QIANYUN|HIS|贵州省人民医院|20240131083005+0800||ACK^A01^ACK|ACK1|P|2.5||||||UNICODE UTF-8\rMSA|AA|MSG0001\r")
        #expect(ack["MSH-3"] == inbound["MSH-5"])
        #expect(ack["MSH-4"] == inbound["MSH-6"])
        #expect(ack["MSH-5"] == inbound["MSH-3"])
        #expect(ack["MSH-6"] == inbound["MSH-4"])
        let header = ack.header
        #expect(header.messageType == MSG(messageCode: "ACK", triggerEvent: "A01", messageStructure: "ACK"))
        #expect(header.controlID == "ACK1")
    }

    @Test("AE with ERR in the v2.5 layout")
    func errorV25() throws {
        let inbound = try HL7Message.parse(sampleADT)
        let issue = HL7AckIssue(
            code: .requiredFieldMissing, location: HL7Location(segmentID: "PID", segmentSequence: 1, field: 3, repetition: 1, component: 1),
            message: "Patient identifier required")
        let warning = HL7AckIssue(
            code: .tableValueNotFound, severity: .warning, location: HL7Location(segmentID: "PID", field: 8), message: "Sex")
        let ack = HL7Acknowledgement.build(for: inbound, code: .applicationError, controlID: "ACK2", issues: [issue, warning])
        #expect(ack["MSA-1"] == "AE")
        #expect(ack["MSA-2"] == "MSG0001")
        #expect(ack.segment("ERR")?.er7 == "ERR||PID^1^3^1^1|101^Required field missing^HL70357|E||||Patient identifier required")
        #expect(ack.segment("ERR", occurrence: 2)?.er7 == "ERR||PID^1^8|103^Table value not found^HL70357|W||||Sex")
        #expect(ack["ERR-1"] == nil)
    }

    @Test("v2.3/2.4 senders also get ERR-1 (ELD)")
    func errorV24() throws {
        let inbound = try HL7Message.parse(chineseMessage(msh18: "GB18030"))
        let ack = HL7Acknowledgement.build(
            for: inbound, code: .applicationError, controlID: "ACK3",
            issues: [HL7AckIssue(code: .dataTypeError, location: HL7Location(segmentID: "PID", field: 7), message: "bad date")])
        #expect(ack.segment("ERR")?.er7 == "ERR|PID^1^7^102&Data type error&HL70357|PID^1^7|102^Data type error^HL70357|E||||bad date")
        #expect(ack["ERR-1.4.1"] == "102")
        #expect(ack["ERR-1.4.3"] == "HL70357")
        #expect(ack["MSH-12"] == "2.4")
        #expect(ack.charset == .gb18030)
        #expect(ack["MSH-6"] == "贵州省人民医院亅")
        // The ACK goes back in the sender's encoding.
        #expect(ack.encoded() == GB18030.encode(ack.er7))
        #expect(try HL7Message.parse(ack.encoded())["MSH-6"] == "贵州省人民医院亅")
    }

    @Test("AR and the commit codes")
    func rejectAndCommit() throws {
        let inbound = try HL7Message.parse(sampleADT)
        for code in [HL7AckCode.applicationReject, .commitAccept, .commitError, .commitReject] {
            let ack = HL7Acknowledgement.build(for: inbound, code: code, controlID: "C")
            #expect(ack["MSA-1"] == code.rawValue)
            #expect(ack["MSA-2"] == "MSG0001")
        }
        let ack = HL7Acknowledgement.build(
            for: inbound, code: .applicationReject, controlID: "C", issues: [HL7AckIssue(code: .unsupportedMessageType)],
            textMessage: "unsupported")
        #expect(ack["MSA-3"] == "unsupported")
        #expect(ack["ERR-3.1"] == "200")
    }

    @Test("acknowledgement mode from MSH-15/16")
    func mode() throws {
        #expect(HL7AckMode(try HL7Message.parse(sampleADT)) == .enhanced(accept: .always, application: .never))
        let original = try HL7Message.parse("MSH|^~\\&|A||||||ADT^A01|1|P|2.3\r")
        #expect(HL7AckMode(original) == .original)
        let onlyApplication = try HL7Message.parse("MSH|^~\\&|A||||||ADT^A01|1|P|2.5|||| ER\r")
        #expect(HL7AckMode(onlyApplication) == .enhanced(accept: .always, application: .errorOnly), "padding is not part of the value")
        let unknown = try HL7Message.parse("MSH|^~\\&|A||||||ADT^A01|1|P|2.5||||XX\r")
        #expect(HL7AckMode(unknown) == .enhanced(accept: .always, application: .always))
        // Blank fields, as some HIS pad them, are not valued: original mode.
        let blank = try HL7Message.parse("MSH|^~\\&|A||||||ADT^A01|1|P|2.3||| |  \r")
        #expect(HL7AckMode(blank) == .original)
        let errorOnly = try HL7Message.parse("MSH|^~\\&|A||||||ADT^A01|1|P|2.5|||SU|ER\r")
        #expect(HL7AckMode(errorOnly) == .enhanced(accept: .successOnly, application: .errorOnly))
        #expect(HL7AckCondition.errorOnly.requiresAcknowledgement(success: false))
        #expect(!HL7AckCondition.errorOnly.requiresAcknowledgement(success: true))
        #expect(HL7AckCondition.successOnly.requiresAcknowledgement(success: true))
        #expect(!HL7AckCondition.never.requiresAcknowledgement(success: false))
    }

    @Test("unparseable input gets a best-effort AR")
    func unparseable() throws {
        let input = Array("MSH|^~\\&|LAB|H1|GW|Q|20240101||ORU^R01|CTRL99|P|2.4\rPID|1\u{0}".utf8)
        do {
            _ = try HL7Message.parse(input)
            Issue.record("parsed")
        } catch {
            let ack = HL7Acknowledgement.reject(unparseable: input, error: error, controlID: "R1", timestamp: stamp)
            #expect(ack["MSA-1"] == "AR")
            #expect(ack["MSA-2"] == "CTRL99")
            #expect(ack["MSH-3"] == "GW")
            #expect(ack["MSH-5"] == "LAB")
            #expect(ack["MSH-9.2"] == "R01")
            #expect(ack["ERR-3.1"] == "102")
            #expect(ack["ERR-1.4.1"] == "102")
        }
        let garbage: [UInt8] = [0xFF, 0x00, 0x41]
        let ack = HL7Acknowledgement.reject(unparseable: garbage, error: HL7Error(.missingHeader), controlID: "R2")
        #expect(ack["MSA-1"] == "AR")
        #expect(ack["MSA-2"] == nil)
        #expect(ack["ERR-3.1"] == "100")
        #expect(ack.er7.hasPrefix("MSH|^~\\&|"))
    }

    @Test("the header summary")
    func header() throws {
        let header = try HL7Message.parse(sampleADT).header
        #expect(header.sendingApplication.namespaceID == "HIS")
        #expect(header.sendingFacility.namespaceID == "贵州省人民医院")
        #expect(header.receivingApplication.namespaceID == "EMPI")
        #expect(header.receivingFacility.namespaceID == "QIANYUN")
        #expect(header.dateTime?.offsetMinutes == 480)
        #expect(header.messageType.triggerEvent == "A01")
        #expect(header.messageType.messageStructure == "ADT_A01")
        #expect(header.controlID == "MSG0001")
        #expect(header.processingID == "P")
        #expect(header.version == "2.5")
        #expect(header.charset == .utf8)
        #expect(header.declaredCharset == "UNICODE UTF-8")
        #expect(header.acceptAcknowledgementType == "AL")
        #expect(header.applicationAcknowledgementType == "NE")
    }
}
