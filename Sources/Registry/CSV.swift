import Foundation

/// An RFC 4180 reader over a byte stream: quoted fields with doubled quotes and line breaks,
/// CRLF or LF records, a UTF-8 byte-order mark. It never holds more than one record beyond the
/// buffered chunk, so a million-row file streams in constant memory.
public struct CSVReader {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case notUTF8(line: Int)
        case unterminatedQuote(line: Int)
        case recordTooLong(line: Int)

        public var description: String {
            switch self {
            case .notUTF8(let line): "line \(line) is not UTF-8"
            case .unterminatedQuote(let line): "a quoted field opened on line \(line) never closes"
            case .recordTooLong(let line): "the record on line \(line) is longer than 64 KiB"
            }
        }
    }

    private let next: () throws -> [UInt8]?
    private var buffer: [UInt8] = []
    private var position = 0
    private var finished = false
    private var atStart = true
    /// The line the next record starts on (1-based), for error reports.
    public private(set) var line = 1

    static let maximumRecordBytes = 64 * 1024

    /// `next` returns the next chunk of the file, or nil at its end.
    public init(chunks next: @escaping () throws -> [UInt8]?) {
        self.next = next
    }

    public init(fileHandle: FileHandle) {
        self.init(chunks: {
            let data = fileHandle.readData(ofLength: 1 << 20)
            return data.isEmpty ? nil : Array(data)
        })
    }

    /// The next record's fields with the line it started on, or nil at the end of the input.
    mutating func nextRecord() throws -> (line: Int, fields: [String])? {
        var fields: [String] = []
        var field: [UInt8] = []
        var quoted = false
        var sawAnything = false
        let start = line
        var consumed = 0
        while true {
            if position >= buffer.count {
                if finished { break }
                guard let chunk = try next() else {
                    finished = true
                    continue
                }
                buffer = Array(buffer[position...]) + chunk
                position = 0
                continue
            }
            let byte = buffer[position]
            position += 1
            consumed += 1
            if consumed > Self.maximumRecordBytes { throw Failure.recordTooLong(line: start) }
            sawAnything = true
            if quoted {
                if byte == UInt8(ascii: "\"") {
                    if position >= buffer.count, !finished {
                        // Need one more byte to tell a doubled quote from a closing one.
                        position -= 1
                        consumed -= 1
                        if let chunk = try next() {
                            buffer = Array(buffer[position...]) + chunk
                            position = 0
                        } else {
                            finished = true
                        }
                        continue
                    }
                    if position < buffer.count, buffer[position] == UInt8(ascii: "\"") {
                        field.append(byte)
                        position += 1
                    } else {
                        quoted = false
                    }
                } else {
                    if byte == UInt8(ascii: "\n") { line += 1 }
                    field.append(byte)
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                if field.isEmpty { quoted = true } else { field.append(byte) }
            case UInt8(ascii: ","):
                fields.append(try text(field, start))
                field = []
            case UInt8(ascii: "\r"):
                continue
            case UInt8(ascii: "\n"):
                line += 1
                fields.append(try text(field, start))
                return (start, fields)
            default:
                field.append(byte)
            }
        }
        if quoted { throw Failure.unterminatedQuote(line: start) }
        guard sawAnything else { return nil }
        fields.append(try text(field, start))
        return (start, fields)
    }

    /// The next record (a UTF-8 byte-order mark before the first dropped), or nil at the end.
    public mutating func record() throws -> (line: Int, fields: [String])? {
        guard var first = try nextRecord() else { return nil }
        if atStart {
            atStart = false
            if first.fields[0].hasPrefix("\u{FEFF}") { first.fields[0].removeFirst() }
        }
        return first
    }

    private func text(_ bytes: [UInt8], _ line: Int) throws -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw Failure.notUTF8(line: line) }
        return text
    }
}
