/// The five kinds of caller. Each role carries default scopes; a client may be narrowed further.
public enum Role: String, Sendable, Codable, CaseIterable {
    case his
    case clinician
    case patient
    case analyst
    case admin

    /// Scopes a client of this role gets unless it is registered with fewer.
    public var defaultScopes: Set<String> {
        switch self {
        case .his:
            [
                "facilities.read", "registry.read", "registry.write", "records.read", "records.write", "scheduling.read",
                "scheduling.write",
                "monitoring.read", "monitoring.write",
            ]
        case .clinician:
            [
                "facilities.read", "registry.read", "records.read", "records.write", "scheduling.read", "scheduling.write",
                "consultation.write",
                "monitoring.read", "monitoring.write",
            ]
        case .patient: ["facilities.read", "self.read", "self.write", "scheduling.write", "consultation.write"]
        case .analyst: ["facilities.read", "surveillance.read", "surveillance.review"]
        case .admin:
            ["facilities.read", "facilities.write", "registry.read", "registry.admin", "audit.read", "clients.admin", "scheduling.write"]
        }
    }
}

/// Who is calling, resolved once per request from the bearer token and passed into every domain
/// call. Domain services decide with it; they never look at HTTP headers.
public struct Principal: Sendable, Equatable {
    /// The API client's id (the token's `sub`).
    public let clientID: String
    public let role: Role
    /// The facility a HIS or clinician client is bound to.
    public let facility: String?
    /// The resident a patient client acts for.
    public let resident: String?
    public let scopes: Set<String>

    public init(clientID: String, role: Role, facility: String? = nil, resident: String? = nil, scopes: Set<String>? = nil) {
        self.clientID = clientID
        self.role = role
        self.facility = facility
        self.resident = resident
        self.scopes = scopes ?? role.defaultScopes
    }

    /// Refuses the call unless the principal has one of `roles`.
    public func require(_ roles: Role..., action: String) throws(AccessError) {
        guard roles.contains(role) else {
            throw .forbidden("role \(role.rawValue) may not \(action)")
        }
    }

    /// Refuses the call unless the token carries `scope`.
    public func require(scope: String) throws(AccessError) {
        guard scopes.contains(scope) else {
            throw .forbidden("token lacks scope \(scope)")
        }
    }

    /// Refuses the call unless the principal acts for `facility` (admins act for every facility).
    public func require(facility code: String) throws(AccessError) {
        guard role == .admin || facility == code else {
            throw .forbidden("client is not bound to facility \(code)")
        }
    }
}

/// Access failures with stable codes; the HTTP edge maps them to 401, 403 or 429.
public enum AccessError: Error, Equatable, CustomStringConvertible {
    /// No usable credentials: missing, malformed, expired or wrongly signed token.
    case unauthenticated(String)
    /// Client id or secret wrong (OAuth2 `invalid_client`).
    case invalidClient
    /// Authenticated, but not allowed to do this.
    case forbidden(String)
    /// Too many failed attempts: refused until the lock expires.
    case locked(retryAfterSeconds: Int)
    /// A requested scope the client is not registered for.
    case invalidScope(String)
    /// A registration request that cannot be honoured (e.g. a HIS client without a facility).
    case invalidRegistration(String)

    public var code: String {
        switch self {
        case .unauthenticated: "unauthenticated"
        case .invalidClient: "invalid-client"
        case .forbidden: "forbidden"
        case .locked: "too-many-failures"
        case .invalidScope: "invalid-scope"
        case .invalidRegistration: "invalid-client-registration"
        }
    }

    public var description: String {
        switch self {
        case .unauthenticated(let reason): reason
        case .invalidClient: "client authentication failed"
        case .forbidden(let reason): reason
        case .locked(let seconds): "too many failed attempts; try again in \(seconds) s"
        case .invalidScope(let scope): "scope \(scope) is not granted to this client"
        case .invalidRegistration(let reason): reason
        }
    }
}
