import Access
import ChronicRules
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Storage

/// The module's background work: readings that reached the record (HL7, CDA) are evaluated
/// within seconds, unacknowledged alerts are escalated, and the sweep looks for silence and
/// overdue follow-ups. Each step is also callable on demand (tests, `POST /api/v1/rules/sweep`).
public struct MonitoringWorker: Service {
    let client: PostgresClient
    let evaluator: Evaluator
    let alerts: AlertService
    let interval: Duration
    let sweepInterval: Duration
    let logger: Logger

    public init(
        client: PostgresClient, alerts: AlertService, configuration: MonitoringConfiguration, interval: Duration = .seconds(5),
        sweepInterval: Duration = .seconds(3600), logger: Logger
    ) {
        self.client = client
        self.evaluator = Evaluator(configuration: configuration, logger: logger)
        self.alerts = alerts
        self.interval = interval
        self.sweepInterval = sweepInterval
        self.logger = logger
    }

    public func run() async throws {
        var lastSweep = ContinuousClock.now - sweepInterval
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                while try await evaluatePending() > 0 {}
                try await alerts.escalate()
                if ContinuousClock.now - lastSweep >= sweepInterval {
                    let raised = try await sweep()
                    lastSweep = ContinuousClock.now
                    logger.info("chronic-care sweep done", metadata: ["chronic.sweep.alerts": "\(raised)"])
                }
            } catch is CancellationError {
                return
            } catch {
                logger.error("chronic-care worker step failed", metadata: ["error.type": "\(type(of: error))"])
            }
            try? await gracefulShutdown(within: interval)
        }
    }

    func gracefulShutdown(within duration: Duration) async throws {
        try await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    }

    /// Evaluates up to 500 readings that arrived through the record; returns how many.
    @discardableResult
    public func evaluatePending(now: Date = Date()) async throws -> Int {
        try await retryingConflicts {
            try await client.transaction(logger: logger) { connection in
                let rows = try await connection.query(
                    """
                    SELECT id, resident_id, measured_at FROM chronic_care.readings WHERE evaluated_at IS NULL
                    ORDER BY received_at LIMIT 500 FOR UPDATE SKIP LOCKED
                    """, logger: logger)
                var byResident: [UUID: (ids: Set<UUID>, oldest: Date)] = [:]
                var ids: [UUID] = []
                for try await (id, resident, measured) in rows.decode((UUID, UUID, Date).self) {
                    byResident[resident, default: ([], measured)].ids.insert(id)
                    byResident[resident]!.oldest = min(byResident[resident]!.oldest, measured)
                    ids.append(id)
                }
                guard !ids.isEmpty else { return 0 }
                try await evaluator.lock(Array(byResident.keys), on: connection)
                _ = try await evaluator.evaluate(new: byResident, now: now, on: connection)
                try await connection.query(
                    "UPDATE chronic_care.readings SET evaluated_at = now() WHERE id = ANY(\(ids)::uuid[])", logger: logger)
                return ids.count
            }
        }
    }

    /// The absence and follow-up rules over every active enrolment whose programme has them, in
    /// pages of enrolments; returns how many alerts were raised or joined.
    @discardableResult
    public func sweep(now: Date = Date()) async throws -> Int {
        let engine = evaluator.engine
        let programmes = Set(engine.rules.filter { $0.enabled && $0.needsSweep }.map(\.programme))
        guard !programmes.isEmpty else { return 0 }
        // The measures the absence rules ask about: the last reading of each set stands in for
        // the history, which is all an absence condition reads.
        let codes = programmes.sorted()
        let absenceTypes = codes.map { code in
            Self.readingTypes(for: engine.rules.filter { $0.enabled && $0.needsSweep && $0.programme == code }.map(\.measures))
                .joined(separator: ",")
        }
        var after = UUID(uuidString: "00000000-0000-0000-0000-000000000000")!
        var raised = 0
        while true {
            let page = try await client.withConnection { connection in
                let rows = try await connection.query(
                    """
                    SELECT e.id, e.resident_id, e.programme, e.facility, e.enrolled_at, e.next_follow_up_due,
                           extract(epoch FROM last.at)::float8, last.type
                    FROM chronic_care.enrolments e
                    JOIN unnest(\(codes)::text[], \(absenceTypes)::text[]) AS t(programme, types) ON t.programme = e.programme
                    LEFT JOIN LATERAL (
                        SELECT r.measured_at AS at, r.type FROM chronic_care.readings r
                        WHERE r.resident_id = e.resident_id AND r.measured_at <= \(now)
                          AND (t.types = '' OR r.type = ANY(string_to_array(t.types, ',')))
                        ORDER BY r.measured_at DESC LIMIT 1) AS last ON true
                    WHERE e.status = 'active' AND e.id > \(after)
                    ORDER BY e.id LIMIT 2000
                    """, logger: logger)
                var found: [(ActiveEnrolment, Reading?)] = []
                for try await (id, resident, programme, facility, enrolled, due, last, type) in rows.decode(
                    (UUID, UUID, String, String, Date, Date?, Double?, String?).self)
                {
                    var reading: Reading?
                    if let last, let type, let kind = ReadingType(rawValue: type) {
                        var values = Values()
                        if let measure = kind.measure {
                            values[measure] = 1
                        } else {
                            values[.systolic] = 1
                            values[.diastolic] = 1
                            values[.heartRate] = 1
                        }
                        reading = Reading(time: Int64(last), values: values)
                    }
                    found.append(
                        (
                            ActiveEnrolment(
                                id: id, resident: resident, programme: programme, facility: facility, enrolledAt: enrolled, followUpDue: due
                            ), reading
                        ))
                }
                return found
            }
            guard let last = page.last else { break }
            after = last.0.id
            var drafts: [AlertDraft] = []
            let seconds = Int64(now.timeIntervalSince1970)
            for (enrolment, reading) in page {
                let state = EnrolmentState(
                    programme: enrolment.programme, enrolledAt: Int64(enrolment.enrolledAt.timeIntervalSince1970),
                    followUpDue: enrolment.followUpDue.map { Int64($0.timeIntervalSince1970) })
                for firing in engine.sweep(history: reading.map { [$0] } ?? [], enrolment: state, now: seconds) {
                    drafts.append(
                        AlertDraft(
                            resident: enrolment.resident, enrolment: enrolment.id, programme: enrolment.programme,
                            rule: engine.rules[firing.rule],
                            facility: enrolment.facility, evidence: []))
                }
            }
            if !drafts.isEmpty {
                let captured = drafts
                raised += try await client.transaction(logger: logger) { connection in
                    try await evaluator.raise(captured, on: connection).count
                }
            }
            if page.count < 2000 { break }
        }
        return raised
    }

    /// The reading types that carry any of the measures (empty: any type at all).
    static func readingTypes(for sets: [MeasureSet]) -> [String] {
        guard !sets.contains(where: \.isEmpty) else { return [] }
        let wanted = MeasureSet(bits: sets.reduce(0) { $0 | $1.bits })
        return ReadingType.allCases.filter { type in
            let carried: MeasureSet = type.measure.map { MeasureSet([$0]) } ?? MeasureSet([.systolic, .diastolic, .heartRate])
            return carried.intersects(wanted)
        }.map(\.rawValue)
    }
}
