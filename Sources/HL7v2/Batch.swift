/// An HL7 batch or file: optional FHS/BHS headers, messages, BTS/FTS trailers, in any nesting the
/// sender wrote, or simply several messages one after another.
///
/// `HL7Message.parse` accepts one message only; use this for files and batches. The wrappers are
/// kept as written, not validated (BTS-1/FTS-1 counts are not checked), so serialising gives back
/// the input with `\r` line ends. A segment other than a wrapper before the first MSH throws
/// `.batchStructure`.
public struct HL7Batch: Sendable {
    public enum Item: Sendable {
        /// A wrapper segment's text as written, with its `\r` terminator and any blank lines after it.
        case wrapper(String)
        case message(HL7Message)
    }

    public var items: [Item]

    public init(items: [Item]) {
        self.items = items
    }

    /// The messages, in order.
    public var messages: [HL7Message] {
        items.compactMap { if case .message(let message) = $0 { message } else { nil } }
    }

    /// All items concatenated as UTF-8 with `\r` line ends.
    public var utf8Bytes: [UInt8] {
        var out: [UInt8] = []
        for item in items {
            switch item {
            case .wrapper(let text): out.append(contentsOf: text.utf8)
            case .message(let message): out.append(contentsOf: message.utf8Bytes)
            }
        }
        return out
    }

    /// Parses a file, batch or run of messages. The charset is detected once, from the first MSH,
    /// exactly as `HL7Message.parse` does; the size limit applies to the whole input.
    public static func parse(_ bytes: [UInt8], options: HL7ParseOptions = HL7ParseOptions()) throws(HL7Error) -> HL7Batch {
        guard bytes.count <= min(options.maxMessageBytes, Int(Int32.max) - 1) else {
            throw HL7Error(.tooLarge, HL7Location(byteOffset: options.maxMessageBytes))
        }
        guard !bytes.isEmpty else { throw HL7Error(.empty) }
        let (utf8, charset) = try CharsetDetection.decode(bytes, defaultCharset: options.defaultCharset)
        let text = ER7Scanner.normalisingLineEnds(utf8)
        var items: [Item] = []
        var messageStart: Int?
        var wrapperStart: Int?
        var lineStart = 0
        var segmentIndex = 0

        func flush(upTo end: Int) throws(HL7Error) {
            if let start = messageStart {
                let message = try HL7Message.parse(decodedUTF8: Array(text[start..<end]), charset: charset, options: options)
                items.append(.message(message))
            } else if let start = wrapperStart {
                items.append(.wrapper(String(decoding: text[start..<end], as: UTF8.self)))
            } else if end > 0 {
                // Leading blank lines: keep them so the bytes survive.
                items.append(.wrapper(String(decoding: text[0..<end], as: UTF8.self)))
            }
            messageStart = nil
            wrapperStart = nil
        }

        while lineStart < text.count {
            var lineEnd = lineStart
            while lineEnd < text.count && text[lineEnd] != ER7Scanner.cr { lineEnd += 1 }
            let line = text[lineStart..<lineEnd]
            if !line.allSatisfy(ER7Scanner.isBlank) {
                let id = line.count >= 3 ? String(decoding: line.prefix(3), as: UTF8.self) : ""
                switch id {
                case "FHS", "BHS", "BTS", "FTS":
                    try flush(upTo: lineStart)
                    wrapperStart = lineStart
                case "MSH":
                    try flush(upTo: lineStart)
                    messageStart = lineStart
                default:
                    if messageStart == nil {
                        throw HL7Error(.batchStructure, HL7Location(segmentIndex: segmentIndex, byteOffset: lineStart))
                    }
                }
                segmentIndex += 1
            }
            lineStart = lineEnd + 1
        }
        try flush(upTo: text.count)
        guard !items.isEmpty else { throw HL7Error(.empty) }
        return HL7Batch(items: items)
    }
}
