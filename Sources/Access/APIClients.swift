import Foundation
import Logging
import PostgresNIO
import Storage

/// How failed client authentications are slowed and then refused.
public struct ThrottlePolicy: Sendable {
    /// Failures (per client id, and per address) after which each further failure is answered late.
    public var slowAfter: Int
    /// Failures within `window` after which the client id or address is locked out.
    public var lockAfter: Int
    public var window: Duration
    public var lockFor: Duration
    public var maximumDelay: Duration

    public init(
        slowAfter: Int = 3, lockAfter: Int = 10, window: Duration = .seconds(900), lockFor: Duration = .seconds(900),
        maximumDelay: Duration = .seconds(2)
    ) {
        self.slowAfter = slowAfter
        self.lockAfter = lockAfter
        self.window = window
        self.lockFor = lockFor
        self.maximumDelay = maximumDelay
    }

    func delay(afterFailures failures: Int) -> Duration {
        guard failures > slowAfter else { return .zero }
        let step = Duration.milliseconds(250) * (1 << min(failures - slowAfter - 1, 8))
        return min(step, maximumDelay)
    }
}

/// A client as registered; the secret appears here once and is never stored in clear.
public struct ClientRegistration: Sendable, Codable, Equatable {
    public let id: String
    public let secret: String
    public let role: Role
    public let facility: String?
    public let resident: String?
    public let scopes: [String]
    public let name: String
}

/// API clients (HIS systems, app backends, public-health tools) and their authentication.
public struct APIClients: Sendable {
    let client: PostgresClient
    let logger: Logger
    let policy: ThrottlePolicy

    public init(client: PostgresClient, policy: ThrottlePolicy = ThrottlePolicy(), logger: Logger) {
        self.client = client
        self.policy = policy
        self.logger = logger
    }

    /// Registers a client. `id` and `secret` are minted unless given (demo fixtures give them);
    /// with `ifAbsent`, an existing client of that id is left as it is and nil is returned.
    @discardableResult
    public func register(
        role: Role, facility: String? = nil, resident: String? = nil, name: String, scopes: Set<String>? = nil,
        id: String? = nil, secret: String? = nil, ifAbsent: Bool = false
    ) async throws -> ClientRegistration? {
        if role == .his, facility == nil {
            throw AccessError.invalidRegistration("a his client must be bound to a facility (--facility CODE)")
        }
        if role == .patient, resident == nil {
            throw AccessError.invalidRegistration("a patient client must name the resident it acts for")
        }
        let granted = scopes ?? role.defaultScopes
        if let extra = granted.subtracting(role.defaultScopes).sorted().first {
            throw AccessError.invalidRegistration("scope \(extra) is not available to role \(role.rawValue)")
        }
        let id = id ?? "qyc_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(20).lowercased()
        let secret = secret ?? SecretHash.newSecret()
        let sortedScopes = granted.sorted()
        let hash = SecretHash.make(secret)
        do {
            let rows = try await client.query(
                """
                INSERT INTO access.clients (id, name, role, facility_code, resident_id, scopes, secret_hash)
                VALUES (\(id), \(name), \(role.rawValue), \(facility), \(resident), \(sortedScopes), \(hash))
                ON CONFLICT (id) DO NOTHING RETURNING id
                """, logger: logger
            ).collect()
            if rows.isEmpty {
                if ifAbsent { return nil }
                throw AccessError.invalidRegistration("a client with id \(id) already exists")
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23503" {
            throw AccessError.invalidRegistration("facility \(facility ?? "") is not registered")
        }
        return ClientRegistration(
            id: id, secret: secret, role: role, facility: facility, resident: resident, scopes: sortedScopes, name: name)
    }

    /// The OAuth2 client-credentials check. Failures are audited, counted per client id and per
    /// address, answered late once they pile up, and refused outright past the lock threshold.
    public func authenticate(
        clientID: String, secret: String, requestedScopes: Set<String>?, address: String?, requestID: String?
    ) async throws -> Principal {
        let keys = ["client:" + clientID] + (address.map { ["address:" + $0] } ?? [])
        func audit(_ outcome: String, _ detail: String?, principal: Principal? = nil) -> AuditEvent {
            AuditEvent(
                actor: clientID, role: principal?.role.rawValue, facility: principal?.facility,
                action: outcome == "success" ? "auth.token.issue" : "auth.token.deny", resource: "oauth/token",
                purpose: "authentication", outcome: outcome, requestID: requestID, clientAddress: address, detail: detail)
        }
        let trail = AuditTrail(client: client, logger: logger)

        let locked = try await client.query(
            """
            SELECT ceil(extract(epoch FROM max(locked_until) - now()))::int FROM access.auth_throttle
            WHERE key = ANY(\(keys)) AND locked_until > now()
            """, logger: logger
        ).collect().first?.decode(Int?.self)
        if let seconds = locked {
            try await trail.record(audit("denied", "locked"))
            throw AccessError.locked(retryAfterSeconds: max(seconds, 1))
        }

        let rows = try await client.query(
            """
            SELECT role, facility_code, resident_id, scopes, secret_hash, active
            FROM access.clients WHERE id = \(clientID)
            """, logger: logger
        ).collect()
        let found = try rows.first?.decode((String, String?, String?, [String], String, Bool).self)
        let failure: String? =
            switch found {
            case .none: "unknown-client"
            case .some(let row) where !row.5: "inactive-client"
            case .some(let row) where !SecretHash.matches(secret, stored: row.4): "bad-secret"
            default: nil
            }
        if let failure {
            let failures = try await client.transaction(logger: logger) { connection in
                let failures = try await recordFailure(keys: keys, on: connection)
                try await AuditTrail.append(audit("denied", failure), on: connection, logger: logger)
                return failures
            }
            let delay = policy.delay(afterFailures: failures)
            if delay > .zero { try await Task.sleep(for: delay) }
            throw AccessError.invalidClient
        }
        let (roleName, facility, resident, scopes, _, _) = found!
        guard let role = Role(rawValue: roleName) else { throw AccessError.invalidClient }
        let allowed = Set(scopes)
        if let requested = requestedScopes, let missing = requested.subtracting(allowed).sorted().first {
            throw AccessError.invalidScope(missing)
        }
        let principal = Principal(
            clientID: clientID, role: role, facility: facility, resident: resident, scopes: requestedScopes ?? allowed)
        // Clearing the counter, stamping the client and auditing the grant share one commit. The
        // stamp is coarse (a minute) so that a HIS requesting tokens from many threads does not
        // queue them all on its client row's lock.
        try await client.transaction(logger: logger) { connection in
            try await connection.query(
                """
                WITH cleared AS (DELETE FROM access.auth_throttle WHERE key = \(keys[0]))
                UPDATE access.clients SET last_used_at = now()
                WHERE id = \(clientID) AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
                """, logger: logger)
            try await AuditTrail.append(audit("success", nil, principal: principal), on: connection, logger: logger)
        }
        return principal
    }

    /// Counts one failure against each key and returns the highest count; reaching the lock
    /// threshold sets the lock in the same statement, so concurrent guesses cannot slip past it.
    private func recordFailure(keys: [String], on connection: PostgresConnection) async throws -> Int {
        let window = Int(policy.window.components.seconds)
        let lockFor = Int(policy.lockFor.components.seconds)
        let rows = try await connection.query(
            """
            INSERT INTO access.auth_throttle AS t (key, failures, window_started_at, locked_until)
            SELECT k, 1, now(), CASE WHEN 1 >= \(policy.lockAfter) THEN now() + \(lockFor) * interval '1 second' END
            FROM unnest(\(keys)::text[]) AS k
            ON CONFLICT (key) DO UPDATE SET
                failures = CASE WHEN t.window_started_at < now() - \(window) * interval '1 second' THEN 1 ELSE t.failures + 1 END,
                window_started_at = CASE WHEN t.window_started_at < now() - \(window) * interval '1 second'
                    THEN now() ELSE t.window_started_at END,
                locked_until = CASE
                    WHEN t.window_started_at >= now() - \(window) * interval '1 second' AND t.failures + 1 >= \(policy.lockAfter)
                    THEN now() + \(lockFor) * interval '1 second' ELSE t.locked_until END
            RETURNING failures
            """, logger: logger
        ).collect()
        return try rows.map { try $0.decode(Int.self) }.max() ?? 1
    }
}
