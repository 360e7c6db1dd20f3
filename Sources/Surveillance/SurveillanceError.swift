/// Surveillance failures with stable codes; the HTTP edge maps them to problems.
public enum SurveillanceError: Error, Equatable, CustomStringConvertible {
    case invalid(field: String, reason: String)
    case notFound(String)
    /// A field the caller's role or approvals do not allow them to export.
    case restricted(field: String, reason: String)
    case conflict(code: String, detail: String)
    /// The case definitions file does not load.
    case definitions(String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "\(field): \(reason)"
        case .notFound(let what): "\(what) was not found"
        case .restricted(let field, let reason): "\(field): \(reason)"
        case .conflict(_, let detail): detail
        case .definitions(let reason): reason
        }
    }
}
