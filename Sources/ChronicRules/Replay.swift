/// A dry run or backtest: replays a resident's stored history through a rule set as if each
/// reading had arrived when it was measured, with the sweep run at a fixed interval, and says
/// which alerts would have been raised. An alert stays open (later firings join it) until a
/// clinician would have closed it, `closeAfterDays` after it was raised.
public struct ReplayOptions: Sendable, Equatable {
    public var closeAfterDays: Int
    public var sweepEveryHours: Int

    public init(closeAfterDays: Int = 7, sweepEveryHours: Int = 24) {
        self.closeAfterDays = closeAfterDays
        self.sweepEveryHours = sweepEveryHours
    }
}

public struct ReplayedAlert: Sendable, Equatable {
    public var rule: Int
    public var raisedAt: Int64
    /// Positions in the history of the readings that raised it.
    public var evidence: [Int]
}

/// One enrolment as the replay sees it: its programme, when it began, its follow-up interval
/// and the face-to-face follow-ups done (sorted).
public struct ReplayEnrolment: Sendable, Equatable {
    public var programme: String
    public var enrolledAt: Int64
    public var followUpDays: Int?
    public var followUps: [Int64]

    public init(programme: String, enrolledAt: Int64, followUpDays: Int?, followUps: [Int64] = []) {
        self.programme = programme
        self.enrolledAt = enrolledAt
        self.followUpDays = followUpDays
        self.followUps = followUps
    }

    func state(at time: Int64) -> EnrolmentState {
        let last = followUps.last(where: { $0 <= time }) ?? enrolledAt
        return EnrolmentState(programme: programme, enrolledAt: enrolledAt, followUpDue: followUpDays.map { last + Int64($0) * 86_400 })
    }
}

extension RuleEngine {
    /// Alerts the rule set would have raised for one resident between `from` and `to`.
    public func replay(
        history: [Reading], enrolments: [ReplayEnrolment], from: Int64, to: Int64, options: ReplayOptions = ReplayOptions()
    ) -> [ReplayedAlert] {
        var openUntil: [Int: Int64] = [:]
        var raised: [ReplayedAlert] = []
        let closeAfter = Int64(options.closeAfterDays) * 86_400
        func fire(_ firing: Firing, at time: Int64) {
            if let until = openUntil[firing.rule], until > time { return }
            openUntil[firing.rule] = time + closeAfter
            raised.append(ReplayedAlert(rule: firing.rule, raisedAt: time, evidence: firing.evidence))
        }
        let allRules = rules(for: enrolments.map(\.programme))
        let lastEnrolment = enrolments.map(\.enrolledAt).max() ?? .min
        let step = Int64(max(1, options.sweepEveryHours)) * 3600
        var nextSweep = from + step
        history.withUnsafeBufferPointer { buffer in
            var index = 0
            while index < buffer.count && buffer[index].time < from { index += 1 }
            func sweep(until limit: Int64) {
                while nextSweep <= limit && nextSweep <= to {
                    // The sweep sees only what was measured before it ran.
                    var end = index
                    while end > 0 && buffer[end - 1].time > nextSweep { end -= 1 }
                    let seen = UnsafeBufferPointer(rebasing: buffer[0..<end])
                    for enrolment in enrolments where enrolment.enrolledAt <= nextSweep {
                        for firing in self.sweep(history: seen, enrolment: enrolment.state(at: nextSweep), now: nextSweep) {
                            fire(firing, at: nextSweep)
                        }
                    }
                    nextSweep += step
                }
            }
            while index < buffer.count && buffer[index].time <= to {
                sweep(until: buffer[index].time)
                let time = buffer[index].time
                let active =
                    time >= lastEnrolment ? allRules : rules(for: enrolments.filter { $0.enrolledAt <= time }.map(\.programme))
                for firing in evaluate(history: buffer, at: index, rules: active, now: time) {
                    fire(firing, at: time)
                }
                index += 1
            }
            sweep(until: to)
        }
        return raised
    }
}
