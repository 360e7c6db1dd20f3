import Access
import Foundation
import Logging
import PostgresNIO
import Storage

/// Reading signals and moving them along: new → investigating → confirmed outbreak or
/// dismissed (a false alarm may be dismissed straight away), each step with a note.
extension SignalService {
    public struct Note: Codable, Sendable, Equatable {
        public let fromStatus: String?
        public let toStatus: String
        public let note: String?
        public let author: String
        public let writtenAt: Date
    }

    public struct SeriesPoint: Codable, Sendable, Equatable {
        public let date: String
        public let count: Int?
        public let suppressed: Bool
        public let alarm: Bool
    }

    public struct Signal: Codable, Sendable, Equatable {
        public let id: String
        public let disease: String
        public let diseaseName: String?
        public let division: String
        public let divisionName: String?
        public let method: String
        public let status: String
        public let firstAlarmOn: String
        public let lastAlarmOn: String
        public let alarmDays: Int
        public let observed: Int
        public let upperbound: Double?
        public let raisedAt: Date
        public let closedAt: Date?
        public var notes: [Note]?
        public var series: [SeriesPoint]?
    }

    static let transitions: [String: Set<String>] = [
        "new": ["investigating", "dismissed"], "investigating": ["confirmed", "dismissed"],
    ]

    static let columns = """
        s.id, s.disease, s.division, s.method, s.status, s.first_alarm_on::text, s.last_alarm_on::text,
        (SELECT count(*) FROM surveillance.signal_alarms a WHERE a.signal_id = s.id)::int4, s.observed, s.upperbound, s.raised_at, s.closed_at
        """

    func signal(_ row: PostgresRow) throws -> Signal {
        let (id, disease, division, method, status, first, last, days, observed, upperbound, raised, closed) = try row.decode(
            (UUID, String, String, String, String, String, String, Int32, Int32, Double?, Date, Date?).self)
        return Signal(
            id: id.uuidString.lowercased(), disease: disease, diseaseName: definitions.disease(disease)?.name.zh, division: division,
            divisionName: surveillance.divisions.name(division), method: method, status: status, firstAlarmOn: first, lastAlarmOn: last,
            alarmDays: Int(days), observed: Int(observed), upperbound: upperbound, raisedAt: raised, closedAt: closed)
    }

    public func list(status: String?, disease: String?, division: String?, by principal: Principal, requestID: String?) async throws
        -> [Signal]
    {
        try principal.require(scope: "surveillance.read")
        let statuses = (status ?? "new,investigating").split(separator: ",").map(String.init)
        for value in statuses where !["new", "investigating", "confirmed", "dismissed"].contains(value) {
            throw SurveillanceError.invalid(
                field: "status", reason: "\(value.prefix(20)) is not new, investigating, confirmed or dismissed")
        }
        if let division, !Divisions.isPrefix(division) {
            throw SurveillanceError.invalid(field: "division", reason: "must be a GB/T 2260 prefix: 52, 5201 or 520102")
        }
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.columns) FROM surveillance.signals s
            WHERE s.status = ANY(\(statuses)) AND (\(disease)::text IS NULL OR s.disease = \(disease))
              AND (\(division)::text IS NULL OR s.division LIKE \(division ?? "") || '%')
            ORDER BY s.last_alarm_on DESC, s.raised_at DESC LIMIT 500
            """, logger: logger)
        var signals: [Signal] = []
        for try await row in rows { signals.append(try signal(row)) }
        try await surveillance.audit(principal, resource: "surveillance/signals", detail: "rows=\(signals.count)", requestID: requestID)
        return signals
    }

    /// One signal with its notes and 56 days of its series, small days suppressed.
    public func get(_ id: String, by principal: Principal, requestID: String?) async throws -> Signal {
        try principal.require(scope: "surveillance.read")
        guard let signalID = UUID(uuidString: id),
            let row = try await client.query(
                "SELECT \(unescaped: Self.columns) FROM surveillance.signals s WHERE s.id = \(signalID)", logger: logger
            ).collect().first
        else { throw SurveillanceError.notFound("signal \(id.prefix(40))") }
        var found = try signal(row)
        found.notes = try await client.query(
            "SELECT from_status, to_status, note, author, written_at FROM surveillance.signal_notes WHERE signal_id = \(signalID) ORDER BY id",
            logger: logger
        ).collect().map {
            let (from, to, note, author, at) = try $0.decode((String?, String, String?, String, Date).self)
            return Note(fromStatus: from, toStatus: to, note: note, author: author, writtenAt: at)
        }
        // The series runs on two weeks past the last alarm (or to today), to show what followed it.
        let lastAlarm = try CaseFilter.date(found.lastAlarmOn, field: "lastAlarmOn")
        let last = min(CaseFilter.today(), lastAlarm.addingTimeInterval(14 * 86_400))
        let first = last.addingTimeInterval(-55 * 86_400)
        var counts = [Int](repeating: 0, count: 56)
        for try await (offset, count) in try await client.query(
            """
            SELECT (onset_date - \(CaseFilter.format(first))::date)::int4, count(*)::int4 FROM surveillance.cases
            WHERE disease = \(found.disease) AND division = \(found.division) AND review_status <> 'excluded'
              AND onset_date BETWEEN \(CaseFilter.format(first))::date AND \(CaseFilter.format(last))::date
            GROUP BY 1
            """, logger: logger
        ).decode((Int32, Int32).self) {
            counts[Int(offset)] = Int(count)
        }
        let alarmDays = Set(
            try await client.query(
                "SELECT alarm_on::text FROM surveillance.signal_alarms WHERE signal_id = \(signalID)", logger: logger
            ).collect().map { try $0.decode(String.self) })
        let days = (0..<56).map { CaseFilter.format(first.addingTimeInterval(Double($0) * 86_400)) }
        let nonzero = days.indices.filter { counts[$0] > 0 }
        let table = Suppression.apply(
            keys: nonzero.map { [days[$0]] }, counts: nonzero.map { counts[$0] }, dimensions: 1, threshold: surveillance.threshold)
        var hidden = Set<Int>()
        for (position, day) in nonzero.enumerated() where table.hidden[position] { hidden.insert(day) }
        found.series = days.indices.map {
            SeriesPoint(
                date: days[$0], count: hidden.contains($0) ? nil : counts[$0], suppressed: hidden.contains($0),
                alarm: alarmDays.contains(days[$0]))
        }
        try await surveillance.audit(
            principal, resource: "surveillance/signal/\(found.id)", detail: "series=56", requestID: requestID)
        return found
    }

    public struct Transition: Decodable, Sendable {
        public let status: String
        public let note: String?
    }

    public func transition(_ id: String, _ change: Transition, by principal: Principal, requestID: String?) async throws -> Signal {
        try principal.require(scope: "surveillance.review")
        guard let signalID = UUID(uuidString: id) else { throw SurveillanceError.notFound("signal \(id.prefix(40))") }
        guard ["investigating", "confirmed", "dismissed"].contains(change.status) else {
            throw SurveillanceError.invalid(field: "status", reason: "must be investigating, confirmed or dismissed")
        }
        if let note = change.note, note.count > 2000 { throw SurveillanceError.invalid(field: "note", reason: "at most 2000 characters") }
        if change.status != "investigating", (change.note ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            throw SurveillanceError.invalid(field: "note", reason: "closing a signal needs a note saying what was found")
        }
        try await client.transaction(logger: logger) { connection in
            let current = try await connection.query(
                "SELECT status FROM surveillance.signals WHERE id = \(signalID) FOR UPDATE", logger: logger
            ).collect().first?.decode(String.self)
            guard let current else { throw SurveillanceError.notFound("signal \(id.prefix(40))") }
            guard Self.transitions[current]?.contains(change.status) == true else {
                throw SurveillanceError.conflict(code: "invalid-transition", detail: "a \(current) signal cannot become \(change.status)")
            }
            let closing = change.status != "investigating"
            try await connection.query(
                """
                UPDATE surveillance.signals SET status = \(change.status), updated_at = now(),
                    closed_at = CASE WHEN \(closing) THEN now() END
                WHERE id = \(signalID)
                """, logger: logger)
            try await connection.query(
                """
                INSERT INTO surveillance.signal_notes (signal_id, from_status, to_status, note, author)
                VALUES (\(signalID), \(current), \(change.status), \(change.note), \(principal.clientID))
                """, logger: logger)
            try await AuditTrail.append(
                AuditEvent(
                    principal: principal, action: "surveillance.signal.\(change.status)",
                    resource: "surveillance/signal/\(signalID.uuidString.lowercased())", purpose: "public-health-surveillance",
                    requestID: requestID),
                on: connection, logger: logger)
        }
        return try await get(id, by: principal, requestID: requestID)
    }
}
