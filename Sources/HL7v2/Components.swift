/// The decoded components of one field repetition, each a list of subcomponents.
///
/// The data-type helpers (`XPN`, `CX`, …) wrap one of these, so whatever they do not model is
/// kept and written back. Positions are 1-based; absent positions read as "".
public struct HL7Components: Sendable, Hashable {
    /// Components in order, each with its subcomponents in order (decoded text).
    public var values: [[String]]

    public init(_ values: [[String]] = []) {
        self.values = values
    }

    /// Components given as plain strings, one subcomponent each.
    public init(components: [String]) {
        values = components.map { [$0] }
    }

    /// Splits and decodes ER7 text for one repetition.
    public init(er7: String, delimiters: HL7Delimiters = .standard, charset: HL7Charset = .utf8) {
        let bytes = Array(er7.utf8)
        values = Self.split(bytes[...], delimiters: delimiters, charset: charset)
    }

    init(message: HL7Message, range: Range<Int>) {
        values = Self.split(message.utf8Bytes[range], delimiters: message.delimiters, charset: message.charset)
    }

    static func split(_ bytes: ArraySlice<UInt8>, delimiters: HL7Delimiters, charset: HL7Charset) -> [[String]] {
        bytes.split(separator: delimiters.component, omittingEmptySubsequences: false).map { component in
            let subcomponents =
                delimiters.subcomponent == 0
                ? [component] : component.split(separator: delimiters.subcomponent, omittingEmptySubsequences: false)
            return subcomponents.map { HL7Escaping.decode($0, delimiters: delimiters, charset: charset) }
        }
    }

    /// Subcomponent 1 of component `component`; "" when absent.
    public subscript(component: Int) -> String {
        get { self[component, 1] }
        set { self[component, 1] = newValue }
    }

    /// Subcomponent `subcomponent` of component `component`; "" when absent. Setting pads.
    public subscript(component: Int, subcomponent: Int) -> String {
        get {
            guard component >= 1, component <= values.count, subcomponent >= 1, subcomponent <= values[component - 1].count else {
                return ""
            }
            return values[component - 1][subcomponent - 1]
        }
        set {
            guard component >= 1, subcomponent >= 1 else { return }
            while values.count < component { values.append([""]) }
            while values[component - 1].count < subcomponent { values[component - 1].append("") }
            values[component - 1][subcomponent - 1] = newValue
        }
    }

    /// The subcomponents of a component as their own components value (for nested types: HD in CX-4).
    public func nested(_ component: Int) -> HL7Components {
        guard component >= 1, component <= values.count else { return HL7Components() }
        return HL7Components(components: values[component - 1])
    }

    /// Stores a nested type's components as the subcomponents of `component`.
    public mutating func setNested(_ component: Int, _ nested: HL7Components) {
        guard component >= 1 else { return }
        while values.count < component { values.append([""]) }
        // A nested type's own subcomponents cannot be expressed one level down; keep the first.
        values[component - 1] = nested.values.map { $0.first ?? "" }
        if values[component - 1].isEmpty { values[component - 1] = [""] }
    }

    /// Escaped ER7 text, trailing empty components and subcomponents dropped.
    public func er7(delimiters: HL7Delimiters = .standard) -> String {
        var components = values.map { subcomponents -> String in
            var trimmed = subcomponents
            while let last = trimmed.last, last.isEmpty { trimmed.removeLast() }
            let separator = delimiters.subcomponent == 0 ? "" : String(decoding: [delimiters.subcomponent], as: UTF8.self)
            return trimmed.map { HL7Escaping.encode($0, delimiters: delimiters) }.joined(separator: separator)
        }
        while let last = components.last, last.isEmpty { components.removeLast() }
        return components.joined(separator: String(decoding: [delimiters.component], as: UTF8.self))
    }

    /// True when every component is empty.
    public var isEmpty: Bool { values.allSatisfy { $0.allSatisfy(\.isEmpty) } }
}
