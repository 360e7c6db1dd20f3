import Storage
import Crypto
import Foundation

/// Encryption, keyed pseudonyms and masking for identifying fields such as identity numbers.
///
/// Ciphertexts are AES-256-GCM with the field's context (e.g. `registry.residents.id_number`) as
/// associated data, so a ciphertext copied into another column fails to open. Each ciphertext is
/// stored beside the id of the key that sealed it, so keys rotate without re-encrypting at once.
public struct FieldProtector: Sendable {
    public struct Sealed: Sendable, Equatable {
        public let keyID: String
        /// nonce ‖ ciphertext ‖ tag, as `AES.GCM.SealedBox.combined`.
        public let bytes: [UInt8]

        public init(keyID: String, bytes: [UInt8]) {
            self.keyID = keyID
            self.bytes = bytes
        }
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unknownKey(String)
        case cannotOpen
        case badKey(String)

        public var description: String {
            switch self {
            case .unknownKey(let id): "no encryption key with id \(id) is configured"
            case .cannotOpen: "ciphertext failed authentication"
            case .badKey(let reason): reason
            }
        }
    }

    private let keys: [String: SymmetricKey]
    public let currentKeyID: String
    private let pseudonymKey: SymmetricKey
    /// HMAC with the key already absorbed: copying it skips the key schedule at every call
    /// (a registration derives a dozen pseudonyms and blocking keys).
    private let keyedMAC: HMAC<SHA256>

    public init(encryptionKeys: [String: SymmetricKey], currentKeyID: String, pseudonymKey: SymmetricKey) throws(Failure) {
        guard let current = encryptionKeys[currentKeyID] else { throw .unknownKey(currentKeyID) }
        guard current.bitCount == 256 else { throw .badKey("encryption key \(currentKeyID) must be 32 bytes") }
        guard pseudonymKey.bitCount >= 256 else { throw .badKey("pseudonym key must be at least 32 bytes") }
        self.keys = encryptionKeys
        self.currentKeyID = currentKeyID
        self.pseudonymKey = pseudonymKey
        self.keyedMAC = HMAC<SHA256>(key: pseudonymKey)
    }

    public func seal(_ plaintext: String, context: String) throws -> Sealed {
        let box = try AES.GCM.seal(Data(plaintext.utf8), using: keys[currentKeyID]!, authenticating: Data(context.utf8))
        return Sealed(keyID: currentKeyID, bytes: Array(box.combined!))
    }

    /// Seals bytes that need not be text, such as an HL7 message exactly as a sender wrote it.
    public func seal(bytes plaintext: [UInt8], context: String) throws -> Sealed {
        let box = try AES.GCM.seal(plaintext, using: keys[currentKeyID]!, authenticating: Data(context.utf8))
        return Sealed(keyID: currentKeyID, bytes: Array(box.combined!))
    }

    public func open(_ sealed: Sealed, context: String) throws(Failure) -> String {
        guard let text = String(validating: try openBytes(sealed, context: context), as: UTF8.self) else { throw .cannotOpen }
        return text
    }

    public func openBytes(_ sealed: Sealed, context: String) throws(Failure) -> [UInt8] {
        guard let key = keys[sealed.keyID] else { throw .unknownKey(sealed.keyID) }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed.bytes)
            return Array(try AES.GCM.open(box, using: key, authenticating: Data(context.utf8)))
        } catch {
            throw .cannotOpen
        }
    }

    /// A keyed HMAC-SHA256 of `value`, hex. `domain` separates uses: a lookup hash of an identity
    /// number (`id-lookup`) never equals the pseudonym the same resident gets in an extract.
    public func pseudonym(_ value: String, domain: String) -> String {
        var mac = keyedMAC
        mac.update(data: Array(domain.utf8))
        mac.update(data: [0])
        mac.update(data: Array(value.utf8))
        return Array(mac.finalize()).hexString
    }

    /// `520102199003071234` → `5201**********1234`. Shorter documents keep less of each end, and a
    /// value too short to mask safely is starred entirely.
    public static func mask(_ value: String) -> String {
        let characters = Array(value)
        let keep = characters.count >= 15 ? 4 : characters.count >= 8 ? 2 : characters.count >= 5 ? 1 : 0
        guard keep > 0 else { return String(repeating: "*", count: characters.count) }
        return String(characters.prefix(keep)) + String(repeating: "*", count: characters.count - 2 * keep)
            + String(characters.suffix(keep))
    }

    /// Parses `id:base64[,id:base64…]` as used by `QIANYUN_ENCRYPTION_KEYS`.
    public static func parseKeyList(_ text: String) throws(Failure) -> [(String, SymmetricKey)] {
        var result: [(String, SymmetricKey)] = []
        for entry in text.split(separator: ",") {
            let parts = entry.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty else { throw .badKey("each key must be written id:base64") }
            guard let data = Data(base64Encoded: parts[1]), data.count == 32 else {
                throw .badKey("key \(parts[0]) must be 32 bytes, base64-encoded")
            }
            guard !result.contains(where: { $0.0 == parts[0] }) else { throw .badKey("key id \(parts[0]) appears twice") }
            result.append((parts[0], SymmetricKey(data: data)))
        }
        guard !result.isEmpty else { throw .badKey("no keys given") }
        return result
    }
}
