/// Where a consultation stands. A transfer is not a status: the request goes back to `queued`
/// in another department.
public enum ConsultationStatus: String, Sendable, Codable, CaseIterable {
    case queued, claimed
    case inProgress = "in-progress"
    case completed, cancelled
}

public enum ConsultationEvent: String, Sendable, Equatable, CaseIterable {
    case claim, accept, transfer, complete, cancel, escalate
}

public enum ConsultationTransitionError: Error, Equatable, CustomStringConvertible {
    case notAllowed(from: ConsultationStatus, event: ConsultationEvent)

    public var description: String {
        switch self {
        case .notAllowed(let from, let event): "a consultation that is \(from.rawValue) cannot be \(event.past)"
        }
    }
}

extension ConsultationEvent {
    var past: String {
        switch self {
        case .claim: "claimed"
        case .accept: "accepted"
        case .transfer: "transferred"
        case .complete: "completed"
        case .cancel: "cancelled"
        case .escalate: "escalated"
        }
    }
}

/// The consultation's rules as a value, tested without SQL: queued → claimed → in-progress →
/// completed; queued or claimed → cancelled (by the resident); claimed or in-progress →
/// transferred, which is queued again in another department; a queued request is escalated once.
public struct ConsultationState: Sendable, Equatable {
    public var status: ConsultationStatus
    public var escalated: Bool

    public init(status: ConsultationStatus = .queued, escalated: Bool = false) {
        self.status = status
        self.escalated = escalated
    }

    /// Applies `event`; throws when the event is not allowed in this state.
    public mutating func on(_ event: ConsultationEvent) throws(ConsultationTransitionError) {
        switch (status, event) {
        case (.queued, .claim): status = .claimed
        case (.claimed, .accept): status = .inProgress
        case (.inProgress, .complete): status = .completed
        case (.queued, .cancel), (.claimed, .cancel): status = .cancelled
        case (.claimed, .transfer), (.inProgress, .transfer): status = .queued
        case (.queued, .escalate) where !escalated: escalated = true
        default: throw .notAllowed(from: status, event: event)
        }
    }

    /// The statuses an event may start from, for the guarded SQL update.
    public static func allowedFrom(_ event: ConsultationEvent) -> [ConsultationStatus] {
        ConsultationStatus.allCases.filter { status in
            var state = ConsultationState(status: status)
            return (try? state.on(event)) != nil
        }
    }
}
