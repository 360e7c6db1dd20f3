import API
import Access
import ChronicCare
import Consultation
import Foundation
import Interop
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PostgresNIO
import QianyunServer
import Records
import Registry
import Testing

@Suite(needsDatabase) struct SystemRouteTests {
    @Test func healthAndReadiness() async throws {
        try await withTestApp { app in
            let health = try await app.request(.get, "/healthz")
            #expect(health.status == .ok)
            #expect(health.json["status"] as? String == "ok")
            #expect(health.headers[HTTPField.Name("X-Request-Id")!]?.isEmpty == false)
            let ready = try await app.request(.get, "/readyz")
            #expect(ready.status == .ok)
            #expect(ready.json["status"] as? String == "ready")
            #expect((ready.json["checks"] as? [String: String])?["migrations"] == "current")
            let metrics = try await app.request(.get, "/metrics")
            #expect(metrics.status == .ok)
        }
    }

    @Test func readinessFailsWhenMigrationsArePending() async throws {
        try await withTestApp { app in
            try await app.postgres.query("DELETE FROM public.schema_migrations WHERE version = 3")
            let ready = try await app.request(.get, "/readyz")
            #expect(ready.status == .serviceUnavailable)
            #expect((ready.json["checks"] as? [String: String])?["migrations"] == "pending: 3")
        }
    }

    @Test func aCallersRequestIDIsEchoedAndAGarbageOneReplaced() async throws {
        try await withTestApp { app in
            let kept = try await app.request(.get, "/healthz", headers: [HTTPField.Name("X-Request-Id")!: "abc-123"])
            #expect(kept.headers[HTTPField.Name("X-Request-Id")!] == "abc-123")
            let replaced = try await app.request(.get, "/healthz", headers: [HTTPField.Name("X-Request-Id")!: "bad id\u{7F}<script>"])
            #expect(replaced.headers[HTTPField.Name("X-Request-Id")!] != "bad id\u{7F}<script>")
        }
    }

    @Test func unknownRoutesAreProblems() async throws {
        try await withTestApp { app in
            let response = try await app.request(.get, "/no/such/route")
            #expect(response.status == .notFound)
            #expect(response.headers[.contentType] == "application/problem+json")
            #expect(response.json["type"] as? String == "urn:qianyun:problem:not-found")
            #expect(response.json["requestId"] as? String == response.headers[HTTPField.Name("X-Request-Id")!])
        }
    }

    @Test func aKnownPathWithAnUnknownMethodIs405() async throws {
        try await withTestApp { app in
            let response = try await app.request(.delete, "/api/v1/facilities/ABC")
            #expect(response.status == .methodNotAllowed)
            #expect(response.headers[.allow] == "GET, PATCH")
            #expect(response.headers[.contentType] == "application/problem+json")
            #expect(try await app.request(.trace, "/readyz").headers[.allow] == "GET")
            #expect(try await app.request(.get, "/no/such/path").status == .notFound)
            #expect(try await app.request(.get, "/api/v1/facilities?cursor=").status == .unauthorized)
        }
    }

    /// The OpenAPI document and the router list the same operations.
    @Test func openAPIDocumentIsInStepWithTheRoutes() async throws {
        let document = try String(contentsOfFile: TestDatabase.schemasDirectory + "/openapi.yaml", encoding: .utf8)
        var documented = Set<String>()
        var path: String?
        for line in document.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if !line.hasPrefix(" "), !line.isEmpty {
                path = nil
            } else if let current = path, line.hasPrefix("    "), !line.hasPrefix("     ") {
                let key = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "put", "post", "patch", "delete"].contains(String(key)) {
                    documented.insert("\(key.uppercased()) \(current)")
                }
            }
        }
        var configuration = try testConfiguration()
        configuration.databaseURL = "postgres://u@127.0.0.1/none"
        let postgres = PostgresClient(configuration: try DatabaseURL.configuration(from: configuration.databaseURL!))
        let residents = ResidentRegistry(
            client: postgres, protector: try QianyunServer.fieldProtector(configuration), logger: TestDatabase.logger)
        let scheduling = makeScheduling(configuration: configuration, postgres: postgres, residents: residents, logger: TestDatabase.logger)
        let router = buildRouter(
            APIDependencies(
                tokens: TokenController(
                    clients: APIClients(client: postgres, logger: TestDatabase.logger),
                    tokens: await TokenService(secret: Array(repeating: 1, count: 32), lifetime: .seconds(60))),
                facilities: FacilityController(directory: FacilityDirectory(client: postgres, logger: TestDatabase.logger)),
                residents: ResidentController(
                    residents: residents, cards: HealthCardService(client: postgres, registry: residents, logger: TestDatabase.logger),
                    merges: MergeService(client: postgres, registry: residents, logger: TestDatabase.logger)),
                fhir: FHIRController(residents: residents),
                interop: InteropController(log: MessageLog(client: postgres, logger: TestDatabase.logger)),
                documents: DocumentController(
                    documents: ClinicalDocuments(
                        client: postgres, registry: residents, protector: try QianyunServer.fieldProtector(configuration), schema: nil,
                        logger: TestDatabase.logger)),
                records: RecordController(reader: RecordReader(client: postgres, registry: residents, logger: TestDatabase.logger)),
                consents: ConsentController(consents: Consents(client: postgres, registry: residents, logger: TestDatabase.logger)),
                fhirRecord: FHIRRecordController(
                    reader: RecordReader(client: postgres, registry: residents, logger: TestDatabase.logger),
                    documents: ClinicalDocuments(
                        client: postgres, registry: residents, protector: try QianyunServer.fieldProtector(configuration), schema: nil,
                        logger: TestDatabase.logger)),
                chronicCare: try chronicCareController(postgres: postgres, residents: residents),
                scheduling: scheduling.controller, fhirScheduling: scheduling.fhir,
                consultation: consultationController(postgres: postgres, residents: residents),
                surveillance: try makeSurveillance(
                    configuration: configuration, postgres: postgres, protector: try QianyunServer.fieldProtector(configuration),
                    logger: TestDatabase.logger
                ).controller,
                system: SystemController(readiness: { .init(ready: true, checks: [:]) }, metrics: nil, openAPIDocument: ""),
                tokenService: await TokenService(secret: Array(repeating: 1, count: 32), lifetime: .seconds(60)),
                maximumBodyBytes: 1024, maximumDocumentBytes: 4096))
        let routed = Set(
            router.routes.map { route in
                let template = route.path.description.replacingOccurrences(of: ":", with: "")
                let normalised = template.split(separator: "/").map { part in
                    part.hasPrefix("{") ? String(part) : String(part)
                }.joined(separator: "/")
                return "\(route.method) /\(normalised)"
            })
        #expect(
            routed == documented,
            "only routed: \(routed.subtracting(documented).sorted()); only documented: \(documented.subtracting(routed).sorted())")
        #expect(documented.count >= 9)
    }
}

import Storage

@Suite(needsDatabase) struct AuthenticationTests {
    static func form(_ fields: String) -> ByteBuffer { ByteBuffer(string: fields) }

    @Test func clientCredentialsGrantIssuesAWorkingToken() async throws {
        try await withTestApp { app in
            try await APIClients(client: app.postgres, logger: TestDatabase.logger).register(
                role: .analyst, name: "cdc", id: "cdc-tool", secret: "s3cret-value")
            // Basic auth, as RFC 6749 prefers.
            let basic = Data("cdc-tool:s3cret-value".utf8).base64EncodedString()
            let response = try await app.client.execute(
                uri: "/oauth/token", method: .post,
                headers: [.authorization: "Basic \(basic)", .contentType: "application/x-www-form-urlencoded"],
                body: Self.form("grant_type=client_credentials&scope=facilities.read"))
            #expect(response.status == .ok)
            #expect(response.headers[.cacheControl] == "no-store")
            #expect(response.json["token_type"] as? String == "Bearer")
            #expect(response.json["expires_in"] as? Int == 900)
            #expect(response.json["scope"] as? String == "facilities.read")
            let token = try #require(response.json["access_token"] as? String)
            #expect(try await app.request(.get, "/api/v1/facilities", token: token).status == .ok)
            let audited = try await app.postgres.query(
                "SELECT count(*) FROM access.audit_log WHERE actor = 'cdc-tool' AND action = 'auth.token.issue' AND outcome = 'success'"
            ).collect().first?.decode(Int.self)
            #expect(audited == 1)
        }
    }

    @Test func wrongSecretsAreRefusedAuditedAndNeverLogged() async throws {
        let logs = CapturedLogs()
        try await withTestApp(logger: logs.logger) { app in
            try await APIClients(client: app.postgres, logger: TestDatabase.logger).register(
                role: .analyst, name: "cdc", id: "cdc-tool", secret: "the-right-secret")
            for (body, expected) in [
                ("grant_type=client_credentials&client_id=cdc-tool&client_secret=Wr0ngSecretValue", "bad-secret"),
                ("grant_type=client_credentials&client_id=nobody&client_secret=Wr0ngSecretValue", "unknown-client"),
            ] {
                let response = try await app.client.execute(
                    uri: "/oauth/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: Self.form(body))
                #expect(response.status == .unauthorized)
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(response.json["type"] as? String == "urn:qianyun:problem:invalid-client")
                #expect(response.json["error"] as? String == "invalid_client")
                let denied = try await app.postgres.query(
                    "SELECT count(*) FROM access.audit_log WHERE action = 'auth.token.deny' AND detail = \(expected)"
                ).collect().first?.decode(Int.self)
                #expect(denied == 1)
            }
            let missing = try await app.client.execute(
                uri: "/oauth/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: Self.form("grant_type=password&username=a"))
            #expect(missing.status == .badRequest)
            #expect(missing.json["error"] as? String == "unsupported_grant_type")
            #expect(try await AuditTrail(client: app.postgres, logger: TestDatabase.logger).verify().isIntact)
        }
        #expect(!logs.text.contains("Wr0ngSecretValue"))
        #expect(!logs.text.contains("the-right-secret"))
    }

    @Test func repeatedFailuresLockTheClientOut() async throws {
        try await withTestApp(["QIANYUN_AUTH_LOCK_AFTER_FAILURES": "3"]) { app in
            try await APIClients(client: app.postgres, logger: TestDatabase.logger).register(
                role: .analyst, name: "cdc", id: "cdc-tool", secret: "right")
            func attempt(_ secret: String) async throws -> TestResponse {
                try await app.client.execute(
                    uri: "/oauth/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                    body: Self.form("grant_type=client_credentials&client_id=cdc-tool&client_secret=\(secret)"))
            }
            for _ in 0..<3 { #expect(try await attempt("wrong").status == .unauthorized) }
            let locked = try await attempt("right")
            #expect(locked.status == .tooManyRequests, "even the right secret waits out the lock")
            #expect(Int(locked.headers[.retryAfter] ?? "") ?? 0 > 0)
            #expect(locked.json["type"] as? String == "urn:qianyun:problem:too-many-failures")
            let lockedAudits = try await app.postgres.query(
                "SELECT count(*) FROM access.audit_log WHERE detail = 'locked'"
            ).collect().first?.decode(Int.self)
            #expect(lockedAudits == 1)
        }
    }

    @Test func perAddressFailuresLockEveryClientFromThatAddress() async throws {
        try await withTestDatabase { client, _ in
            let clients = APIClients(
                client: client, policy: ThrottlePolicy(slowAfter: 100, lockAfter: 4), logger: TestDatabase.logger)
            try await clients.register(role: .analyst, name: "x", id: "victim", secret: "right")
            for n in 0..<4 {
                await #expect(throws: AccessError.invalidClient) {
                    try await clients.authenticate(
                        clientID: "guess-\(n)", secret: "x", requestedScopes: nil, address: "10.9.8.7", requestID: nil)
                }
            }
            await #expect(throws: AccessError.self) {
                try await clients.authenticate(
                    clientID: "victim", secret: "right", requestedScopes: nil, address: "10.9.8.7", requestID: nil)
            }
            let fromElsewhere = try await clients.authenticate(
                clientID: "victim", secret: "right", requestedScopes: nil, address: "10.1.1.1", requestID: nil)
            #expect(fromElsewhere.clientID == "victim")
        }
    }

    @Test func missingMalformedForeignAndExpiredTokensGet401() async throws {
        try await withTestApp { app in
            let foreign = try await TokenService(secret: Array(repeating: 9, count: 32), lifetime: .seconds(60))
                .issue(for: Principal(clientID: "x", role: .admin)).token
            let ownSecret = try #require(app.configuration.jwtSecret)
            let expired = try await TokenService(secret: ownSecret, lifetime: .seconds(60))
                .issue(for: Principal(clientID: "x", role: .admin), now: Date().addingTimeInterval(-7200)).token
            let cases: [(HTTPFields, String)] = [
                ([:], "missing bearer token"),
                ([.authorization: "Token abc"], "Authorization header must be 'Bearer <token>'"),
                ([.authorization: "Bearer not-a-jwt"], "token is malformed or not signed by this service"),
                ([.authorization: "Bearer \(foreign)"], "token signature is not valid"),
                ([.authorization: "Bearer \(expired)"], "token has expired"),
            ]
            for (headers, detail) in cases {
                let response = try await app.request(.get, "/api/v1/facilities", headers: headers)
                #expect(response.status == .unauthorized)
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                #expect(response.json["type"] as? String == "urn:qianyun:problem:unauthenticated")
                #expect(response.json["detail"] as? String == detail)
            }
        }
    }

    @Test func jsonBodiesScopesAndUnsignedTokens() async throws {
        try await withTestApp { app in
            try await APIClients(client: app.postgres, logger: TestDatabase.logger).register(
                role: .analyst, name: "cdc", id: "cdc-tool", secret: "s3cret-value")
            let json = try await app.request(
                .post, "/oauth/token", json: #"{"grant_type":"client_credentials","client_id":"cdc-tool","client_secret":"s3cret-value"}"#)
            #expect(json.status == .ok)
            #expect(json.json["scope"] as? String == "facilities.read surveillance.read surveillance.review")
            let widened = try await app.request(
                .post, "/oauth/token",
                json:
                    #"{"grant_type":"client_credentials","client_id":"cdc-tool","client_secret":"s3cret-value","scope":"facilities.write"}"#
            )
            #expect(widened.status == .badRequest)
            #expect(widened.json["error"] as? String == "invalid_scope")
            let xml = try await app.request(.post, "/oauth/token", headers: [.contentType: "text/xml"])
            #expect(xml.status == .unsupportedMediaType)

            // alg "none" with an admin claim: refused, whatever it claims.
            func b64(_ text: String) -> String {
                Data(text.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
                    .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            }
            let exp = Int(Date().timeIntervalSince1970) + 600
            let unsigned =
                b64(#"{"alg":"none","typ":"JWT"}"#) + "."
                + b64(
                    #"{"sub":"x","iss":"qianyun","aud":"qianyun-api","iat":1,"exp":\#(exp),"jti":"j","role":"admin","scope":"facilities.write"}"#
                ) + "."
            let response = try await app.request(.post, "/api/v1/facilities", token: unsigned, json: FacilityRouteTests.draft)
            #expect(response.status == .unauthorized)
        }
    }

    @Test func registrationRules() async throws {
        try await withTestDatabase { client, _ in
            let clients = APIClients(client: client, logger: TestDatabase.logger)
            await #expect(throws: AccessError.self) { try await clients.register(role: .his, name: "no facility") }
            await #expect(throws: AccessError.self) { try await clients.register(role: .his, facility: "NOPE", name: "unknown facility") }
            await #expect(throws: AccessError.self) { try await clients.register(role: .patient, name: "no resident") }
            await #expect(throws: AccessError.self) { try await clients.register(role: .analyst, name: "x", scopes: ["facilities.write"]) }
            let made = try #require(try await clients.register(role: .admin, name: "ops"))
            #expect(made.id.hasPrefix("qyc_") && made.secret.hasPrefix("qys_"))
            let stored = try await client.query("SELECT secret_hash FROM access.clients WHERE id = \(made.id)").collect().first?.decode(
                String.self)
            #expect(stored?.contains(made.secret) == false)
        }
    }
}

@Suite(needsDatabase) struct FacilityRouteTests {
    static let draft = #"{"code":"5201020099","name":"测试医院","level":"tertiary","division":"520102"}"#

    @Test func adminRegistersUpdatesAndEveryoneReads() async throws {
        try await withTestApp { app in
            let admin = try await app.token(role: .admin)
            let created = try await app.request(.post, "/api/v1/facilities", token: admin, json: Self.draft)
            #expect(created.status == .created)
            #expect(created.headers[.location] == "/api/v1/facilities/5201020099")
            #expect(created.json["name"] as? String == "测试医院")
            let patched = try await app.request(
                .patch, "/api/v1/facilities/5201020099", token: admin, json: #"{"active":false,"level":"community"}"#)
            #expect(patched.status == .ok)
            #expect(patched.json["active"] as? Bool == false)
            #expect(patched.json["level"] as? String == "primary")
            #expect(patched.json["primaryKind"] as? String == "community")
            let analyst = try await app.token(role: .analyst)
            let read = try await app.request(.get, "/api/v1/facilities/5201020099", token: analyst)
            #expect(read.status == .ok)
            #expect(read.json["division"] as? String == "520102")
            let audits = try await app.postgres.query(
                "SELECT count(*) FROM access.audit_log WHERE action IN ('facility.create','facility.update') AND resource = 'facility/5201020099'"
            ).collect().first?.decode(Int.self)
            #expect(audits == 2)
        }
    }

    @Test func otherRolesGet403AndChangeNothing() async throws {
        try await withTestApp { app in
            let admin = try await app.token(role: .admin)
            #expect(
                try await app.request(
                    .post, "/api/v1/facilities", token: admin, json: #"{"code":"H1","name":"h","level":"secondary","division":"520103"}"#
                ).status == .created)
            for role in [Role.clinician, .analyst] {
                let token = try await app.token(role: role, facility: role == .clinician ? "H1" : nil)
                let response = try await app.request(.post, "/api/v1/facilities", token: token, json: Self.draft)
                #expect(response.status == .forbidden)
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(response.json["type"] as? String == "urn:qianyun:problem:forbidden")
                #expect(
                    try await app.request(.patch, "/api/v1/facilities/H1", token: token, json: #"{"active":false}"#).status == .forbidden)
            }
            let his = try await app.token(role: .his, facility: "H1")
            #expect(try await app.request(.post, "/api/v1/facilities", token: his, json: Self.draft).status == .forbidden)
            let count = try await app.postgres.query("SELECT count(*) FROM registry.facilities").collect().first?.decode(Int.self)
            #expect(count == 1)
            let still = try await app.request(.get, "/api/v1/facilities/H1", token: admin)
            #expect(still.json["active"] as? Bool == true)
        }
    }

    @Test func badInputIsAClearProblemAndChangesNothing() async throws {
        try await withTestApp(["QIANYUN_MAX_BODY_BYTES": "2048"]) { app in
            let admin = try await app.token(role: .admin)
            let cases: [(String, HTTPResponse.Status, String, String?)] = [
                (#"{"code":"A1","name":"n","level":"tertiary","division":"5201"}"#, .unprocessableContent, "validation", "division"),
                (#"{"code":"A1","name":"n","level":"nope","division":"520102"}"#, .unprocessableContent, "validation", "level"),
                (#"{"code":"A1","name":"n","level":"tertiary"}"#, .badRequest, "invalid-body", "division"),
                (#"{"code":7,"name":"n","level":"tertiary","division":"520102"}"#, .badRequest, "invalid-body", "code"),
                (#"{"code":"A1","#, .badRequest, "invalid-body", nil),
                ("[1,2,3]", .badRequest, "invalid-body", nil),
            ]
            for (body, status, code, field) in cases {
                let response = try await app.request(.post, "/api/v1/facilities", token: admin, json: body)
                #expect(response.status == status, "\(body)")
                #expect(response.json["type"] as? String == "urn:qianyun:problem:\(code)", "\(body)")
                if let field {
                    #expect((response.json["errors"] as? [[String: String]])?.first?["field"] == field, "\(body)")
                }
            }
            let huge = #"{"code":"A1","name":""# + String(repeating: "x", count: 5000) + #"","level":"tertiary","division":"520102"}"#
            let tooLarge = try await app.request(.post, "/api/v1/facilities", token: admin, json: huge)
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge.json["type"] as? String == "urn:qianyun:problem:body-too-large")
            #expect(try await app.request(.post, "/api/v1/facilities", token: admin, json: Self.draft).status == .created)
            let duplicate = try await app.request(.post, "/api/v1/facilities", token: admin, json: Self.draft)
            #expect(duplicate.status == .conflict)
            #expect(try await app.request(.get, "/api/v1/facilities/NOPE", token: admin).status == .notFound)
            let count = try await app.postgres.query("SELECT count(*) FROM registry.facilities").collect().first?.decode(Int.self)
            #expect(count == 1)
        }
    }

    @Test func concurrentRegistrationsOfOneCodeYieldOneFacility() async throws {
        try await withTestApp { app in
            let admin = try await app.token(role: .admin)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<8 {
                    group.addTask { try await app.request(.post, "/api/v1/facilities", token: admin, json: Self.draft).status }
                }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .created }.count == 1)
            #expect(statuses.filter { $0 == .conflict }.count == 7)
        }
    }

    @Test func listsPageWithCursorsAndFilter() async throws {
        try await withTestApp { app in
            let report = try await DemoFixtures.load(
                directory: TestDatabase.repositoryRoot + "/fixtures/demo", postgres: app.postgres, logger: TestDatabase.logger)
            #expect(report.facilitiesAdded >= 10)
            let again = try await DemoFixtures.load(
                directory: TestDatabase.repositoryRoot + "/fixtures/demo", postgres: app.postgres, logger: TestDatabase.logger)
            #expect(again.facilitiesAdded == 0 && again.clientsAdded == 0, "fixtures load nothing twice")
            #expect(again.facilitiesPresent == report.facilitiesAdded)

            let token = try await app.token(role: .clinician, facility: "5201020001")
            var codes: [String] = []
            var cursor: String?
            repeat {
                let uri = "/api/v1/facilities?limit=4" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await app.request(.get, uri, token: token)
                #expect(page.status == .ok)
                let items = page.json["items"] as? [[String: Any]] ?? []
                #expect(items.count <= 4)
                codes += items.compactMap { $0["code"] as? String }
                cursor = page.json["nextCursor"] as? String
            } while cursor != nil
            #expect(codes.count == report.facilitiesAdded)
            #expect(codes == codes.sorted())
            let guiyang = try await app.request(.get, "/api/v1/facilities?division=5201", token: token)
            let guiyangCodes = (guiyang.json["items"] as? [[String: Any]] ?? []).compactMap { $0["division"] as? String }
            #expect(!guiyangCodes.isEmpty && guiyangCodes.allSatisfy { $0.hasPrefix("5201") })
            #expect(try await app.request(.get, "/api/v1/facilities?limit=0", token: token).status == .badRequest)
            #expect(try await app.request(.get, "/api/v1/facilities?cursor=forged", token: token).status == .badRequest)
            #expect(try await app.request(.get, "/api/v1/facilities?division=abc", token: token).status == .unprocessableContent)

            // The demo clients work with the secrets the README gives.
            let demo = try await app.client.execute(
                uri: "/oauth/token", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "grant_type=client_credentials&client_id=demo-admin&client_secret=demo-admin-secret-local-only"))
            #expect(demo.status == .ok)
        }
    }
}

/// Log lines kept in memory so tests can prove what never reaches them.
final class CapturedLogs: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    var text: String { lock.withLock { lines.joined(separator: "\n") } }

    var logger: Logger {
        Logger(label: "captured") { _ in Handler(sink: self) }
    }

    func append(_ line: String) { lock.withLock { lines.append(line) } }

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.append("\(event.level) \(event.message) \(merged)")
        }
    }
}

func chronicCareController(postgres: PostgresClient, residents: ResidentRegistry) throws -> ChronicCareController {
    let monitoring = try MonitoringConfiguration.load(directory: TestDatabase.schemasDirectory + "/rules")
    let alerts = AlertService(client: postgres, registry: residents, configuration: monitoring, logger: TestDatabase.logger)
    return ChronicCareController(
        readings: ReadingService(client: postgres, registry: residents, configuration: monitoring, logger: TestDatabase.logger),
        enrolments: EnrolmentService(client: postgres, registry: residents, configuration: monitoring, logger: TestDatabase.logger),
        alerts: alerts, rules: RuleService(client: postgres, configuration: monitoring, logger: TestDatabase.logger),
        worker: MonitoringWorker(client: postgres, alerts: alerts, configuration: monitoring, logger: TestDatabase.logger))
}

func consultationController(postgres: PostgresClient, residents: ResidentRegistry) -> ConsultationController {
    let consultations = ConsultationService(
        client: postgres, registry: residents, configuration: ConsultationConfiguration(), logger: TestDatabase.logger)
    return ConsultationController(
        consultations: consultations, messages: MessageService(client: postgres, consultations: consultations, logger: TestDatabase.logger),
        rosters: RosterService(client: postgres, logger: TestDatabase.logger),
        feed: ConsultationEventFeed(
            client: postgres, consultations: consultations, hub: ConsultationEventHub(client: postgres, logger: TestDatabase.logger),
            logger: TestDatabase.logger))
}
