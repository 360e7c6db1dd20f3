import Access
import Foundation
import HTTPTypes
import Hummingbird

/// `POST /oauth/token`: the OAuth2 client-credentials grant (RFC 6749 §4.4). Credentials come by
/// HTTP Basic or in the form body; the body may be form-encoded, as the RFC says, or JSON.
public struct TokenController: Sendable {
    let clients: APIClients
    let tokens: TokenService

    public init(clients: APIClients, tokens: TokenService) {
        self.clients = clients
        self.tokens = tokens
    }

    public func addRoutes(to router: Router<QianyunRequestContext>) {
        router.post("/oauth/token", use: issue)
    }

    struct TokenResponse: Encodable, Sendable {
        let access_token: String
        let token_type: String
        let expires_in: Int
        let scope: String
    }

    @Sendable func issue(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<TokenResponse> {
        let buffer = try await request.body.collect(upTo: min(context.maxUploadSize, 16 << 10))
        let body = String(buffer: buffer)
        let contentType = request.headers[.contentType]?.lowercased() ?? ""
        var fields: [String: String]
        if contentType.hasPrefix("application/json") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
                throw oauthProblem(.badRequest, "invalid_request", "body is not a JSON object")
            }
            fields = object.compactMapValues { $0 as? String }
        } else if contentType.hasPrefix("application/x-www-form-urlencoded") || contentType.isEmpty {
            fields = Self.formFields(body)
        } else {
            throw oauthProblem(.unsupportedMediaType, "invalid_request", "send application/x-www-form-urlencoded or application/json")
        }
        guard let grant = fields["grant_type"] else {
            throw oauthProblem(.badRequest, "invalid_request", "grant_type is required")
        }
        guard grant == "client_credentials" else {
            throw oauthProblem(.badRequest, "unsupported_grant_type", "only client_credentials is supported")
        }
        var clientID = fields["client_id"]
        var secret = fields["client_secret"]
        if let authorization = request.headers[.authorization] {
            guard let basic = Self.basicCredentials(authorization) else {
                throw AccessError.invalidClient
            }
            (clientID, secret) = (basic.0, basic.1)
        }
        guard let clientID, !clientID.isEmpty, let secret, !secret.isEmpty, clientID.utf8.count <= 64, secret.utf8.count <= 256 else {
            throw AccessError.invalidClient
        }
        let requested = fields["scope"].map { Set($0.split(separator: " ").map(String.init)) }
        let principal = try await clients.authenticate(
            clientID: clientID, secret: secret, requestedScopes: requested, address: context.remoteAddress,
            requestID: context.requestID)
        let issued = try await tokens.issue(for: principal)
        var headers = HTTPFields()
        headers[.cacheControl] = "no-store"
        headers[HTTPField.Name("Pragma")!] = "no-cache"
        return JSONBody(
            TokenResponse(
                access_token: issued.token, token_type: "Bearer", expires_in: issued.expiresIn, scope: issued.scopes.joined(separator: " ")),
            headers: headers)
    }

    private func oauthProblem(_ status: HTTPResponse.Status, _ error: String, _ detail: String) -> Problem {
        var problem = Problem(status, code: error.replacingOccurrences(of: "_", with: "-"), title: "Token request refused", detail: detail)
        problem.extensions = ["error": error, "error_description": detail]
        return problem
    }

    static func formFields(_ body: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
            }
            let key = decode(parts[0])
            if fields[key] == nil { fields[key] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return fields
    }

    /// RFC 6749 §2.3.1: Basic credentials are form-encoded before base64.
    static func basicCredentials(_ header: String) -> (String, String)? {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
            let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
            let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else { return nil }
        func decode(_ text: Substring) -> String { text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text) }
        return (decode(text[..<colon]), decode(text[text.index(after: colon)...]))
    }
}
