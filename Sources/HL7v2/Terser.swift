/// A terser-style location in a message.
///
/// Grammar (no spaces; numbers are decimal, 1-based, at most 6 digits):
///
///     path        = segment-id [ "(" occurrence ")" ] "-" field [ "(" repetition ")" ]
///                   [ "." component [ "." subcomponent ] ]
///     segment-id  = upper-letter 2( upper-letter / digit )      ; PID, OBX, ZPI, IN1
///
/// Examples: `PID-3(2).1` (component 1 of the second PID-3 repetition), `OBX(3)-5` (OBX-5 of the
/// third OBX), `MSH-9.2`, `PID-5.1.1` (a subcomponent), `ZPI-2`. Occurrence and repetition
/// default to 1. Reading a path without a component reads component 1, subcomponent 1 (as HAPI's
/// terser does); writing one replaces the whole repetition. MSH-1 is the field separator and
/// MSH-2 the encoding characters, so MSH field numbers are one higher than the split position.
public struct HL7Path: Sendable, Hashable, CustomStringConvertible {
    public var segmentID: String
    public var occurrence: Int
    public var field: Int
    public var repetition: Int
    public var component: Int?
    public var subcomponent: Int?

    public init(
        segmentID: String, occurrence: Int = 1, field: Int, repetition: Int = 1, component: Int? = nil, subcomponent: Int? = nil
    ) {
        self.segmentID = segmentID
        self.occurrence = occurrence
        self.field = field
        self.repetition = repetition
        self.component = component
        self.subcomponent = subcomponent
    }

    /// Parses the grammar above; throws `.malformedPath` (with the offending character's
    /// offset in `location.byteOffset`) for anything else.
    public init(_ text: String) throws(HL7Error) {
        let bytes = Array(text.utf8)
        var index = 0
        func fail() -> HL7Error { HL7Error(.malformedPath, HL7Location(byteOffset: index)) }
        func number() throws(HL7Error) -> Int {
            var value = 0
            var digits = 0
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                digits += 1
                index += 1
                guard digits <= 6 else { throw fail() }
            }
            guard digits > 0, value >= 1 else { throw fail() }
            return value
        }
        func expect(_ character: Character) throws(HL7Error) {
            guard index < bytes.count, bytes[index] == character.asciiValue! else { throw fail() }
            index += 1
        }
        func parenthesised() throws(HL7Error) -> Int? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "(") else { return nil }
            index += 1
            let value = try number()
            try expect(")")
            return value
        }
        guard bytes.count >= 5 else { throw fail() }
        for position in 0..<3 {
            index = position
            guard ER7Scanner.isSegmentIDByte(bytes[position], first: position == 0) else { throw fail() }
        }
        index = 3
        segmentID = String(decoding: bytes[0..<3], as: UTF8.self)
        occurrence = try parenthesised() ?? 1
        try expect("-")
        field = try number()
        repetition = try parenthesised() ?? 1
        component = nil
        subcomponent = nil
        if index < bytes.count {
            try expect(".")
            component = try number()
            if index < bytes.count {
                try expect(".")
                subcomponent = try number()
            }
        }
        guard index == bytes.count else { throw fail() }
    }

    public var description: String {
        var text = segmentID
        if occurrence != 1 { text += "(\(occurrence))" }
        text += "-\(field)"
        if repetition != 1 { text += "(\(repetition))" }
        if let component { text += ".\(component)" }
        if let subcomponent { text += ".\(subcomponent)" }
        return text
    }
}

extension HL7Message {
    /// Writes `value` (plain text, escaped here) at `path`, adding empty fields, repetitions and
    /// components as needed. Nil or empty clears the element. The segment must exist; MSH-1 and
    /// MSH-2 cannot be written. Costs one pass over the message (it is re-indexed).
    public mutating func set(_ path: HL7Path, to value: String?) throws(HL7Error) {
        try setER7(path, to: HL7Escaping.encode(value ?? "", delimiters: delimiters))
    }

    /// `set(_:to:)` with a path given as text.
    public mutating func set(_ path: String, to value: String?) throws(HL7Error) {
        try set(try HL7Path(path), to: value)
    }

    /// Writes already-escaped ER7 text at `path`. It may hold separators below the path's level
    /// (components in a repetition, for example) but no field separator and no line end.
    public mutating func setER7(_ path: HL7Path, to er7: String) throws(HL7Error) {
        let location = HL7Location(segmentID: path.segmentID, segmentSequence: path.occurrence, field: path.field)
        guard let position = segmentPosition(path.segmentID, occurrence: path.occurrence) else {
            throw HL7Error(.segmentNotFound, location)
        }
        if isHeader(position) && path.field <= 2 { throw HL7Error(.readOnlyField, location) }
        let delimiters = self.delimiters
        let newBytes = Array(er7.utf8)
        guard !newBytes.contains(where: { $0 == delimiters.field || $0 < 0x20 && $0 != UInt8(ascii: "\t") }) else {
            throw HL7Error(.invalidValue, location)
        }
        // Explode the field to repetitions > components > subcomponents, edit, and join again.
        let oldRange = fieldRange(position: position, field: path.field)
        let old = oldRange.map { Array(utf8Bytes[$0]) } ?? []
        var repetitions = old.split(separator: delimiters.repetition, omittingEmptySubsequences: false).map {
            $0.split(separator: delimiters.component, omittingEmptySubsequences: false).map { Array($0) }
        }
        func pad<T>(_ array: inout [T], to count: Int, with empty: T) {
            while array.count < count { array.append(empty) }
        }
        pad(&repetitions, to: path.repetition, with: [[]])
        if let component = path.component {
            var components = repetitions[path.repetition - 1]
            pad(&components, to: component, with: [])
            if let subcomponent = path.subcomponent, delimiters.subcomponent != 0 {
                var subcomponents = components[component - 1].split(separator: delimiters.subcomponent, omittingEmptySubsequences: false)
                    .map { Array($0) }
                pad(&subcomponents, to: subcomponent, with: [])
                subcomponents[subcomponent - 1] = newBytes
                components[component - 1] = Array(subcomponents.joined(separator: [delimiters.subcomponent]))
            } else {
                components[component - 1] = newBytes
            }
            repetitions[path.repetition - 1] = components
        } else {
            repetitions[path.repetition - 1] = [newBytes]
        }
        let joined = Array(
            repetitions.map { Array($0.joined(separator: [delimiters.component])) }.joined(separator: [delimiters.repetition]))
        let trimmed = Self.trimmingTrailingSeparators(joined, delimiters: delimiters)
        var bytes = utf8Bytes
        if let oldRange {
            bytes.replaceSubrange(oldRange, with: trimmed)
        } else {
            let segmentEnd = segmentRange(position: position).upperBound
            let missing = path.field - fieldCount(at: position)
            var insertion = [UInt8](repeating: delimiters.field, count: missing)
            insertion.append(contentsOf: trimmed)
            bytes.insert(contentsOf: insertion, at: segmentEnd)
        }
        try reindex(bytes)
    }

    /// Drops empty trailing repetitions/components/subcomponents that an edit left behind.
    static func trimmingTrailingSeparators(_ bytes: [UInt8], delimiters: HL7Delimiters) -> [UInt8] {
        var result = bytes
        while let last = result.last,
            last == delimiters.repetition || last == delimiters.component
                || (delimiters.subcomponent != 0 && last == delimiters.subcomponent)
        {
            result.removeLast()
        }
        return result
    }

    mutating func reindex(_ bytes: [UInt8]) throws(HL7Error) {
        index = try ER7Scanner.index(bytes)
        utf8Bytes = bytes
    }

    /// Appends a segment given as ER7 text (`ZPI|1|…`, with this message's delimiters). It must
    /// have a valid ID other than MSH and no line end. The message keeps a final `\r`.
    public mutating func appendSegment(_ er7: String) throws(HL7Error) {
        let newBytes = Array(er7.utf8)
        let location = HL7Location(segmentIndex: segmentCount)
        guard newBytes.count >= 3, !newBytes.contains(where: { $0 < 0x20 && $0 != UInt8(ascii: "\t") }) else {
            throw HL7Error(.invalidValue, location)
        }
        var bytes = utf8Bytes
        if let last = bytes.last, last != ER7Scanner.cr { bytes.append(ER7Scanner.cr) }
        bytes.append(contentsOf: newBytes)
        bytes.append(ER7Scanner.cr)
        try reindex(bytes)
    }

    /// Appends a segment built from an ID and field values (plain text, escaped here).
    public mutating func appendSegment(_ id: String, fields: [String]) throws(HL7Error) {
        let separator = String(decoding: [delimiters.field], as: UTF8.self)
        let escaped = fields.map { HL7Escaping.encode($0, delimiters: delimiters) }
        try appendSegment(([id] + escaped).joined(separator: separator))
    }
}
