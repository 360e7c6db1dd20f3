/// The facts of an MSH segment that a gateway stores and routes on.
public struct HL7MessageHeader: Sendable, Hashable {
    public var sendingApplication: HD
    public var sendingFacility: HD
    public var receivingApplication: HD
    public var receivingFacility: HD
    /// MSH-7 as written, and parsed when valid.
    public var dateTimeText: String
    public var dateTime: HL7DateTime?
    /// MSH-9: message code, trigger event and structure.
    public var messageType: MSG
    /// MSH-10.
    public var controlID: String
    /// MSH-11.1 (P, T, D).
    public var processingID: String
    /// MSH-12.1, for example `2.4`.
    public var version: String
    /// The charset the message was decoded with (see `HL7Message.parse`).
    public var charset: HL7Charset
    /// MSH-18 as written (first repetition), nil when absent.
    public var declaredCharset: String?
    /// MSH-15 and MSH-16 (AL, NE, ER, SU), nil when absent.
    public var acceptAcknowledgementType: String?
    public var applicationAcknowledgementType: String?

    public init(_ message: HL7Message) {
        func hd(_ field: Int) -> HD { message.value(HD.self, HL7Path(segmentID: "MSH", field: field)) ?? HD() }
        sendingApplication = hd(3)
        sendingFacility = hd(4)
        receivingApplication = hd(5)
        receivingFacility = hd(6)
        dateTimeText = message.value(position: 0, field: 7) ?? ""
        dateTime = HL7DateTime(dateTimeText)
        messageType = message.value(MSG.self, HL7Path(segmentID: "MSH", field: 9)) ?? MSG(messageCode: "")
        controlID = message.value(position: 0, field: 10) ?? ""
        processingID = message.value(position: 0, field: 11) ?? ""
        version = message.value(position: 0, field: 12) ?? ""
        charset = message.charset
        declaredCharset = message.value(position: 0, field: 18)
        acceptAcknowledgementType = message.value(position: 0, field: 15)
        applicationAcknowledgementType = message.value(position: 0, field: 16)
    }
}

extension HL7Message {
    /// The MSH summary of this message.
    public var header: HL7MessageHeader { HL7MessageHeader(self) }
}
