import API
import Access
import ChronicCare
import ClinicalXML
import Consultation
import Crypto
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Interop
import Logging
import PostgresNIO
import Prometheus
import Records
import Registry
import Scheduling
import Surveillance
import ServiceLifecycle
import Storage

/// The composition root: builds the database client, the domain services, the HTTP application
/// and the MLLP listener, in dependency order. Nothing else opens connections or reads settings.
public enum QianyunServer {
    public static func makePostgresClient(_ configuration: Configuration, logger: Logger) throws -> PostgresClient {
        var postgres = try DatabaseURL.configuration(from: try configuration.requireDatabaseURL())
        postgres.options.maximumConnections = configuration.databasePoolSize
        return PostgresClient(configuration: postgres, backgroundLogger: logger)
    }

    /// A second, smaller pool whose sessions commit asynchronously, for work whose only write is
    /// the audit row of a read (card verification) or that can be redone (sealing the audit chain). Its commit does not wait for the WAL flush,
    /// which on this hardware is most of the call's cost and all of its tail; the row is on disk
    /// within a few wal_writer_delay rounds, and only a crash of PostgreSQL itself inside that
    /// window can lose it. Changes to health data never use this pool.
    public static func makeReadAuditClient(_ configuration: Configuration, logger: Logger) throws -> PostgresClient {
        var postgres = try DatabaseURL.configuration(from: try configuration.requireDatabaseURL())
        postgres.options.maximumConnections = max(4, configuration.databasePoolSize / 2)
        postgres.options.additionalStartupParameters.append(("synchronous_commit", "off"))
        return PostgresClient(configuration: postgres, backgroundLogger: logger)
    }

    /// The HL7 gateway's pool. Its hot statements are prepared once per connection and shaped so
    /// that one generic plan serves every batch size (LATERAL probes by key); with the default
    /// plan cache mode PostgreSQL would keep re-planning them per call, because a custom plan for
    /// a one-message batch always looks cheaper than the generic one. A cached plan outlives the
    /// statistics it was made from, though: made while a table was young and analysed at a few
    /// rows, it scans the table, and keeps scanning as the table grows (ten milliseconds per
    /// candidate query a few thousand registrations later). Every statement of the gateway is a
    /// probe by key returning a handful of rows, so its sessions rule out sequential scans, and
    /// bitmap scans, whose setup costs more than the rows they find. Only the gateway uses this pool.
    public static func makeIngestClient(_ configuration: Configuration, logger: Logger) throws -> PostgresClient {
        var postgres = try DatabaseURL.configuration(from: try configuration.requireDatabaseURL())
        postgres.options.maximumConnections = configuration.hl7ConcurrentBatches + 4
        postgres.options.additionalStartupParameters += ingestSessionSettings
        return PostgresClient(configuration: postgres, backgroundLogger: logger)
    }

    /// Tables that grow with every registration or message: their statistics are kept current
    /// (`StatisticsKeeper`), so that the gateway's cached plans follow their growth.
    static let hotTables = [
        "registry.residents", "registry.match_keys", "registry.identifiers", "registry.resident_events", "interop.messages",
        "access.audit_log", "access.audit_unsealed", "access.audit_chain",
    ]

    /// See `makeIngestClient`.
    /// The timeouts bound what one stuck batch can hold (its patients, one of the concurrent
    /// transactions); the gateway reruns a batch that hit one.
    public static let ingestSessionSettings = [
        ("plan_cache_mode", "force_generic_plan"), ("enable_seqscan", "off"), ("enable_bitmapscan", "off"),
        ("lock_timeout", "30s"), ("statement_timeout", "120s"),
    ]

    public static func migrations(_ configuration: Configuration) throws -> [Migration] {
        try Migration.load(directory: configuration.schemasDirectory + "/migrations")
    }

    public static func fieldProtector(_ configuration: Configuration) throws -> FieldProtector {
        guard let pseudonymKey = configuration.pseudonymKey, let last = configuration.encryptionKeys.last else {
            throw ConfigurationError("QIANYUN_ENCRYPTION_KEYS", "is required")
        }
        return try FieldProtector(
            encryptionKeys: Dictionary(uniqueKeysWithValues: configuration.encryptionKeys),
            currentKeyID: configuration.encryptionKeyID ?? last.0, pseudonymKey: pseudonymKey)
    }

    /// The whole service. `postgres` is passed in so tests can share the client they query with.
    public static func makeApplication(
        configuration: Configuration, postgres: PostgresClient, logger: Logger, metrics: PrometheusCollectorRegistry? = nil,
        onMLLPBound: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> some ApplicationProtocol {
        try configuration.validateForServing()
        let migrator = Migrator(client: postgres, migrations: try migrations(configuration), logger: logger)
        let protector = try fieldProtector(configuration)
        let openAPI = try String(contentsOfFile: configuration.schemasDirectory + "/openapi.yaml", encoding: .utf8)
        let tokenService = await TokenService(secret: configuration.jwtSecret!, lifetime: .seconds(configuration.tokenLifetimeSeconds))
        let clients = APIClients(
            client: postgres,
            policy: ThrottlePolicy(lockAfter: configuration.authLockAfterFailures, lockFor: .seconds(configuration.authLockSeconds)),
            logger: logger)
        let facilities = FacilityDirectory(client: postgres, logger: logger)
        let residents = ResidentRegistry(client: postgres, protector: protector, logger: logger)
        let readAudit = try makeReadAuditClient(configuration, logger: logger)
        let cards = HealthCardService(client: postgres, verifier: readAudit, registry: residents, logger: logger)
        let merges = MergeService(client: postgres, registry: residents, logger: logger)
        let ingest = try makeIngestClient(configuration, logger: logger)

        let readiness: @Sendable () async -> SystemController.Readiness = {
            var checks: [String: String] = [:]
            do {
                _ = try await postgres.query("SELECT 1", logger: logger).collect()
                checks["database"] = "ok"
            } catch {
                checks["database"] = "unreachable"
                return .init(ready: false, checks: checks)
            }
            switch try? await migrator.status() {
            case .current: checks["migrations"] = "current"
            case .pending(let versions): checks["migrations"] = "pending: \(versions.map(String.init).joined(separator: ","))"
            case .inconsistent: checks["migrations"] = "inconsistent"
            case nil: checks["migrations"] = "unknown"
            }
            return .init(ready: checks["migrations"] == "current", checks: checks)
        }

        let documents = ClinicalDocuments(
            client: postgres, registry: residents, protector: protector, schema: try cdaSchema(configuration, logger: logger),
            relationshipDays: configuration.relationshipDays, limits: XMLLimits(maximumBytes: configuration.maximumDocumentBytes),
            logger: logger)
        let reader = RecordReader(client: postgres, registry: residents, relationshipDays: configuration.relationshipDays, logger: logger)
        let monitoring = try MonitoringConfiguration.load(
            directory: configuration.rulesDirectory ?? configuration.schemasDirectory + "/rules")
        let readings = ReadingService(client: postgres, registry: residents, configuration: monitoring, logger: logger)
        let alerts = AlertService(client: postgres, registry: residents, configuration: monitoring, logger: logger)
        let monitor = MonitoringWorker(
            client: postgres, alerts: alerts, configuration: monitoring, interval: .seconds(configuration.monitorIntervalSeconds),
            sweepInterval: .seconds(configuration.sweepIntervalSeconds), logger: logger)
        let scheduling = makeScheduling(configuration: configuration, postgres: postgres, residents: residents, logger: logger)
        let consultations = ConsultationService(
            client: postgres, registry: residents,
            configuration: ConsultationConfiguration(
                escalateAfterMinutes: configuration.consultationEscalateMinutes,
                defaultHandlingMinutes: configuration.consultationDefaultHandlingMinutes),
            logger: logger)
        let consultationHub = ConsultationEventHub(client: postgres, logger: logger)
        let consultationWorker = ConsultationWorker(consultations: consultations, logger: logger)
        let surveillance = try makeSurveillance(configuration: configuration, postgres: postgres, protector: protector, logger: logger)
        let router = buildRouter(
            APIDependencies(
                tokens: TokenController(clients: clients, tokens: tokenService),
                facilities: FacilityController(directory: facilities),
                residents: ResidentController(residents: residents, cards: cards, merges: merges),
                fhir: FHIRController(residents: residents),
                interop: InteropController(log: MessageLog(client: postgres, logger: logger)),
                documents: DocumentController(documents: documents),
                records: RecordController(reader: reader),
                consents: ConsentController(consents: Consents(client: postgres, registry: residents, logger: logger)),
                fhirRecord: FHIRRecordController(reader: reader, documents: documents, readings: readings),
                chronicCare: ChronicCareController(
                    readings: readings,
                    enrolments: EnrolmentService(client: postgres, registry: residents, configuration: monitoring, logger: logger),
                    alerts: alerts, rules: RuleService(client: postgres, configuration: monitoring, logger: logger), worker: monitor),
                scheduling: scheduling.controller, fhirScheduling: scheduling.fhir,
                consultation: ConsultationController(
                    consultations: consultations, messages: MessageService(client: postgres, consultations: consultations, logger: logger),
                    rosters: RosterService(client: postgres, logger: logger),
                    feed: ConsultationEventFeed(client: postgres, consultations: consultations, hub: consultationHub, logger: logger)),
                surveillance: surveillance.controller,
                system: SystemController(readiness: readiness, metrics: metrics, openAPIDocument: openAPI),
                tokenService: tokenService, maximumBodyBytes: configuration.maximumBodyBytes,
                maximumDocumentBytes: configuration.maximumDocumentBytes))

        let mllp = MLLPServer(
            configuration: MLLPConfiguration(
                host: configuration.mllpHost, port: configuration.mllpPort,
                maximumMessageBytes: configuration.mllpMaximumMessageBytes,
                idleTimeout: .seconds(Int64(configuration.mllpIdleTimeoutSeconds)), tls: try mllpTLS(configuration)),
            handler: HL7Gateway(
                client: ingest, protector: protector, router: hl7Routes(residents: residents, merges: merges, logger: logger),
                maximumMessageBytes: configuration.mllpMaximumMessageBytes, batchSize: configuration.hl7BatchSize,
                concurrentBatches: configuration.hl7ConcurrentBatches, logger: logger),
            logger: logger, onBound: onMLLPBound)

        let server: HTTPServerBuilder
        if let certificate = configuration.tlsCertificatePath, let key = configuration.tlsKeyPath {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
            let tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            server = try .tls(.http1(), tlsConfiguration: tls)
        } else {
            server = .http1()
        }

        let migrated = Gate()
        var app = Application(
            router: router, server: server,
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "qianyun"),
            services: [
                // The sealer's commits may be asynchronous too: a sealing lost in a crash leaves its
                // rows unsealed and the chain head where it was, and the next pass seals them again.
                postgres, readAudit, ingest,
                StatisticsKeeper(client: readAudit, tables: hotTables, logger: logger),
                AuditSealer(trail: AuditTrail(client: readAudit, logger: logger), logger: logger), mllp,
                StartedAfterMigrations(monitor, gate: migrated), StartedAfterMigrations(scheduling.worker, gate: migrated),
                StartedAfterMigrations(consultationWorker, gate: migrated), StartedAfterMigrations(consultationHub, gate: migrated),
                StartedAfterMigrations(surveillance.worker, gate: migrated),
            ],
            logger: logger)
        let migrateOnStart = configuration.migrateOnStart
        app.beforeServerStarts {
            if migrateOnStart {
                let applied = try await migrator.migrate()
                logger.info("migrations current", metadata: ["migrations.applied": "\(applied.count)"])
            } else if case .inconsistent(let reason) = try await migrator.status() {
                throw MigrationStatusError(reason: reason)
            }
            // The enrolment trigger reads the programmes' qualifying diagnoses from the database.
            try await monitoring.sync(client: postgres, logger: logger)
            // So does case detection, the notifiable diseases' codes and confirming results.
            try await surveillance.definitions.sync(client: postgres, logger: logger)
            await migrated.open()
        }
        return app
    }
}

/// The appointments module: its services, its HTTP and FHIR controllers and its worker.
public func makeScheduling(configuration: Configuration, postgres: PostgresClient, residents: ResidentRegistry, logger: Logger) -> (
    controller: SchedulingController, fhir: FHIRSchedulingController, worker: SchedulingWorker
) {
    let policy = configuration.bookingPolicy
    let directory = SchedulingDirectory(client: postgres, policy: policy, logger: logger)
    let slots = SlotDirectory(client: postgres, logger: logger)
    let bookings = BookingService(client: postgres, registry: residents, policy: policy, logger: logger)
    let waitingList = WaitingList(bookings: bookings)
    let worker = SchedulingWorker(
        client: postgres, directory: directory, waitingList: waitingList, sink: LoggingNotificationSink(logger: logger),
        interval: .seconds(configuration.schedulingIntervalSeconds), logger: logger)
    return (
        SchedulingController(
            directory: directory, slots: slots, bookings: bookings,
            referrals: ReferralService(client: postgres, registry: residents, logger: logger), waitingList: waitingList, worker: worker),
        FHIRSchedulingController(directory: directory, slots: slots, bookings: bookings), worker
    )
}

/// The surveillance module: definitions, divisions, services, controller and the daily signal run.
public func makeSurveillance(configuration: Configuration, postgres: PostgresClient, protector: FieldProtector, logger: Logger) throws -> (
    definitions: CaseDefinitions, service: SurveillanceService, signals: SignalService, controller: SurveillanceController,
    worker: SignalWorker
) {
    let definitions = try CaseDefinitions.load(
        directory: configuration.caseDefinitionsDirectory ?? configuration.schemasDirectory + "/case-definitions")
    let divisions = try Divisions.load(path: configuration.schemasDirectory + "/code-tables/guizhou-divisions.json")
    let service = SurveillanceService(
        client: postgres, definitions: definitions, divisions: divisions, protector: protector,
        threshold: configuration.surveillanceSuppressionThreshold, logger: logger)
    let signals = SignalService(client: postgres, surveillance: service, logger: logger)
    return (
        definitions, service, signals, SurveillanceController(service: service, signals: signals),
        SignalWorker(signals: signals, runAtMinute: configuration.signalRunMinute, logger: logger)
    )
}

/// The CDA schema, compiled once at start; without one, documents are filed unchecked (logged once).
func cdaSchema(_ configuration: Configuration, logger: Logger) throws -> XMLSchema? {
    guard let path = configuration.cdaSchemaPath else {
        logger.warning("no CDA schema: clinical documents are filed without a schema check (see schemas/cda/README.md)")
        return nil
    }
    return try XMLSchema(path: path)
}

struct MigrationStatusError: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}

/// Runs `body` with a started `PostgresClient`, for the one-shot commands (migrate, fixtures,
/// clients, audit), then shuts the client down.
public func withPostgres<Result: Sendable>(
    _ configuration: Configuration, logger: Logger, _ body: @Sendable @escaping (PostgresClient) async throws -> Result
) async throws -> Result {
    // The pool warns when the first query races `run()`; a one-shot command always does.
    var poolLogger = logger
    poolLogger.logLevel = max(logger.logLevel, .error)
    let client = try QianyunServer.makePostgresClient(configuration, logger: poolLogger)
    return try await withThrowingTaskGroup(of: Result?.self) { group in
        group.addTask {
            await client.run()
            return nil
        }
        defer { group.cancelAll() }
        let result = try await body(client)
        return result
    }
}

/// Which HL7 messages the gateway applies, and where. Messages of other types are stored and
/// answered AE (200/201) until a module routes them.
public func hl7Routes(residents: ResidentRegistry, merges: MergeService, logger: Logger) -> HL7Router {
    let record = ClinicalRecord(logger: logger)
    var router = HL7Router()
    router.route("ADT", ADTRegistration.triggers, to: ADTRegistration(registry: residents, merges: merges, record: record))
    router.route("ORU", ResultApplication.triggers, to: ResultApplication(registry: residents, record: record))
    let medications = MedicationApplication(registry: residents, record: record)
    for (type, triggers) in MedicationApplication.routes { router.route(type, triggers, to: medications) }
    return router
}

/// MLLP over TLS from QIANYUN_MLLP_TLS_*: with a client CA, clients must present a certificate
/// it issued (mutual TLS), and `interop.senders.certificate_sha256` can bind it to a facility.
public func mllpTLS(_ configuration: Configuration) throws -> TLSConfiguration? {
    guard let certificate = configuration.mllpTLSCertificatePath, let key = configuration.mllpTLSKeyPath else { return nil }
    let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
    var tls = TLSConfiguration.makeServerConfiguration(
        certificateChain: chain, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
    if let authority = configuration.mllpTLSClientCAPath {
        tls.trustRoots = .file(authority)
        tls.certificateVerification = .noHostnameVerification
    }
    return tls
}

/// Opens once the schema is current, so that background services never query tables a
/// migration has not created yet. Waiting is cancellable: a service group shutting down before
/// the gate opened (a failed migration) must not hang on it.
actor Gate {
    private var isOpen = false
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiter = 0

    func open() {
        isOpen = true
        for waiter in waiters.values { waiter.resume() }
        waiters = [:]
    }

    func wait() async {
        if isOpen { return }
        let id = nextWaiter
        nextWaiter += 1
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if isOpen || Task.isCancelled {
                    continuation.resume()
                } else {
                    waiters[id] = continuation
                }
            }
        } onCancel: {
            Task { await self.release(id) }
        }
    }

    private func release(_ id: Int) {
        waiters.removeValue(forKey: id)?.resume()
    }
}

/// Runs a service once the gate opens.
struct StartedAfterMigrations<Wrapped: Service>: Service {
    let wrapped: Wrapped
    let gate: Gate

    init(_ wrapped: Wrapped, gate: Gate) {
        self.wrapped = wrapped
        self.gate = gate
    }

    func run() async throws {
        try await cancelWhenGracefulShutdown { await gate.wait() }
        guard !Task.isCancelled, !Task.isShuttingDownGracefully else { return }
        try await wrapped.run()
    }
}
