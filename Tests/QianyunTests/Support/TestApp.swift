import API
import Access
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PostgresNIO
import QianyunServer
import Testing

/// Everything an HTTP test needs: the client to call the app, and the database behind it.
struct TestApp: Sendable {
    let client: any TestClientProtocol
    let postgres: PostgresClient
    let configuration: Configuration

    /// Registers a client with a known secret and returns a bearer token for it.
    func token(role: Role, facility: String? = nil, resident: String? = nil, scopes: Set<String>? = nil) async throws -> String {
        let id = "t-\(role.rawValue)-\(UUID().uuidString.prefix(8).lowercased())"
        let secret = "secret-\(UUID().uuidString)"
        try await APIClients(client: postgres, logger: TestDatabase.logger).register(
            role: role, facility: facility, resident: resident, name: "test", scopes: scopes, id: id, secret: secret)
        let response = try await client.execute(
            uri: "/oauth/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
            body: ByteBuffer(string: "grant_type=client_credentials&client_id=\(id)&client_secret=\(secret)"))
        #expect(response.status == .ok)
        let json = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
        return try #require(json?["access_token"] as? String)
    }

    func request(
        _ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: String? = nil, headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = headers
        if let token { headers[.authorization] = "Bearer \(token)" }
        if json != nil { headers[.contentType] = "application/json" }
        return try await client.execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }
}

extension TestResponse {
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]) ?? [:]
    }
}

extension Data {
    init(buffer: ByteBuffer) {
        self.init(buffer.readableBytesView)
    }
}

func testConfiguration(_ overrides: [String: String] = [:]) throws -> Configuration {
    func key() -> String { Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() }
    var environment = [
        "QIANYUN_SCHEMAS_DIR": TestDatabase.schemasDirectory, "QIANYUN_JWT_SECRET": key(),
        "QIANYUN_ENCRYPTION_KEYS": "k1:\(key())", "QIANYUN_PSEUDONYM_KEY": key(), "QIANYUN_HTTP_PORT": "0",
        "QIANYUN_MLLP_PORT": "0", "QIANYUN_LOG_LEVEL": "warning",
    ]
    environment.merge(overrides) { $1 }
    return try Configuration.load(environment: environment)
}

/// The real application through the composition root on a fresh database, handed to `run`; the
/// database is dropped afterwards, pass or fail.
func withFreshApplication<Result: Sendable>(
    _ overrides: [String: String], logger: Logger, onMLLPBound: @escaping @Sendable (Int) -> Void = { _ in },
    _ run: (_ app: any ApplicationProtocol, _ postgres: PostgresClient, _ configuration: Configuration, _ database: String) async throws
        -> Result
) async throws -> Result {
    let name = try await TestDatabase.shared.create()
    do {
        var configuration = try testConfiguration(overrides)
        configuration.databaseURL = TestDatabase.url(database: name)
        configuration.databasePoolSize = 8
        let postgres = try QianyunServer.makePostgresClient(configuration, logger: logger)
        let app = try await QianyunServer.makeApplication(
            configuration: configuration, postgres: postgres, logger: logger, onMLLPBound: onMLLPBound)
        let result = try await run(app, postgres, configuration, name)
        await TestDatabase.shared.drop(name)
        return result
    } catch {
        await TestDatabase.shared.drop(name)
        throw error
    }
}

/// Builds the real application through the composition root on a fresh database.
func withTestApp<Result: Sendable>(
    _ overrides: [String: String] = [:], logger: Logger = TestDatabase.logger, _ body: @Sendable (TestApp) async throws -> Result
) async throws -> Result {
    try await withFreshApplication(overrides, logger: logger) { app, postgres, configuration, _ in
        try await app.test(.router) { client in
            try await body(TestApp(client: client, postgres: postgres, configuration: configuration))
        }
    }
}

/// The real application serving on loopback ports, for clients outside the process (a browser):
/// HTTP on `httpPort` (HummingbirdTesting's live framework) and MLLP on `mllpPort`.
struct LiveTestApp: Sendable {
    let app: TestApp
    let httpPort: Int
    let mllpPort: Int
    let database: String

    /// The origin a browser on this machine reaches the service at. The live framework binds
    /// `localhost`, which `/etc/hosts` maps to 127.0.0.1 here; a browser resolves it the same way.
    var origin: String { "http://localhost:\(httpPort)" }
}

/// As `withTestApp`, with the service listening for real (`.live`) instead of answering the
/// router in process.
func withLiveTestApp<Result: Sendable>(
    _ overrides: [String: String] = [:], logger: Logger = TestDatabase.logger, _ body: @Sendable (LiveTestApp) async throws -> Result
) async throws -> Result {
    let (mllpPorts, bound) = AsyncStream<Int>.makeStream()
    let announce: @Sendable (Int) -> Void = { bound.yield($0) }
    return try await withFreshApplication(overrides, logger: logger, onMLLPBound: announce) { app, postgres, configuration, name in
        try await app.test(.live) { client in
            let httpPort = try #require(client.port)
            var ports = mllpPorts.makeAsyncIterator()
            let mllpPort = try #require(await ports.next())
            return try await body(
                LiveTestApp(
                    app: TestApp(client: client, postgres: postgres, configuration: configuration), httpPort: httpPort,
                    mllpPort: mllpPort, database: name))
        }
    }
}
