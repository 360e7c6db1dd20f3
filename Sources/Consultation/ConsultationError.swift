/// Failures of the consultation module with stable codes; the HTTP edge maps them once.
public enum ConsultationError: Error, Equatable, CustomStringConvertible {
    /// A field that fails validation (422).
    case invalid(field: String, reason: String)
    case notFound(String)
    /// No request the clinician may claim is waiting (404 `queue-empty`).
    case queueEmpty
    /// Not allowed in the current state (409): `consultation-<status>`, `off-duty`, `shift-overlap`.
    case conflict(code: String, detail: String)
    /// Authenticated but not allowed (403): `not-a-clinician`, `not-assigned`, `not-a-participant`.
    case forbidden(code: String, detail: String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "\(field): \(reason)"
        case .notFound(let what): "\(what) was not found"
        case .queueEmpty: "no consultation is waiting in the departments you are on duty in"
        case .conflict(_, let detail), .forbidden(_, let detail): detail
        }
    }
}
