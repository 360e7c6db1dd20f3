import ChronicRules
import Foundation
import Logging
import PostgresNIO
import Storage

/// The programmes and the rule set, loaded from `schemas/rules/` once at start and checked
/// together: a rule naming an unknown programme stops the service from starting.
public struct MonitoringConfiguration: Sendable {
    public let programmes: [Programme]
    public let engine: RuleEngine
    /// Diagnosis prefixes per programme, for the enrolment sync.
    public let prefixes: [String: [String]]

    public init(programmes: [Programme], ruleSet: RuleSet) throws {
        var prefixes: [String: [String]] = [:]
        for programme in programmes {
            guard programme.code.range(of: "^[a-z0-9][a-z0-9-]{1,39}$", options: .regularExpression) != nil else {
                throw ChronicCareError.ruleSet("programme code \(programme.code.prefix(40)) must be lowercase letters, digits and -")
            }
            if let days = programme.followUpDays, days < 1 {
                throw ChronicCareError.ruleSet("programme \(programme.code): followUpDays must be positive")
            }
            do { prefixes[programme.code] = try programme.diagnosisPrefixes() } catch { throw ChronicCareError.ruleSet(error.description) }
        }
        guard Set(programmes.map(\.code)).count == programmes.count else {
            throw ChronicCareError.ruleSet("a programme code is used twice")
        }
        do { try ruleSet.validate(programmes: Set(programmes.map(\.code))) } catch { throw ChronicCareError.ruleSet(error.description) }
        self.programmes = programmes
        self.engine = RuleEngine(ruleSet: ruleSet)
        self.prefixes = prefixes
    }

    struct ProgrammeFile: Decodable {
        var programmes: [Programme]
    }

    /// Loads `programmes.json` and `chronic-rules.json` from `directory`.
    public static func load(directory: String) throws -> MonitoringConfiguration {
        let programmes = try decode(ProgrammeFile.self, path: directory + "/programmes.json").programmes
        return try MonitoringConfiguration(
            programmes: programmes, ruleSet: try decode(RuleSet.self, path: directory + "/chronic-rules.json"))
    }

    static func decode<T: Decodable>(_ type: T.Type, path: String) throws -> T {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw ChronicCareError.ruleSet("cannot read \(path)") }
        return try decode(type, data: data, name: (path as NSString).lastPathComponent)
    }

    /// Decodes rules or programmes, turning decoding errors into a sentence with the path.
    public static func decode<T: Decodable>(_ type: T.Type, data: Data, name: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            throw ChronicCareError.ruleSet("\(name): \(describe(error))")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "" : "at " + keys.joined(separator: ".") + ": "
        }
        switch error {
        case .dataCorrupted(let context): return path(context) + context.debugDescription
        case .keyNotFound(let key, let context): return path(context) + "\(key.stringValue) is required"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return path(context) + "wrong type (\(context.debugDescription))"
        @unknown default: return "not readable"
        }
    }

    /// Writes the programmes and their qualifying diagnoses to the tables the enrolment trigger
    /// reads; a programme no longer configured stops enrolling (its enrolments stay). Diagnoses a
    /// newly configured code qualifies that are already in the record (at go-live, or when a
    /// programme or code is added) enrol their residents now, as the trigger would have.
    /// Returns how many residents that back-fill enrolled.
    @discardableResult
    public func sync(client: PostgresClient, logger: Logger) async throws -> Int {
        let codes = programmes.map(\.code)
        return try await client.transaction(logger: logger) { connection in
            // Instances starting together sync one after the other.
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext('chronic_care.sync'))", logger: logger)
            var enrolled = 0
            for programme in programmes {
                try await connection.query(
                    """
                    INSERT INTO chronic_care.programmes (code, name_zh, name_en, follow_up_days, active)
                    VALUES (\(programme.code), \(programme.name.zh), \(programme.name.en), \(programme.followUpDays), true)
                    ON CONFLICT (code) DO UPDATE SET name_zh = EXCLUDED.name_zh, name_en = EXCLUDED.name_en,
                        follow_up_days = EXCLUDED.follow_up_days, active = true
                    """, logger: logger)
                let prefixes = self.prefixes[programme.code] ?? []
                let added = try await connection.query(
                    """
                    WITH gone AS (DELETE FROM chronic_care.programme_diagnoses WHERE programme = \(programme.code) AND prefix <> ALL(\(prefixes)))
                    INSERT INTO chronic_care.programme_diagnoses (programme, prefix) SELECT \(programme.code), p FROM unnest(\(prefixes)::text[]) AS p
                    ON CONFLICT DO NOTHING RETURNING prefix
                    """, logger: logger
                ).collect().map { try $0.decode(String.self) }
                guard !added.isEmpty else { continue }
                let rows = try await connection.query(
                    """
                    WITH qualifying AS (
                        SELECT DISTINCT ON (e.resident_id) e.id, e.resident_id, e.facility
                        FROM records.entries e JOIN registry.residents r ON r.id = e.resident_id AND r.status = 'active'
                        WHERE e.kind = 'diagnosis' AND e.current AND e.code IS NOT NULL AND coalesce(e.certainty, 'confirmed') = 'confirmed'
                          AND EXISTS (SELECT 1 FROM unnest(\(added)::text[]) AS d(prefix)
                                      WHERE upper(e.code) = d.prefix OR upper(e.code) LIKE d.prefix || '.%'
                                         OR (strpos(d.prefix, '.') > 0 AND upper(e.code) LIKE d.prefix || '%'))
                        ORDER BY e.resident_id, coalesce(e.effective_at, e.recorded_at) DESC
                    ), enrolled AS (
                        INSERT INTO chronic_care.enrolments
                            (id, resident_id, programme, facility, source, source_entry, enrolled_by, follow_up_days, next_follow_up_due)
                        SELECT gen_random_uuid(), q.resident_id, \(programme.code), chronic_care.managing_facility(q.resident_id, q.facility),
                               'diagnosis', q.id, 'diagnosis:' || q.facility, \(programme.followUpDays)::int4,
                               CASE WHEN \(programme.followUpDays)::int4 IS NOT NULL
                                    THEN now() + make_interval(days => \(programme.followUpDays ?? 0)::int4) END
                        FROM qualifying q
                        ON CONFLICT (resident_id, programme) WHERE status = 'active' DO NOTHING
                        RETURNING id, facility
                    ), notified AS (
                        INSERT INTO chronic_care.outbox (topic, facility, payload)
                        SELECT 'enrolment.created', facility,
                               jsonb_build_object('enrolment', id, 'programme', \(programme.code)::text, 'source', 'diagnosis')
                        FROM enrolled RETURNING 1
                    )
                    SELECT count(*)::int4 FROM notified
                    """, logger: logger)
                let count = Int(try await rows.collect().first?.decode(Int32.self) ?? 0)
                enrolled += count
                if count > 0 {
                    logger.info(
                        "enrolled from diagnoses already in the record",
                        metadata: ["chronic.programme": "\(programme.code)", "chronic.enrolled": "\(count)"])
                }
            }
            try await connection.query("UPDATE chronic_care.programmes SET active = false WHERE code <> ALL(\(codes))", logger: logger)
            return enrolled
        }
    }

    public func programme(_ code: String) -> Programme? { programmes.first { $0.code == code } }
}
