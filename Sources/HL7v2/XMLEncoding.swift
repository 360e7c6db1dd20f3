/// The HL7 v2 XML encoding (namespace `urn:hl7-org:v2xml`), both ways.
///
/// ER7 → XML: the root element is named by the message structure (MSH-9.3, else a known alias of
/// code_trigger such as ADT_A04 → ADT_A01, else code_trigger). Segments become `<PID>`, fields
/// `<PID.5>` (one element per repetition, empty repetitions as empty elements), components are
/// named by the field's data type from a compact v2.5 dictionary (`<XPN.1>`), subcomponents by
/// the component's type (`<HD.1>` inside `<CX.4>`), OBX-5 by the type in OBX-2. Fallback when a
/// type is unknown or does not match the content: a child is named after its parent plus its
/// position (`<ZPI.2.1>`, `<ZPI.2.1.1>`). Escape sequences that are not plain characters
/// (formatting, charset, control-character hex) become `<escape V="…"/>`. Groups are written for
/// ADT_A01 (also A04, A08, A13), ORU_R01 and ACK; other structures get segments directly under the
/// root. Whitespace at the ends of a value is not preserved (it is dropped when reading XML).
///
/// XML → ER7: only nesting and the number after an element name's last `.` matter, so any
/// naming (HAPI's `CM_MSG.1` included) reads back; any element that is not a segment ID under the
/// root or a group is read as a group and flattened in document order. Text is trimmed, runs of
/// whitespace collapse to one space (as HAPI does), and it is escaped for ER7. `<!DOCTYPE` is
/// refused; depth and size are limited.
public enum HL7XML {
    public static let namespace = "urn:hl7-org:v2xml"

    public struct Options: Sendable, Hashable {
        public var maxBytes: Int
        public var maxDepth: Int
        public init(maxBytes: Int = 16 << 20, maxDepth: Int = 32) {
            self.maxBytes = maxBytes
            self.maxDepth = maxDepth
        }
    }

    // MARK: ER7 → XML

    /// The message as an XML document (UTF-8 text with an XML declaration).
    public static func encode(_ message: HL7Message) -> String {
        var writer = XMLWriter(message: message)
        return writer.document()
    }

    /// The root element name used for a message.
    public static func structureName(_ message: HL7Message) -> String {
        if let structure = message.value(position: 0, field: 9, component: 3), isXMLName(structure) { return structure }
        let code = message.value(position: 0, field: 9, component: 1) ?? ""
        if code == "ACK" { return "ACK" }
        let trigger = message.value(position: 0, field: 9, component: 2) ?? ""
        let name = trigger.isEmpty ? code : code + "_" + trigger
        guard isXMLName(name) else { return "MESSAGE" }
        return HL7Dictionary.structureAliases[name] ?? name
    }

    static func isXMLName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first >= UInt8(ascii: "A") && first <= UInt8(ascii: "Z") else { return false }
        return name.utf8.allSatisfy {
            ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "_")
        }
    }

    // MARK: XML → ER7

    /// Reads an HL7 v2 XML document into a message. The charset of the result is MSH-18's when
    /// it names a known one, else UTF-8; an XML declaration naming GB18030/GBK or ISO-8859-1 is
    /// honoured for the bytes.
    public static func decode(_ bytes: [UInt8], options: Options = Options()) throws(HL7Error) -> HL7Message {
        guard bytes.count <= options.maxBytes else { throw HL7Error(.xmlTooLarge, HL7Location(byteOffset: options.maxBytes)) }
        var utf8 = bytes
        if let declared = declaredEncoding(bytes), let charset = HL7Charset(msh18: declared), charset != .utf8 && charset != .ascii {
            guard case .success(let decoded) = charset.decodeToUTF8(bytes[...]) else { throw HL7Error(.invalidEncoding) }
            utf8 = decoded
        } else if let bad = UTF8Validation.firstInvalidOffset(bytes[...]) {
            throw HL7Error(.invalidEncoding, HL7Location(byteOffset: bad))
        }
        let events = try XMLTokenizer.events(utf8, maxDepth: options.maxDepth, maxBytes: max(options.maxBytes, utf8.count))
        var reader = XMLReader()
        for event in events { try reader.handle(event) }
        let text = reader.er7()
        let charset = CharsetDetection.declaredCharsetName(Array(text.utf8)[...]).flatMap { HL7Charset(msh18: $0) } ?? .utf8
        return try HL7Message.parse(
            decodedUTF8: Array(text.utf8), charset: charset,
            options: HL7ParseOptions(maxMessageBytes: max(options.maxBytes, text.utf8.count)))
    }

    /// `decode(_:options:)` for text.
    public static func decode(_ text: String, options: Options = Options()) throws(HL7Error) -> HL7Message {
        try decode(Array(text.utf8), options: options)
    }

    /// The `encoding` pseudo-attribute of an XML declaration, if any.
    static func declaredEncoding(_ bytes: [UInt8]) -> String? {
        let head = Array(bytes.prefix(200))
        guard head.starts(with: Array("<?xml".utf8)) else { return nil }
        let end = (0..<max(0, head.count - 1)).first { head[$0] == UInt8(ascii: "?") && head[$0 + 1] == UInt8(ascii: ">") } ?? head.count
        let key = Array("encoding".utf8)
        guard let keyStart = (0..<max(0, end - key.count)).first(where: { Array(head[$0..<($0 + key.count)]) == key }) else { return nil }
        var index = keyStart + key.count
        while index < end && (head[index] == UInt8(ascii: " ") || head[index] == UInt8(ascii: "=")) { index += 1 }
        guard index < end, head[index] == UInt8(ascii: "\"") || head[index] == UInt8(ascii: "'") else { return nil }
        let quote = head[index]
        let valueStart = index + 1
        guard let valueEnd = head[valueStart..<end].firstIndex(of: quote) else { return nil }
        return String(decoding: head[valueStart..<valueEnd], as: UTF8.self)
    }
}

/// Writes one message as XML.
struct XMLWriter {
    let message: HL7Message
    var out = ""

    init(message: HL7Message) {
        self.message = message
    }

    static func escaped(_ text: String, attribute: Bool = false) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"" where attribute: result += "&quot;"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    mutating func document() -> String {
        let root = HL7XML.structureName(message)
        out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<\(root) xmlns=\"\(HL7XML.namespace)\">"
        var placer = HL7Dictionary.structures[root].map { GroupPlacer(root: $0) }
        var openGroups: [(name: String, instance: Int)] = []
        for position in 0..<message.segmentCount {
            let id = message.segmentID(at: position)
            if var current = placer {
                let path = current.place(id)
                placer = current
                var common = 0
                while common < openGroups.count && common < path.count && openGroups[common] == path[common] { common += 1 }
                while openGroups.count > common { out += "</\(openGroups.removeLast().name)>" }
                for group in path[common...] {
                    out += "<\(group.name)>"
                    openGroups.append(group)
                }
            }
            writeSegment(position, id: id)
        }
        while let group = openGroups.popLast() { out += "</\(group.name)>" }
        out += "</\(root)>\n"
        return out
    }

    mutating func writeSegment(_ position: Int, id: String) {
        let fieldCount = message.fieldCount(at: position)
        var body = ""
        if position == 0 {
            body += "<MSH.1>\(Self.escaped(String(decoding: [message.delimiters.field], as: UTF8.self)))</MSH.1>"
            body += "<MSH.2>\(Self.escaped(message.delimiters.encodingCharacters))</MSH.2>"
        }
        let delimiters = message.delimiters
        for number in stride(from: position == 0 ? 3 : 1, through: fieldCount, by: 1) {
            guard let range = message.fieldRange(position: position, field: number), !range.isEmpty else { continue }
            var type = HL7Dictionary.fieldType(segment: id, field: number)
            if id == "OBX" && number == 5, let declared = message.value(position: position, field: 2), HL7Dictionary.isComposite(declared) {
                type = declared
            }
            let name = "\(id).\(number)"
            let repetitions = message.count(range, separator: delimiters.repetition)
            for repetition in 1...repetitions {
                guard let repetitionRange = message.piece(range, separator: delimiters.repetition, repetition) else { continue }
                body += element(name, type: type, range: repetitionRange, level: 0)
            }
        }
        out += body.isEmpty ? "<\(id)/>" : "<\(id)>\(body)</\(id)>"
    }

    /// An element for a repetition (level 0) or a component (level 1), split one level further.
    func element(_ name: String, type: String?, range: Range<Int>, level: Int) -> String {
        if range.isEmpty { return "<\(name)/>" }
        let delimiters = message.delimiters
        let separator = level == 0 ? delimiters.component : delimiters.subcomponent
        let splits = separator != 0 && message.utf8Bytes[range].contains(separator)
        let deeperSplits = level == 0 && delimiters.subcomponent != 0 && message.utf8Bytes[range].contains(delimiters.subcomponent)
        let composite = type.flatMap { HL7Dictionary.isComposite($0) ? $0 : nil }
        guard composite != nil || splits || deeperSplits else { return "<\(name)>\(text(range))</\(name)>" }
        var body = ""
        let count = message.count(range, separator: separator)
        for index in 1...count {
            guard let part = message.piece(range, separator: separator, index), !part.isEmpty else { continue }
            let childName = composite.map { "\($0).\(index)" } ?? "\(name).\(index)"
            if level == 0 {
                body += element(
                    childName, type: composite.flatMap { HL7Dictionary.componentType(of: $0, component: index) }, range: part, level: 1)
            } else {
                body += "<\(childName)>\(text(part))</\(childName)>"
            }
        }
        return "<\(name)>\(body)</\(name)>"
    }

    func text(_ range: Range<Int>) -> String {
        var result = ""
        let pieces = HL7Escaping.pieces(
            message.utf8Bytes[range], delimiters: message.delimiters, charset: message.charset, keepingControlHex: true)
        for piece in pieces {
            switch piece {
            case .text(let bytes): result += Self.escaped(String(decoding: bytes, as: UTF8.self))
            case .kept(let body): result += "<escape V=\"\(Self.escaped(String(decoding: body, as: UTF8.self), attribute: true))\"/>"
            }
        }
        return result
    }
}

/// Assigns segments to the groups of a known message structure, HAPI-style: a segment goes to
/// the innermost open group where it can come next, or starts the child group it can begin.
/// Bounded by the structure's depth, not the input's.
struct GroupPlacer {
    var stack: [(group: HL7Dictionary.Group, last: Int, instance: Int)]
    var instances = 0

    init(root: HL7Dictionary.Group) {
        stack = [(root, -1, 0)]
    }

    /// The open groups (outermost first, root excluded) after placing `segment`.
    mutating func place(_ segment: String) -> [(name: String, instance: Int)] {
        var depth = stack.count - 1
        search: while depth >= 0 {
            let (group, last, _) = stack[depth]
            var position = last < 0 ? 0 : (group.elements[last].repeats ? last : last + 1)
            while position < group.elements.count {
                switch group.elements[position] {
                case .segment(let id, _, _) where id == segment:
                    stack.removeLast(stack.count - depth - 1)
                    stack[depth].last = position
                    break search
                case .group(let child, _, _) where HL7Dictionary.canBegin(child, with: segment):
                    stack.removeLast(stack.count - depth - 1)
                    stack[depth].last = position
                    instances += 1
                    stack.append((child, -1, instances))
                    depth += 1
                    continue search
                default:
                    position += 1
                }
            }
            depth -= 1
        }
        return stack.dropFirst().map { ($0.group.name, $0.instance) }
    }
}

/// Rebuilds ER7 from XML events (see `HL7XML`).
struct XMLReader {
    enum Frame {
        case container
        case segment
        case field(Int)
        case wrapper
        case component(Int)
        case subcomponent(Int)
        case escape
    }

    enum Piece {
        case text(String)
        case escape(String)
    }

    struct SegmentBuilder {
        var id: String
        /// Field number → repetitions → component → subcomponent → escaped ER7 text.
        var fields: [Int: [[Int: [Int: String]]]] = [:]
    }

    var frames: [Frame] = []
    var segments: [SegmentBuilder] = []
    var pieces: [Piece] = []
    var delimiters = HL7Delimiters.standard
    var fieldSeparator = "|"
    var encodingCharacters = "^~\\&"

    static func number(_ name: String) -> Int? {
        guard let dot = name.lastIndex(of: ".") else { return nil }
        guard let value = Int(name[name.index(after: dot)...]), value >= 1, value <= 999 else { return nil }
        return value
    }

    func structureError() -> HL7Error {
        HL7Error(.xmlStructure, HL7Location(segmentIndex: segments.isEmpty ? nil : segments.count - 1))
    }

    mutating func handle(_ event: XMLTokenizer.Event) throws(HL7Error) {
        switch event {
        case .start(let name, let attributes):
            guard let top = frames.last else {
                frames.append(.container)
                return
            }
            if name == "escape" {
                switch top {
                case .field, .component, .subcomponent, .wrapper:
                    let value = attributes.first { $0.0 == "V" }?.1 ?? ""
                    guard !value.utf8.contains(where: { HL7Escaping.isSpecial($0, delimiters) || $0 == delimiters.escape }) else {
                        throw structureError()
                    }
                    pieces.append(.escape(value))
                    frames.append(.escape)
                    return
                default: throw structureError()
                }
            }
            switch top {
            case .container:
                if name.utf8.count == 3 && name.utf8.enumerated().allSatisfy({ ER7Scanner.isSegmentIDByte($1, first: $0 == 0) }) {
                    segments.append(SegmentBuilder(id: name))
                    frames.append(.segment)
                } else {
                    frames.append(.container)
                }
            case .segment:
                guard let number = Self.number(name) else { throw structureError() }
                segments[segments.count - 1].fields[number, default: []].append([:])
                pieces = []
                frames.append(.field(number))
            case .field, .wrapper:
                if let number = Self.number(name) {
                    pieces = []
                    frames.append(.component(number))
                } else if case .field(let field) = top {
                    // A type wrapper such as <QIP> inside QPD.3: one repetition per wrapper.
                    var repetitions = segments[segments.count - 1].fields[field]!
                    if !(repetitions.last?.isEmpty ?? true) { repetitions.append([:]) }
                    segments[segments.count - 1].fields[field] = repetitions
                    frames.append(.wrapper)
                } else {
                    throw structureError()
                }
            case .component:
                guard let number = Self.number(name) else { throw structureError() }
                pieces = []
                frames.append(.subcomponent(number))
            case .subcomponent, .escape:
                throw structureError()
            }
        case .text(let text):
            switch frames.last {
            case .field?, .component?, .subcomponent?: pieces.append(.text(text))
            default:
                guard text.utf8.allSatisfy(XMLTokenizer.isSpace) else { throw structureError() }
            }
        case .end:
            guard let top = frames.popLast() else { return }
            switch top {
            case .field(let number):
                let segment = segments[segments.count - 1]
                let value = leafValue()
                if segment.id == "MSH" && (number == 1 || number == 2) {
                    try setDelimiter(number, value: rawText())
                } else if !value.isEmpty, segment.fields[number]?.last?.isEmpty == true {
                    store(field: number, component: 1, subcomponent: 1, value)
                }
                pieces = []
            case .component(let number):
                if case .field(let field)? = currentField() {
                    let value = leafValue()
                    if !value.isEmpty { store(field: field, component: number, subcomponent: 1, value) }
                }
                pieces = []
            case .subcomponent(let number):
                if case .field(let field)? = currentField(), case .component(let component)? = frames.last {
                    let value = leafValue()
                    if !value.isEmpty { store(field: field, component: component, subcomponent: number, value) }
                }
                pieces = []
            default:
                break
            }
        }
    }

    func currentField() -> Frame? {
        frames.last { if case .field = $0 { true } else { false } }
    }

    mutating func store(field: Int, component: Int, subcomponent: Int, _ value: String) {
        var repetitions = segments[segments.count - 1].fields[field] ?? [[:]]
        repetitions[repetitions.count - 1][component, default: [:]][subcomponent] = value
        segments[segments.count - 1].fields[field] = repetitions
    }

    mutating func setDelimiter(_ number: Int, value: String) throws(HL7Error) {
        if number == 1 { fieldSeparator = value } else { encodingCharacters = value }
        if number == 2 {
            delimiters = try HL7Delimiters(field: fieldSeparator, encodingCharacters: encodingCharacters)
        }
    }

    /// The text of the pending pieces with escapes written back, unescaped (for MSH-1/MSH-2).
    func rawText() -> String {
        pieces.map { if case .text(let text) = $0 { text } else { "" } }.joined().trimmingXMLSpace
    }

    /// Collapses whitespace, trims, and escapes the pending pieces as ER7.
    func leafValue() -> String {
        var parts: [Piece] = []
        for piece in pieces {
            if case .text(let text) = piece, case .text(let previous)? = parts.last {
                parts[parts.count - 1] = .text(previous + text)
            } else {
                parts.append(piece)
            }
        }
        var result = ""
        for (index, piece) in parts.enumerated() {
            switch piece {
            case .escape(let value):
                result +=
                    String(decoding: [delimiters.escape], as: UTF8.self) + value + String(decoding: [delimiters.escape], as: UTF8.self)
            case .text(var text):
                text = text.collapsingXMLSpace
                if index == 0 { text = String(text.drop { $0 == " " }) }
                if index == parts.count - 1 { while text.last == " " { text.removeLast() } }
                result += HL7Escaping.encode(text, delimiters: delimiters)
            }
        }
        return result
    }

    func er7() -> String {
        let field = fieldSeparator
        let repetition = String(decoding: [delimiters.repetition], as: UTF8.self)
        let component = String(decoding: [delimiters.component], as: UTF8.self)
        let subcomponent = delimiters.subcomponent == 0 ? component : String(decoding: [delimiters.subcomponent], as: UTF8.self)
        func joinTrimmed(_ values: [Int: String], _ separator: String) -> String {
            guard let maximum = values.filter({ !$0.value.isEmpty }).keys.max() else { return "" }
            return (1...maximum).map { values[$0] ?? "" }.joined(separator: separator)
        }
        var lines: [String] = []
        for segment in segments {
            var fields: [Int: String] = [:]
            for (number, repetitions) in segment.fields {
                let texts = repetitions.map { components in
                    joinTrimmed(components.mapValues { joinTrimmed($0, subcomponent) }, component)
                }
                fields[number] = texts.count == 1 ? texts[0] : texts.joined(separator: repetition)
            }
            var line = segment.id
            if segment.id == "MSH" && lines.isEmpty {
                line += field + encodingCharacters
                fields[1] = nil
                fields[2] = nil
                if let maximum = fields.filter({ !$0.value.isEmpty }).keys.max(), maximum >= 3 {
                    line += field + (3...maximum).map { fields[$0] ?? "" }.joined(separator: field)
                }
            } else {
                let body = joinTrimmed(fields, field)
                if !body.isEmpty { line += field + body }
            }
            lines.append(line)
        }
        return lines.joined(separator: "\r") + "\r"
    }
}

extension String {
    var collapsingXMLSpace: String {
        var result = ""
        var inSpace = false
        for scalar in unicodeScalars {
            if scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" {
                if !inSpace { result.unicodeScalars.append(" ") }
                inSpace = true
            } else {
                result.unicodeScalars.append(scalar)
                inSpace = false
            }
        }
        return result
    }

    var trimmingXMLSpace: String {
        let collapsed = collapsingXMLSpace
        return String(collapsed.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
