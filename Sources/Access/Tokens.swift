import Storage
import Crypto
import Foundation
import JWTKit

/// Claims of a Qianyun access token: who (`sub`), in which role, for which facility or resident,
/// with which scopes, until when.
public struct AccessTokenClaims: JWTPayload, Equatable {
    public var sub: SubjectClaim
    public var iss: IssuerClaim
    public var aud: AudienceClaim
    public var iat: IssuedAtClaim
    public var exp: ExpirationClaim
    public var jti: IDClaim
    public var role: String
    public var fac: String?
    public var res: String?
    public var scope: String

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        guard iss.value == TokenService.issuer else {
            throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "unexpected issuer")
        }
        try aud.verifyIntendedAudience(includes: TokenService.audience)
    }
}

/// Issues and verifies short-lived HS256 access tokens. Only this service reads its tokens, so a
/// shared-secret signature is enough; the key id in the header lets the secret rotate.
public struct TokenService: Sendable {
    public static let issuer = "qianyun"
    public static let audience = "qianyun-api"

    private let keys: JWTKeyCollection
    private let keyID: JWKIdentifier
    public let lifetime: Duration

    public init(secret: [UInt8], lifetime: Duration) async {
        let keyID = JWKIdentifier(string: Self.keyID(for: secret))
        self.keys = await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: keyID)
        self.keyID = keyID
        self.lifetime = lifetime
    }

    public struct Issued: Sendable {
        public let token: String
        public let expiresIn: Int
        public let scopes: [String]
    }

    public func issue(for principal: Principal, now: Date = Date()) async throws -> Issued {
        let seconds = Int(lifetime.components.seconds)
        let scopes = principal.scopes.sorted()
        let claims = AccessTokenClaims(
            sub: .init(value: principal.clientID), iss: .init(value: Self.issuer), aud: .init(value: Self.audience),
            iat: .init(value: now), exp: .init(value: now.addingTimeInterval(TimeInterval(seconds))),
            jti: .init(value: UUID().uuidString), role: principal.role.rawValue, fac: principal.facility,
            res: principal.resident, scope: scopes.joined(separator: " "))
        let token = try await keys.sign(claims, kid: keyID)
        return Issued(token: token, expiresIn: seconds, scopes: scopes)
    }

    /// Verifies signature, issuer, audience and expiry; every failure is the same 401 to the
    /// caller, with a reason that names the check but never echoes the token.
    public func principal(fromBearer token: String) async throws(AccessError) -> Principal {
        let claims: AccessTokenClaims
        do {
            claims = try await keys.verify(token, as: AccessTokenClaims.self)
        } catch let error as JWTError {
            switch error.errorType {
            case .claimVerificationFailure:
                throw .unauthenticated(error.failedClaim is ExpirationClaim ? "token has expired" : "token claims are not valid here")
            case .signatureVerificationFailed:
                throw .unauthenticated("token signature is not valid")
            default:
                throw .unauthenticated("token is malformed or not signed by this service")
            }
        } catch {
            throw .unauthenticated("token is malformed or not signed by this service")
        }
        guard let role = Role(rawValue: claims.role) else { throw .unauthenticated("token names an unknown role") }
        return Principal(
            clientID: claims.sub.value, role: role, facility: claims.fac, resident: claims.res,
            scopes: Set(claims.scope.split(separator: " ").map(String.init)))
    }

    static func keyID(for secret: [UInt8]) -> String {
        "hs-" + SHA256.hash(data: secret).prefix(4).hexString
    }
}
