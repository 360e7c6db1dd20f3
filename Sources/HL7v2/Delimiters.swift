/// The separators and escape character of a message, read from MSH-1 and MSH-2.
public struct HL7Delimiters: Sendable, Hashable {
    public var field: UInt8
    public var component: UInt8
    public var repetition: UInt8
    public var escape: UInt8
    /// 0 when MSH-2 has only three characters (no subcomponents).
    public var subcomponent: UInt8
    /// The v2.7 truncation character (fifth MSH-2 character), or 0 when absent.
    public var truncation: UInt8

    /// `|^~\&`, the delimiters nearly every sender uses.
    public static let standard = HL7Delimiters(
        field: UInt8(ascii: "|"), component: UInt8(ascii: "^"), repetition: UInt8(ascii: "~"),
        escape: UInt8(ascii: "\\"), subcomponent: UInt8(ascii: "&"), truncation: 0)

    public init(field: UInt8, component: UInt8, repetition: UInt8, escape: UInt8, subcomponent: UInt8, truncation: UInt8 = 0) {
        self.field = field
        self.component = component
        self.repetition = repetition
        self.escape = escape
        self.subcomponent = subcomponent
        self.truncation = truncation
    }

    /// Reads and validates MSH-1 and MSH-2 given as text, for example `"|"` and `"^~\\&"`.
    public init(field: String, encodingCharacters: String) throws(HL7Error) {
        let fieldBytes = Array(field.utf8)
        guard fieldBytes.count == 1 else {
            throw HL7Error(.invalidDelimiters, HL7Location(segmentID: "MSH", field: 1))
        }
        self = try Self.validated(field: fieldBytes[0], encoding: Array(encodingCharacters.utf8)[...])
    }

    /// MSH-2 as written: component, repetition, escape, then subcomponent and truncation if present.
    public var encodingCharacters: String {
        var bytes = [component, repetition, escape]
        if subcomponent != 0 { bytes.append(subcomponent) }
        if truncation != 0 { bytes.append(truncation) }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func isAllowedDelimiter(_ byte: UInt8) -> Bool {
        // Printable ASCII punctuation only: letters and digits would collide with content.
        guard byte > 0x20 && byte < 0x7F else { return false }
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"):
            return false
        default:
            return true
        }
    }

    /// Validates MSH-2 (3 to 5 characters) against MSH-1.
    static func validated(field: UInt8, encoding: ArraySlice<UInt8>) throws(HL7Error) -> HL7Delimiters {
        guard isAllowedDelimiter(field) else {
            throw HL7Error(.invalidDelimiters, HL7Location(segmentIndex: 0, segmentID: "MSH", field: 1, byteOffset: 3))
        }
        let location = HL7Location(segmentIndex: 0, segmentID: "MSH", field: 2, byteOffset: 4)
        guard encoding.count >= 3 && encoding.count <= 5 else { throw HL7Error(.invalidDelimiters, location) }
        var seen: [UInt8] = [field]
        for byte in encoding {
            guard isAllowedDelimiter(byte) else { throw HL7Error(.invalidDelimiters, location) }
            guard !seen.contains(byte) else { throw HL7Error(.duplicateDelimiters, location) }
            seen.append(byte)
        }
        let chars = Array(encoding)
        return HL7Delimiters(
            field: field, component: chars[0], repetition: chars[1], escape: chars[2],
            subcomponent: chars.count > 3 ? chars[3] : 0, truncation: chars.count > 4 ? chars[4] : 0)
    }
}
