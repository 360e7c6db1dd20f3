import Access
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage
import Surveillance

/// Loads the demo data under `fixtures/demo`: facilities and one API client per role. Idempotent:
/// what exists already is left alone, so a second run loads nothing twice.
public enum DemoFixtures {
    public struct Report: Sendable, Equatable {
        public var facilitiesAdded = 0
        public var facilitiesPresent = 0
        public var clientsAdded = 0
        public var clientsPresent = 0
    }

    struct DemoClient: Decodable {
        let id: String
        let secret: String
        let role: Role
        let facility: String?
        let resident: String?
        let name: String
    }

    public static func load(directory: String, postgres: PostgresClient, logger: Logger) async throws -> Report {
        var report = Report()
        let system = Principal(clientID: "system:fixtures", role: .admin)
        let directoryService = FacilityDirectory(client: postgres, logger: logger)
        let facilities = try JSONDecoder().decode([FacilityDraft].self, from: try read(directory + "/facilities.json"))
        for draft in facilities {
            do {
                _ = try await directoryService.create(draft, by: system)
                report.facilitiesAdded += 1
            } catch RegistryError.duplicate {
                report.facilitiesPresent += 1
            }
        }
        let clients = APIClients(client: postgres, logger: logger)
        for demo in try JSONDecoder().decode([DemoClient].self, from: try read(directory + "/clients.json")) {
            let added = try await clients.register(
                role: demo.role, facility: demo.facility, resident: demo.resident, name: demo.name, id: demo.id,
                secret: demo.secret, ifAbsent: true)
            if added == nil { report.clientsPresent += 1 } else { report.clientsAdded += 1 }
        }
        return report
    }

    static func read(_ path: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("fixtures", "cannot read \(path)")
        }
        return data
    }
}

/// The demo's surveillance history (`surveillance-history.sql`): loaded once into an empty case
/// table, after the case definitions are synced, then the signal job runs for today.
public enum DemoSurveillance {
    public static func load(directory: String, configuration: Configuration, postgres: PostgresClient, logger: Logger) async throws
        -> (cases: Int, signals: Int)?
    {
        let path = directory + "/surveillance-history.sql"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let surveillance = try makeSurveillance(
            configuration: configuration, postgres: postgres, protector: try QianyunServer.fieldProtector(configuration), logger: logger)
        try await surveillance.definitions.sync(client: postgres, logger: logger)
        let existing = try await postgres.query("SELECT count(*)::int8 FROM surveillance.cases", logger: logger).collect().first?
            .decode(Int64.self)
        guard existing == 0 else { return nil }
        // The counties come from our own code table and the facility from the demo file: literals are safe here.
        let counties = surveillance.service.divisions.counties.map(\.code)
        guard counties.allSatisfy({ $0.allSatisfy(\.isNumber) }) else { return nil }
        let script = String(decoding: try DemoFixtures.read(path), as: UTF8.self)
            .replacingOccurrences(of: ":counties", with: "'{" + counties.joined(separator: ",") + "}'")
            .replacingOccurrences(of: ":facility", with: "'5201020001'")
        try await postgres.transaction(logger: logger) { connection in
            for statement in SQLScript.statements(in: script) {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
        let cases =
            try await postgres.query("SELECT count(*)::int8 FROM surveillance.cases", logger: logger).collect().first?
            .decode(Int64.self) ?? 0
        let run = try await surveillance.signals.run(day: CaseFilter.today(), trigger: "request")
        return (Int(cases), run.signalsRaised)
    }
}
