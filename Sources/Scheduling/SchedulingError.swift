import Access
import Foundation

/// Failures of the appointments module with stable codes; every refusal of a booking rule says
/// which rule (the code) and, where it helps the caller, when to come back.
public enum SchedulingError: Error, Equatable, CustomStringConvertible {
    case invalid(field: String, reason: String)
    case notFound(String)
    /// A booking rule or a state transition refused the request; `code` names the rule.
    case refused(code: String, detail: String, retryAt: Date? = nil)
    /// Too many attempts from one resident or one client; try again after the given seconds.
    case rateLimited(scope: String, retryAfterSeconds: Int)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "\(field): \(reason)"
        case .notFound(let what): "\(what) was not found"
        case .refused(_, let detail, _): detail
        case .rateLimited(let scope, let seconds): "too many booking attempts for this \(scope); try again in \(seconds) s"
        }
    }

    static func notReleased(_ releaseAt: Date) -> SchedulingError {
        .refused(
            code: "slot-not-released",
            detail: "this slot opens to the public at \(Timestamp.iso(releaseAt)); requests before then are refused, not queued",
            retryAt: releaseAt)
    }

    static let full = SchedulingError.refused(
        code: "slot-full", detail: "no place left in this slot; join its waiting list to be booked if one is freed")
}

enum Timestamp {
    static func iso(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false).timeZone(separator: .omitted))
    }
}

extension Principal {
    /// The resident a patient token acts for, as an id.
    func ownResident() throws -> UUID {
        guard let resident, let id = UUID(uuidString: resident) else { throw AccessError.forbidden("the token acts for no resident") }
        return id
    }

    /// The facility a HIS or clinician client is bound to.
    func boundFacility() throws -> String {
        guard let facility else { throw AccessError.forbidden("the client is not bound to a facility") }
        return facility
    }
}
