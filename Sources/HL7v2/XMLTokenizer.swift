/// A small, strict XML reader for HL7 v2 XML: elements, attributes, text, the five named
/// entities and numeric references, CDATA, comments, processing instructions and the XML
/// declaration. DTDs are refused (`.xmlDoctype`), so no entity can be declared or fetched.
/// Iterative (no recursion); nesting depth and input size are bounded.
struct XMLTokenizer {
    enum Event {
        /// Local name (any `prefix:` dropped) and attributes.
        case start(String, [(String, String)])
        case end(String)
        case text(String)
    }

    static func events(_ bytes: [UInt8], maxDepth: Int, maxBytes: Int) throws(HL7Error) -> [Event] {
        guard bytes.count <= maxBytes else { throw HL7Error(.xmlTooLarge, HL7Location(byteOffset: maxBytes)) }
        var reader = XMLTokenizer(bytes: bytes)
        return try reader.run(maxDepth: maxDepth)
    }

    let bytes: [UInt8]
    var index = 0

    func fail(_ code: HL7Error.Code = .xmlMalformed) -> HL7Error { HL7Error(code, HL7Location(byteOffset: index)) }

    func starts(with text: String) -> Bool {
        var offset = index
        for byte in text.utf8 {
            guard offset < bytes.count, bytes[offset] == byte else { return false }
            offset += 1
        }
        return true
    }

    /// Moves past the next occurrence of `terminator`; throws if there is none.
    mutating func skip(past terminator: String) throws(HL7Error) -> Range<Int> {
        let start = index
        let pattern = Array(terminator.utf8)
        while index + pattern.count <= bytes.count {
            if bytes[index] == pattern[0] && Array(bytes[index..<(index + pattern.count)]) == pattern {
                let range = start..<index
                index += pattern.count
                return range
            }
            index += 1
        }
        throw fail()
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    static func isNameByte(_ byte: UInt8) -> Bool {
        byte >= 0x80 || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":")
    }

    mutating func name() throws(HL7Error) -> String {
        let start = index
        while index < bytes.count && Self.isNameByte(bytes[index]) { index += 1 }
        guard index > start else { throw fail() }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    mutating func skipSpace() {
        while index < bytes.count && Self.isSpace(bytes[index]) { index += 1 }
    }

    static func localName(_ name: String) -> String {
        guard let colon = name.lastIndex(of: ":") else { return name }
        return String(name[name.index(after: colon)...])
    }

    /// Resolves entity and character references in text or an attribute value.
    func unescape(_ range: Range<Int>) throws(HL7Error) -> String {
        let slice = bytes[range]
        guard slice.contains(UInt8(ascii: "&")) else { return String(decoding: slice, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(slice.count)
        var position = range.lowerBound
        while position < range.upperBound {
            let byte = bytes[position]
            guard byte == UInt8(ascii: "&") else {
                out.append(byte)
                position += 1
                continue
            }
            guard let semicolon = bytes[position..<min(range.upperBound, position + 12)].firstIndex(of: UInt8(ascii: ";")) else {
                throw HL7Error(.xmlMalformed, HL7Location(byteOffset: position))
            }
            let entity = String(decoding: bytes[(position + 1)..<semicolon], as: UTF8.self)
            switch entity {
            case "lt": out.append(UInt8(ascii: "<"))
            case "gt": out.append(UInt8(ascii: ">"))
            case "amp": out.append(UInt8(ascii: "&"))
            case "quot": out.append(UInt8(ascii: "\""))
            case "apos": out.append(UInt8(ascii: "'"))
            default:
                var digits = Substring(entity)
                var radix = 10
                guard digits.first == "#" else { throw HL7Error(.xmlMalformed, HL7Location(byteOffset: position)) }
                digits = digits.dropFirst()
                if digits.first == "x" || digits.first == "X" {
                    radix = 16
                    digits = digits.dropFirst()
                }
                guard let value = UInt32(digits, radix: radix), let scalar = Unicode.Scalar(value), value != 0 else {
                    throw HL7Error(.xmlMalformed, HL7Location(byteOffset: position))
                }
                appendUTF8(scalar.value, to: &out)
            }
            position = semicolon + 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    mutating func run(maxDepth: Int) throws(HL7Error) -> [Event] {
        var events: [Event] = []
        var open: [String] = []
        var sawRoot = false
        if starts(with: "\u{FEFF}") { index += 3 }
        while index < bytes.count {
            if bytes[index] != UInt8(ascii: "<") {
                let start = index
                while index < bytes.count && bytes[index] != UInt8(ascii: "<") { index += 1 }
                if open.isEmpty {
                    guard bytes[start..<index].allSatisfy(Self.isSpace) else {
                        throw HL7Error(.xmlMalformed, HL7Location(byteOffset: start))
                    }
                } else {
                    events.append(.text(try unescape(start..<index)))
                }
                continue
            }
            if starts(with: "<!--") {
                index += 4
                _ = try skip(past: "-->")
            } else if starts(with: "<![CDATA[") {
                guard !open.isEmpty else { throw fail() }
                index += 9
                let range = try skip(past: "]]>")
                events.append(.text(String(decoding: bytes[range], as: UTF8.self)))
            } else if starts(with: "<!") {
                // DOCTYPE, ENTITY and friends: never processed, so a DTD can neither expand nor fetch.
                throw fail(.xmlDoctype)
            } else if starts(with: "<?") {
                index += 2
                _ = try skip(past: "?>")
            } else if starts(with: "</") {
                index += 2
                let name = Self.localName(try name())
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ">"), let last = open.last, last == name else { throw fail() }
                index += 1
                open.removeLast()
                events.append(.end(name))
            } else {
                index += 1
                let name = Self.localName(try name())
                guard !(open.isEmpty && sawRoot) else { throw fail() }
                var attributes: [(String, String)] = []
                var selfClosing = false
                while true {
                    skipSpace()
                    guard index < bytes.count else { throw fail() }
                    if bytes[index] == UInt8(ascii: ">") {
                        index += 1
                        break
                    }
                    if starts(with: "/>") {
                        index += 2
                        selfClosing = true
                        break
                    }
                    let attribute = try self.name()
                    skipSpace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else { throw fail() }
                    index += 1
                    skipSpace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") else { throw fail() }
                    let quote = bytes[index]
                    index += 1
                    let start = index
                    while index < bytes.count && bytes[index] != quote {
                        guard bytes[index] != UInt8(ascii: "<") else { throw fail() }
                        index += 1
                    }
                    guard index < bytes.count else { throw fail() }
                    attributes.append((attribute, try unescape(start..<index)))
                    index += 1
                }
                sawRoot = true
                events.append(.start(name, attributes))
                if selfClosing {
                    events.append(.end(name))
                } else {
                    open.append(name)
                    guard open.count <= maxDepth else { throw fail(.xmlTooDeep) }
                }
            }
        }
        guard open.isEmpty, sawRoot else { throw fail() }
        return events
    }
}
