import ChronicRules

/// Failures of the chronic-care module with stable codes; the HTTP edge maps them once.
public enum ChronicCareError: Error, Equatable, CustomStringConvertible {
    case invalid(field: String, reason: String)
    case notFound(String)
    /// The request conflicts with the current state (already enrolled, alert already closed).
    case conflict(code: String, detail: String)
    /// A rule set sent to the dry run that does not load.
    case ruleSet(String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "\(field): \(reason)"
        case .notFound(let what): "\(what) was not found"
        case .conflict(_, let detail): detail
        case .ruleSet(let reason): reason
        }
    }
}
