import Foundation
import PostgresNIO

/// Parses `postgres://user:password@host:port/database?sslmode=…` (or `?host=/socket/dir`) into
/// a `PostgresClient` configuration. Errors name the part that is wrong, never the password.
public enum DatabaseURL {
    public struct Invalid: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    public static func configuration(from url: String) throws(Invalid) -> PostgresClient.Configuration {
        guard let components = URLComponents(string: url),
            let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else { throw Invalid(reason: "must be a postgres:// URL") }
        let query = Dictionary(
            (components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        guard let user = components.percentEncodedUser.flatMap({ $0.removingPercentEncoding }) ?? query["user"],
            !user.isEmpty
        else { throw Invalid(reason: "names no user") }
        let password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding } ?? query["password"]
        var database = components.path
        if database.hasPrefix("/") { database.removeFirst() }
        guard !database.isEmpty else { throw Invalid(reason: "names no database") }
        let port = components.port ?? Int(query["port"] ?? "") ?? 5432

        if let socketDirectory = query["host"], socketDirectory.hasPrefix("/") {
            var configuration = PostgresClient.Configuration(
                unixSocketPath: "\(socketDirectory)/.s.PGSQL.\(port)", username: user, password: password,
                database: database)
            configuration.options.additionalStartupParameters = [("application_name", "qianyun")]
            return configuration
        }
        guard let host = components.host, !host.isEmpty else { throw Invalid(reason: "names no host") }
        let tls: PostgresClient.Configuration.TLS
        switch query["sslmode"] ?? "disable" {
        case "disable", "allow", "prefer":
            // The private cluster listens on loopback only; TLS to a remote server must be asked for.
            tls = .disable
        case "require", "verify-ca", "verify-full":
            tls = .require(.makeClientConfiguration())
        case let other:
            throw Invalid(reason: "has sslmode=\(other); use disable, require or verify-full")
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tls)
        configuration.options.additionalStartupParameters = [("application_name", "qianyun")]
        return configuration
    }
}
