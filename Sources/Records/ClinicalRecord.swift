import Foundation
import Logging
import PostgresNIO
import Storage

public enum EncounterClass: String, Sendable, Codable, CaseIterable {
    case outpatient, emergency, inpatient, online, other
}

public enum EncounterStatus: String, Sendable, Codable, CaseIterable {
    case planned
    case inProgress = "in-progress"
    case finished, cancelled
}

/// A visit as a message or document describes it.
public struct EncounterInput: Sendable, Equatable {
    /// The facility's visit number (PV1-19), when it sends one: later messages about the visit
    /// (a discharge) update the same encounter.
    public var key: String?
    public var encounterClass: EncounterClass
    public var status: EncounterStatus
    public var startedAt: Date?
    public var endedAt: Date?
    public var department: String?

    public init(
        key: String?, encounterClass: EncounterClass, status: EncounterStatus, startedAt: Date?, endedAt: Date? = nil,
        department: String? = nil
    ) {
        self.key = key
        self.encounterClass = encounterClass
        self.status = status
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.department = department
    }
}

/// Where a record item came from.
public enum RecordSource: Sendable, Equatable {
    case message(UUID)
    case document(UUID)
    case api

    var kind: String {
        switch self {
        case .message: "hl7"
        case .document: "cda"
        case .api: "api"
        }
    }

    var id: UUID? {
        switch self {
        case .message(let id), .document(let id): id
        case .api: nil
        }
    }
}

/// What filing an item did to the record.
public enum ItemOutcome: String, Sendable, Equatable {
    /// New: nothing with its key was on file.
    case added
    /// Replaced the current item with its key (preliminary → final → corrected); the old one is kept in history.
    case superseded
    /// The current item already says the same.
    case unchanged
    /// Older than the current item (a preliminary result after the final one): kept in history only.
    case history
}

/// Writes encounters and items into the record inside the caller's transaction (the HL7
/// gateway's, with the message's inbox row). Nothing is updated in place except an encounter's
/// progress; an item is corrected by a new row that retires the old one.
public struct ClinicalRecord: Sendable {
    public let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    /// Records a visit, or updates the one with the same facility visit number (a discharge
    /// ends the admission it names). Returns the encounter's id.
    public func recordEncounter(
        _ input: EncounterInput, resident: UUID, facility: String, source: RecordSource, on connection: PostgresConnection
    ) async throws -> UUID {
        let id = UUID.timeOrdered()
        let rows = try await connection.query(
            """
            INSERT INTO records.encounters (id, resident_id, facility, encounter_key, class, status, started_at, ended_at, department,
                source_kind, source_id)
            VALUES (\(id), \(resident), \(facility), \(input.key), \(input.encounterClass.rawValue), \(input.status.rawValue),
                \(input.startedAt), \(input.endedAt), \(input.department), \(source.kind), \(source.id))
            ON CONFLICT (facility, encounter_key) WHERE encounter_key IS NOT NULL DO UPDATE SET
                status = EXCLUDED.status,
                started_at = coalesce(records.encounters.started_at, EXCLUDED.started_at),
                ended_at = coalesce(EXCLUDED.ended_at, records.encounters.ended_at),
                department = coalesce(EXCLUDED.department, records.encounters.department),
                class = CASE WHEN EXCLUDED.class = 'other' THEN records.encounters.class ELSE EXCLUDED.class END,
                updated_at = now()
            RETURNING id
            """, logger: logger)
        for try await recorded in rows.decode(UUID.self) { return recorded }
        return id
    }

    /// The encounter a facility's visit number names, if it is on file.
    public func encounterID(facility: String, key: String, on connection: PostgresConnection) async throws -> UUID? {
        let rows = try await connection.query(
            "SELECT id FROM records.encounters WHERE facility = \(facility) AND encounter_key = \(key)", logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        return nil
    }

    /// Files items for a resident. An item with a key already on file replaces the current one
    /// when it is at least as far along (preliminary < final < corrected < cancelled) and says
    /// something different; a less advanced one is kept as history.
    public func record(
        _ items: [RecordItem], resident: UUID, facility: String, encounter: UUID? = nil, source: RecordSource,
        on connection: PostgresConnection
    ) async throws -> [ItemOutcome] {
        var outcomes: [ItemOutcome] = []
        var fresh: [RecordItem] = []
        var history: [RecordItem] = []
        var replacing: [(item: RecordItem, old: UUID)] = []
        // A key repeated within one call: the last says what is current, the earlier are history.
        var last: [String: Int] = [:]
        for (index, item) in items.enumerated() { if let key = item.itemKey { last[item.kind.rawValue + "\u{1F}" + key] = index } }
        for (index, item) in items.enumerated() {
            if let key = item.itemKey, last[item.kind.rawValue + "\u{1F}" + key] != index {
                history.append(item)
                outcomes.append(.history)
                continue
            }
            guard let key = item.itemKey else {
                fresh.append(item)
                outcomes.append(.added)
                continue
            }
            let current = try await currentItem(kind: item.kind, key: key, facility: facility, on: connection)
            guard let current else {
                fresh.append(item)
                outcomes.append(.added)
                continue
            }
            let rank = Self.rank(item.status)
            let currentRank = Self.rank(current.status)
            if rank < currentRank {
                history.append(item)
                outcomes.append(.history)
            } else if rank == currentRank, current.sameContent(as: item) {
                outcomes.append(.unchanged)
            } else {
                replacing.append((item, current.id))
                outcomes.append(.superseded)
            }
        }
        let writer = EntryWriter(logger: logger)
        for (item, old) in replacing {
            try await connection.query("UPDATE records.entries SET current = false WHERE id = \(old)", logger: logger)
            let new = try await writer.insert(
                [item], resident: resident, facility: facility, encounter: encounter, source: source, current: true, supersedes: old,
                on: connection)
            try await connection.query("UPDATE records.entries SET superseded_by = \(new[0]) WHERE id = \(old)", logger: logger)
        }
        try await writer.insert(
            fresh, resident: resident, facility: facility, encounter: encounter, source: source, current: true, on: connection)
        try await writer.insert(
            history, resident: resident, facility: facility, encounter: encounter, source: source, current: false, on: connection)
        return outcomes
    }

    /// How far along a result is; an unknown or absent status counts as final.
    static func rank(_ status: String?) -> Int {
        switch status {
        case "preliminary": 1
        case "corrected": 3
        case "cancelled": 4
        default: 2
        }
    }

    struct CurrentItem {
        var id: UUID
        var status: String?
        var valueText: String?
        var unit: String?
        var abnormalFlag: String?
        var referenceRange: String?
        var certainty: String?
        var isPrimary: Bool?

        func sameContent(as item: RecordItem) -> Bool {
            valueText == item.valueText && unit == item.unit && abnormalFlag == item.abnormalFlag
                && referenceRange == item.referenceRange && status == item.status && certainty == item.certainty?.rawValue
                && isPrimary == item.isPrimary
        }
    }

    private func currentItem(kind: EntryKind, key: String, facility: String, on connection: PostgresConnection) async throws
        -> CurrentItem?
    {
        let rows = try await connection.query(
            """
            SELECT id, status, value_text, unit, abnormal_flag, reference_range, certainty, is_primary FROM records.entries
            WHERE facility = \(facility) AND kind = \(kind.rawValue) AND item_key = \(key) AND current
            FOR UPDATE
            """, logger: logger)
        for try await (id, status, value, unit, flag, range, certainty, primary) in rows.decode(
            (UUID, String?, String?, String?, String?, String?, String?, Bool?).self)
        {
            return CurrentItem(
                id: id, status: status, valueText: value, unit: unit, abnormalFlag: flag, referenceRange: range, certainty: certainty,
                isPrimary: primary)
        }
        return nil
    }
}

/// Writes record items in one statement.
struct EntryWriter {
    let logger: Logger

    struct Row: Encodable {
        let id: UUID
        let kind: String
        let item_key: String?
        let code: String?
        let code_system: String?
        let display: String?
        let value_text: String?
        let value_number: Decimal?
        let unit: String?
        let reference_range: String?
        let abnormal_flag: String?
        let status: String?
        let certainty: String?
        let is_primary: Bool?
        let effective_at: Date?
        let detail: [String: String]
    }

    @discardableResult
    func insert(
        _ entries: [RecordItem], resident: UUID, facility: String, encounter: UUID? = nil, source: RecordSource, current: Bool,
        supersedes: UUID? = nil, on connection: PostgresConnection
    ) async throws -> [UUID] {
        guard !entries.isEmpty else { return [] }
        let rows = entries.map { entry in
            Row(
                id: UUID.timeOrdered(), kind: entry.kind.rawValue, item_key: entry.itemKey, code: entry.code, code_system: entry.codeSystem,
                display: entry.display, value_text: entry.valueText, value_number: entry.valueNumber, unit: entry.unit,
                reference_range: entry.referenceRange, abnormal_flag: entry.abnormalFlag, status: entry.status,
                certainty: entry.certainty?.rawValue, is_primary: entry.isPrimary, effective_at: entry.effectiveAt, detail: entry.detail)
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let json = String(decoding: try encoder.encode(rows), as: UTF8.self)
        var document: UUID?
        var message: UUID?
        switch source {
        case .document(let id): document = id
        case .message(let id): message = id
        case .api: break
        }
        try await connection.query(
            """
            INSERT INTO records.entries (id, resident_id, facility, kind, item_key, encounter_id, document_id, message_id, code, code_system,
                display, value_text, value_number, unit, reference_range, abnormal_flag, status, certainty, is_primary, effective_at,
                detail, current, supersedes)
            SELECT x.id, \(resident), \(facility), x.kind, x.item_key, \(encounter), \(document), \(message), x.code, x.code_system,
                x.display, x.value_text, x.value_number, x.unit, x.reference_range, x.abnormal_flag, x.status, x.certainty, x.is_primary,
                x.effective_at, x.detail, \(current), \(supersedes)
            FROM jsonb_to_recordset(\(json)::jsonb) AS x(id uuid, kind text, item_key text, code text, code_system text,
                display text, value_text text, value_number numeric, unit text, reference_range text, abnormal_flag text, status text,
                certainty text, is_primary boolean, effective_at timestamptz, detail jsonb)
            """, logger: logger)
        return rows.map(\.id)
    }
}
