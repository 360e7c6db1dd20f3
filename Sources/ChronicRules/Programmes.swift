/// A chronic-disease programme (hypertension, type 2 diabetes, coronary heart disease, or any
/// other configured in `schemas/rules/programmes.json`).
public struct Programme: Sendable, Equatable, Decodable {
    public var code: String
    public var name: LocalizedMessage
    /// ICD-10 codes and ranges that qualify a resident: "E11", "I10-I15", "I20-I25".
    public var diagnoses: [String]
    /// Days between face-to-face follow-ups (the national standard asks four a year: 90).
    public var followUpDays: Int?
    /// What residents in the programme are asked to measure at home.
    public var measures: [Measure]

    public init(code: String, name: LocalizedMessage, diagnoses: [String], followUpDays: Int?, measures: [Measure]) {
        self.code = code
        self.name = name
        self.diagnoses = diagnoses
        self.followUpDays = followUpDays
        self.measures = measures
    }

    /// The code prefixes a diagnosis must start with, ranges expanded: "I10-I15" → I10 … I15.
    /// A code matches a prefix on category boundaries: I10 matches "I10" and "I10.x", not "I100".
    public func diagnosisPrefixes() throws(RuleSetError) -> [String] {
        var prefixes: [String] = []
        for item in diagnoses {
            let parts = item.uppercased().split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            guard parts.count <= 2, parts.allSatisfy(Self.isCategory) else {
                throw RuleSetError(rule: nil, "programme \(code): \(item.prefix(20)) is not an ICD-10 code or range (E11, I10-I15)")
            }
            guard parts.count == 2 else {
                prefixes.append(parts[0])
                continue
            }
            let (low, high) = (parts[0], parts[1])
            guard low.first == high.first, low.count == 3, high.count == 3, let from = Int(low.dropFirst()), let to = Int(high.dropFirst()),
                from <= to
            else {
                throw RuleSetError(rule: nil, "programme \(code): a range runs between categories of one letter (I10-I15)")
            }
            for number in from...to {
                prefixes.append("\(low.first!)\(number < 10 ? "0" : "")\(number)")
            }
        }
        return prefixes
    }

    /// An ICD-10 category (A00) or subcategory (E11.9, B18.1).
    static func isCategory(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count >= 3, (65...90).contains(bytes[0]), bytes[1...2].allSatisfy({ (48...57).contains($0) }) else { return false }
        if bytes.count == 3 { return true }
        return bytes[3] == 46 && bytes.count > 4 && bytes[4...].allSatisfy { (48...57).contains($0) || (65...90).contains($0) }
    }

    /// Whether a diagnosis code qualifies for the programme.
    public static func qualifies(_ code: String, prefixes: [String]) -> Bool {
        let normalized = code.uppercased()
        return prefixes.contains { prefix in
            normalized == prefix || normalized.hasPrefix(prefix + ".") || (prefix.contains(".") && normalized.hasPrefix(prefix))
        }
    }
}
