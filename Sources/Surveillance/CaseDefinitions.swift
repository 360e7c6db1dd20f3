import Aberration
import Crypto
import Foundation
import Logging
import PostgresNIO
import Storage

/// The statutory notifiable diseases as data (`schemas/case-definitions/notifiable-diseases.json`):
/// which ICD-10 codes and which positive laboratory results report a case, how long an episode
/// lasts, and the legal reporting limit. Loaded and checked once at start; the detection trigger
/// reads the copy `sync` writes to `surveillance.diseases`.
public struct CaseDefinitions: Sendable {
    public struct Name: Codable, Sendable, Equatable {
        public let zh: String
        public let en: String
    }

    public enum DiseaseClass: String, Codable, Sendable, CaseIterable {
        case a = "A"
        case b = "B"
        case c = "C"
    }

    public struct Disease: Codable, Sendable, Equatable {
        public let code: String
        public let name: Name
        public let `class`: DiseaseClass
        /// ICD-10 codes and ranges: "A00", "B18.0-B18.1", "B20-B24".
        public let icd10: [String]
        /// Days within which a resident's reports are one episode; nil: once in a lifetime.
        public let episodeDays: Int?
        /// LOINC codes of results whose positive value confirms a case.
        public let labs: [String]?
        /// Overrides the class's legal limit (a Class B disease managed as Class A).
        public let reportWithinHours: Int?
        /// What a confirmed diagnosis makes a case: `clinical` when the definition names confirming
        /// results, else `confirmed`, unless the definition says otherwise.
        public let diagnosisClassification: String?
    }

    /// The daily early-warning run's methods and their parameters.
    public struct SignalSettings: Codable, Sendable, Equatable {
        public struct CIDARS: Codable, Sendable, Equatable {
            public let years: Int?
            public let neighbours: Int?
            public let percentile: Double?
            public let minCount: Int?
        }
        public struct EARS: Codable, Sendable, Equatable {
            public let baseline: Int?
            public let alpha: Double?
        }
        public struct Fixed: Codable, Sendable, Equatable {
            public let count: Int
            public let diseases: [String]
        }
        public let methods: [String]
        /// An aberration method's alarm raises a signal only with at least this many cases.
        public let minimumCases: Int?
        public let cidars: CIDARS?
        public let ears: EARS?
        public let fixedThreshold: Fixed?
    }

    struct File: Codable {
        struct Defaults: Codable {
            let reportWithinHours: [String: Int]
        }
        let version: String
        let defaults: Defaults
        let signals: SignalSettings?
        let diseases: [Disease]
    }

    public let version: String
    public let diseases: [Disease]
    /// The methods the daily run applies, with their parameters.
    public let signalMethods: [(method: AberrationMethod, parameters: AberrationParameters)]
    public let fixedThreshold: SignalSettings.Fixed?
    public let minimumCases: Int
    /// SHA-256 of the file: a changed file must carry a new version.
    public let contentHash: String
    let limits: [DiseaseClass: Int]
    let byCode: [String: Disease]
    let prefixes: [String: [String]]

    public init(data: Data, name: String = "notifiable-diseases.json") throws(SurveillanceError) {
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw .definitions("\(name): \(error)")
        }
        guard file.version.range(of: #"^[0-9A-Za-z.-]{1,20}$"#, options: .regularExpression) != nil else {
            throw .definitions("\(name): version must be 1–20 letters, digits, dots or dashes")
        }
        var limits: [DiseaseClass: Int] = [:]
        for disease in DiseaseClass.allCases {
            guard let hours = file.defaults.reportWithinHours[disease.rawValue], hours > 0 else {
                throw .definitions("\(name): defaults.reportWithinHours.\(disease.rawValue) must be a positive number of hours")
            }
            limits[disease] = hours
        }
        var prefixes: [String: [String]] = [:]
        for disease in file.diseases {
            let label = "\(name): disease \(disease.code.prefix(40))"
            guard disease.code.range(of: "^[a-z0-9][a-z0-9-]{1,39}$", options: .regularExpression) != nil else {
                throw .definitions("\(label): code must be lowercase letters, digits and -")
            }
            guard prefixes[disease.code] == nil else { throw .definitions("\(label) is defined twice") }
            if let days = disease.episodeDays, days < 1 { throw .definitions("\(label): episodeDays must be positive or null") }
            if let hours = disease.reportWithinHours, hours < 1 { throw .definitions("\(label): reportWithinHours must be positive") }
            if let classification = disease.diagnosisClassification, !["clinical", "confirmed"].contains(classification) {
                throw .definitions("\(label): diagnosisClassification must be clinical or confirmed")
            }
            guard !disease.icd10.isEmpty || !(disease.labs ?? []).isEmpty else {
                throw .definitions("\(label): needs ICD-10 codes or confirming results")
            }
            var expanded: [String] = []
            for item in disease.icd10 {
                guard let codes = Self.expand(item) else {
                    throw .definitions("\(label): \(item.prefix(20)) is not an ICD-10 code or range (A00, B18.0-B18.1, B20-B24)")
                }
                expanded += codes
            }
            for lab in disease.labs ?? [] where lab.range(of: #"^[0-9]{1,7}-[0-9]$"#, options: .regularExpression) == nil {
                throw .definitions("\(label): \(lab.prefix(20)) is not a LOINC code")
            }
            prefixes[disease.code] = Array(Set(expanded)).sorted()
        }
        var methods: [(AberrationMethod, AberrationParameters)] = []
        var parameters = AberrationParameters()
        if let ears = file.signals?.ears {
            parameters.baseline = ears.baseline ?? parameters.baseline
            parameters.alpha = ears.alpha ?? parameters.alpha
        }
        if let cidars = file.signals?.cidars {
            parameters.years = cidars.years ?? parameters.years
            parameters.neighbours = cidars.neighbours ?? parameters.neighbours
            parameters.percentile = cidars.percentile ?? parameters.percentile
            parameters.minCount = cidars.minCount ?? parameters.minCount
        }
        for name in file.signals?.methods ?? [] {
            guard let method = AberrationMethod(rawValue: name) else {
                throw .definitions("\(name): signals.methods: \(name.prefix(20)) is not C1, C2, C3, CUSUM or CIDARS")
            }
            do { _ = try Aberration.detect(method, counts: [0], range: 1...1, parameters: parameters) } catch {
                if case .invalidParameter = error { throw .definitions("\(name): signals: \(error.description)") }
            }
            guard Aberration.minimumFirstIndex(method, parameters: parameters) <= 3660 else {
                throw .definitions("\(name): signals: \(name) would need more than ten years of history")
            }
            methods.append((method, parameters))
        }
        if let fixed = file.signals?.fixedThreshold {
            guard fixed.count >= 1 else { throw .definitions("\(name): signals.fixedThreshold.count must be at least 1") }
            for code in fixed.diseases where prefixes[code] == nil {
                throw .definitions("\(name): signals.fixedThreshold names unknown disease \(code.prefix(40))")
            }
        }
        self.signalMethods = methods
        self.fixedThreshold = file.signals?.fixedThreshold
        guard (1...1000).contains(file.signals?.minimumCases ?? 1) else {
            throw .definitions("\(name): signals.minimumCases must be 1 to 1000")
        }
        self.minimumCases = file.signals?.minimumCases ?? 1
        self.version = file.version
        self.diseases = file.diseases
        self.byCode = Dictionary(uniqueKeysWithValues: file.diseases.map { ($0.code, $0) })
        self.limits = limits
        self.prefixes = prefixes
        self.contentHash = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    public static func load(directory: String) throws(SurveillanceError) -> CaseDefinitions {
        let path = directory + "/notifiable-diseases.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw .definitions("cannot read \(path)") }
        return try CaseDefinitions(data: data)
    }

    /// Looked up for every cell of a counts answer and every row of the line list.
    public func disease(_ code: String) -> Disease? { byCode[code] }

    public func reportWithinHours(_ disease: Disease) -> Int { disease.reportWithinHours ?? limits[disease.class] ?? 24 }

    public func diagnosisClassification(_ disease: Disease) -> String {
        disease.diagnosisClassification ?? ((disease.labs ?? []).isEmpty ? "confirmed" : "clinical")
    }

    /// The dotless prefixes an ICD-10 code or range stands for: "B18.0-B18.1" → B180, B181;
    /// "A15-A16" → A15, A16. A range stays within one letter and one level.
    static func expand(_ item: String) -> [String]? {
        let parts = item.uppercased().split(separator: "-", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: ".", with: "").trimmingCharacters(in: .whitespaces)
        }
        let pattern = #"^[A-Z][0-9]{2}[0-9A-Z]{0,3}$"#
        guard (1...2).contains(parts.count), parts.allSatisfy({ $0.range(of: pattern, options: .regularExpression) != nil }) else {
            return nil
        }
        guard parts.count == 2 else { return parts }
        let (first, last) = (parts[0], parts[1])
        guard first.first == last.first, first.count == last.count, first <= last,
            let low = Int(first.dropFirst()), let high = Int(last.dropFirst()), high - low < 1000
        else { return nil }
        let width = first.count - 1
        return (low...high).map { String(first.first!) + String(format: "%0\(width)d", $0) }
    }

    /// Writes the diseases, codes and results to the tables the trigger reads; a disease no longer
    /// defined stops reporting (its cases stay). A file whose content changed under the same
    /// version is refused. Reports already in the record that a newly added code or result
    /// qualifies become cases now, oldest first, as the trigger would have made them (go-live).
    /// Returns how many record items that back-fill reported.
    @discardableResult
    public func sync(client: PostgresClient, logger: Logger) async throws -> Int {
        try await client.transaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext('surveillance.sync'))", logger: logger)
            let known = try await connection.query(
                "SELECT content_hash FROM surveillance.definition_versions WHERE version = \(version)", logger: logger
            ).collect().first?.decode(String.self)
            if let known, known != contentHash {
                throw SurveillanceError.definitions(
                    "the case definitions changed but still say version \(version); give the changed file a new version")
            }
            if known == nil {
                try await connection.query(
                    "INSERT INTO surveillance.definition_versions (version, content_hash) VALUES (\(version), \(contentHash))",
                    logger: logger)
            }
            var addedCodes: [String] = []
            var addedLabs: [String] = []
            for disease in diseases {
                try await connection.query(
                    """
                    INSERT INTO surveillance.diseases
                        (code, version, name_zh, name_en, class, report_within_hours, episode_days, diagnosis_classification, active)
                    VALUES (\(disease.code), \(version), \(disease.name.zh), \(disease.name.en), \(disease.class.rawValue),
                            \(reportWithinHours(disease)), \(disease.episodeDays), \(diagnosisClassification(disease)), true)
                    ON CONFLICT (code) DO UPDATE SET version = EXCLUDED.version, name_zh = EXCLUDED.name_zh, name_en = EXCLUDED.name_en,
                        class = EXCLUDED.class, report_within_hours = EXCLUDED.report_within_hours, episode_days = EXCLUDED.episode_days,
                        diagnosis_classification = EXCLUDED.diagnosis_classification, active = true
                    """, logger: logger)
                let codes = prefixes[disease.code] ?? []
                addedCodes += try await connection.query(
                    """
                    WITH gone AS (DELETE FROM surveillance.disease_codes WHERE disease = \(disease.code) AND prefix <> ALL(\(codes)))
                    INSERT INTO surveillance.disease_codes (prefix, disease) SELECT p, \(disease.code) FROM unnest(\(codes)::text[]) AS p
                    ON CONFLICT DO NOTHING RETURNING prefix
                    """, logger: logger
                ).collect().map { try $0.decode(String.self) }
                let labs = disease.labs ?? []
                addedLabs += try await connection.query(
                    """
                    WITH gone AS (DELETE FROM surveillance.disease_labs WHERE disease = \(disease.code) AND code <> ALL(\(labs)))
                    INSERT INTO surveillance.disease_labs (code, disease) SELECT c, \(disease.code) FROM unnest(\(labs)::text[]) AS c
                    ON CONFLICT DO NOTHING RETURNING code
                    """, logger: logger
                ).collect().map { try $0.decode(String.self) }
            }
            try await connection.query(
                "UPDATE surveillance.diseases SET active = false WHERE code <> ALL(\(diseases.map(\.code)))", logger: logger)
            guard !addedCodes.isEmpty || !addedLabs.isEmpty else { return 0 }
            // The trigger's own function, item by item in time order, so episodes and upgrades come
            // out as they would have live; only items a new code or result qualifies are read.
            let rows = try await connection.query(
                """
                WITH items AS (
                    SELECT e.id FROM records.entries e
                    WHERE e.current AND e.code IS NOT NULL AND (
                        (e.kind = 'diagnosis' AND coalesce(e.certainty, 'confirmed') <> 'refuted'
                         AND EXISTS (SELECT 1 FROM unnest(\(addedCodes)::text[]) AS p(prefix)
                                     WHERE upper(regexp_replace(e.code, '[\\s.]', '', 'g')) LIKE p.prefix || '%'))
                        OR (e.kind = 'observation' AND e.code = ANY(\(addedLabs)::text[])))
                    ORDER BY coalesce(e.effective_at, e.recorded_at), e.id
                )
                SELECT count(surveillance.backfill_entry(id))::int4 FROM items
                """, logger: logger)
            let count = Int(try await rows.collect().first?.decode(Int32.self) ?? 0)
            if count > 0 {
                logger.info("reported cases from items already in the record", metadata: ["surveillance.items": "\(count)"])
            }
            return count
        }
    }
}
