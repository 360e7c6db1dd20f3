/// MSA-1 acknowledgement codes: original mode (AA/AE/AR) and enhanced-mode commit (CA/CE/CR).
public enum HL7AckCode: String, Sendable, Hashable, CaseIterable {
    case applicationAccept = "AA"
    case applicationError = "AE"
    case applicationReject = "AR"
    case commitAccept = "CA"
    case commitError = "CE"
    case commitReject = "CR"
}

/// MSH-15 / MSH-16 values (table 0155).
public enum HL7AckCondition: String, Sendable, Hashable, CaseIterable {
    case always = "AL"
    case never = "NE"
    case errorOnly = "ER"
    case successOnly = "SU"

    /// Whether an acknowledgement is due under this condition for the given outcome.
    public func requiresAcknowledgement(success: Bool) -> Bool {
        switch self {
        case .always: true
        case .never: false
        case .errorOnly: !success
        case .successOnly: success
        }
    }
}

/// How a sender wants to be acknowledged.
public enum HL7AckMode: Sendable, Hashable {
    /// MSH-15 and MSH-16 both empty (or blank): one application ACK (AA/AE/AR).
    case original
    /// MSH-15 or MSH-16 non-empty: a commit ACK (CA/CE/CR) under `accept`, then an application
    /// ACK (AA/AE/AR) under `application`. An empty or unknown value counts as AL.
    case enhanced(accept: HL7AckCondition, application: HL7AckCondition)

    public init(_ message: HL7Message) {
        // Padded with spaces by some HIS: a blank field is not valued.
        func valued(_ field: Int) -> String? {
            guard let value = message.value(position: 0, field: field)?.trimmingBlanks, !value.isEmpty else { return nil }
            return value
        }
        let accept = valued(15)
        let application = valued(16)
        guard accept != nil || application != nil else {
            self = .original
            return
        }
        self = .enhanced(
            accept: accept.flatMap { HL7AckCondition(rawValue: $0.uppercased()) } ?? .always,
            application: application.flatMap { HL7AckCondition(rawValue: $0.uppercased()) } ?? .always)
    }
}

/// One problem to report in an ERR segment.
public struct HL7AckIssue: Sendable, Hashable {
    public enum Severity: String, Sendable, Hashable {
        case error = "E"
        case warning = "W"
        case information = "I"
    }

    public var code: HL7ErrorCode
    public var severity: Severity
    public var location: HL7Location
    /// Human-readable text for ERR-8 (and ERR-1's text). Must not carry patient data.
    public var message: String

    public init(code: HL7ErrorCode, severity: Severity = .error, location: HL7Location = HL7Location(), message: String = "") {
        self.code = code
        self.severity = severity
        self.location = location
        self.message = message
    }

    /// An issue for a library error: its 0357 code, location and a payload-free description.
    public init(_ error: HL7Error, severity: Severity = .error) {
        self.init(code: error.hl7Code, severity: severity, location: error.location, message: error.description)
    }
}

/// Builds acknowledgements. The ACK's MSH swaps sending and receiving application/facility,
/// keeps the inbound delimiters, processing ID, version (MSH-12) and MSH-18, and takes its
/// control ID and time from the caller (the library has no clock and no ID generator). MSH-9 is
/// `ACK^<inbound trigger>^ACK`; MSA-2 echoes the inbound MSH-10. Each issue becomes an ERR in
/// the v2.5 layout (ERR-2 location, ERR-3 code `^text^HL70357`, ERR-4 severity, ERR-8 text);
/// for senders before v2.5, ERR-1 (ELD) is filled as well. `encoded()` on the result writes it
/// in the inbound's charset.
public enum HL7Acknowledgement {
    /// The acknowledgement of a parsed message.
    public static func build(
        for inbound: HL7Message, code: HL7AckCode, controlID: String, timestamp: HL7DateTime? = nil, issues: [HL7AckIssue] = [],
        textMessage: String? = nil
    ) -> HL7Message {
        func raw(_ field: Int) -> String { inbound.fieldRange(position: 0, field: field).map { inbound.rawText($0) } ?? "" }
        let header = HeaderFields(
            sendingApplication: raw(5), sendingFacility: raw(6), receivingApplication: raw(3), receivingFacility: raw(4),
            trigger: inbound.value(position: 0, field: 9, component: 2) ?? "", processingID: raw(11), version: raw(12),
            charsetField: raw(18), inboundControlID: inbound.value(position: 0, field: 10) ?? "")
        return assemble(
            header, delimiters: inbound.delimiters, charset: inbound.charset, code: code, controlID: controlID, timestamp: timestamp,
            issues: issues, textMessage: textMessage)
    }

    /// A best-effort `AR` for input that could not be parsed: whatever MSH fields can be salvaged
    /// (plain ASCII only) are used, the standard delimiters otherwise, and one ERR for `error`.
    public static func reject(
        unparseable bytes: [UInt8], error: HL7Error, controlID: String, timestamp: HL7DateTime? = nil,
        charset: HL7Charset = .utf8
    ) -> HL7Message {
        var delimiters = HL7Delimiters.standard
        var fields: [String] = []
        if let start = headerStart(bytes) {
            if let found = try? ER7Scanner.delimiters(Array(bytes[start...].prefix(16)), headerAt: 0) { delimiters = found }
            var end = start
            while end < bytes.count && bytes[end] != ER7Scanner.cr && bytes[end] != ER7Scanner.lf { end += 1 }
            fields = bytes[start..<end].split(separator: delimiters.field, omittingEmptySubsequences: false).map { part in
                // Only plain printable ASCII is echoed: anything else may be undecodable or content.
                part.allSatisfy { $0 >= 0x20 && $0 < 0x7F } ? String(decoding: part, as: UTF8.self) : ""
            }
        }
        // `fields` is split positions: MSH-n is at n-1 for n >= 2.
        func raw(_ field: Int) -> String { field - 1 < fields.count ? fields[field - 1] : "" }
        func first(_ text: String, separator: UInt8) -> String {
            String(decoding: text.utf8.split(separator: separator, omittingEmptySubsequences: false).first ?? [], as: UTF8.self)
        }
        let charsetName = first(first(raw(18), separator: delimiters.repetition), separator: delimiters.component)
        let header = HeaderFields(
            sendingApplication: raw(5), sendingFacility: raw(6), receivingApplication: raw(3), receivingFacility: raw(4),
            trigger: String(
                decoding: raw(9).utf8.split(separator: delimiters.component, omittingEmptySubsequences: false).dropFirst().first ?? [],
                as: UTF8.self),
            processingID: raw(11), version: raw(12), charsetField: raw(18),
            inboundControlID: HL7Escaping.decode(first(raw(10), separator: delimiters.component), delimiters: delimiters))
        return assemble(
            header, delimiters: delimiters, charset: HL7Charset(msh18: charsetName) ?? charset, code: .applicationReject,
            controlID: controlID, timestamp: timestamp, issues: [HL7AckIssue(error)], textMessage: nil)
    }

    static func headerStart(_ bytes: [UInt8]) -> Int? {
        var index = 0
        while index + 3 <= bytes.count {
            if bytes[index] == UInt8(ascii: "M") && bytes[index + 1] == UInt8(ascii: "S") && bytes[index + 2] == UInt8(ascii: "H")
                && (index == 0 || bytes[index - 1] == ER7Scanner.cr || bytes[index - 1] == ER7Scanner.lf || bytes[index - 1] == 0x0B)
            {
                return index
            }
            index += 1
        }
        return nil
    }

    struct HeaderFields {
        var sendingApplication: String
        var sendingFacility: String
        var receivingApplication: String
        var receivingFacility: String
        var trigger: String
        var processingID: String
        var version: String
        var charsetField: String
        var inboundControlID: String
    }

    /// True for versions before 2.5 (2.1 to 2.4, 2.3.1), which expect ERR-1 (ELD).
    static func usesELD(_ version: String) -> Bool {
        let parts = version.split(separator: ".")
        guard parts.count >= 2, let major = Int(parts[0]), let minor = Int(parts[1].prefix { $0.isNumber }) else { return false }
        return major == 2 && minor < 5
    }

    static func assemble(
        _ header: HeaderFields, delimiters: HL7Delimiters, charset: HL7Charset, code: HL7AckCode, controlID: String,
        timestamp: HL7DateTime?, issues: [HL7AckIssue], textMessage: String?
    ) -> HL7Message {
        let field = String(decoding: [delimiters.field], as: UTF8.self)
        let component = String(decoding: [delimiters.component], as: UTF8.self)
        let subcomponent = delimiters.subcomponent == 0 ? component : String(decoding: [delimiters.subcomponent], as: UTF8.self)
        func escaped(_ text: String) -> String { HL7Escaping.encode(text, delimiters: delimiters) }
        func joined(_ parts: [String], _ separator: String) -> String {
            var parts = parts
            while let last = parts.last, last.isEmpty { parts.removeLast() }
            return parts.joined(separator: separator)
        }
        let version = header.version.split(separator: String(decoding: [delimiters.component], as: UTF8.self)).first.map(String.init) ?? ""
        let messageType = joined(["ACK", escaped(header.trigger), "ACK"], component)
        var segments: [String] = []
        let msh = [
            "MSH", delimiters.encodingCharacters, header.sendingApplication, header.sendingFacility, header.receivingApplication,
            header.receivingFacility, timestamp?.er7 ?? "", "", messageType, escaped(controlID), header.processingID, header.version,
            "", "", "", "", "", header.charsetField,
        ]
        segments.append(joined(msh, field))
        segments.append(joined(["MSA", code.rawValue, escaped(header.inboundControlID), escaped(textMessage ?? "")], field))
        let eld = usesELD(version)
        for issue in issues {
            let location = issue.location
            func number(_ value: Int?) -> String { value.map(String.init) ?? "" }
            let segmentID = location.segmentID ?? ""
            let sequence = location.segmentSequence ?? (location.segmentID != nil ? 1 : nil)
            let err1 =
                eld
                ? joined(
                    [
                        escaped(segmentID), number(sequence), number(location.field),
                        joined([String(issue.code.rawValue), escaped(issue.code.text), "HL70357"], subcomponent),
                    ], component) : ""
            let err2 = joined(
                [
                    escaped(segmentID), number(sequence), number(location.field), number(location.repetition), number(location.component),
                    number(location.subcomponent),
                ], component)
            let err3 = joined([String(issue.code.rawValue), escaped(issue.code.text), "HL70357"], component)
            segments.append(joined(["ERR", err1, err2, err3, issue.severity.rawValue, "", "", "", escaped(issue.message)], field))
        }
        let text = segments.joined(separator: "\r") + "\r"
        // Every part was escaped or copied from a parsed header, so this parse cannot fail; the
        // fallback keeps the function total all the same.
        if let message = try? HL7Message.parse(
            decodedUTF8: Array(text.utf8), charset: charset, options: HL7ParseOptions(maxMessageBytes: Int(Int32.max) - 1))
        {
            return message
        }
        var fallback = HL7Message(delimiters: delimiters, charset: charset)
        try? fallback.appendSegment("MSA" + field + code.rawValue)
        return fallback
    }
}
