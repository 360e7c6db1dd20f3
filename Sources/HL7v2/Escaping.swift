/// HL7 escape sequences, between two escape characters (`\` in `|^~\&`).
///
/// Decoding replaces `\F\ \S\ \T\ \R\ \E\` (and `\P\`, the v2.7 truncation character) with the
/// delimiter they stand for and `\Xhh…\` with the bytes it spells, read in the message's charset
/// (kept literally if they are not valid text there, or not an even number of hex digits).
/// Formatting and charset sequences (`\.br\`, `\.sp\`, `\.in±n\`, `\.ti±n\`, `\.sk n\`, `\.ce\`,
/// `\.fi\`, `\.nf\`, `\H\`, `\N\`, `\Cxxyy\`, `\Mxxyyzz\`, `\Zxx\`) and anything unknown are
/// kept literally, escape characters included. An escape character with no closing one is kept
/// literally. Decoding is one forward pass with no recursion.
public enum HL7Escaping {
    /// Decodes escaped ER7 text (one component or subcomponent's worth) to plain text.
    public static func decode(_ er7: String, delimiters: HL7Delimiters = .standard, charset: HL7Charset = .utf8) -> String {
        decode(Array(er7.utf8)[...], delimiters: delimiters, charset: charset)
    }

    /// Escapes plain text for ER7: delimiters and the escape character become escape sequences,
    /// control characters (line ends included) become `\Xhh\`. With `preservingFormatting`,
    /// well-formed formatting sequences in the text (as `decode` keeps them) pass through unescaped.
    public static func encode(_ text: String, delimiters: HL7Delimiters = .standard, preservingFormatting: Bool = false) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8)
        var index = 0
        func emit(_ letter: Character) {
            out.append(delimiters.escape)
            out.append(contentsOf: String(letter).utf8)
            out.append(delimiters.escape)
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == delimiters.escape {
                if preservingFormatting, let close = bytes[(index + 1)...].firstIndex(of: delimiters.escape),
                    case .keep = classify(bytes[(index + 1)..<close], delimiters: delimiters),
                    !bytes[(index + 1)..<close].contains(where: { isSpecial($0, delimiters) })
                {
                    out.append(contentsOf: bytes[index...close])
                    index = close + 1
                    continue
                }
                emit("E")
            } else if byte == delimiters.field {
                emit("F")
            } else if byte == delimiters.component {
                emit("S")
            } else if byte == delimiters.repetition {
                emit("R")
            } else if delimiters.subcomponent != 0 && byte == delimiters.subcomponent {
                emit("T")
            } else if delimiters.truncation != 0 && byte == delimiters.truncation {
                emit("P")
            } else if byte < 0x20 || byte == 0x7F {
                out.append(delimiters.escape)
                out.append(UInt8(ascii: "X"))
                out.append(hexDigit(byte >> 4))
                out.append(hexDigit(byte & 0x0F))
                out.append(delimiters.escape)
            } else {
                out.append(byte)
            }
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A byte that may never appear unescaped inside a passed-through sequence.
    static func isSpecial(_ byte: UInt8, _ delimiters: HL7Delimiters) -> Bool {
        byte < 0x20 || byte == 0x7F || byte == delimiters.field || byte == delimiters.component || byte == delimiters.repetition
            || (delimiters.subcomponent != 0 && byte == delimiters.subcomponent)
            || (delimiters.truncation != 0 && byte == delimiters.truncation)
    }

    static func hexDigit(_ value: UInt8) -> UInt8 { value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "A") + value - 10 }

    enum Sequence {
        case delimiter(UInt8)
        case hex([UInt8])
        /// A formatting, charset or unknown sequence: kept as written.
        case keep
    }

    /// What the text between two escape characters means.
    static func classify(_ body: ArraySlice<UInt8>, delimiters: HL7Delimiters? = nil) -> Sequence {
        guard let first = body.first else { return .keep }
        if body.count == 1, let delimiters {
            switch first {
            case UInt8(ascii: "F"): return .delimiter(delimiters.field)
            case UInt8(ascii: "S"): return .delimiter(delimiters.component)
            case UInt8(ascii: "T"): return delimiters.subcomponent != 0 ? .delimiter(delimiters.subcomponent) : .keep
            case UInt8(ascii: "R"): return .delimiter(delimiters.repetition)
            case UInt8(ascii: "E"): return .delimiter(delimiters.escape)
            case UInt8(ascii: "P"): return delimiters.truncation != 0 ? .delimiter(delimiters.truncation) : .keep
            default: return .keep
            }
        }
        if first == UInt8(ascii: "X") && body.count >= 3 && (body.count - 1) % 2 == 0 {
            var bytes: [UInt8] = []
            bytes.reserveCapacity((body.count - 1) / 2)
            var index = body.startIndex + 1
            while index < body.endIndex {
                guard let high = hexValue(body[index]), let low = hexValue(body[index + 1]) else { return .keep }
                bytes.append(high << 4 | low)
                index += 2
            }
            return .hex(bytes)
        }
        return .keep
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// A piece of escaped text: literal UTF-8 bytes, or a sequence kept as written (its body).
    enum Piece {
        case text([UInt8])
        case kept(ArraySlice<UInt8>)
    }

    /// Splits escaped text into decoded text runs and kept sequences, in one forward pass.
    /// With `keepingControlHex`, `\Xhh\` sequences that decode to control characters are kept
    /// (XML cannot carry them as text).
    static func pieces(
        _ er7: ArraySlice<UInt8>, delimiters: HL7Delimiters, charset: HL7Charset, keepingControlHex: Bool = false
    ) -> [Piece] {
        var pieces: [Piece] = []
        var text: [UInt8] = []
        text.reserveCapacity(er7.count)
        var index = er7.startIndex
        let escape = delimiters.escape
        while index < er7.endIndex {
            let byte = er7[index]
            guard byte == escape, let close = er7[(index + 1)...].firstIndex(of: escape) else {
                if byte == escape {
                    // Unterminated: the rest is literal.
                    text.append(contentsOf: er7[index...])
                    break
                }
                text.append(byte)
                index += 1
                continue
            }
            let body = er7[(index + 1)..<close]
            switch classify(body, delimiters: delimiters) {
            case .delimiter(let delimiter):
                text.append(delimiter)
            case .hex(let bytes):
                if case .success(let decoded) = charset.decodeToUTF8(bytes[...]),
                    !(keepingControlHex && decoded.contains(where: { $0 < 0x20 || $0 == 0x7F }))
                {
                    text.append(contentsOf: decoded)
                } else if keepingControlHex {
                    if !text.isEmpty {
                        pieces.append(.text(text))
                        text = []
                    }
                    pieces.append(.kept(body))
                } else {
                    text.append(contentsOf: er7[index...close])
                }
            case .keep:
                if !text.isEmpty {
                    pieces.append(.text(text))
                    text = []
                }
                pieces.append(.kept(body))
            }
            index = close + 1
        }
        if !text.isEmpty { pieces.append(.text(text)) }
        return pieces
    }

    static func decode(_ er7: ArraySlice<UInt8>, delimiters: HL7Delimiters, charset: HL7Charset) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(er7.count)
        for piece in pieces(er7, delimiters: delimiters, charset: charset) {
            switch piece {
            case .text(let bytes):
                out.append(contentsOf: bytes)
            case .kept(let body):
                out.append(delimiters.escape)
                out.append(contentsOf: body)
                out.append(delimiters.escape)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
