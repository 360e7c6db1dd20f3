/// An alert's life: raised open; a later firing of its rule joins it; a clinician acknowledges
/// it and closes it with a note; left unacknowledged past its severity's limit it is escalated
/// (once). Closed is final: the next firing raises a new alert.
public enum AlertStatus: String, Sendable, Codable, CaseIterable {
    case open, acknowledged, closed
}

public enum AlertEvent: Sendable, Equatable {
    case triggered
    case acknowledge
    case close(note: String)
    case escalate
}

public enum AlertTransitionError: Error, Equatable, CustomStringConvertible {
    case notAllowed(from: AlertStatus, event: String)
    case noteRequired

    public var description: String {
        switch self {
        case .notAllowed(let from, let event): "an alert that is \(from.rawValue) cannot be \(event)"
        case .noteRequired: "closing an alert needs a note of what was done"
        }
    }
}

public struct AlertState: Sendable, Equatable {
    public var status: AlertStatus
    public var escalated: Bool

    public init(status: AlertStatus = .open, escalated: Bool = false) {
        self.status = status
        self.escalated = escalated
    }

    /// Applies `event`; throws when the event is not allowed in this state.
    public mutating func on(_ event: AlertEvent) throws(AlertTransitionError) {
        switch (status, event) {
        case (.closed, .triggered):
            throw .notAllowed(from: .closed, event: "triggered")
        case (_, .triggered):
            break
        case (.open, .acknowledge):
            status = .acknowledged
        case (_, .acknowledge):
            throw .notAllowed(from: status, event: "acknowledged")
        case (.closed, .close):
            throw .notAllowed(from: .closed, event: "closed")
        case (_, .close(let note)):
            guard !note.trimmingSpaces.isEmpty else { throw .noteRequired }
            status = .closed
        case (.open, .escalate) where !escalated:
            escalated = true
        case (_, .escalate):
            throw .notAllowed(from: status, event: escalated ? "escalated twice" : "escalated")
        }
    }

    /// The statuses an event may start from, for the guarded SQL update.
    public static func allowedFrom(_ event: AlertEvent) -> [AlertStatus] {
        AlertStatus.allCases.filter { status in
            var state = AlertState(status: status)
            return (try? state.on(event)) != nil
        }
    }
}
