/// An HL7 table 0357 "message error condition code", the code an ERR segment carries.
public enum HL7ErrorCode: Int, Sendable, Hashable, CaseIterable {
    case messageAccepted = 0
    case segmentSequenceError = 100
    case requiredFieldMissing = 101
    case dataTypeError = 102
    case tableValueNotFound = 103
    /// Defined from v2.5 on; older receivers know it only as 102.
    case valueTooLong = 104
    case unsupportedMessageType = 200
    case unsupportedEventCode = 201
    case unsupportedProcessingID = 202
    case unsupportedVersionID = 203
    case unknownKeyIdentifier = 204
    case duplicateKeyIdentifier = 205
    case applicationRecordLocked = 206
    case applicationInternalError = 207

    /// The text HL7 gives the code in table 0357, used as ERR-3.2 / ELD-4.2.
    public var text: String {
        switch self {
        case .messageAccepted: "Message accepted"
        case .segmentSequenceError: "Segment sequence error"
        case .requiredFieldMissing: "Required field missing"
        case .dataTypeError: "Data type error"
        case .tableValueNotFound: "Table value not found"
        case .valueTooLong: "Value too long"
        case .unsupportedMessageType: "Unsupported message type"
        case .unsupportedEventCode: "Unsupported event code"
        case .unsupportedProcessingID: "Unsupported processing id"
        case .unsupportedVersionID: "Unsupported version id"
        case .unknownKeyIdentifier: "Unknown key identifier"
        case .duplicateKeyIdentifier: "Duplicate key identifier"
        case .applicationRecordLocked: "Application record locked"
        case .applicationInternalError: "Application internal error"
        }
    }
}

/// Where in a message something was found. Every part is optional; numbers are HL7's own:
/// `segmentIndex` is 0-based over the message's segments, everything else is 1-based.
/// Carries only positions and the segment ID, never content.
public struct HL7Location: Sendable, Hashable, CustomStringConvertible {
    /// 0-based position of the segment in the message.
    public var segmentIndex: Int?
    /// The segment ID (for example `PID`), only when it is a well-formed ID.
    public var segmentID: String?
    /// 1-based occurrence of `segmentID` in the message (ERL-2 "segment sequence").
    public var segmentSequence: Int?
    public var field: Int?
    public var repetition: Int?
    public var component: Int?
    public var subcomponent: Int?
    /// Byte offset into the input, for errors found while scanning bytes.
    public var byteOffset: Int?

    public init(
        segmentIndex: Int? = nil, segmentID: String? = nil, segmentSequence: Int? = nil, field: Int? = nil,
        repetition: Int? = nil, component: Int? = nil, subcomponent: Int? = nil, byteOffset: Int? = nil
    ) {
        self.segmentIndex = segmentIndex
        self.segmentID = segmentID
        self.segmentSequence = segmentSequence
        self.field = field
        self.repetition = repetition
        self.component = component
        self.subcomponent = subcomponent
        self.byteOffset = byteOffset
    }

    /// The HL7 name of the field, as an integrator writes it: `PID-3(2)` (repetition shown
    /// after the first), `MSH`, or `message` when nothing is known.
    public var fieldPath: String {
        guard let segmentID else { return "message" }
        var name = segmentID + (field.map { "-\($0)" } ?? "")
        if let repetition, repetition > 1 { name += "(\(repetition))" }
        return name
    }

    public var description: String {
        var parts: [String] = []
        if let segmentIndex { parts.append("segment #\(segmentIndex)") }
        if let segmentID { parts.append(segmentSequence.map { "\(segmentID)(\($0))" } ?? segmentID) }
        if let field { parts.append("field \(field)") }
        if let repetition { parts.append("repetition \(repetition)") }
        if let component { parts.append("component \(component)") }
        if let subcomponent { parts.append("subcomponent \(subcomponent)") }
        if let byteOffset { parts.append("byte \(byteOffset)") }
        return parts.isEmpty ? "message" : parts.joined(separator: ", ")
    }
}

/// The one error type of the HL7v2 module: parsing ER7 or XML, character sets, paths and edits.
///
/// `code` is stable (its raw value is a dotted identifier safe for logs and metrics), `hl7Code`
/// is the table 0357 code to put in an ERR segment and `location` says where. The description
/// is built only from these, so it never contains message content (no patient data).
public struct HL7Error: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable, CaseIterable {
        case empty = "hl7.empty"
        case tooLarge = "hl7.too_large"
        case missingHeader = "hl7.missing_msh"
        case batchNotSupported = "hl7.batch_wrapper"
        case multipleMessages = "hl7.multiple_messages"
        case truncatedHeader = "hl7.truncated_msh"
        case invalidDelimiters = "hl7.invalid_delimiters"
        case duplicateDelimiters = "hl7.duplicate_delimiters"
        case invalidSegmentID = "hl7.invalid_segment_id"
        case controlCharacter = "hl7.control_character"
        case invalidEncoding = "hl7.invalid_encoding"
        case unsupportedCharset = "hl7.unsupported_charset"
        case malformedPath = "hl7.malformed_path"
        case segmentNotFound = "hl7.segment_not_found"
        case readOnlyField = "hl7.read_only_field"
        case invalidValue = "hl7.invalid_value"
        case batchStructure = "hl7.batch_structure"
        case xmlMalformed = "hl7.xml.malformed"
        case xmlDoctype = "hl7.xml.doctype"
        case xmlTooDeep = "hl7.xml.too_deep"
        case xmlTooLarge = "hl7.xml.too_large"
        case xmlStructure = "hl7.xml.structure"
    }

    public var code: Code
    public var location: HL7Location
    public var hl7Code: HL7ErrorCode

    public init(_ code: Code, _ location: HL7Location = HL7Location(), hl7Code: HL7ErrorCode? = nil) {
        self.code = code
        self.location = location
        self.hl7Code = hl7Code ?? code.defaultHL7Code
    }

    public var description: String {
        "\(code.rawValue) at \(location) (HL7 0357: \(hl7Code.rawValue) \(hl7Code.text))"
    }
}

extension HL7Error.Code {
    /// The table 0357 code an error of this kind gets unless the thrower chose another.
    /// Undecodable bytes and unknown MSH-18 values are 103: MSH-18 is coded from table 0211.
    public var defaultHL7Code: HL7ErrorCode {
        switch self {
        case .empty, .missingHeader, .multipleMessages, .batchNotSupported, .batchStructure, .invalidSegmentID:
            .segmentSequenceError
        case .truncatedHeader: .requiredFieldMissing
        case .tooLarge: .valueTooLong
        case .invalidEncoding, .unsupportedCharset: .tableValueNotFound
        case .malformedPath, .segmentNotFound, .readOnlyField: .applicationInternalError
        default: .dataTypeError
        }
    }
}
