/// One HL7 v2 message: its text as UTF-8 bytes plus a flat index of segments and fields.
///
/// Parsing is one linear pass that records where segments and field separators are; repetitions,
/// components, subcomponents and escape sequences are split and decoded only when read. Reads
/// are 1-based like HL7's names: field 3 of PID is PID-3. In MSH, field 1 is the field separator
/// itself and field 2 the encoding characters, so MSH-3 is the first field after `MSH|^~\&|`.
///
/// Serialising an unmodified message gives back its input bytes with every line end written as
/// `\r` (`\r\n` and `\n` are accepted on input), a UTF-8 byte-order mark dropped, blank lines and
/// the presence or absence of a final terminator kept.
public struct HL7Message: Sendable {
    /// The message text in UTF-8 with `\r` line ends.
    public internal(set) var utf8Bytes: [UInt8]
    var index: ER7Index
    /// The charset the message came in (or was built for); `encoded()` writes it back in this one.
    public var charset: HL7Charset

    public var delimiters: HL7Delimiters { index.delimiters }

    init(utf8Bytes: [UInt8], index: ER7Index, charset: HL7Charset) {
        self.utf8Bytes = utf8Bytes
        self.index = index
        self.charset = charset
    }

    /// Parses one message from bytes in any supported charset.
    ///
    /// Charset detection: a UTF-8 byte-order mark is dropped. If the bytes are valid UTF-8 they are
    /// read as UTF-8 unless MSH-18 (read from the raw bytes) declares Latin-1 or GB 18030 and the
    /// bytes are valid in it (no BOM). Otherwise they are decoded with the declared charset, else
    /// with `options.defaultCharset`, and MSH-18 is read again from the decoded text: if it names
    /// another 8-bit charset the bytes are decoded once more with that one. An MSH-18 of ASCII or
    /// UTF-8 that the bytes contradict loses to the decoding that worked. Bytes invalid in the
    /// chosen charset, or non-UTF-8 bytes with no charset to try, throw `.invalidEncoding`; an
    /// MSH-18 this library cannot decode throws `.unsupportedCharset` (both HL7 0357 code 103).
    /// Decoding happens before any splitting, because GBK trail bytes can equal `\ | ^ ~`.
    ///
    /// Exactly one message is accepted: FHS/BHS/BTS/FTS throw `.batchNotSupported` (use
    /// `HL7Batch`) and a second MSH throws `.multipleMessages`.
    public static func parse(_ bytes: [UInt8], options: HL7ParseOptions = HL7ParseOptions()) throws(HL7Error) -> HL7Message {
        guard bytes.count <= min(options.maxMessageBytes, Int(Int32.max) - 1) else {
            throw HL7Error(.tooLarge, HL7Location(byteOffset: options.maxMessageBytes))
        }
        guard !bytes.isEmpty else { throw HL7Error(.empty) }
        let (utf8, charset) = try CharsetDetection.decode(bytes, defaultCharset: options.defaultCharset)
        return try parse(decodedUTF8: utf8, charset: charset, options: options)
    }

    /// Parses one message from text that is already Unicode. `charset` becomes the MSH-18
    /// charset when MSH-18 names one this library knows, else UTF-8.
    public static func parse(_ text: String, options: HL7ParseOptions = HL7ParseOptions()) throws(HL7Error) -> HL7Message {
        var utf8 = Array(text.utf8)
        if utf8.starts(with: [0xEF, 0xBB, 0xBF]) { utf8.removeFirst(3) }
        let charset = CharsetDetection.declaredCharsetName(utf8[...]).flatMap { HL7Charset(msh18: $0) } ?? .utf8
        return try parse(decodedUTF8: utf8, charset: charset, options: options)
    }

    static func parse(decodedUTF8: [UInt8], charset: HL7Charset, options: HL7ParseOptions) throws(HL7Error) -> HL7Message {
        guard decodedUTF8.count <= min(options.maxMessageBytes, Int(Int32.max) - 1) else {
            throw HL7Error(.tooLarge, HL7Location(byteOffset: options.maxMessageBytes))
        }
        let normalised = ER7Scanner.normalisingLineEnds(decodedUTF8)
        let index = try ER7Scanner.index(normalised)
        return HL7Message(utf8Bytes: normalised, index: index, charset: charset)
    }

    /// Starts a message that has only `MSH|^~\&|` (with the given delimiters) and a final `\r`;
    /// fill it with `set(_:to:)` and `appendSegment(_:)`.
    public init(delimiters: HL7Delimiters = .standard, charset: HL7Charset = .utf8) {
        var bytes = Array("MSH".utf8)
        bytes.append(delimiters.field)
        bytes.append(contentsOf: delimiters.encodingCharacters.utf8)
        bytes.append(delimiters.field)
        bytes.append(ER7Scanner.cr)
        utf8Bytes = bytes
        // The header was built from validated delimiters, so indexing cannot fail.
        index = (try? ER7Scanner.index(bytes)) ?? ER7Index(delimiters: delimiters, segments: [], separators: [])
        self.charset = charset
    }

    // MARK: Serialising

    /// The message as ER7 text with `\r` segment terminators.
    public var er7: String { String(decoding: utf8Bytes, as: UTF8.self) }

    /// The message as bytes in `charset` (or in `self.charset`), for sending back to its sender.
    public func encoded(in charset: HL7Charset? = nil) -> [UInt8] {
        let target = charset ?? self.charset
        if target == .utf8 { return utf8Bytes }
        return target.encode(er7)
    }

    // MARK: Segments

    /// The number of segments (blank lines are not segments).
    public var segmentCount: Int { index.segments.count }

    /// The segment at a 0-based position.
    public func segment(at position: Int) -> HL7Segment? {
        guard position >= 0 && position < index.segments.count else { return nil }
        return HL7Segment(message: self, position: position)
    }

    /// All segments in order.
    public var segments: [HL7Segment] { (0..<segmentCount).map { HL7Segment(message: self, position: $0) } }

    /// The `occurrence`-th (1-based) segment with this ID.
    public func segment(_ id: String, occurrence: Int = 1) -> HL7Segment? {
        segmentPosition(id, occurrence: occurrence).map { HL7Segment(message: self, position: $0) }
    }

    /// The 3-character ID of the segment at a 0-based position.
    public func segmentID(at position: Int) -> String {
        let record = index.segments[position]
        return String(decoding: utf8Bytes[Int(record.start)..<Int(record.start + 3)], as: UTF8.self)
    }

    func segmentPosition(_ id: String, occurrence: Int) -> Int? {
        let idBytes = Array(id.utf8)
        guard idBytes.count == 3, occurrence >= 1 else { return nil }
        var seen = 0
        for (position, record) in index.segments.enumerated() {
            let start = Int(record.start)
            if utf8Bytes[start] == idBytes[0] && utf8Bytes[start + 1] == idBytes[1] && utf8Bytes[start + 2] == idBytes[2] {
                seen += 1
                if seen == occurrence { return position }
            }
        }
        return nil
    }

    /// 1-based occurrence of the segment at `position` among segments with the same ID.
    public func segmentSequence(at position: Int) -> Int {
        let id = segmentID(at: position)
        var seen = 0
        for other in 0...position where segmentID(at: other) == id { seen += 1 }
        return seen
    }

    /// The highest field number present in the segment at `position` (MSH counts MSH-1).
    public func fieldCount(at position: Int) -> Int {
        Int(index.segments[position].separatorCount) + (isHeader(position) ? 1 : 0)
    }

    // MARK: Byte ranges

    /// Segment 0 is always the MSH: the scanner refuses anything else.
    func isHeader(_ position: Int) -> Bool { position == 0 }

    /// Byte range of field `field` (1-based) in the segment at `position`; nil when absent.
    /// MSH-1 has no range (it is the separator itself); MSH-2 is the encoding characters.
    func fieldRange(position: Int, field: Int) -> Range<Int>? {
        let record = index.segments[position]
        let part = isHeader(position) ? field - 1 : field
        guard part >= 1 && part <= Int(record.separatorCount) else { return nil }
        let separatorIndex = Int(record.firstSeparator) + part - 1
        let start = Int(index.separators[separatorIndex]) + 1
        let end = part < Int(record.separatorCount) ? Int(index.separators[separatorIndex + 1]) : Int(record.end)
        return start..<end
    }

    func segmentRange(position: Int) -> Range<Int> {
        let record = index.segments[position]
        return Int(record.start)..<Int(record.end)
    }

    /// The `n`-th (1-based) piece of `range` split on `separator`; separator 0 means "no split".
    func piece(_ range: Range<Int>, separator: UInt8, _ n: Int) -> Range<Int>? {
        guard n >= 1 else { return nil }
        if separator == 0 { return n == 1 ? range : nil }
        return utf8Bytes.withUnsafeBufferPointer { buffer -> Range<Int>? in
            var start = range.lowerBound
            var seen = 1
            var index = range.lowerBound
            while index < range.upperBound {
                if buffer[index] == separator {
                    if seen == n { return start..<index }
                    seen += 1
                    start = index + 1
                }
                index += 1
            }
            return seen == n ? start..<range.upperBound : nil
        }
    }

    func count(_ range: Range<Int>, separator: UInt8) -> Int {
        guard separator != 0 else { return 1 }
        var pieces = 1
        for index in range where utf8Bytes[index] == separator { pieces += 1 }
        return pieces
    }

    /// Decoded text of a byte range: escape sequences resolved (see `HL7Escaping.decode`).
    func text(_ range: Range<Int>) -> String {
        let slice = utf8Bytes[range]
        if !slice.contains(index.delimiters.escape) { return String(decoding: slice, as: UTF8.self) }
        return HL7Escaping.decode(slice, delimiters: index.delimiters, charset: charset)
    }

    func rawText(_ range: Range<Int>) -> String { String(decoding: utf8Bytes[range], as: UTF8.self) }

    // MARK: Reading

    /// The decoded value at a position: segment at 0-based `position`, then 1-based field,
    /// repetition, component and subcomponent. Nil when absent or empty. MSH-1 and MSH-2 are
    /// returned whole and never split or unescaped.
    public func value(position: Int, field: Int, repetition: Int = 1, component: Int = 1, subcomponent: Int = 1) -> String? {
        guard let range = range(position: position, field: field, repetition: repetition, component: component, subcomponent: subcomponent)
        else {
            if isHeader(position) && field == 1 && repetition == 1 && component == 1 && subcomponent == 1 {
                return String(decoding: [index.delimiters.field], as: UTF8.self)
            }
            return nil
        }
        if range.isEmpty { return nil }
        if isHeader(position) && field == 2 { return rawText(range) }
        return text(range)
    }

    func range(position: Int, field: Int, repetition: Int, component: Int, subcomponent: Int) -> Range<Int>? {
        guard position >= 0 && position < index.segments.count, let fieldRange = fieldRange(position: position, field: field) else {
            return nil
        }
        if isHeader(position) && field == 2 {
            return repetition == 1 && component == 1 && subcomponent == 1 ? fieldRange : nil
        }
        let delimiters = index.delimiters
        guard let repetitionRange = piece(fieldRange, separator: delimiters.repetition, repetition),
            let componentRange = piece(repetitionRange, separator: delimiters.component, component)
        else { return nil }
        return piece(componentRange, separator: delimiters.subcomponent, subcomponent)
    }

    /// The decoded value at a terser path (see `HL7Path`); nil when absent or empty.
    public func value(_ path: HL7Path) -> String? {
        guard let position = segmentPosition(path.segmentID, occurrence: path.occurrence) else { return nil }
        return value(
            position: position, field: path.field, repetition: path.repetition, component: path.component ?? 1,
            subcomponent: path.subcomponent ?? 1)
    }

    /// The decoded value at a terser path given as text, for example `PID-3(2).1`.
    public func value(at path: String) throws(HL7Error) -> String? {
        value(try HL7Path(path))
    }

    /// Shorthand for `value(at:)` that answers nil for a malformed path too.
    public subscript(path: String) -> String? {
        guard let parsed = try? HL7Path(path) else { return nil }
        return value(parsed)
    }
}

/// A segment of a message, by position. Holds a copy of the message (arrays are shared).
public struct HL7Segment: Sendable {
    public let message: HL7Message
    /// 0-based position of the segment in the message.
    public let position: Int

    /// The segment ID, for example `PID`.
    public var id: String { message.segmentID(at: position) }
    /// The highest field number present (MSH counts MSH-1 and MSH-2).
    public var fieldCount: Int { message.fieldCount(at: position) }
    /// The segment's ER7 text without its terminator.
    public var er7: String { message.rawText(message.segmentRange(position: position)) }

    /// Field `number` (1-based); nil when the segment has fewer fields. MSH-1 is not a field view.
    public func field(_ number: Int) -> HL7Field? {
        guard let range = message.fieldRange(position: position, field: number) else { return nil }
        return HL7Field(message: message, range: range, isEncodingCharacters: message.isHeader(position) && number == 2)
    }

    /// Decoded value of field `field`, repetition, component and subcomponent (all 1-based).
    public func value(_ field: Int, repetition: Int = 1, component: Int = 1, subcomponent: Int = 1) -> String? {
        message.value(position: position, field: field, repetition: repetition, component: component, subcomponent: subcomponent)
    }
}

/// One field of a segment, all its repetitions.
public struct HL7Field: Sendable {
    let message: HL7Message
    let range: Range<Int>
    let isEncodingCharacters: Bool

    /// The field's ER7 text as written (separators and escape sequences intact).
    public var er7: String { message.rawText(range) }
    public var isEmpty: Bool { range.isEmpty }
    /// Number of repetitions (an empty field has one, empty, repetition).
    public var repetitionCount: Int { isEncodingCharacters ? 1 : message.count(range, separator: message.delimiters.repetition) }

    /// The decoded components of repetition `number` (1-based); nil when absent.
    public func repetition(_ number: Int = 1) -> HL7Components? {
        if isEncodingCharacters { return number == 1 ? HL7Components([[message.rawText(range)]]) : nil }
        guard let repetitionRange = message.piece(range, separator: message.delimiters.repetition, number) else { return nil }
        return HL7Components(message: message, range: repetitionRange)
    }

    /// Every repetition's components.
    public var repetitions: [HL7Components] { (1...repetitionCount).compactMap { repetition($0) } }
}
