import Aberration
import Access
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Storage

/// Early warning: the configured methods over every disease × county series of daily counts
/// (by onset date), raising signals that CDC staff take through new → investigating →
/// confirmed outbreak or dismissed. Each new signal writes an outbox row for the county CDC.
public struct SignalService: Sendable {
    let client: PostgresClient
    let surveillance: SurveillanceService
    let logger: Logger

    /// Each run re-reads this many recent days: a case reported today may have its onset days ago.
    public static let lookbackDays = 7

    public init(client: PostgresClient, surveillance: SurveillanceService, logger: Logger) {
        self.client = client
        self.surveillance = surveillance
        self.logger = logger
    }

    var definitions: CaseDefinitions { surveillance.definitions }

    public struct RunSummary: Codable, Sendable, Equatable {
        public let evaluatedOn: String
        public let series: Int
        public let evaluations: Int
        public let alarms: Int
        public let signalsRaised: Int
        public let seconds: Double
    }

    /// The days of history the configured methods need before the first evaluated day.
    var historyDays: Int {
        let needs = definitions.signalMethods.map { Aberration.minimumFirstIndex($0.method, parameters: $0.parameters) }
        // The definitions refuse parameters that need more than ten years.
        return min(needs.max() ?? 1, 3700) + Self.lookbackDays
    }

    /// Evaluates the days up to `day` (a local date) for every series with cases in the history.
    public func run(day: Date, trigger: String = "request") async throws -> RunSummary {
        let started = Date()
        let start = day.addingTimeInterval(-Double(historyDays - 1) * 86_400)
        let length = historyDays
        var series: [SeriesKey: [Int]] = [:]
        let rows = try await client.query(
            """
            SELECT disease, division, (onset_date - \(CaseFilter.format(start))::date)::int4, count(*)::int4
            FROM surveillance.cases
            WHERE onset_date BETWEEN \(CaseFilter.format(start))::date AND \(CaseFilter.format(day))::date
              AND division IS NOT NULL AND review_status <> 'excluded'
            GROUP BY 1, 2, 3
            """, logger: logger)
        for try await (disease, division, offset, count) in rows.decode((String, String, Int32, Int32).self) {
            series[SeriesKey(disease: disease, division: division), default: [Int](repeating: 0, count: length)][Int(offset)] = Int(count)
        }
        var alarms: [Alarm] = []
        var evaluations = 0
        let fixed = definitions.fixedThreshold
        for (key, counts) in series {
            for (method, parameters) in definitions.signalMethods {
                let first = max(Aberration.minimumFirstIndex(method, parameters: parameters), length - Self.lookbackDays + 1)
                guard first <= length else { continue }
                let points = try Aberration.detect(method, counts: counts, range: first...length, parameters: parameters)
                evaluations += points.count
                for point in points where point.alarm {
                    alarms.append(
                        Alarm(
                            key: key, method: method.rawValue, day: start.addingTimeInterval(Double(point.index - 1) * 86_400),
                            observed: point.observed, upperbound: point.upperbound))
                }
            }
            if let fixed, fixed.diseases.contains(key.disease) {
                for index in (length - Self.lookbackDays)..<length where counts[index] >= fixed.count {
                    evaluations += 1
                    alarms.append(
                        Alarm(
                            key: key, method: "FIXED", day: start.addingTimeInterval(Double(index) * 86_400), observed: counts[index],
                            upperbound: Double(fixed.count - 1)))
                }
            }
        }
        let raised = try await record(alarms)
        try await surveillance.refreshPopulation()
        let summary = RunSummary(
            evaluatedOn: CaseFilter.format(day), series: series.count, evaluations: evaluations, alarms: alarms.count,
            signalsRaised: raised, seconds: (Date().timeIntervalSince(started) * 1000).rounded() / 1000)
        try await client.query(
            """
            INSERT INTO surveillance.signal_runs (evaluated_on, started_at, series, alarms, signals_raised, trigger)
            VALUES (\(CaseFilter.format(day))::date, \(started), \(series.count), \(alarms.count), \(raised), \(trigger))
            """, logger: logger)
        logger.info(
            "signal run finished",
            metadata: [
                "surveillance.series": "\(series.count)", "surveillance.alarms": "\(alarms.count)",
                "surveillance.signals": "\(raised)", "surveillance.seconds": "\(summary.seconds)",
            ])
        return summary
    }

    struct SeriesKey: Hashable {
        let disease: String
        let division: String
    }

    struct Alarm {
        let key: SeriesKey
        let method: String
        let day: Date
        let observed: Int
        let upperbound: Double?
    }

    /// Alarms not seen before join the series' open signal or open a new one (with its outbox
    /// row), in one statement so two runs at once cannot both open a signal.
    func record(_ alarms: [Alarm]) async throws -> Int {
        guard !alarms.isEmpty else { return 0 }
        struct Row: Encodable {
            let disease: String
            let division: String
            let method: String
            let day: String
            let observed: Int
            let upperbound: Double?
        }
        let json = String(
            decoding: try JSONEncoder().encode(
                alarms.map {
                    Row(
                        disease: $0.key.disease, division: $0.key.division, method: $0.method, day: CaseFilter.format($0.day),
                        observed: $0.observed, upperbound: $0.upperbound?.isFinite == true ? $0.upperbound : nil)
                }), as: UTF8.self)
        return try await client.transaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext('surveillance.signals'))", logger: logger)
            let rows = try await connection.query(
                """
                WITH incoming AS (
                    SELECT * FROM jsonb_to_recordset(\(json)::jsonb)
                        AS x(disease text, division text, method text, day date, observed int, upperbound float8)
                    WHERE NOT EXISTS (SELECT 1 FROM surveillance.signal_alarms a
                                      WHERE a.disease = x.disease AND a.division = x.division AND a.method = x.method AND a.alarm_on = x.day)
                ), latest AS (
                    SELECT DISTINCT ON (disease, division, method) * FROM incoming ORDER BY disease, division, method, day DESC
                ), first AS (
                    SELECT disease, division, method, min(day) AS day FROM incoming GROUP BY 1, 2, 3
                ), opened AS (
                    INSERT INTO surveillance.signals (id, disease, division, method, first_alarm_on, last_alarm_on, observed, upperbound)
                    SELECT gen_random_uuid(), l.disease, l.division, l.method, f.day, l.day, l.observed, l.upperbound
                    FROM latest l JOIN first f USING (disease, division, method)
                    ON CONFLICT (disease, division, method) WHERE status IN ('new', 'investigating') DO UPDATE
                        SET last_alarm_on = greatest(surveillance.signals.last_alarm_on, EXCLUDED.last_alarm_on),
                            observed = CASE WHEN EXCLUDED.last_alarm_on >= surveillance.signals.last_alarm_on
                                            THEN EXCLUDED.observed ELSE surveillance.signals.observed END,
                            upperbound = CASE WHEN EXCLUDED.last_alarm_on >= surveillance.signals.last_alarm_on
                                              THEN EXCLUDED.upperbound ELSE surveillance.signals.upperbound END,
                            updated_at = now()
                    RETURNING id, disease, division, method, first_alarm_on, observed, upperbound, (xmax = 0) AS created
                ), alarmed AS (
                    INSERT INTO surveillance.signal_alarms (disease, division, method, alarm_on, signal_id, observed, upperbound)
                    SELECT i.disease, i.division, i.method, i.day, o.id, i.observed, i.upperbound
                    FROM incoming i JOIN opened o USING (disease, division, method)
                    ON CONFLICT DO NOTHING RETURNING 1
                ), notified AS (
                    INSERT INTO surveillance.outbox (topic, division, payload)
                    SELECT 'signal.raised', division,
                           jsonb_build_object('signal', id, 'disease', disease, 'division', division, 'method', method,
                                              'firstAlarmOn', first_alarm_on, 'observed', observed, 'upperbound', upperbound)
                    FROM opened WHERE created RETURNING 1
                )
                SELECT (SELECT count(*) FROM notified)::int4, (SELECT count(*) FROM alarmed)::int4
                """, logger: logger)
            guard let row = try await rows.collect().first else { return 0 }
            let (raised, _) = try row.decode((Int32, Int32).self)
            return Int(raised)
        }
    }
}

/// Runs the signal job once a day at a local time, for the day just ended, on one instance.
public struct SignalWorker: Service {
    let signals: SignalService
    /// Minutes after local midnight.
    let runAtMinute: Int
    let logger: Logger

    public init(signals: SignalService, runAtMinute: Int, logger: Logger) {
        self.signals = signals
        self.runAtMinute = runAtMinute
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let now = Date()
            let local = now.addingTimeInterval(8 * 3600)
            let minuteOfDay = Int(local.timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400) / 60)
            let wait = ((runAtMinute - minuteOfDay + 1440) % 1440) * 60 + 1
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(wait)) }
            guard !Task.isShuttingDownGracefully && !Task.isCancelled else { return }
            let yesterday = CaseFilter.startOfDay(Date()).addingTimeInterval(-86_400)
            do {
                let done = try await signals.client.query(
                    "SELECT 1 FROM surveillance.signal_runs WHERE evaluated_on = \(CaseFilter.format(yesterday))::date AND trigger = 'schedule'",
                    logger: logger
                ).collect()
                if done.isEmpty { _ = try await signals.run(day: yesterday, trigger: "schedule") }
            } catch {
                logger.error("signal run failed", metadata: ["error": "\(String(describing: error).prefix(200))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(61)) }
        }
    }
}
