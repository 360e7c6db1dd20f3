import Access
import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import QianyunServer
import Registry
import Synchronization
import Storage

@main
struct Qianyun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qianyun",
        abstract: "Qianyun (黔云): regional health-records interoperability service.",
        subcommands: [Serve.self, Migrate.self, Fixtures.self, Clients.self, Import.self, HL7.self, Audit.self])
}

/// Options every command shares.
struct Common: ParsableArguments {
    @Option(name: .long, help: "A file of QIANYUN_*=value lines; environment variables override it.")
    var config: String?

    func load() throws -> (Configuration, Logger) {
        do {
            let configuration = try Configuration.load(environment: ProcessInfo.processInfo.environment, file: config)
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = configuration.logLevel
                return handler
            }
            return (configuration, Logger(label: "qianyun"))
        } catch {
            throw StartupFailure(message: "configuration error: \(error)")
        }
    }
}

/// A start-up failure reported as one line, without the usage text a `ValidationError` prints.
struct StartupFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve HTTP and MLLP until SIGINT or SIGTERM.")
    @OptionGroup var common: Common

    func run() async throws {
        let (configuration, logger) = try common.load()
        do {
            try configuration.validateForServing()
        } catch {
            throw StartupFailure(message: "configuration error: \(error)")
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let postgres = try QianyunServer.makePostgresClient(configuration, logger: logger)
        let app = try await QianyunServer.makeApplication(
            configuration: configuration, postgres: postgres, logger: logger, metrics: registry)
        try await app.runService()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending migrations from schemas/migrations.")
    @OptionGroup var common: Common
    @Flag(help: "Only report whether migrations are pending.") var status = false

    func run() async throws {
        let (configuration, logger) = try common.load()
        let migrations = try QianyunServer.migrations(configuration)
        let checkOnly = status
        try await withPostgres(configuration, logger: logger) { client in
            let migrator = Migrator(client: client, migrations: migrations, logger: logger)
            if checkOnly {
                let state = try await migrator.status()
                print("migrations: \(state)")
                if state != .current { throw ExitCode(3) }
            } else {
                let applied = try await migrator.migrate()
                print("applied \(applied.count) migration(s); \(migrations.count) known, database current")
            }
        }
    }
}

struct Fixtures: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Demo data.", subcommands: [Load.self])

    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Load demo facilities and clients (idempotent).")
        @OptionGroup var common: Common
        @Argument(help: "Folder holding facilities.json and clients.json.") var directory = "fixtures/demo"

        func run() async throws {
            let (configuration, logger) = try common.load()
            let directory = self.directory
            let (report, surveillance) = try await withPostgres(configuration, logger: logger) { client in
                (
                    try await DemoFixtures.load(directory: directory, postgres: client, logger: logger),
                    try await DemoSurveillance.load(directory: directory, configuration: configuration, postgres: client, logger: logger)
                )
            }
            print(
                "fixtures: \(report.facilitiesAdded) facilities added, \(report.facilitiesPresent) already present; "
                    + "\(report.clientsAdded) clients added, \(report.clientsPresent) already present")
            if let surveillance {
                print("fixtures: surveillance history of \(surveillance.cases) cases loaded; \(surveillance.signals) signals raised")
            }
        }
    }
}

struct Clients: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "API clients.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register an API client and print its secret once.")
        @OptionGroup var common: Common
        @Option(help: "his, clinician, patient, analyst or admin.") var role: String
        @Option(help: "Facility code the client is bound to (required for his).") var facility: String?
        @Option(help: "Resident id a patient client acts for.") var resident: String?
        @Option(help: "A label for operators.") var name: String?
        @Option(help: "Narrow the role's scopes (repeatable).") var scope: [String] = []
        @Option(help: "text or json.") var output = "text"

        func validate() throws {
            guard Role(rawValue: role) != nil else {
                throw ValidationError("--role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard ["text", "json"].contains(output) else { throw ValidationError("--output must be text or json") }
        }

        func run() async throws {
            let (configuration, logger) = try common.load()
            let role = Role(rawValue: self.role)!
            let (facility, resident, scopes, output) = (self.facility, self.resident, self.scope, self.output)
            let name = self.name ?? "\(role.rawValue) client"
            let registration: ClientRegistration
            do {
                registration = try await withPostgres(configuration, logger: logger) { client in
                    try await APIClients(client: client, logger: logger).register(
                        role: role, facility: facility, resident: resident, name: name,
                        scopes: scopes.isEmpty ? nil : Set(scopes))!
                }
            } catch let error as AccessError {
                throw StartupFailure(message: error.description)
            }
            if output == "json" {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(registration), as: UTF8.self))
            } else {
                print("client_id:     \(registration.id)")
                print("client_secret: \(registration.secret)")
                print("role:          \(registration.role.rawValue)")
                if let facility = registration.facility { print("facility:      \(facility)") }
                print("scopes:        \(registration.scopes.joined(separator: " "))")
                print("The secret is shown once; it is stored only as a hash.")
            }
        }
    }
}

struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Bulk imports.", subcommands: [Residents.self])

    struct Residents: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import a facility's patient list (UTF-8 CSV) through the matcher; a rerun changes nothing.",
            discussion: """
                Columns (header required, any order, others ignored): facility, local_id, name, sex (M/F), \
                birth_date (YYYY-MM-DD), id_number, phone, division. Empty means unknown. Rejected and \
                reviewed rows are listed with their reasons in the report file.
                """)
        @OptionGroup var common: Common
        @Argument(help: "The CSV file.") var file: String
        @Option(help: "Where to write rejected and reviewed rows (default: FILE.report.csv).") var report: String?
        @Option(help: "Rows per transaction.") var batchSize = 250
        @Option(help: "Batches in flight at once.") var workers = 2

        func validate() throws {
            guard (1...5000).contains(batchSize) else { throw ValidationError("--batch-size must be from 1 to 5000") }
            guard (1...16).contains(workers) else { throw ValidationError("--workers must be from 1 to 16") }
        }

        func run() async throws {
            let (configuration, logger) = try common.load()
            let protector = try QianyunServer.fieldProtector(configuration)
            let (file, reportPath, batchSize, workers) = (self.file, report ?? file + ".report.csv", self.batchSize, self.workers)
            let terminal = isatty(STDERR_FILENO) == 1
            let summary: ResidentImport.Summary
            do {
                summary = try await withPostgres(configuration, logger: logger) { client in
                    let registry = ResidentRegistry(client: client, protector: protector, logger: logger)
                    let job = ResidentImport(registry: registry, logger: logger, batchSize: batchSize, workers: workers)
                    let step = ProgressPrinter(terminal: terminal)
                    return try await job.run(path: file, reportPath: reportPath) { step.show($0) }
                }
            } catch let failure as ResidentImport.Failure {
                throw StartupFailure(message: "import failed: \(failure)")
            } catch let failure as CSVReader.Failure {
                throw StartupFailure(message: "import stopped: \(failure); the rows before it are imported, rerun after fixing the file")
            }
            if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
            print("import: \(summary.line); report: \(reportPath)")
        }
    }
}

/// Progress on stderr: one rewritten line on a terminal, a line per 100,000 rows otherwise.
final class ProgressPrinter: Sendable {
    let terminal: Bool
    let lastReported = Mutex(0)

    init(terminal: Bool) {
        self.terminal = terminal
    }

    func show(_ summary: ResidentImport.Summary) {
        if terminal {
            FileHandle.standardError.write(Data(String(format: "\r%d rows, %.0f rows/s ", summary.rows, summary.rate).utf8))
        } else if lastReported.withLock({ last in
            guard summary.rows / 100_000 > last / 100_000 else { return false }
            last = summary.rows
            return true
        }) {
            FileHandle.standardError.write(Data("progress: \(summary.line)\n".utf8))
        }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The audit trail.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Walk the hash chain and name the first broken row.")
        @OptionGroup var common: Common

        func run() async throws {
            let (configuration, logger) = try common.load()
            let result = try await withPostgres(configuration, logger: logger) { client in
                let trail = AuditTrail(client: client, logger: logger)
                // Seal what has been written so far, so the walk covers it.
                try await trail.seal()
                return try await trail.verify()
            }
            if let broken = result.firstBroken {
                print("audit chain BROKEN at row \(broken.sequence): \(broken.reason) (\(result.rowsChecked) rows verified before it)")
                throw ExitCode(1)
            }
            print("audit chain intact: \(result.rowsChecked) rows verified, \(result.unsealed) written since and not yet sealed")
        }
    }
}
