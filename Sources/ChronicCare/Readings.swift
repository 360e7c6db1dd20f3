import Access
import ChronicRules
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

/// One reading as a device backend sends it. Decoding never fails on a field: a wrong type is
/// kept as a problem, so that one bad reading is refused alone and the rest of the batch kept.
public struct ReadingInput: Sendable, Decodable {
    public var resident: String?
    public var deviceId: String?
    public var measuredAt: String?
    public var timeZone: String?
    public var type: String?
    public var raw = RawValues()
    /// The first field that had the wrong JSON type.
    public var problem: ReadingRejection?

    enum CodingKeys: String, CodingKey {
        case resident, deviceId, measuredAt, timeZone, type, systolic, diastolic, heartRate, value, unit
    }

    public init(
        resident: String?, deviceId: String?, measuredAt: String?, type: String?, raw: RawValues, timeZone: String? = nil
    ) {
        self.resident = resident
        self.deviceId = deviceId
        self.measuredAt = measuredAt
        self.type = type
        self.raw = raw
        self.timeZone = timeZone
    }

    public init(from decoder: any Decoder) throws {
        guard let container = try? decoder.container(keyedBy: CodingKeys.self) else {
            problem = ReadingRejection(field: "reading", reason: "must be a JSON object")
            return
        }
        func text(_ key: CodingKeys) -> String? {
            do { return try container.decodeIfPresent(String.self, forKey: key) } catch {
                if problem == nil { problem = ReadingRejection(field: key.stringValue, reason: "must be a string") }
                return nil
            }
        }
        func number(_ key: CodingKeys) -> Double? {
            do { return try container.decodeIfPresent(Double.self, forKey: key) } catch {
                if problem == nil { problem = ReadingRejection(field: key.stringValue, reason: "must be a number") }
                return nil
            }
        }
        resident = text(.resident)
        deviceId = text(.deviceId)
        measuredAt = text(.measuredAt)
        timeZone = text(.timeZone)
        type = text(.type)
        raw = RawValues(
            systolic: number(.systolic), diastolic: number(.diastolic), heartRate: number(.heartRate), value: number(.value),
            unit: text(.unit))
    }
}

public struct ReadingBatch: Sendable, Decodable {
    public var readings: [ReadingInput]

    public init(readings: [ReadingInput]) { self.readings = readings }
}

/// What happened to each reading of a batch, by its position.
public struct ReadingOutcome: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable { case accepted, duplicate, rejected }
    public var index: Int
    public var status: Status
    public var id: String?
    public var field: String?
    public var reason: String?
    /// Stored, but another batch was evaluating the resident: the monitoring worker evaluates
    /// it within `QIANYUN_MONITOR_INTERVAL_SECONDS`, and its alerts reach the outbox, not this answer.
    public var deferred: Bool?
}

public struct IngestResult: Sendable, Codable, Equatable {
    public var accepted: Int
    public var duplicates: Int
    public var rejected: Int
    /// Accepted readings whose evaluation was left to the monitoring worker (see `ReadingOutcome.deferred`).
    public var deferred: Int
    public var results: [ReadingOutcome]
    public var alerts: [RaisedAlert]
}

/// A stored reading as the API shows it.
public struct StoredReading: Sendable, Codable, Equatable {
    public var id: String
    public var resident: String
    public var deviceId: String
    public var type: String
    /// In the resident's own clock, with its offset.
    public var measuredAt: String
    public var systolic: Double?
    public var diastolic: Double?
    public var heartRate: Double?
    public var value: Double?
    public var unit: String
    public var source: String
    public var receivedAt: Date
}

/// Home and wearable device readings: batch ingest with per-reading verdicts, evaluation as they
/// arrive, and reading them back.
public struct ReadingService: Sendable {
    public static let maximumBatch = 1_000
    /// How far ahead of our clock a device's clock may be.
    static let futureTolerance: TimeInterval = 600
    /// How old a reading may be and still be taken (a device syncing after months away).
    static let oldestAccepted: TimeInterval = 366 * 86_400

    let client: PostgresClient
    let registry: ResidentRegistry
    let evaluator: Evaluator
    let audit: ResidentAudit
    let logger: Logger

    public init(client: PostgresClient, registry: ResidentRegistry, configuration: MonitoringConfiguration, logger: Logger) {
        self.client = client
        self.registry = registry
        self.evaluator = Evaluator(configuration: configuration, logger: logger)
        self.audit = ResidentAudit(registry: registry, purpose: "monitoring", logger: logger)
        self.logger = logger
    }

    struct Accepted {
        var index: Int
        var id: UUID
        var resident: UUID
        var device: String
        var type: ReadingType
        var time: Date
        var offsetMinutes: Int
        var values: Values
        var unit: String?
    }

    public func ingest(_ batch: ReadingBatch, by principal: Principal, requestID: String?, now: Date = Date()) async throws -> IngestResult
    {
        switch principal.role {
        case .patient: try principal.require(scope: "self.write")
        case .his, .clinician: try principal.require(scope: "monitoring.write")
        default: throw AccessError.forbidden("role \(principal.role.rawValue) may not send readings")
        }
        guard !batch.readings.isEmpty else { throw ChronicCareError.invalid(field: "readings", reason: "must hold at least one reading") }
        guard batch.readings.count <= Self.maximumBatch else {
            throw ChronicCareError.invalid(field: "readings", reason: "at most \(Self.maximumBatch) readings per batch")
        }
        var outcomes: [ReadingOutcome?] = Array(repeating: nil, count: batch.readings.count)
        var accepted: [Accepted] = []
        for (index, input) in batch.readings.enumerated() {
            switch check(input, principal: principal, now: now) {
            case .success(var reading):
                reading.index = index
                accepted.append(reading)
            case .failure(let rejection):
                outcomes[index] = ReadingOutcome(index: index, status: .rejected, field: rejection.field, reason: rejection.reason)
            }
        }
        let checked = accepted
        let (stored, alerts) = try await retryingConflicts {
            try await client.transaction(logger: logger) { connection in
                try await store(checked, by: principal, requestID: requestID, now: now, on: connection)
            }
        }
        for reading in checked {
            if let outcome = stored[reading.index] {
                outcomes[reading.index] = outcome
            }
        }
        let results = outcomes.compactMap { $0 }
        return IngestResult(
            accepted: results.count { $0.status == .accepted }, duplicates: results.count { $0.status == .duplicate },
            rejected: results.count { $0.status == .rejected }, deferred: results.count { $0.deferred == true }, results: results,
            alerts: alerts)
    }

    func check(_ input: ReadingInput, principal: Principal, now: Date) -> Result<Accepted, ReadingRejection> {
        if let problem = input.problem { return .failure(problem) }
        let residentText = input.resident ?? (principal.role == .patient ? principal.resident : nil)
        guard let residentText, let resident = UUID(uuidString: residentText) else {
            return .failure(ReadingRejection(field: "resident", reason: input.resident == nil ? "is required" : "is not a resident id"))
        }
        if principal.role == .patient && principal.resident != resident.lowercased {
            return .failure(ReadingRejection(field: "resident", reason: "a patient may send only their own readings"))
        }
        guard let device = input.deviceId?.trimmingCharacters(in: .whitespaces), (1...128).contains(device.count) else {
            return .failure(ReadingRejection(field: "deviceId", reason: "is required (1–128 characters)"))
        }
        guard let typeText = input.type else { return .failure(ReadingRejection(field: "type", reason: "is required")) }
        guard let type = ReadingType(rawValue: typeText) else {
            return .failure(
                ReadingRejection(
                    field: "type",
                    reason: "\(typeText.prefix(30)) is not one of \(ReadingType.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        guard let text = input.measuredAt else { return .failure(ReadingRejection(field: "measuredAt", reason: "is required")) }
        let time: (Date, Int)
        switch Self.measuredAt(text, timeZone: input.timeZone) {
        case .success(let parsed): time = parsed
        case .failure(let rejection): return .failure(rejection)
        }
        if time.0.timeIntervalSince(now) > Self.futureTolerance {
            return .failure(ReadingRejection(field: "measuredAt", reason: "is in the future (check the device's clock)"))
        }
        if now.timeIntervalSince(time.0) > Self.oldestAccepted {
            return .failure(ReadingRejection(field: "measuredAt", reason: "is more than a year ago"))
        }
        switch normalize(type, input.raw) {
        case .success(let values):
            return .success(
                Accepted(
                    index: 0, id: UUID.timeOrdered(now: now), resident: resident, device: device, type: type, time: time.0,
                    offsetMinutes: time.1, values: values, unit: input.raw.unit))
        case .failure(let rejection):
            return .failure(rejection)
        }
    }

    /// An ISO 8601 time. Without an offset it is read in `timeZone` (an IANA name or ±hh:mm),
    /// by default China's (+08:00). Returns the instant and the resident's offset in minutes.
    static func measuredAt(_ text: String, timeZone: String?) -> Result<(Date, Int), ReadingRejection> {
        guard let parsed = DeviceTimestamp.parse(text) else {
            return .failure(ReadingRejection(field: "measuredAt", reason: "must be an ISO 8601 time, e.g. 2026-11-30T07:45:00+08:00"))
        }
        func date(_ offset: Int) -> Date {
            Date(timeIntervalSince1970: Double(parsed.instant(assumingOffsetMinutes: offset)) + Double(parsed.nanoseconds) / 1e9)
        }
        if let offset = parsed.offsetMinutes { return .success((date(offset), offset)) }
        guard let timeZone else { return .success((date(480), 480)) }
        if let offset = DeviceTimestamp.parse("2000-01-01T00:00" + timeZone)?.offsetMinutes, timeZone.count == 6 {
            return .success((date(offset), offset))
        }
        guard let zone = TimeZone(identifier: timeZone) else {
            return .failure(ReadingRejection(field: "timeZone", reason: "is not an IANA time zone or ±hh:mm offset"))
        }
        // The zone's offset at that wall-clock time: guess from the time read as UTC, then correct.
        let guess = zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(parsed.localSeconds))) / 60
        let offset = zone.secondsFromGMT(for: date(guess)) / 60
        return .success((date(offset), offset))
    }

    func store(
        _ readings: [Accepted], by principal: Principal, requestID: String?, now: Date, on connection: PostgresConnection
    ) async throws -> ([Int: ReadingOutcome], [RaisedAlert]) {
        var outcomes: [Int: ReadingOutcome] = [:]
        guard !readings.isEmpty else { return (outcomes, []) }
        // Residents must exist; a merged one's readings go to the resident it was merged into.
        // Each survivor is locked for evaluation if no other batch holds it: two batches must
        // not evaluate one resident at once (each would miss the other's readings in a window),
        // but a batch does not wait either. A resident another batch holds has its readings
        // stored unevaluated, and the monitoring worker evaluates them once both have committed.
        let asked = Array(Set(readings.map(\.resident)))
        let found = try await connection.query(
            """
            SELECT q.id, s.survivor, pg_try_advisory_xact_lock(hashtextextended(s.survivor::text, 8))
            FROM unnest(\(asked)::uuid[]) AS q(id) JOIN registry.residents r ON r.id = q.id
            CROSS JOIN LATERAL (SELECT coalesce(r.merged_into, r.id) AS survivor) AS s
            """, logger: logger)
        var survivor: [UUID: UUID] = [:]
        var held: Set<UUID> = []
        for try await (id, target, locked) in found.decode((UUID, UUID, Bool).self) {
            survivor[id] = target
            if locked { held.insert(target) }
        }
        var rows: [Accepted] = []
        for var reading in readings {
            guard let target = survivor[reading.resident] else {
                outcomes[reading.index] = ReadingOutcome(
                    index: reading.index, status: .rejected, field: "resident", reason: "no such resident")
                continue
            }
            reading.resident = target
            rows.append(reading)
        }
        guard !rows.isEmpty else { return (outcomes, []) }
        func column(_ measure: Measure) -> [Double] { rows.map { $0.values[measure] } }
        let singles = rows.map { row in row.type.measure.map { row.values[$0] } ?? .nan }
        let inserted = try await connection.query(
            """
            INSERT INTO chronic_care.readings (id, resident_id, device_id, type, measured_at, utc_offset_minutes, systolic, diastolic,
                                               heart_rate, value, reported_unit, source, client_id, evaluated_at)
            SELECT id, resident, device, type, to_timestamp(at), offset_minutes, nullif(sys, 'NaN'), nullif(dia, 'NaN'),
                   nullif(hr, 'NaN'), nullif(val, 'NaN'), nullif(unit, ''), 'api', \(principal.clientID),
                   CASE WHEN evaluate THEN now() END
            FROM unnest(\(rows.map(\.id))::uuid[], \(rows.map(\.resident))::uuid[], \(rows.map(\.device))::text[],
                        \(rows.map(\.type.rawValue))::text[], \(rows.map(\.time.timeIntervalSince1970))::float8[],
                        \(rows.map(\.offsetMinutes))::int4[], \(column(.systolic))::float8[], \(column(.diastolic))::float8[],
                        \(rows.map { $0.type == .bloodPressure ? $0.values[.heartRate] : .nan })::float8[], \(singles)::float8[],
                        \(rows.map { $0.unit ?? "" })::text[], \(rows.map { held.contains($0.resident) })::bool[])
                AS r(id, resident, device, type, at, offset_minutes, sys, dia, hr, val, unit, evaluate)
            ON CONFLICT (resident_id, measured_at, type, device_id) DO NOTHING
            RETURNING id
            """, logger: logger)
        var new: Set<UUID> = []
        for try await id in inserted.decode(UUID.self) { new.insert(id) }
        var byResident: [UUID: (ids: Set<UUID>, oldest: Date)] = [:]
        for row in rows {
            if new.contains(row.id) {
                outcomes[row.index] = ReadingOutcome(index: row.index, status: .accepted, id: row.id.lowercased)
                guard held.contains(row.resident) else {
                    outcomes[row.index]?.deferred = true
                    continue
                }
                byResident[row.resident, default: ([], row.time)].ids.insert(row.id)
                byResident[row.resident]!.oldest = min(byResident[row.resident]!.oldest, row.time)
            } else {
                outcomes[row.index] = ReadingOutcome(index: row.index, status: .duplicate, reason: "already received from this device")
            }
        }
        let alerts = try await evaluator.evaluate(new: byResident, now: now, on: connection)
        try await audit.record(
            principal, "chronic.readings.ingest", resident: nil, resource: "readings/batch?count=\(rows.count)&new=\(new.count)",
            requestID: requestID, on: connection)
        return (outcomes, alerts)
    }

    /// One resident's readings, newest first, keyset-paged.
    public func list(
        resident text: String, type: String?, from: Date?, to: Date?, page: PageRequest, by principal: Principal, requestID: String?
    ) async throws -> (readings: [StoredReading], nextCursor: String?) {
        let resident = try ManagedAccess.uuid(text, "resident")
        if let type, ReadingType(rawValue: type) == nil {
            throw ChronicCareError.invalid(
                field: "type", reason: "must be one of \(ReadingType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var afterTime: Double = .greatestFiniteMagnitude
        var afterID = UUID(uuidString: "ffffffff-ffff-ffff-ffff-ffffffffffff")!
        if let after = page.after {
            let parts = after.split(separator: "|")
            guard parts.count == 2, let time = Double(parts[0]), let id = UUID(uuidString: String(parts[1])) else {
                throw PageError.badCursor("cursor is not one this service issued")
            }
            (afterTime, afterID) = (time, id)
        }
        return try await client.withConnection { connection in
            try await ManagedAccess.requireRead(principal, resident: resident, on: connection, logger: logger)
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns) FROM chronic_care.readings
                WHERE resident_id = \(resident) AND (\(type)::text IS NULL OR type = \(type))
                  AND measured_at >= coalesce(\(from)::timestamptz, '-infinity') AND measured_at <= coalesce(\(to)::timestamptz, 'infinity')
                  AND (measured_at, id) < (to_timestamp(\(afterTime == .greatestFiniteMagnitude ? 1e11 : afterTime)), \(afterID))
                ORDER BY measured_at DESC, id DESC LIMIT \(page.limit + 1)
                """, logger: logger)
            let (found, keys) = try await Self.readings(rows)
            var readings = found
            var next: String?
            if readings.count > page.limit {
                readings.removeLast()
                next = Cursor.encode(keys[page.limit - 1])
            }
            try await audit.record(
                principal, "chronic.readings.read", resident: resident, resource: "resident/\(resident.lowercased)/readings",
                requestID: requestID, on: connection)
            return (readings, next)
        }
    }

    /// A reading by id, for the FHIR Observation read.
    public func reading(id text: String, by principal: Principal, requestID: String?) async throws -> StoredReading {
        let id = try ManagedAccess.uuid(text, "reading")
        return try await client.withConnection { connection in
            let rows = try await connection.query(
                "SELECT \(unescaped: Self.columns) FROM chronic_care.readings WHERE id = \(id)", logger: logger)
            guard let reading = try await Self.readings(rows).readings.first, let resident = UUID(uuidString: reading.resident) else {
                throw ChronicCareError.notFound("reading \(text.prefix(40))")
            }
            try await ManagedAccess.requireRead(principal, resident: resident, on: connection, logger: logger)
            try await audit.record(
                principal, "chronic.readings.read", resident: resident, resource: "readings/\(reading.id)", requestID: requestID,
                on: connection)
            return reading
        }
    }

    static let columns = """
        id, resident_id, device_id, type, extract(epoch FROM measured_at)::float8, utc_offset_minutes::int4, systolic, diastolic,
        heart_rate, value, source, received_at
        """

    /// Rows of `columns` as the API shows them, with each one's keyset cursor key.
    static func readings(_ rows: PostgresRowSequence) async throws -> (readings: [StoredReading], keys: [String]) {
        var readings: [StoredReading] = []
        var keys: [String] = []
        for try await (id, resident, device, type, time, offset, systolic, diastolic, heartRate, value, source, received) in rows.decode(
            (UUID, UUID, String, String, Double, Int32, Double?, Double?, Double?, Double?, String, Date).self)
        {
            readings.append(
                StoredReading(
                    id: id.lowercased, resident: resident.lowercased, deviceId: device, type: type,
                    measuredAt: localTime(time, offsetMinutes: Int(offset)), systolic: systolic, diastolic: diastolic,
                    heartRate: heartRate, value: value, unit: ReadingType(rawValue: type)?.measure?.unit ?? "mmHg", source: source,
                    receivedAt: received))
            keys.append("\(time)|\(id.lowercased)")
        }
        return (readings, keys)
    }

    /// The instant written in the resident's own clock: 2026-11-30T07:45:00+08:00.
    static func localTime(_ seconds: Double, offsetMinutes: Int) -> String {
        DeviceTimestamp.format(seconds: Int64(seconds.rounded(.down)), offsetMinutes: offsetMinutes)
    }
}
