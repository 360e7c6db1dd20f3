/// A character set a message can travel in. Text inside the library is always Unicode; a charset
/// matters only when bytes come in or go out.
public enum HL7Charset: String, Sendable, Hashable, CaseIterable {
    case utf8 = "UNICODE UTF-8"
    case ascii = "ASCII"
    /// ISO 8859-1 (ISO-IR 100), HL7's `8859/1`.
    case latin1 = "8859/1"
    /// GB 18030-2000, a superset of GBK and GB 2312; used for every Chinese national charset name.
    case gb18030 = "GB 18030-2000"

    /// Maps an MSH-18 value (its first repetition, first component) to a charset, or nil when the
    /// name is not one this library decodes. Case, spaces, `-` and `_` are ignored, so the variants
    /// seen in the wild (`UTF8`, `ISO-8859-1`, `GB18030`, `GBK`, `GB2312`, `CHINESE`, `CP936`,
    /// `ISO IR58`) map to the same charsets. `UNICODE` (UCS-2 in HL7 0211) is taken as UTF-8.
    public init?(msh18 name: some StringProtocol) {
        var key = ""
        for scalar in name.unicodeScalars where scalar != " " && scalar != "-" && scalar != "_" {
            key.unicodeScalars.append(contentsOf: String(scalar).uppercased().unicodeScalars)
        }
        switch key {
        case "UNICODEUTF8", "UNICODE", "UTF8": self = .utf8
        case "ASCII", "USASCII": self = .ascii
        case "8859/1", "88591", "ISO88591", "ISOIR100", "LATIN1", "ISOLATIN1": self = .latin1
        case "GB18030", "GB180302000", "GB180302005", "GB18030(2000)", "GBK", "GB2312", "GB23121980", "CHINESE",
            "CP936", "ISOIR58", "EUCCN", "GB":
            self = .gb18030
        default: return nil
        }
    }

    /// The value this library writes in MSH-18 for the charset.
    public var msh18Value: String { rawValue }

    /// Decodes bytes in this charset to UTF-8. Returns nil and the offset of the first bad byte
    /// when the bytes are not valid in the charset; never substitutes replacement characters.
    func decodeToUTF8(_ bytes: ArraySlice<UInt8>) -> Result<[UInt8], ByteOffsetError> {
        switch self {
        case .utf8:
            if let bad = UTF8Validation.firstInvalidOffset(bytes) { return .failure(ByteOffsetError(offset: bad)) }
            return .success(Array(bytes))
        case .ascii:
            if let bad = bytes.firstIndex(where: { $0 >= 0x80 }) {
                return .failure(ByteOffsetError(offset: bad - bytes.startIndex))
            }
            return .success(Array(bytes))
        case .latin1:
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count + bytes.count / 8)
            for byte in bytes {
                if byte < 0x80 {
                    out.append(byte)
                } else {
                    out.append(0xC0 | (byte >> 6))
                    out.append(0x80 | (byte & 0x3F))
                }
            }
            return .success(out)
        case .gb18030:
            return GB18030.decode(bytes)
        }
    }

    /// Encodes text in this charset. Characters ASCII or Latin-1 cannot represent become `?`:
    /// an acknowledgement must still go out, and its own texts are ASCII.
    public func encode(_ text: String) -> [UInt8] {
        switch self {
        case .utf8: return Array(text.utf8)
        case .ascii: return text.unicodeScalars.map { $0.value < 0x80 ? UInt8($0.value) : UInt8(ascii: "?") }
        case .latin1: return text.unicodeScalars.map { $0.value < 0x100 ? UInt8($0.value) : UInt8(ascii: "?") }
        case .gb18030: return GB18030.encode(text)
        }
    }

    /// Decodes bytes in this charset, or nil if they are not valid in it.
    public func decode(_ bytes: [UInt8]) -> String? {
        guard case .success(let utf8) = decodeToUTF8(bytes[...]) else { return nil }
        return String(decoding: utf8, as: UTF8.self)
    }
}

struct ByteOffsetError: Error {
    var offset: Int
}

enum UTF8Validation {
    /// Offset (from the slice start) of the first byte that breaks UTF-8, or nil if all valid.
    /// Rejects overlong forms, surrogates and values above U+10FFFF, like `String(validating:)`.
    static func firstInvalidOffset(_ bytes: ArraySlice<UInt8>) -> Int? {
        bytes.withUnsafeBufferPointer { buffer -> Int? in
            let count = buffer.count
            var index = 0
            while index < count {
                // ASCII fast path, eight bytes at a time.
                while index + 8 <= count {
                    let word = UnsafeRawPointer(buffer.baseAddress! + index).loadUnaligned(as: UInt64.self)
                    if word & 0x8080_8080_8080_8080 != 0 { break }
                    index += 8
                }
                guard index < count else { return nil }
                let lead = buffer[index]
                if lead < 0x80 {
                    index += 1
                    continue
                }
                let length: Int
                var lower: UInt8 = 0x80
                var upper: UInt8 = 0xBF
                switch lead {
                case 0xC2...0xDF: length = 2
                case 0xE0:
                    length = 3
                    lower = 0xA0
                case 0xE1...0xEC, 0xEE...0xEF: length = 3
                case 0xED:
                    length = 3
                    upper = 0x9F
                case 0xF0:
                    length = 4
                    lower = 0x90
                case 0xF1...0xF3: length = 4
                case 0xF4:
                    length = 4
                    upper = 0x8F
                default: return index
                }
                guard index + length <= count else { return index }
                let second = buffer[index + 1]
                guard second >= lower && second <= upper else { return index }
                var offset = 2
                while offset < length {
                    guard buffer[index + offset] & 0xC0 == 0x80 else { return index }
                    offset += 1
                }
                index += length
            }
            return nil
        }
    }
}

/// Pure-Swift GB 18030-2000 codec over the generated `GB18030Table`.
enum GB18030 {
    /// Number of two-byte trail values per lead byte.
    static let trailsPerLead = 190
    static let lastBMPLinear = 39419
    /// Linear index of 0x90308130, which is U+10000.
    static let supplementaryBase = 189_000

    struct Tables: Sendable {
        /// Unicode scalar of each two-byte cell, indexed (lead-0x81)*190 + trailIndex.
        var twoByte: [UInt32] = []
        /// For each BMP scalar, the two-byte cell index + 1, or 0 when it has no two-byte code.
        var reverse: [UInt16] = []
        /// Four-byte BMP runs (linear start, scalar start), sorted by both; last is a sentinel.
        var runLinear: [Int] = []
        var runScalar: [UInt32] = []
    }

    /// Parsed once, on first use; `static let` initialisation is thread-safe.
    static let tables: Tables = {
        var tables = Tables()
        tables.twoByte.reserveCapacity(126 * trailsPerLead)
        for scalar in GB18030Table.twoByte.unicodeScalars where scalar != "\n" {
            tables.twoByte.append(scalar.value)
        }
        precondition(tables.twoByte.count == 126 * trailsPerLead, "GB18030Table.twoByte is damaged")
        tables.reverse = [UInt16](repeating: 0, count: 0x10000)
        for (cell, scalar) in tables.twoByte.enumerated() where scalar < 0x10000 {
            tables.reverse[Int(scalar)] = UInt16(cell + 1)
        }
        for token in GB18030Table.fourByteRanges.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let pair = token.split(separator: ":")
            guard pair.count == 2, let linear = Int(pair[0], radix: 16), let scalar = UInt32(pair[1], radix: 16) else {
                preconditionFailure("GB18030Table.fourByteRanges is damaged")
            }
            tables.runLinear.append(linear)
            tables.runScalar.append(scalar)
        }
        return tables
    }()

    static func decode(_ bytes: ArraySlice<UInt8>) -> Result<[UInt8], ByteOffsetError> {
        let tables = Self.tables
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 2)
        var index = bytes.startIndex
        let end = bytes.endIndex
        while index < end {
            let lead = bytes[index]
            if lead < 0x80 {
                out.append(lead)
                index += 1
                continue
            }
            let failure = Result<[UInt8], ByteOffsetError>.failure(ByteOffsetError(offset: index - bytes.startIndex))
            guard lead >= 0x81 && lead <= 0xFE && index + 1 < end else { return failure }
            let second = bytes[index + 1]
            if second >= 0x30 && second <= 0x39 {
                guard index + 3 < end else { return failure }
                let third = bytes[index + 2]
                let fourth = bytes[index + 3]
                guard third >= 0x81 && third <= 0xFE && fourth >= 0x30 && fourth <= 0x39 else { return failure }
                let linear =
                    Int(lead - 0x81) * 12600 + Int(second - 0x30) * 1260 + Int(third - 0x81) * 10 + Int(fourth - 0x30)
                guard let scalar = fourByteScalar(linear: linear, tables: tables) else { return failure }
                appendUTF8(scalar, to: &out)
                index += 4
                continue
            }
            let trailIndex: Int
            switch second {
            case 0x40...0x7E: trailIndex = Int(second) - 0x40
            case 0x80...0xFE: trailIndex = Int(second) - 0x41
            default: return failure
            }
            appendUTF8(tables.twoByte[Int(lead - 0x81) * trailsPerLead + trailIndex], to: &out)
            index += 2
        }
        return .success(out)
    }

    static func fourByteScalar(linear: Int, tables: Tables) -> UInt32? {
        if linear <= lastBMPLinear {
            // Last run whose start is <= linear; it ends where the next run starts.
            var low = 0
            var high = tables.runLinear.count - 1
            while low < high {
                let mid = (low + high + 1) / 2
                if tables.runLinear[mid] <= linear { low = mid } else { high = mid - 1 }
            }
            guard low + 1 < tables.runLinear.count, tables.runLinear[low] <= linear else { return nil }
            let scalar = tables.runScalar[low] + UInt32(linear - tables.runLinear[low])
            // A run may not extend into the next run's scalars (the gap is unassigned).
            let nextScalar = tables.runScalar[low + 1]
            guard scalar < 0x10000, low + 1 == tables.runLinear.count - 1 || scalar < nextScalar else { return nil }
            return scalar
        }
        guard linear >= supplementaryBase, linear - supplementaryBase <= 0xFFFFF else { return nil }
        return UInt32(0x10000 + linear - supplementaryBase)
    }

    static func encode(_ text: String) -> [UInt8] {
        let tables = Self.tables
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            let value = scalar.value
            if value < 0x80 {
                out.append(UInt8(value))
            } else if value < 0x10000 {
                let cell = Int(tables.reverse[Int(value)])
                if cell > 0 {
                    let lead = (cell - 1) / trailsPerLead
                    let trailIndex = (cell - 1) % trailsPerLead
                    out.append(UInt8(0x81 + lead))
                    out.append(UInt8(trailIndex < 0x3F ? 0x40 + trailIndex : 0x41 + trailIndex))
                } else {
                    appendFourByte(linear: bmpLinear(value, tables: tables), to: &out)
                }
            } else {
                appendFourByte(linear: supplementaryBase + Int(value - 0x10000), to: &out)
            }
        }
        return out
    }

    static func bmpLinear(_ value: UInt32, tables: Tables) -> Int {
        // Runs are increasing in scalar too; find the last run whose scalar start is <= value.
        var low = 0
        var high = tables.runScalar.count - 2
        while low < high {
            let mid = (low + high + 1) / 2
            if tables.runScalar[mid] <= value { low = mid } else { high = mid - 1 }
        }
        return tables.runLinear[low] + Int(value - tables.runScalar[low])
    }

    static func appendFourByte(linear: Int, to out: inout [UInt8]) {
        var rest = linear
        let first = rest / 12600
        rest %= 12600
        let second = rest / 1260
        rest %= 1260
        out.append(UInt8(0x81 + first))
        out.append(UInt8(0x30 + second))
        out.append(UInt8(0x81 + rest / 10))
        out.append(UInt8(0x30 + rest % 10))
    }
}

@inline(__always)
func appendUTF8(_ value: UInt32, to out: inout [UInt8]) {
    switch value {
    case 0..<0x80:
        out.append(UInt8(value))
    case 0x80..<0x800:
        out.append(UInt8(0xC0 | (value >> 6)))
        out.append(UInt8(0x80 | (value & 0x3F)))
    case 0x800..<0x10000:
        out.append(UInt8(0xE0 | (value >> 12)))
        out.append(UInt8(0x80 | ((value >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (value & 0x3F)))
    default:
        out.append(UInt8(0xF0 | (value >> 18)))
        out.append(UInt8(0x80 | ((value >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((value >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (value & 0x3F)))
    }
}
