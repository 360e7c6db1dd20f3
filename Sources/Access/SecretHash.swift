import Storage
import Crypto
import Foundation

/// Client secrets are 256-bit random values minted by Qianyun, so a salted SHA-256 resists
/// offline search as well as a slow KDF would, without putting 100 ms of PBKDF2 on every token
/// request. Stored as `sha256$<salt hex>$<hash hex>`; comparison is constant-time.
public enum SecretHash {
    public static func make(_ secret: String) -> String {
        let salt = (0..<16).map { _ in UInt8.random(in: 0...255) }
        return "sha256$" + hex(salt) + "$" + hex(digest(secret, salt: salt))
    }

    public static func matches(_ secret: String, stored: String) -> Bool {
        let parts = stored.split(separator: "$")
        guard parts.count == 3, parts[0] == "sha256", let salt = bytes(fromHex: parts[1]),
            let expected = bytes(fromHex: parts[2])
        else { return false }
        let actual = digest(secret, salt: salt)
        guard actual.count == expected.count else { return false }
        return zip(actual, expected).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// A new client secret: 32 random bytes, base64url, prefixed so leaked secrets are greppable.
    public static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return "qys_"
            + Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    private static func digest(_ secret: String, salt: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: salt)
        hasher.update(data: Data(secret.utf8))
        return Array(hasher.finalize())
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.hexString }

    static func bytes(fromHex text: Substring) -> [UInt8]? {
        guard text.count % 2 == 0 else { return nil }
        var result: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            result.append(byte)
            index = next
        }
        return result
    }
}
