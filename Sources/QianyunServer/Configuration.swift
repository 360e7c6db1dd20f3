import Crypto
import Foundation
import Logging
import Access
import Scheduling
import Storage

/// A setting that is missing or malformed; the message names the setting, never its value
/// (values include database passwords and keys).
public struct ConfigurationError: Error, Equatable, CustomStringConvertible {
    public let setting: String
    public let problem: String

    public init(_ setting: String, _ problem: String) {
        self.setting = setting
        self.problem = problem
    }

    public var description: String { "\(setting): \(problem)" }
}

/// Qianyun's settings, read from `QIANYUN_*` environment variables over an optional file of
/// `KEY=VALUE` lines (`QIANYUN_CONFIG_FILE` or `--config`). The README's table lists them all.
public struct Configuration: Sendable {
    public var databaseURL: String?
    public var httpHost = "127.0.0.1"
    public var httpPort = 8080
    public var mllpHost = "127.0.0.1"
    public var mllpPort = 2575
    public var mllpMaximumMessageBytes = 16 << 20
    public var mllpIdleTimeoutSeconds = 300
    /// Group commit: messages that may share one transaction, and such transactions at once.
    public var hl7BatchSize = 64
    public var hl7ConcurrentBatches = 4
    public var logLevel = Logger.Level.info
    public var jwtSecret: [UInt8]?
    public var tokenLifetimeSeconds = 900
    public var encryptionKeys: [(String, SymmetricKey)] = []
    public var encryptionKeyID: String?
    public var pseudonymKey: SymmetricKey?
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    public var mllpTLSCertificatePath: String?
    public var mllpTLSKeyPath: String?
    /// When set, MLLP clients must present a certificate issued by one of these CAs.
    public var mllpTLSClientCAPath: String?
    public var maximumBodyBytes = 1 << 20
    public var maximumDocumentBytes = 16 << 20
    /// The CDA R2 schema documents are checked against; nil when `schemas/cda` has none (see its README).
    public var cdaSchemaPath: String?
    /// How long after an encounter a facility may read a resident's record kept by others.
    public var relationshipDays = 90
    /// Programmes and rules (`programmes.json`, `chronic-rules.json`); `schemas/rules` by default.
    public var rulesDirectory: String?
    /// How often the chronic-care worker evaluates readings from the record and escalates alerts.
    public var monitorIntervalSeconds = 5
    /// How often it sweeps for silence and overdue follow-ups.
    public var sweepIntervalSeconds = 3600
    /// The booking rules' numbers and the booking rate limits.
    public var bookingPolicy = BookingPolicy()
    /// How often the scheduling worker hands freed places to waiting lists, reminds and delivers.
    public var schedulingIntervalSeconds = 30
    /// A consultation request still unclaimed this long is escalated.
    public var consultationEscalateMinutes = 10
    /// The handling time the estimated wait assumes until a department has its own recent figure.
    public var consultationDefaultHandlingMinutes = 10
    /// Case definitions (`notifiable-diseases.json`); `schemas/case-definitions` by default.
    public var caseDefinitionsDirectory: String?
    /// Counts from 1 to this minus one are suppressed in everything analysts see.
    public var surveillanceSuppressionThreshold = 5
    /// The daily signal run's local (Asia/Shanghai) time, as minutes after midnight.
    public var signalRunMinute = 2 * 60
    public var schemasDirectory: String
    public var migrateOnStart = true
    public var databasePoolSize = 20
    public var authLockAfterFailures = 10
    public var authLockSeconds = 900

    /// Every setting the service reads; a file naming anything else is refused as a likely typo.
    public static let settings: [String] = [
        "QIANYUN_DATABASE_URL", "QIANYUN_HTTP_HOST", "QIANYUN_HTTP_PORT", "QIANYUN_MLLP_HOST", "QIANYUN_MLLP_PORT",
        "QIANYUN_MLLP_MAX_MESSAGE_BYTES", "QIANYUN_MLLP_IDLE_TIMEOUT_SECONDS", "QIANYUN_LOG_LEVEL", "QIANYUN_JWT_SECRET",
        "QIANYUN_TOKEN_TTL_SECONDS", "QIANYUN_ENCRYPTION_KEYS", "QIANYUN_ENCRYPTION_KEY_ID", "QIANYUN_PSEUDONYM_KEY",
        "QIANYUN_TLS_CERT", "QIANYUN_TLS_KEY", "QIANYUN_MAX_BODY_BYTES", "QIANYUN_SCHEMAS_DIR", "QIANYUN_MIGRATE_ON_START",
        "QIANYUN_DB_POOL_SIZE", "QIANYUN_AUTH_LOCK_AFTER_FAILURES", "QIANYUN_AUTH_LOCK_SECONDS", "QIANYUN_CONFIG_FILE",
        "QIANYUN_MLLP_TLS_CERT", "QIANYUN_MLLP_TLS_KEY", "QIANYUN_MLLP_TLS_CLIENT_CA", "QIANYUN_HL7_BATCH_SIZE",
        "QIANYUN_HL7_CONCURRENT_BATCHES", "QIANYUN_MAX_DOCUMENT_BYTES", "QIANYUN_CDA_SCHEMA", "QIANYUN_RELATIONSHIP_DAYS",
        "QIANYUN_RULES_DIRECTORY", "QIANYUN_MONITOR_INTERVAL_SECONDS", "QIANYUN_SWEEP_INTERVAL_SECONDS", "QIANYUN_BOOKING_ACTIVE_LIMIT",
        "QIANYUN_BOOKING_NO_SHOW_LIMIT", "QIANYUN_BOOKING_SUSPENSION_DAYS", "QIANYUN_BOOKING_RESIDENT_PER_MINUTE",
        "QIANYUN_BOOKING_CLIENT_PER_SECOND", "QIANYUN_SCHEDULING_INTERVAL_SECONDS",
        "QIANYUN_CONSULTATION_ESCALATE_MINUTES", "QIANYUN_CONSULTATION_DEFAULT_HANDLING_MINUTES",
        "QIANYUN_CASE_DEFINITIONS_DIRECTORY", "QIANYUN_SUPPRESSION_THRESHOLD", "QIANYUN_SIGNAL_RUN_AT",
    ]

    public init(schemasDirectory: String) {
        self.schemasDirectory = schemasDirectory
    }

    /// Reads the file (if any) and then the environment, which wins.
    public static func load(environment: [String: String], file: String? = nil) throws(ConfigurationError) -> Configuration {
        var values: [String: String] = [:]
        if let path = file ?? environment["QIANYUN_CONFIG_FILE"], !path.isEmpty {
            values = try readFile(path)
        }
        for (key, value) in environment where key.hasPrefix("QIANYUN_") { values[key] = value }
        return try from(values)
    }

    static func readFile(_ path: String) throws(ConfigurationError) -> [String: String] {
        let setting = "QIANYUN_CONFIG_FILE"
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(setting, "cannot read \(path)")
        }
        var values: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let body = line.hasPrefix("export ") ? String(line.dropFirst(7)) : line
            guard let equals = body.firstIndex(of: "=") else {
                throw ConfigurationError(setting, "line \(number + 1) of \(path) is not KEY=VALUE")
            }
            let key = body[..<equals].trimmingCharacters(in: .whitespaces)
            var value = body[body.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            guard settings.contains(key) else {
                throw ConfigurationError(key, "unknown setting on line \(number + 1) of \(path)")
            }
            values[key] = value
        }
        return values
    }

    static func from(_ values: [String: String]) throws(ConfigurationError) -> Configuration {
        var configuration = Configuration(schemasDirectory: values["QIANYUN_SCHEMAS_DIR"] ?? defaultSchemasDirectory())
        func text(_ key: String) -> String? {
            guard let value = values[key]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
            return value
        }
        func integer(_ key: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
            guard let value = text(key) else { return nil }
            guard let number = Int(value), range.contains(number) else {
                throw ConfigurationError(key, "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        func base64Key(_ key: String) throws(ConfigurationError) -> [UInt8]? {
            guard let value = text(key) else { return nil }
            guard let data = Data(base64Encoded: value), data.count >= 32 else {
                throw ConfigurationError(key, "must be at least 32 random bytes, base64-encoded (openssl rand -base64 32)")
            }
            return Array(data)
        }

        if let url = text("QIANYUN_DATABASE_URL") {
            do {
                _ = try DatabaseURL.configuration(from: url)
            } catch {
                throw ConfigurationError("QIANYUN_DATABASE_URL", error.reason)
            }
            configuration.databaseURL = url
        }
        configuration.httpHost = text("QIANYUN_HTTP_HOST") ?? configuration.httpHost
        configuration.httpPort = try integer("QIANYUN_HTTP_PORT", 0...65535) ?? configuration.httpPort
        configuration.mllpHost = text("QIANYUN_MLLP_HOST") ?? configuration.mllpHost
        configuration.mllpPort = try integer("QIANYUN_MLLP_PORT", 0...65535) ?? configuration.mllpPort
        configuration.mllpMaximumMessageBytes =
            try integer("QIANYUN_MLLP_MAX_MESSAGE_BYTES", 1024...(256 << 20)) ?? configuration.mllpMaximumMessageBytes
        configuration.mllpIdleTimeoutSeconds =
            try integer("QIANYUN_MLLP_IDLE_TIMEOUT_SECONDS", 1...86400) ?? configuration.mllpIdleTimeoutSeconds
        configuration.hl7BatchSize = try integer("QIANYUN_HL7_BATCH_SIZE", 1...128) ?? configuration.hl7BatchSize
        configuration.hl7ConcurrentBatches = try integer("QIANYUN_HL7_CONCURRENT_BATCHES", 1...64) ?? configuration.hl7ConcurrentBatches
        if let level = text("QIANYUN_LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
                throw ConfigurationError("QIANYUN_LOG_LEVEL", "must be one of trace, debug, info, notice, warning, error, critical")
            }
            configuration.logLevel = parsed
        }
        configuration.jwtSecret = try base64Key("QIANYUN_JWT_SECRET")
        configuration.tokenLifetimeSeconds = try integer("QIANYUN_TOKEN_TTL_SECONDS", 60...86400) ?? configuration.tokenLifetimeSeconds
        if let keys = text("QIANYUN_ENCRYPTION_KEYS") {
            do {
                configuration.encryptionKeys = try FieldProtector.parseKeyList(keys)
            } catch {
                throw ConfigurationError("QIANYUN_ENCRYPTION_KEYS", error.description)
            }
        }
        if let id = text("QIANYUN_ENCRYPTION_KEY_ID") {
            guard configuration.encryptionKeys.contains(where: { $0.0 == id }) else {
                throw ConfigurationError("QIANYUN_ENCRYPTION_KEY_ID", "names a key that QIANYUN_ENCRYPTION_KEYS does not contain")
            }
            configuration.encryptionKeyID = id
        }
        configuration.pseudonymKey = try base64Key("QIANYUN_PSEUDONYM_KEY").map { SymmetricKey(data: $0) }
        configuration.tlsCertificatePath = text("QIANYUN_TLS_CERT")
        configuration.tlsKeyPath = text("QIANYUN_TLS_KEY")
        if (configuration.tlsCertificatePath == nil) != (configuration.tlsKeyPath == nil) {
            throw ConfigurationError(
                configuration.tlsCertificatePath == nil ? "QIANYUN_TLS_CERT" : "QIANYUN_TLS_KEY",
                "TLS needs both QIANYUN_TLS_CERT and QIANYUN_TLS_KEY")
        }
        configuration.mllpTLSCertificatePath = text("QIANYUN_MLLP_TLS_CERT")
        configuration.mllpTLSKeyPath = text("QIANYUN_MLLP_TLS_KEY")
        configuration.mllpTLSClientCAPath = text("QIANYUN_MLLP_TLS_CLIENT_CA")
        if (configuration.mllpTLSCertificatePath == nil) != (configuration.mllpTLSKeyPath == nil) {
            throw ConfigurationError(
                configuration.mllpTLSCertificatePath == nil ? "QIANYUN_MLLP_TLS_CERT" : "QIANYUN_MLLP_TLS_KEY",
                "MLLP over TLS needs both QIANYUN_MLLP_TLS_CERT and QIANYUN_MLLP_TLS_KEY")
        }
        if configuration.mllpTLSClientCAPath != nil, configuration.mllpTLSCertificatePath == nil {
            throw ConfigurationError(
                "QIANYUN_MLLP_TLS_CLIENT_CA", "client certificates need MLLP over TLS (QIANYUN_MLLP_TLS_CERT and _KEY)")
        }
        for (key, path) in [
            ("QIANYUN_TLS_CERT", configuration.tlsCertificatePath), ("QIANYUN_TLS_KEY", configuration.tlsKeyPath),
            ("QIANYUN_MLLP_TLS_CERT", configuration.mllpTLSCertificatePath), ("QIANYUN_MLLP_TLS_KEY", configuration.mllpTLSKeyPath),
            ("QIANYUN_MLLP_TLS_CLIENT_CA", configuration.mllpTLSClientCAPath),
        ] {
            if let path, !FileManager.default.isReadableFile(atPath: path) {
                throw ConfigurationError(key, "cannot read \(path)")
            }
        }
        configuration.maximumBodyBytes = try integer("QIANYUN_MAX_BODY_BYTES", 1024...(64 << 20)) ?? configuration.maximumBodyBytes
        configuration.maximumDocumentBytes =
            try integer("QIANYUN_MAX_DOCUMENT_BYTES", 1024...(256 << 20)) ?? configuration.maximumDocumentBytes
        configuration.relationshipDays = try integer("QIANYUN_RELATIONSHIP_DAYS", 1...3650) ?? configuration.relationshipDays
        configuration.rulesDirectory = text("QIANYUN_RULES_DIRECTORY")
        configuration.monitorIntervalSeconds =
            try integer("QIANYUN_MONITOR_INTERVAL_SECONDS", 1...3600) ?? configuration.monitorIntervalSeconds
        configuration.sweepIntervalSeconds =
            try integer("QIANYUN_SWEEP_INTERVAL_SECONDS", 10...86_400) ?? configuration.sweepIntervalSeconds
        var policy = BookingPolicy()
        policy.activeLimit = try integer("QIANYUN_BOOKING_ACTIVE_LIMIT", 1...100) ?? policy.activeLimit
        policy.noShowLimit = try integer("QIANYUN_BOOKING_NO_SHOW_LIMIT", 1...100) ?? policy.noShowLimit
        policy.suspensionDays = try integer("QIANYUN_BOOKING_SUSPENSION_DAYS", 1...3650) ?? policy.suspensionDays
        if let perMinute = try integer("QIANYUN_BOOKING_RESIDENT_PER_MINUTE", 1...100_000) {
            policy.residentPerMinute = perMinute
            policy.residentBurst = perMinute
        }
        if let perSecond = try integer("QIANYUN_BOOKING_CLIENT_PER_SECOND", 1...1_000_000) {
            policy.clientPerSecond = perSecond
            policy.clientBurst = max(policy.clientBurst, perSecond * 2)
        }
        configuration.bookingPolicy = policy
        configuration.schedulingIntervalSeconds =
            try integer("QIANYUN_SCHEDULING_INTERVAL_SECONDS", 1...3600) ?? configuration.schedulingIntervalSeconds
        configuration.consultationEscalateMinutes =
            try integer("QIANYUN_CONSULTATION_ESCALATE_MINUTES", 1...1440) ?? configuration.consultationEscalateMinutes
        configuration.consultationDefaultHandlingMinutes =
            try integer("QIANYUN_CONSULTATION_DEFAULT_HANDLING_MINUTES", 1...240) ?? configuration.consultationDefaultHandlingMinutes
        configuration.caseDefinitionsDirectory = text("QIANYUN_CASE_DEFINITIONS_DIRECTORY")
        configuration.surveillanceSuppressionThreshold =
            try integer("QIANYUN_SUPPRESSION_THRESHOLD", 1...100) ?? configuration.surveillanceSuppressionThreshold
        if let at = text("QIANYUN_SIGNAL_RUN_AT") {
            let parts = at.split(separator: ":").compactMap { Int($0) }
            guard at.count == 5, parts.count == 2, (0...23).contains(parts[0]), (0...59).contains(parts[1]) else {
                throw ConfigurationError("QIANYUN_SIGNAL_RUN_AT", "must be a local time like 02:00")
            }
            configuration.signalRunMinute = parts[0] * 60 + parts[1]
        }
        if let schema = text("QIANYUN_CDA_SCHEMA") {
            guard FileManager.default.isReadableFile(atPath: schema) else {
                throw ConfigurationError("QIANYUN_CDA_SCHEMA", "cannot read \(schema)")
            }
            configuration.cdaSchemaPath = schema
        } else {
            let bundled = configuration.schemasDirectory + "/cda/infrastructure/cda/CDA_SDTC.xsd"
            if FileManager.default.isReadableFile(atPath: bundled) { configuration.cdaSchemaPath = bundled }
        }
        if let migrate = text("QIANYUN_MIGRATE_ON_START") {
            guard let flag = Bool(migrate.lowercased()) else {
                throw ConfigurationError("QIANYUN_MIGRATE_ON_START", "must be true or false")
            }
            configuration.migrateOnStart = flag
        }
        configuration.databasePoolSize = try integer("QIANYUN_DB_POOL_SIZE", 1...500) ?? configuration.databasePoolSize
        configuration.authLockAfterFailures =
            try integer("QIANYUN_AUTH_LOCK_AFTER_FAILURES", 1...1000) ?? configuration.authLockAfterFailures
        configuration.authLockSeconds = try integer("QIANYUN_AUTH_LOCK_SECONDS", 1...86400 * 7) ?? configuration.authLockSeconds
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: configuration.schemasDirectory + "/migrations", isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            throw ConfigurationError("QIANYUN_SCHEMAS_DIR", "\(configuration.schemasDirectory) has no migrations/ folder")
        }
        return configuration
    }

    /// What `serve` needs beyond what `migrate` does; checked at start so a missing key is named
    /// before anything listens.
    public func validateForServing() throws(ConfigurationError) {
        guard databaseURL != nil else { throw ConfigurationError("QIANYUN_DATABASE_URL", "is required") }
        guard jwtSecret != nil else { throw ConfigurationError("QIANYUN_JWT_SECRET", "is required") }
        guard !encryptionKeys.isEmpty else { throw ConfigurationError("QIANYUN_ENCRYPTION_KEYS", "is required (id:base64 of 32 bytes)") }
        guard pseudonymKey != nil else { throw ConfigurationError("QIANYUN_PSEUDONYM_KEY", "is required") }
        if httpHost == mllpHost, httpPort == mllpPort, httpPort != 0 {
            throw ConfigurationError("QIANYUN_MLLP_PORT", "must differ from QIANYUN_HTTP_PORT")
        }
    }

    public func requireDatabaseURL() throws(ConfigurationError) -> String {
        guard let databaseURL else { throw ConfigurationError("QIANYUN_DATABASE_URL", "is required") }
        return databaseURL
    }

    /// `schemas/` in the working directory, else beside the checkout the binary was built in
    /// (`.build/release/qianyun` → `../../schemas`).
    static func defaultSchemasDirectory() -> String {
        let local = FileManager.default.currentDirectoryPath + "/schemas"
        if FileManager.default.fileExists(atPath: local + "/migrations") { return local }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        var directory = executable.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("schemas").path
            if FileManager.default.fileExists(atPath: candidate + "/migrations") { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return local
    }
}
