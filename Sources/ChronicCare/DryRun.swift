import Access
import ChronicRules
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

public struct DryRunRequest: Sendable {
    /// A rule set to try (the JSON of `schemas/rules/chronic-rules.json`); the current one when nil.
    public var ruleSet: RuleSet?
    public var from: Date?
    public var to: Date?
    public var programme: String?
    public var closeAfterDays: Int?

    public init(ruleSet: RuleSet?, from: Date?, to: Date?, programme: String?, closeAfterDays: Int?) {
        self.ruleSet = ruleSet
        self.from = from
        self.to = to
        self.programme = programme
        self.closeAfterDays = closeAfterDays
    }
}

public struct DryRunReport: Sendable, Codable, Equatable {
    public struct RuleCount: Sendable, Codable, Equatable {
        public var rule: String
        public var programme: String
        public var severity: String
        public var alerts: Int
        public var residents: Int
        /// Alerts per 1,000 residents enrolled in the rule's programme per week.
        public var perThousandPerWeek: Double
    }

    public struct Example: Sendable, Codable, Equatable {
        public var rule: String
        public var resident: String
        public var raisedAt: Date
        public var readings: [String]
    }

    public var ruleSetVersion: String
    public var from: Date
    public var to: Date
    public var residents: Int
    public var readings: Int
    public var rules: [RuleCount]
    public var examples: [Example]
}

public struct RuleSummary: Sendable, Codable, Equatable {
    public var id: String
    public var version: Int
    public var programme: String
    public var severity: String
    public var enabled: Bool
    public var decidedBy: String
    public var message: LocalizedMessage
}

/// The rule set as the service runs it, and the dry run: a rule set (the current one or a
/// changed one) replayed over a clinic's stored history, reporting what it would have raised.
public struct RuleService: Sendable {
    public static let maximumResidents = 20_000
    let client: PostgresClient
    let configuration: MonitoringConfiguration
    let logger: Logger

    public init(client: PostgresClient, configuration: MonitoringConfiguration, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    public var version: String { configuration.engine.ruleSet.version }

    public func list() -> [RuleSummary] {
        configuration.engine.rules.map {
            RuleSummary(
                id: $0.id, version: $0.version, programme: $0.programme, severity: $0.severity.rawValue, enabled: $0.enabled,
                decidedBy: $0.needsSweep ? "sweep" : "reading", message: $0.message)
        }
    }

    public var programmes: [Programme] { configuration.programmes }

    public func dryRun(_ request: DryRunRequest, by principal: Principal, requestID: String?, now: Date = Date()) async throws
        -> DryRunReport
    {
        let facility = try ManagedAccess.clinic(principal)
        var ruleSet = configuration.engine.ruleSet
        if let proposed = request.ruleSet {
            ruleSet = proposed
            do { try ruleSet.validate(programmes: Set(configuration.programmes.map(\.code))) } catch {
                throw ChronicCareError.ruleSet(error.description)
            }
        }
        let engine = RuleEngine(ruleSet: ruleSet)
        let to = request.to ?? now
        let from = request.from ?? to.addingTimeInterval(-90 * 86_400)
        guard from < to, to.timeIntervalSince(from) <= 366 * 86_400 else {
            throw ChronicCareError.invalid(field: "from", reason: "the range must run forward and span at most 366 days")
        }
        let closeAfter = request.closeAfterDays ?? 7
        guard (1...90).contains(closeAfter) else { throw ChronicCareError.invalid(field: "closeAfterDays", reason: "must be from 1 to 90") }
        if let programme = request.programme, configuration.programme(programme) == nil {
            throw ChronicCareError.invalid(field: "programme", reason: "is not a configured programme")
        }
        let lookback = TimeInterval(engine.ruleSet.lookbackDays + 1) * 86_400
        return try await client.withConnection { connection in
            let enrolmentRows = try await connection.query(
                """
                SELECT e.resident_id, e.programme, e.enrolled_at, e.follow_up_days,
                       coalesce(array_agg(extract(epoch FROM f.performed_at)::float8 ORDER BY f.performed_at)
                                FILTER (WHERE f.id IS NOT NULL), '{}')
                FROM chronic_care.enrolments e
                LEFT JOIN chronic_care.follow_ups f ON f.enrolment_id = e.id AND f.kind = 'face-to-face'
                WHERE e.facility = \(facility) AND e.status = 'active' AND (\(request.programme)::text IS NULL OR e.programme = \(request.programme))
                GROUP BY e.id ORDER BY e.resident_id LIMIT \(Self.maximumResidents * 3)
                """, logger: logger)
            var enrolments: [UUID: [ReplayEnrolment]] = [:]
            let start = Int64(from.timeIntervalSince1970)
            for try await (resident, programme, enrolled, days, followUps) in enrolmentRows.decode(
                (UUID, String, Date, Int?, [Double]).self)
            {
                enrolments[resident, default: []].append(
                    ReplayEnrolment(
                        programme: programme, enrolledAt: min(Int64(enrolled.timeIntervalSince1970), start), followUpDays: days,
                        followUps: followUps.map { Int64($0) }))
            }
            let residents = Array(enrolments.keys.sorted { $0.uuidString < $1.uuidString }.prefix(Self.maximumResidents))
            var counts: [Int: (alerts: Int, residents: Set<UUID>)] = [:]
            var examples: [DryRunReport.Example] = []
            var readingCount = 0
            let evaluator = Evaluator(configuration: configuration, logger: logger)
            for chunk in stride(from: 0, to: residents.count, by: 500).map({ Array(residents[$0..<min($0 + 500, residents.count)]) }) {
                let histories = try await evaluator.history(
                    Dictionary(uniqueKeysWithValues: chunk.map { ($0, from.addingTimeInterval(-lookback)) }), on: connection)
                for resident in chunk {
                    let rows = (histories[resident] ?? []).filter { $0.reading.time <= Int64(to.timeIntervalSince1970) }
                    readingCount += rows.count { $0.reading.time >= start }
                    let replayed = engine.replay(
                        history: rows.map(\.reading), enrolments: enrolments[resident] ?? [], from: start,
                        to: Int64(to.timeIntervalSince1970),
                        options: ReplayOptions(closeAfterDays: closeAfter))
                    for alert in replayed {
                        counts[alert.rule, default: (0, [])].alerts += 1
                        counts[alert.rule, default: (0, [])].residents.insert(resident)
                        if examples.count < 50 {
                            examples.append(
                                DryRunReport.Example(
                                    rule: engine.rules[alert.rule].id, resident: resident.lowercased,
                                    raisedAt: Date(timeIntervalSince1970: TimeInterval(alert.raisedAt)),
                                    readings: alert.evidence.map { rows[$0].id.lowercased }))
                        }
                    }
                }
            }
            let weeks = max(to.timeIntervalSince(from) / (7 * 86_400), 1.0 / 7)
            var byProgramme: [String: Int] = [:]
            for resident in residents { for enrolment in enrolments[resident] ?? [] { byProgramme[enrolment.programme, default: 0] += 1 } }
            let rules = engine.rules.enumerated().filter { $0.element.enabled }.map { index, rule in
                let count = counts[index] ?? (0, [])
                let enrolled = max(byProgramme[rule.programme] ?? 0, 1)
                return DryRunReport.RuleCount(
                    rule: rule.id, programme: rule.programme, severity: rule.severity.rawValue, alerts: count.alerts,
                    residents: count.residents.count,
                    perThousandPerWeek: (Double(count.alerts) * 1000 / Double(enrolled) / weeks * 100).rounded() / 100)
            }
            try await ResidentAudit(registry: nil, purpose: "monitoring", logger: logger).record(
                principal, "chronic.rules.dry-run", resident: nil, resource: "rules/dry-run?residents=\(residents.count)",
                requestID: requestID, on: connection)
            return DryRunReport(
                ruleSetVersion: ruleSet.version, from: from, to: to, residents: residents.count, readings: readingCount, rules: rules,
                examples: examples)
        }
    }
}
