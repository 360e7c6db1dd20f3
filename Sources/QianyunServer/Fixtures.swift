import Access
import Foundation
import Logging
import PostgresNIO
import Registry

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
