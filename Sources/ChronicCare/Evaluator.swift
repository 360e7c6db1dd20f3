import ChronicRules
import Foundation
import Logging
import PostgresNIO
import Storage

/// An active enrolment as evaluation needs it.
struct ActiveEnrolment: Sendable {
    var id: UUID
    var resident: UUID
    var programme: String
    var facility: String
    var enrolledAt: Date
    var followUpDue: Date?
}

/// A stored reading, in the order of a resident's history.
struct HistoryRow: Sendable {
    var id: UUID
    var reading: Reading
}

/// An alert about to be raised or joined.
struct AlertDraft: Sendable {
    var resident: UUID
    var enrolment: UUID
    var programme: String
    var rule: Rule
    var facility: String
    var evidence: [UUID]
}

public struct RaisedAlert: Sendable, Codable, Equatable {
    public var id: String
    public var resident: String
    public var rule: String
    public var severity: String
    /// False when the firing joined an alert already open for the resident and rule.
    public var new: Bool
}

/// Evaluation shared by ingest, the evaluator of readings from the record and the sweep: load
/// enrolments and history, run the engine, raise or join alerts with their outbox rows.
struct Evaluator: Sendable {
    let configuration: MonitoringConfiguration
    let logger: Logger

    var engine: RuleEngine { configuration.engine }

    /// The most readings of one resident an evaluation loads (90 days of a reading every half hour).
    static let maximumHistory = 5_000

    /// Serialises evaluation per resident: two batches for one resident would otherwise each miss
    /// the other's readings in a window. Sorted, so that batches never wait on each other in a cycle.
    func lock(_ residents: [UUID], on connection: PostgresConnection) async throws {
        let keys = Set(residents).map(\.lowercased).sorted()
        guard !keys.isEmpty else { return }
        try await connection.query(
            "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 8))) FROM unnest(\(keys)::text[]) AS k", logger: logger)
    }

    func enrolments(_ residents: [UUID], on connection: PostgresConnection) async throws -> [UUID: [ActiveEnrolment]] {
        guard !residents.isEmpty else { return [:] }
        let rows = try await connection.query(
            """
            SELECT id, resident_id, programme, facility, enrolled_at, next_follow_up_due FROM chronic_care.enrolments
            WHERE resident_id = ANY(\(Array(Set(residents)))::uuid[]) AND status = 'active'
            """, logger: logger)
        var result: [UUID: [ActiveEnrolment]] = [:]
        for try await (id, resident, programme, facility, enrolled, due) in rows.decode((UUID, UUID, String, String, Date, Date?).self) {
            result[resident, default: []].append(
                ActiveEnrolment(
                    id: id, resident: resident, programme: programme, facility: facility, enrolledAt: enrolled, followUpDue: due))
        }
        return result
    }

    /// Each resident's readings measured since `since`, oldest first.
    func history(_ since: [UUID: Date], on connection: PostgresConnection) async throws -> [UUID: [HistoryRow]] {
        guard !since.isEmpty else { return [:] }
        let residents = Array(since.keys)
        let times = residents.map { since[$0]!.timeIntervalSince1970 }
        let rows = try await connection.query(
            """
            SELECT r.resident_id, r.id, extract(epoch FROM r.measured_at)::float8, r.utc_offset_minutes::int4, r.systolic, r.diastolic,
                   r.heart_rate, r.value, r.type
            FROM unnest(\(residents)::uuid[], \(times)::float8[]) AS q(resident, since)
            -- One index range per resident: a plain join lets the planner hash-join a scan of the
            -- whole table once it holds more than a few batches.
            CROSS JOIN LATERAL (
                SELECT * FROM chronic_care.readings
                WHERE resident_id = q.resident AND measured_at >= to_timestamp(q.since)
                ORDER BY measured_at, id LIMIT \(Self.maximumHistory)) AS r
            ORDER BY r.resident_id, r.measured_at, r.id
            """, logger: logger)
        var result: [UUID: [HistoryRow]] = [:]
        for try await (resident, id, time, offset, systolic, diastolic, heartRate, value, type) in rows.decode(
            (UUID, UUID, Double, Int32, Double?, Double?, Double?, Double?, String).self)
        {
            var values = Values()
            if let systolic { values[.systolic] = systolic }
            if let diastolic { values[.diastolic] = diastolic }
            if let heartRate { values[.heartRate] = heartRate }
            if let value, let measure = ReadingType(rawValue: type)?.measure { values[measure] = value }
            result[resident, default: []].append(
                HistoryRow(id: id, reading: Reading(time: Int64(time.rounded(.down)), utcOffset: offset * 60, values: values)))
        }
        return result
    }

    /// Evaluates newly stored readings (by resident: their ids, and the oldest measured time
    /// among them) and raises what fires.
    func evaluate(new: [UUID: (ids: Set<UUID>, oldest: Date)], now: Date, on connection: PostgresConnection) async throws -> [RaisedAlert] {
        let enrolled = try await enrolments(Array(new.keys), on: connection)
        guard !enrolled.isEmpty else { return [] }
        // History reaches back from each resident's oldest new reading as far as the rules look.
        let lookback = TimeInterval(max(1, engine.ruleSet.lookbackDays)) * 86_400 + 86_400
        var since: [UUID: Date] = [:]
        for (resident, readings) in new where enrolled[resident] != nil { since[resident] = readings.oldest - lookback }
        let histories = try await history(since, on: connection)
        var drafts: [AlertDraft] = []
        let nowSeconds = Int64(now.timeIntervalSince1970)
        for (resident, rows) in histories {
            guard let enrolments = enrolled[resident], let fresh = new[resident]?.ids else { continue }
            let readings = rows.map(\.reading)
            let programmes = engine.rules(for: enrolments.map(\.programme))
            var firings: [Firing] = []
            readings.withUnsafeBufferPointer { buffer in
                var sawLate = false
                for (index, row) in rows.enumerated() where fresh.contains(row.id) {
                    firings += engine.evaluate(history: buffer, at: index, rules: programmes, now: nowSeconds)
                    if index < rows.count - 1 { sawLate = true }
                }
                // A late reading may complete a window that ends at the latest reading.
                if sawLate {
                    firings += engine.evaluate(
                        history: buffer, at: rows.count - 1, rules: programmes, now: nowSeconds, windowRulesOnly: true)
                }
            }
            for firing in firings {
                let rule = engine.rules[firing.rule]
                guard let enrolment = enrolments.first(where: { $0.programme == rule.programme }) else { continue }
                drafts.append(
                    AlertDraft(
                        resident: resident, enrolment: enrolment.id, programme: rule.programme, rule: rule, facility: enrolment.facility,
                        evidence: firing.evidence.map { rows[$0].id }))
            }
        }
        return try await raise(drafts, on: connection)
    }

    /// Raises new alerts, or joins the open one for the same resident and rule, and writes an
    /// outbox row for each new alert, in one statement.
    func raise(_ drafts: [AlertDraft], on connection: PostgresConnection) async throws -> [RaisedAlert] {
        guard !drafts.isEmpty else { return [] }
        // One row per resident and rule: an upsert cannot touch the same alert twice.
        var merged: [String: AlertDraft] = [:]
        var order: [String] = []
        for draft in drafts {
            let key = draft.resident.lowercased + "/" + draft.rule.id
            if var existing = merged[key] {
                existing.evidence += draft.evidence.filter { !existing.evidence.contains($0) }
                merged[key] = existing
            } else {
                merged[key] = draft
                order.append(key)
            }
        }
        let rows = order.map { merged[$0]! }
        let ids = rows.map { _ in UUID.timeOrdered() }
        let residents = rows.map(\.resident)
        let enrolments = rows.map(\.enrolment)
        let programmes = rows.map(\.programme)
        let rules = rows.map(\.rule.id)
        let versions = rows.map(\.rule.version)
        let severities = rows.map(\.rule.severity.rawValue)
        let facilities = rows.map(\.facility)
        let evidence = rows.map { $0.evidence.suffix(20).map(\.lowercased).joined(separator: ",") }
        let result = try await connection.query(
            """
            WITH input AS (
                SELECT * FROM unnest(\(ids)::uuid[], \(residents)::uuid[], \(enrolments)::uuid[], \(programmes)::text[], \(rules)::text[],
                                     \(versions)::int4[], \(severities)::text[], \(facilities)::text[], \(evidence)::text[])
                    AS i(id, resident, enrolment, programme, rule, version, severity, facility, evidence)
            ), upserted AS (
                INSERT INTO chronic_care.alerts AS a (id, resident_id, enrolment_id, programme, rule_id, rule_version, rule_set_version,
                                                      severity, facility, reading_ids)
                SELECT id, resident, enrolment, programme, rule, version, \(engine.ruleSet.version), severity, facility,
                       coalesce(string_to_array(nullif(evidence, ''), ',')::uuid[], '{}')
                FROM input
                ON CONFLICT (resident_id, rule_id) WHERE status <> 'closed' DO UPDATE
                    SET trigger_count = a.trigger_count + 1, last_triggered_at = now(),
                        reading_ids = (SELECT coalesce(array_agg(x ORDER BY o), '{}') FROM (
                            SELECT x, o FROM unnest(a.reading_ids || EXCLUDED.reading_ids) WITH ORDINALITY AS u(x, o)
                            ORDER BY o DESC LIMIT 50) AS kept)
                RETURNING a.id, (xmax = 0) AS inserted, a.resident_id, a.rule_id, a.severity, a.facility, a.programme
            ), notified AS (
                INSERT INTO chronic_care.outbox (topic, facility, payload)
                SELECT 'alert.raised', facility, jsonb_build_object('alert', id, 'resident', resident_id, 'programme', programme,
                                                                    'rule', rule_id, 'severity', severity)
                FROM upserted WHERE inserted
            )
            SELECT id, inserted, resident_id, rule_id, severity FROM upserted
            """, logger: logger)
        var raised: [RaisedAlert] = []
        for try await (id, inserted, resident, rule, severity) in result.decode((UUID, Bool, UUID, String, String).self) {
            raised.append(RaisedAlert(id: id.lowercased, resident: resident.lowercased, rule: rule, severity: severity, new: inserted))
        }
        return raised
    }
}
