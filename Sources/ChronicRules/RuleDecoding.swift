/// Rules are data: the JSON in `schemas/rules/` decodes into these values, and a rule that makes
/// no sense (a count over a window condition, a threshold without a measure) is refused when the
/// set is loaded, with the rule's id, not when it first fires.
public struct RuleSetError: Error, Equatable, CustomStringConvertible {
    public var rule: String?
    public var reason: String

    public init(rule: String?, _ reason: String) {
        self.rule = rule
        self.reason = reason
    }

    public var description: String { rule.map { "rule \($0): \(reason)" } ?? reason }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Condition: Decodable {
    struct ThresholdBody: Decodable {
        var measure: Measure
        var op: Comparison
        var value: Double
    }

    struct CountBody: Decodable {
        var of: Condition
        var atLeast: Int
        var lastReadings: Int?
        var withinDays: Int?
    }

    struct DaysBody: Decodable {
        var of: Condition
        var days: Int
    }

    struct TrendBody: Decodable {
        var measure: Measure
        var days: Int
        var risesBy: Double
        var minimumReadings: Int?
    }

    struct AbsenceBody: Decodable {
        var days: Int
        var measures: [Measure]?
    }

    struct OverdueBody: Decodable {
        var graceDays: Int?
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        guard container.allKeys.count == 1, let key = container.allKeys.first else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "a condition is an object with exactly one key"))
        }
        func invalid(_ reason: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: decoder.codingPath + [key], debugDescription: reason))
        }
        switch key.stringValue {
        case "threshold":
            let body = try container.decode(ThresholdBody.self, forKey: key)
            guard body.value.isFinite else { throw invalid("value must be a number") }
            self = .threshold(body.measure, body.op, body.value)
        case "count":
            let body = try container.decode(CountBody.self, forKey: key)
            guard body.of.isReadingCondition else { throw invalid("count.of must look at one reading (threshold, all, any)") }
            guard (1...10_000).contains(body.atLeast) else { throw invalid("atLeast must be from 1 to 10000") }
            guard body.lastReadings != nil || body.withinDays != nil else { throw invalid("give lastReadings, withinDays or both") }
            if let last = body.lastReadings, last < body.atLeast || last > 10_000 {
                throw invalid("lastReadings must be from atLeast to 10000")
            }
            if let days = body.withinDays, !(1...3660).contains(days) { throw invalid("withinDays must be from 1 to 3660") }
            self = .count(of: body.of, atLeast: body.atLeast, lastReadings: body.lastReadings, withinDays: body.withinDays)
        case "consecutiveDays":
            let body = try container.decode(DaysBody.self, forKey: key)
            guard body.of.isReadingCondition else { throw invalid("consecutiveDays.of must look at one reading (threshold, all, any)") }
            guard (1...366).contains(body.days) else { throw invalid("days must be from 1 to 366") }
            self = .consecutiveDays(of: body.of, days: body.days)
        case "trend":
            let body = try container.decode(TrendBody.self, forKey: key)
            guard (1...183).contains(body.days) else { throw invalid("days must be from 1 to 183") }
            guard body.risesBy.isFinite else { throw invalid("risesBy must be a number") }
            let minimum = body.minimumReadings ?? 2
            guard (1...10_000).contains(minimum) else { throw invalid("minimumReadings must be from 1 to 10000") }
            self = .trend(body.measure, days: body.days, risesBy: body.risesBy, minimumReadings: minimum)
        case "absence":
            let body = try container.decode(AbsenceBody.self, forKey: key)
            guard (1...3660).contains(body.days) else { throw invalid("days must be from 1 to 3660") }
            self = .absence(days: body.days, measures: MeasureSet(body.measures ?? []))
        case "followUpOverdue":
            let body = try container.decode(OverdueBody.self, forKey: key)
            guard (0...3660).contains(body.graceDays ?? 0) else { throw invalid("graceDays must be from 0 to 3660") }
            self = .followUpOverdue(graceDays: body.graceDays ?? 0)
        case "all", "any":
            let parts = try container.decode([Condition].self, forKey: key)
            guard !parts.isEmpty else { throw invalid("\(key.stringValue) needs at least one condition") }
            self = key.stringValue == "all" ? .all(parts) : .any(parts)
        default:
            throw invalid(
                "unknown condition \(key.stringValue.prefix(40)): expected threshold, count, consecutiveDays, trend, absence, followUpOverdue, all or any"
            )
        }
    }
}

extension Rule: Decodable {
    enum CodingKeys: String, CodingKey {
        case id, version, programme, severity, message, when, enabled, group
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let id = try container.decode(String.self, forKey: .id)
        guard id.utf8.count <= 64, !id.isEmpty,
            id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") })
        else {
            throw DecodingError.dataCorruptedError(forKey: .id, in: container, debugDescription: "rule ids are 1–64 letters, digits, - _ .")
        }
        let version = try container.decodeIfPresent(Int.self, forKey: .version) ?? 1
        guard (1...1_000_000).contains(version) else {
            throw DecodingError.dataCorruptedError(forKey: .version, in: container, debugDescription: "version must be from 1 to 1000000")
        }
        self.init(
            id: id, version: version,
            programme: try container.decode(String.self, forKey: .programme),
            severity: try container.decode(Severity.self, forKey: .severity),
            message: try container.decode(LocalizedMessage.self, forKey: .message),
            condition: try container.decode(Condition.self, forKey: .when),
            enabled: try container.decodeIfPresent(Bool.self, forKey: .enabled) ?? true,
            group: try container.decodeIfPresent(String.self, forKey: .group))
    }
}

extension RuleSet: Decodable {
    enum CodingKeys: String, CodingKey {
        case version, staleAfterHours, historyDays, escalation, rules
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let escalation = try container.decodeIfPresent([String: Escalation].self, forKey: .escalation) ?? [:]
        var bySeverity: [Severity: Escalation] = [:]
        for (name, rule) in escalation {
            guard let severity = Severity(rawValue: name) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .escalation, in: container, debugDescription: "unknown severity \(name.prefix(20))")
            }
            guard (1...525_600).contains(rule.afterMinutes) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .escalation, in: container, debugDescription: "afterMinutes must be from 1 to 525600 (a year)")
            }
            bySeverity[severity] = rule
        }
        self.init(
            version: try container.decode(String.self, forKey: .version),
            staleAfterHours: try container.decodeIfPresent(Int.self, forKey: .staleAfterHours) ?? 72,
            historyDays: try container.decodeIfPresent(Int.self, forKey: .historyDays) ?? 90, escalation: bySeverity,
            rules: try container.decode([Rule].self, forKey: .rules))
    }

    /// Checks what one rule cannot see alone: ids unique, programmes known.
    public func validate(programmes: Set<String>) throws(RuleSetError) {
        var seen: Set<String> = []
        for rule in rules {
            guard seen.insert(rule.id).inserted else { throw RuleSetError(rule: rule.id, "the id is used twice") }
            guard programmes.contains(rule.programme) else {
                throw RuleSetError(rule: rule.id, "programme \(rule.programme.prefix(40)) is not configured")
            }
            if rule.needsSweep && rule.condition.usesReadings {
                throw RuleSetError(rule: rule.id, "a rule is decided either by readings or by the sweep, not both")
            }
        }
        guard (1...8_784).contains(staleAfterHours), (1...3660).contains(historyDays) else {
            throw RuleSetError(rule: nil, "staleAfterHours must be from 1 to 8784 and historyDays from 1 to 3660")
        }
    }
}
