/// Limits and defaults for parsing.
public struct HL7ParseOptions: Sendable, Hashable {
    /// Inputs longer than this are refused with `.tooLarge` before any scanning. Default 16 MiB.
    public var maxMessageBytes: Int
    /// The charset to assume when the bytes are not valid UTF-8 and MSH-18 names no charset
    /// (many Chinese HIS send GBK without MSH-18). Nil: such input is refused.
    public var defaultCharset: HL7Charset?

    public init(maxMessageBytes: Int = 16 << 20, defaultCharset: HL7Charset? = nil) {
        self.maxMessageBytes = maxMessageBytes
        self.defaultCharset = defaultCharset
    }
}

/// One segment in the flat index: byte range (terminator excluded) and its run of field separators.
struct SegmentRecord: Sendable, Hashable {
    var start: Int32
    var end: Int32
    var firstSeparator: Int32
    var separatorCount: Int32
}

/// The flat index of a message: segments and the offsets of every field separator.
struct ER7Index: Sendable {
    var delimiters: HL7Delimiters
    var segments: [SegmentRecord]
    var separators: [Int32]
}

enum ER7Scanner {
    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")

    /// Replaces `\r\n` and lone `\n` with `\r`; returns the input itself when it has no `\n`.
    static func normalisingLineEnds(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.contains(lf) else { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var previous: UInt8 = 0
        for byte in bytes {
            if byte == lf {
                if previous != cr { out.append(cr) }
            } else {
                out.append(byte)
            }
            previous = byte
        }
        return out
    }

    static func isBlank(_ byte: UInt8) -> Bool {
        byte == cr || byte == lf || byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }

    /// Reads the delimiters of the header segment that starts at `start` ("MSH", "FHS" or "BHS").
    static func delimiters(_ bytes: [UInt8], headerAt start: Int) throws(HL7Error) -> HL7Delimiters {
        let count = bytes.count
        guard start + 4 <= count, bytes[start + 3] != cr else {
            throw HL7Error(.truncatedHeader, HL7Location(segmentIndex: 0, segmentID: "MSH", field: 1, byteOffset: start + 3))
        }
        let field = bytes[start + 3]
        var end = start + 4
        while end < count && bytes[end] != field && bytes[end] != cr && bytes[end] != lf { end += 1 }
        guard end < count && bytes[end] == field else {
            throw HL7Error(.truncatedHeader, HL7Location(segmentIndex: 0, segmentID: "MSH", field: 2, byteOffset: end))
        }
        do {
            return try HL7Delimiters.validated(field: field, encoding: bytes[(start + 4)..<end])
        } catch {
            var error = error
            error.location.byteOffset = start + (error.location.field == 1 ? 3 : 4)
            throw error
        }
    }

    static func segmentID(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<(start + 3)]), as: UTF8.self)
    }

    /// Builds the flat index of one message in one linear pass over CR-terminated UTF-8.
    /// Refuses control characters, malformed segment IDs, a second MSH and batch wrappers.
    static func index(_ bytes: [UInt8]) throws(HL7Error) -> ER7Index {
        var headerStart = 0
        while headerStart < bytes.count && isBlank(bytes[headerStart]) { headerStart += 1 }
        guard headerStart < bytes.count else { throw HL7Error(.empty) }
        guard bytes.count - headerStart >= 3, bytes[headerStart] == UInt8(ascii: "M"), bytes[headerStart + 1] == UInt8(ascii: "S"),
            bytes[headerStart + 2] == UInt8(ascii: "H")
        else {
            if bytes.count - headerStart >= 3, let prefix = String(validating: bytes[headerStart..<(headerStart + 3)], as: UTF8.self),
                ["FHS", "BHS"].contains(prefix)
            {
                throw HL7Error(.batchNotSupported, HL7Location(segmentIndex: 0, segmentID: prefix))
            }
            throw HL7Error(.missingHeader, HL7Location(segmentIndex: 0, byteOffset: headerStart))
        }
        let delimiters = try delimiters(bytes, headerAt: headerStart)
        let result = bytes.withUnsafeBufferPointer { buffer -> Result<ER7Index, HL7Error> in
            scan(buffer, delimiters: delimiters)
        }
        return try result.get()
    }

    private static func scan(_ buffer: UnsafeBufferPointer<UInt8>, delimiters: HL7Delimiters) -> Result<ER7Index, HL7Error> {
        let count = buffer.count
        let field = delimiters.field
        var segments: [SegmentRecord] = []
        segments.reserveCapacity(count / 80 + 4)
        var separators: [Int32] = []
        separators.reserveCapacity(count / 8 + 8)
        var segmentStart = 0
        var segmentFirstSeparator = 0
        var index = 0

        func close(_ end: Int) -> HL7Error? {
            let separatorCount = separators.count - segmentFirstSeparator
            if separatorCount == 0 {
                var blank = true
                var probe = segmentStart
                while probe < end {
                    if !isBlank(buffer[probe]) {
                        blank = false
                        break
                    }
                    probe += 1
                }
                if blank { return nil }
            }
            let segmentIndex = segments.count
            let idEnd = separatorCount > 0 ? Int(separators[segmentFirstSeparator]) : end
            guard idEnd - segmentStart == 3, isSegmentIDByte(buffer[segmentStart], first: true),
                isSegmentIDByte(buffer[segmentStart + 1], first: false), isSegmentIDByte(buffer[segmentStart + 2], first: false)
            else {
                return HL7Error(.invalidSegmentID, HL7Location(segmentIndex: segmentIndex, byteOffset: segmentStart))
            }
            if segmentIndex > 0 {
                let id = segmentID(buffer, segmentStart)
                switch id {
                case "MSH":
                    return HL7Error(.multipleMessages, HL7Location(segmentIndex: segmentIndex, segmentID: id, byteOffset: segmentStart))
                case "FHS", "BHS", "BTS", "FTS":
                    return HL7Error(.batchNotSupported, HL7Location(segmentIndex: segmentIndex, segmentID: id, byteOffset: segmentStart))
                default: break
                }
            }
            segments.append(
                SegmentRecord(
                    start: Int32(segmentStart), end: Int32(end), firstSeparator: Int32(segmentFirstSeparator),
                    separatorCount: Int32(separatorCount)))
            return nil
        }

        while index < count {
            let byte = buffer[index]
            if byte == field {
                separators.append(Int32(index))
            } else if byte < 0x20 {
                if byte == cr {
                    if let error = close(index) { return .failure(error) }
                    segmentStart = index + 1
                    segmentFirstSeparator = separators.count
                } else if byte != UInt8(ascii: "\t") {
                    return .failure(HL7Error(.controlCharacter, HL7Location(segmentIndex: segments.count, byteOffset: index)))
                }
            }
            index += 1
        }
        if segmentStart < count, let error = close(count) { return .failure(error) }
        return .success(ER7Index(delimiters: delimiters, segments: segments, separators: separators))
    }

    @inline(__always)
    static func isSegmentIDByte(_ byte: UInt8, first: Bool) -> Bool {
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || (!first && byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }
}

/// Chooses the charset of incoming bytes and decodes them to UTF-8 (see `HL7Message.parse`).
enum CharsetDetection {
    /// MSH-18 (first repetition, first component) of the first MSH segment found at a line start,
    /// read by splitting raw bytes; nil when there is no MSH or no MSH-18. With `multiByteAware`,
    /// a byte 0x81-0xFE and the byte after it are skipped together (GBK/GB 18030 structure), so
    /// a trail byte equal to a delimiter does not split a field.
    static func declaredCharsetName(_ bytes: ArraySlice<UInt8>, multiByteAware: Bool = false) -> String? {
        var start = bytes.startIndex
        let end = bytes.endIndex
        // Find a line that starts with MSH.
        while start + 8 <= end {
            if bytes[start] == UInt8(ascii: "M") && bytes[start + 1] == UInt8(ascii: "S") && bytes[start + 2] == UInt8(ascii: "H")
                && (start == bytes.startIndex || bytes[start - 1] == ER7Scanner.cr || bytes[start - 1] == ER7Scanner.lf)
            {
                break
            }
            start += 1
        }
        guard start + 8 <= end else { return nil }
        let field = bytes[start + 3]
        let component = bytes[start + 4]
        let repetition = bytes[start + 5]
        var part = 0
        var partStart = start
        var index = start
        while index < end && bytes[index] != ER7Scanner.cr && bytes[index] != ER7Scanner.lf {
            if multiByteAware && bytes[index] >= 0x81 && bytes[index] <= 0xFE {
                index += 2
                continue
            }
            if bytes[index] == field {
                part += 1
                partStart = index + 1
                if part == 17 { break }
            }
            index += 1
        }
        guard part == 17 else { return nil }
        var valueEnd = partStart
        while valueEnd < end {
            let byte = bytes[valueEnd]
            if byte == field || byte == component || byte == repetition || byte == ER7Scanner.cr || byte == ER7Scanner.lf { break }
            valueEnd += 1
        }
        let name = String(decoding: bytes[partStart..<valueEnd], as: UTF8.self)
        let trimmed = name.trimmingBlanks
        return trimmed.isEmpty ? nil : trimmed
    }

    static let msh18Location = HL7Location(segmentIndex: 0, segmentID: "MSH", segmentSequence: 1, field: 18)

    /// The detection algorithm documented on `HL7Message.parse(_:options:)`.
    static func decode(_ input: [UInt8], defaultCharset: HL7Charset?) throws(HL7Error) -> (utf8: [UInt8], charset: HL7Charset) {
        var bytes = input[...]
        var hadBOM = false
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF {
            bytes = bytes.dropFirst(3)
            hadBOM = true
        }
        let declaredName = declaredCharsetName(bytes)
        let declared = declaredName.flatMap { HL7Charset(msh18: $0) }
        let invalidUTF8At = UTF8Validation.firstInvalidOffset(bytes)

        if invalidUTF8At == nil {
            let isASCII = !bytes.contains { $0 >= 0x80 }
            switch declared {
            case .latin1?, .gb18030?:
                if !hadBOM, case .success(let utf8) = declared!.decodeToUTF8(bytes) { return (utf8, declared!) }
                // The bytes are UTF-8 (BOM, or not valid in the declared charset): believe the bytes.
                return (Array(bytes), .utf8)
            case .utf8?:
                return (Array(bytes), .utf8)
            case .ascii?:
                // Non-ASCII but valid UTF-8 under an ASCII declaration: the bytes are UTF-8.
                return (Array(bytes), isASCII ? .ascii : .utf8)
            case nil:
                if declaredName != nil && !isASCII { throw HL7Error(.unsupportedCharset, msh18Location) }
                if declaredName != nil { return (Array(bytes), .ascii) }
                if isASCII, let defaultCharset { return (Array(bytes), defaultCharset) }
                return (Array(bytes), .utf8)
            }
        }

        // Not UTF-8. The raw split may have misread MSH-18 (a GBK trail byte can equal `|`), so
        // decode with the best candidate and read MSH-18 again from the decoded text.
        let awareName = declaredCharsetName(bytes, multiByteAware: true)
        let raw = [awareName, declaredName].compactMap { $0 }.compactMap { HL7Charset(msh18: $0) }.first
        var candidate: HL7Charset?
        if let raw, raw == .latin1 || raw == .gb18030 {
            candidate = raw
        } else if let defaultCharset, defaultCharset == .latin1 || defaultCharset == .gb18030 {
            candidate = defaultCharset
        } else if raw == nil && (declaredName != nil || awareName != nil) {
            throw HL7Error(.unsupportedCharset, msh18Location)
        }
        var attempts = 0
        while let charset = candidate, attempts < 2 {
            attempts += 1
            switch charset.decodeToUTF8(bytes) {
            case .failure(let failure):
                var location = msh18Location
                location.byteOffset = failure.offset + (hadBOM ? 3 : 0)
                throw HL7Error(.invalidEncoding, location)
            case .success(let utf8):
                let redeclaredName = declaredCharsetName(utf8[...])
                guard let redeclaredName else { return (utf8, charset) }
                guard let redeclared = HL7Charset(msh18: redeclaredName) else {
                    throw HL7Error(.unsupportedCharset, msh18Location)
                }
                // An ASCII/UTF-8 declaration the bytes contradict loses to the decoding that worked.
                if redeclared == charset || redeclared == .utf8 || redeclared == .ascii { return (utf8, charset) }
                candidate = redeclared
            }
        }
        var location = msh18Location
        location.byteOffset = (invalidUTF8At ?? 0) + (hadBOM ? 3 : 0)
        throw HL7Error(.invalidEncoding, location)
    }
}

extension StringProtocol {
    var trimmingBlanks: String {
        var scalars = Substring(self).unicodeScalars[...]
        while let first = scalars.first, first == " " || first == "\t" { scalars = scalars.dropFirst() }
        while let last = scalars.last, last == " " || last == "\t" { scalars = scalars.dropLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
