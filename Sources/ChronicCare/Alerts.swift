import Access
import ChronicRules
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

public struct Alert: Sendable, Codable, Equatable {
    public var id: String
    public var resident: String
    public var programme: String
    public var rule: String
    public var ruleVersion: Int
    public var ruleSetVersion: String
    public var severity: String
    public var message: LocalizedMessage?
    public var facility: String
    public var status: String
    public var readings: [String]
    public var triggerCount: Int
    public var raisedAt: Date
    public var lastTriggeredAt: Date
    public var escalatedTo: String?
    public var escalatedAt: Date?
    public var acknowledgedAt: Date?
    public var acknowledgedBy: String?
    public var closedAt: Date?
    public var closedBy: String?
    public var note: String?
}

public struct AlertNote: Sendable, Decodable {
    public var note: String?
}

/// Alerts: the clinic's open list, one alert's detail, acknowledgement and closing, escalation.
public struct AlertService: Sendable {
    let client: PostgresClient
    let registry: ResidentRegistry
    let configuration: MonitoringConfiguration
    let audit: ResidentAudit
    let logger: Logger

    public init(client: PostgresClient, registry: ResidentRegistry, configuration: MonitoringConfiguration, logger: Logger) {
        self.client = client
        self.registry = registry
        self.configuration = configuration
        self.audit = ResidentAudit(registry: registry, purpose: "monitoring", logger: logger)
        self.logger = logger
    }

    static let columns = """
        SELECT id, resident_id, programme, rule_id, rule_version, rule_set_version, severity, facility, status, reading_ids, trigger_count,
               raised_at, last_triggered_at, escalated_to, escalated_at, acknowledged_at, acknowledged_by, closed_at, closed_by, note
        FROM chronic_care.alerts
        """

    func alerts(_ rows: PostgresRowSequence) async throws -> [Alert] {
        var result: [Alert] = []
        for try await row in rows {
            let cells = try row.decode(
                (
                    UUID, UUID, String, String, Int32, String, String, String, String, [UUID], Int32, Date, Date, String?, Date?, Date?,
                    String?, Date?,
                    String?, String?
                ).self)
            result.append(
                Alert(
                    id: cells.0.lowercased, resident: cells.1.lowercased, programme: cells.2, rule: cells.3, ruleVersion: Int(cells.4),
                    ruleSetVersion: cells.5, severity: cells.6,
                    message: configuration.engine.rules.first { $0.id == cells.3 }?.message, facility: cells.7, status: cells.8,
                    readings: cells.9.map(\.lowercased), triggerCount: Int(cells.10), raisedAt: cells.11, lastTriggeredAt: cells.12,
                    escalatedTo: cells.13, escalatedAt: cells.14, acknowledgedAt: cells.15, acknowledgedBy: cells.16, closedAt: cells.17,
                    closedBy: cells.18, note: cells.19))
        }
        return result
    }

    /// A clinic's alerts (its own, and those escalated to it), or a patient's own; newest first.
    public func list(
        status: String?, severity: String?, programme: String?, resident: String?, page: PageRequest, by principal: Principal,
        requestID: String?
    ) async throws -> (alerts: [Alert], nextCursor: String?) {
        if let status, AlertStatus(rawValue: status) == nil {
            throw ChronicCareError.invalid(field: "status", reason: "must be open, acknowledged or closed")
        }
        if let severity, Severity(rawValue: severity) == nil {
            throw ChronicCareError.invalid(field: "severity", reason: "must be low, moderate, high or urgent")
        }
        var facility: String?
        var residentID = try resident.map { try ManagedAccess.uuid($0, "resident") }
        if principal.role == .patient {
            try principal.require(scope: "self.read")
            let own = try ManagedAccess.uuid(principal.resident ?? "", "resident")
            if let residentID, residentID != own { throw AccessError.forbidden("a patient may read only their own alerts") }
            residentID = own
        } else {
            facility = try ManagedAccess.clinic(principal)
        }
        var afterTime = Date.distantFuture
        var afterID = UUID(uuidString: "ffffffff-ffff-ffff-ffff-ffffffffffff")!
        if let after = page.after {
            let parts = after.split(separator: "|")
            guard parts.count == 2, let seconds = Double(parts[0]), let id = UUID(uuidString: String(parts[1])) else {
                throw PageError.badCursor("cursor is not one this service issued")
            }
            (afterTime, afterID) = (Date(timeIntervalSince1970: seconds), id)
        }
        return try await client.withConnection { connection in
            let rows = try await connection.query(
                """
                 \(unescaped: Self.columns)
                 WHERE (\(facility)::text IS NULL OR facility = \(facility) OR escalated_to = \(facility))
                  AND (\(residentID)::uuid IS NULL OR resident_id = \(residentID))
                  AND (\(status)::text IS NULL OR status = \(status)) AND (\(severity)::text IS NULL OR severity = \(severity))
                  AND (\(programme)::text IS NULL OR programme = \(programme))
                  AND (raised_at, id) < (\(afterTime), \(afterID))
                ORDER BY raised_at DESC, id DESC LIMIT \(page.limit + 1)
                """, logger: logger)
            var found = try await alerts(rows)
            var next: String?
            if found.count > page.limit {
                found.removeLast()
                let last = found[page.limit - 1]
                next = Cursor.encode("\(last.raisedAt.timeIntervalSince1970)|\(last.id)")
            }
            try await audit.record(
                principal, "chronic.alert.list", resident: residentID, resource: "alerts", requestID: requestID, on: connection)
            return (found, next)
        }
    }

    public func alert(id text: String, by principal: Principal, requestID: String?) async throws -> Alert {
        let id = try ManagedAccess.uuid(text, "alert")
        return try await client.withConnection { connection in
            guard
                let alert = try await alerts(try await connection.query("\(unescaped: Self.columns) WHERE id = \(id)", logger: logger))
                    .first
            else {
                throw ChronicCareError.notFound("alert \(text.prefix(40))")
            }
            let resident = UUID(uuidString: alert.resident)!
            do {
                try await ManagedAccess.requireRead(principal, resident: resident, on: connection, logger: logger)
            } catch is AccessError {
                // Another clinic's alert does not exist as far as this caller can tell.
                throw ChronicCareError.notFound("alert \(text.prefix(40))")
            }
            try await audit.record(
                principal, "chronic.alert.read", resident: resident, resource: "alerts/\(alert.id)", requestID: requestID, on: connection)
            return alert
        }
    }

    /// Acknowledges or closes an alert of the caller's clinic (or one escalated to it).
    public func transition(_ event: AlertEvent, alert text: String, by principal: Principal, requestID: String?) async throws -> Alert {
        let facility = try ManagedAccess.clinic(principal, scope: "monitoring.write")
        let id = try ManagedAccess.uuid(text, "alert")
        var note: String?
        if case .close(let text) = event {
            note = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard let note, (1...2000).contains(note.count) else {
                throw ChronicCareError.invalid(
                    field: "note", reason: "closing an alert needs a note of what was done (at most 2000 characters)")
            }
        }
        let allowed = AlertState.allowedFrom(event).map(\.rawValue)
        let target: AlertStatus = if case .close = event { .closed } else { .acknowledged }
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE chronic_care.alerts SET status = \(target.rawValue),
                    acknowledged_at = coalesce(acknowledged_at, now()), acknowledged_by = coalesce(acknowledged_by, \(principal.clientID)),
                    closed_at = CASE WHEN \(target.rawValue) = 'closed' THEN now() END,
                    closed_by = CASE WHEN \(target.rawValue) = 'closed' THEN \(principal.clientID)::text END,
                    note = coalesce(\(note), note)
                WHERE id = \(id) AND (facility = \(facility) OR escalated_to = \(facility)) AND status = ANY(\(allowed)::text[])
                RETURNING id, resident_id, programme, rule_id, rule_version, rule_set_version, severity, facility, status, reading_ids,
                          trigger_count, raised_at, last_triggered_at, escalated_to, escalated_at, acknowledged_at, acknowledged_by,
                          closed_at, closed_by, note
                """, logger: logger)
            guard let alert = try await alerts(rows).first else {
                let existing = try await connection.query(
                    "SELECT status FROM chronic_care.alerts WHERE id = \(id) AND (facility = \(facility) OR escalated_to = \(facility))",
                    logger: logger)
                guard let status = try await existing.collect().first?.decode(String.self), let from = AlertStatus(rawValue: status) else {
                    throw ChronicCareError.notFound("alert \(text.prefix(40))")
                }
                var state = AlertState(status: from)
                do { try state.on(event) } catch {
                    throw ChronicCareError.conflict(
                        code: "alert-\(status)", detail: (error as? AlertTransitionError)?.description ?? "not allowed")
                }
                throw ChronicCareError.conflict(code: "alert-\(status)", detail: "the alert changed meanwhile; read it again")
            }
            try await audit.record(
                principal, target == .closed ? "chronic.alert.close" : "chronic.alert.acknowledge",
                resident: UUID(uuidString: alert.resident),
                resource: "alerts/\(alert.id)", requestID: requestID, on: connection)
            return alert
        }
    }

    /// Escalates open alerts left unacknowledged past their severity's limit: urgent ones to the
    /// managing clinic's supervising hospital (or the clinic itself when it has none), others as
    /// the rule set says; each escalation writes an outbox row. Returns how many were escalated.
    @discardableResult
    public func escalate(now: Date = Date()) async throws -> Int {
        let policies = configuration.engine.ruleSet.escalation.sorted { $0.key < $1.key }
        guard !policies.isEmpty else { return 0 }
        let severities = policies.map(\.key.rawValue)
        let minutes = policies.map(\.value.afterMinutes)
        let targets = policies.map(\.value.to.rawValue)
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                WITH policy AS (
                    SELECT * FROM unnest(\(severities)::text[], \(minutes)::int4[], \(targets)::text[]) AS p(severity, minutes, target)
                ), due AS (
                    SELECT a.id, CASE WHEN p.target = 'supervisor' THEN coalesce(f.supervisor, a.facility) ELSE a.facility END AS target
                    FROM chronic_care.alerts a JOIN policy p ON p.severity = a.severity
                    JOIN registry.facilities f ON f.code = a.facility
                    WHERE a.status = 'open' AND a.escalated_at IS NULL AND a.raised_at <= \(now) - make_interval(mins => p.minutes)
                    ORDER BY a.raised_at LIMIT 5000
                    FOR UPDATE OF a SKIP LOCKED
                ), escalated AS (
                    UPDATE chronic_care.alerts a SET escalated_at = \(now), escalated_to = due.target FROM due WHERE a.id = due.id
                    RETURNING a.id, a.escalated_to, a.facility, a.rule_id, a.severity, a.resident_id
                ), notified AS (
                    INSERT INTO chronic_care.outbox (topic, facility, payload)
                    SELECT 'alert.escalated', escalated_to, jsonb_build_object('alert', id, 'resident', resident_id, 'rule', rule_id,
                                                                               'severity', severity, 'clinic', facility)
                    FROM escalated RETURNING 1
                )
                SELECT count(*)::int4 FROM notified
                """, logger: logger)
            return Int(try await rows.collect().first?.decode(Int32.self) ?? 0)
        }
    }
}
