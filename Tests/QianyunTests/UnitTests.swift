import Access
import Crypto
import Foundation
import Interop
import NIOCore
import QianyunServer
import Registry
import Storage
import Testing

@Suite struct HexTests {
    @Test func everyByteIsTwoLowerCaseDigits() {
        #expect([UInt8]().hexString == "")
        #expect([0x00, 0x09, 0x0A, 0x0F, 0x10, 0x9F, 0xA0, 0xFF].hexString == "00090a0f109fa0ff")
        let all = (0...255).map { UInt8($0) }
        #expect(all.hexString == all.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined())
    }
}

@Suite struct SQLScriptTests {
    @Test func splitsAtTopLevelSemicolonsOnly() {
        let script = """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT 'a;b''c');
            /* block; /* nested; */ still comment */
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END; $body$;
            SELECT "odd;name" FROM a WHERE x = $1;
            -- trailing comment only
            """
        let statements = SQLScript.statements(in: script)
        #expect(statements.count == 3)
        #expect(statements[0] == "CREATE TABLE a (x text DEFAULT 'a;b''c')")
        #expect(statements[1].hasSuffix("$body$ BEGIN RETURN 1; END; $body$"))
        #expect(statements[2] == "SELECT \"odd;name\" FROM a WHERE x = $1")
    }

    @Test func everyShippedMigrationSplitsIntoStatements() throws {
        for migration in try Migration.load(directory: TestDatabase.schemasDirectory + "/migrations") {
            #expect(!SQLScript.statements(in: migration.sql).isEmpty, "\(migration.name)")
        }
    }
}

@Suite struct ConfigurationTests {
    @Test func defaultsApplyWhenNothingIsSet() throws {
        let configuration = try Configuration.load(environment: ["QIANYUN_SCHEMAS_DIR": TestDatabase.schemasDirectory])
        #expect(configuration.httpPort == 8080)
        #expect(configuration.mllpPort == 2575)
        #expect(configuration.httpHost == "127.0.0.1")
        #expect(throws: ConfigurationError("QIANYUN_DATABASE_URL", "is required")) { try configuration.validateForServing() }
    }

    @Test(arguments: [
        ("QIANYUN_HTTP_PORT", "eighty"), ("QIANYUN_HTTP_PORT", "70000"), ("QIANYUN_MLLP_PORT", "-1"),
        ("QIANYUN_JWT_SECRET", "c2hvcnQ="), ("QIANYUN_PSEUDONYM_KEY", "not base64!"), ("QIANYUN_ENCRYPTION_KEYS", "k1"),
        ("QIANYUN_LOG_LEVEL", "loud"), ("QIANYUN_DATABASE_URL", "mysql://x@y/z"), ("QIANYUN_MIGRATE_ON_START", "maybe"),
        ("QIANYUN_TLS_CERT", "/nonexistent.pem"), ("QIANYUN_SCHEMAS_DIR", "/nonexistent"),
        ("QIANYUN_MAX_BODY_BYTES", "12"),
    ])
    func aBadSettingIsNamed(setting: String, value: String) {
        var environment = ["QIANYUN_SCHEMAS_DIR": TestDatabase.schemasDirectory]
        environment[setting] = value
        if setting == "QIANYUN_TLS_CERT" { environment["QIANYUN_TLS_KEY"] = "/nonexistent.key" }
        do {
            _ = try Configuration.load(environment: environment)
            Issue.record("\(setting)=\(value) was accepted")
        } catch {
            #expect(error.setting == setting)
            if !value.hasPrefix("/") {
                #expect(!error.description.contains(value) || value.count < 4, "the message must not echo the value")
            }
        }
    }

    @Test func databasePasswordNeverAppearsInErrors() {
        let environment = [
            "QIANYUN_SCHEMAS_DIR": TestDatabase.schemasDirectory,
            "QIANYUN_DATABASE_URL": "postgres://u:SuperSecretPw@/nodb",
        ]
        #expect {
            try Configuration.load(environment: environment)
        } throws: { error in
            "\(error)".hasPrefix("QIANYUN_DATABASE_URL") && !"\(error)".contains("SuperSecretPw")
        }
    }

    @Test func fileIsReadAndEnvironmentWins() throws {
        let path = NSTemporaryDirectory() + "qy-config-\(UUID().uuidString).env"
        try "# comment\nQIANYUN_HTTP_PORT=9090\nexport QIANYUN_MLLP_PORT=\"3575\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let configuration = try Configuration.load(
            environment: ["QIANYUN_SCHEMAS_DIR": TestDatabase.schemasDirectory, "QIANYUN_MLLP_PORT": "4575"], file: path)
        #expect(configuration.httpPort == 9090)
        #expect(configuration.mllpPort == 4575)
    }

    @Test func unknownKeyInFileIsNamedWithItsLine() throws {
        let path = NSTemporaryDirectory() + "qy-config-\(UUID().uuidString).env"
        try "QIANYUN_HTTP_PORT=9090\nQIANYUN_HTTP_PROT=1\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: ConfigurationError("QIANYUN_HTTP_PROT", "unknown setting on line 2 of \(path)")) {
            try Configuration.load(environment: ["QIANYUN_SCHEMAS_DIR": TestDatabase.schemasDirectory], file: path)
        }
    }

    @Test func servingNeedsEveryKey() throws {
        var configuration = try testConfiguration()
        configuration.databaseURL = "postgres://u@localhost/db"
        try configuration.validateForServing()
        configuration.jwtSecret = nil
        #expect(throws: ConfigurationError("QIANYUN_JWT_SECRET", "is required")) { try configuration.validateForServing() }
    }
}

@Suite struct FieldProtectionTests {
    static func key() -> SymmetricKey { SymmetricKey(size: .bits256) }

    @Test func sealsAndOpensWithContextAsAssociatedData() throws {
        let protector = try FieldProtector(encryptionKeys: ["k1": Self.key()], currentKeyID: "k1", pseudonymKey: Self.key())
        let sealed = try protector.seal("52010219900307123X", context: "registry.residents.id_number")
        #expect(sealed.keyID == "k1")
        #expect(!String(decoding: sealed.bytes, as: UTF8.self).contains("520102"))
        #expect(try protector.open(sealed, context: "registry.residents.id_number") == "52010219900307123X")
        #expect(throws: FieldProtector.Failure.cannotOpen) { try protector.open(sealed, context: "other.column") }
        let again = try protector.seal("52010219900307123X", context: "registry.residents.id_number")
        #expect(again.bytes != sealed.bytes, "a fresh nonce each time")
    }

    @Test func rotatedKeysStillOpenOldCiphertexts() throws {
        let (old, new, pseudonym) = (Self.key(), Self.key(), Self.key())
        let before = try FieldProtector(encryptionKeys: ["k1": old], currentKeyID: "k1", pseudonymKey: pseudonym)
        let sealed = try before.seal("secret", context: "c")
        let after = try FieldProtector(encryptionKeys: ["k1": old, "k2": new], currentKeyID: "k2", pseudonymKey: pseudonym)
        #expect(try after.open(sealed, context: "c") == "secret")
        #expect(try after.seal("secret", context: "c").keyID == "k2")
        let retired = try FieldProtector(encryptionKeys: ["k2": new], currentKeyID: "k2", pseudonymKey: pseudonym)
        #expect(throws: FieldProtector.Failure.unknownKey("k1")) { try retired.open(sealed, context: "c") }
    }

    @Test func pseudonymsAreKeyedDeterministicAndDomainSeparated() throws {
        let key = Self.key()
        let a = try FieldProtector(encryptionKeys: ["k": Self.key()], currentKeyID: "k", pseudonymKey: key)
        let b = try FieldProtector(encryptionKeys: ["k": Self.key()], currentKeyID: "k", pseudonymKey: key)
        let other = try FieldProtector(encryptionKeys: ["k": Self.key()], currentKeyID: "k", pseudonymKey: Self.key())
        #expect(a.pseudonym("52010219900307123X", domain: "id-lookup") == b.pseudonym("52010219900307123X", domain: "id-lookup"))
        #expect(a.pseudonym("52010219900307123X", domain: "id-lookup") != a.pseudonym("52010219900307123X", domain: "extract"))
        #expect(a.pseudonym("52010219900307123X", domain: "id-lookup") != other.pseudonym("52010219900307123X", domain: "id-lookup"))
        #expect(a.pseudonym("x", domain: "d").count == 64)
    }

    @Test func masksKeepOnlyTheEnds() {
        #expect(FieldProtector.mask("52010219900307123X") == "5201**********123X")
        #expect(FieldProtector.mask("E12345678") == "E1*****78")
        #expect(FieldProtector.mask("1234") == "****")
    }

    @Test func keyListsAreValidated() {
        #expect(throws: FieldProtector.Failure.self) { try FieldProtector.parseKeyList("k1:c2hvcnQ=") }
        #expect(throws: FieldProtector.Failure.self) { try FieldProtector.parseKeyList("") }
        let good = Data(repeating: 7, count: 32).base64EncodedString()
        #expect(throws: FieldProtector.Failure.self) { try FieldProtector.parseKeyList("a:\(good),a:\(good)") }
        #expect((try? FieldProtector.parseKeyList("a:\(good), b:\(good)"))?.map(\.0) == ["a", "b"])
    }
}

@Suite struct SecretAndTokenTests {
    @Test func secretHashesVerifyOnlyTheirSecret() {
        let secret = SecretHash.newSecret()
        let stored = SecretHash.make(secret)
        #expect(!stored.contains(secret))
        #expect(SecretHash.matches(secret, stored: stored))
        #expect(!SecretHash.matches(secret + "x", stored: stored))
        #expect(!SecretHash.matches(secret, stored: "garbage"))
        #expect(SecretHash.make(secret) != stored, "salted")
    }

    @Test func tokensRoundTripAndRefuseTampering() async throws {
        let tokens = await TokenService(secret: Array(repeating: 1, count: 32), lifetime: .seconds(60))
        let principal = Principal(clientID: "c1", role: .his, facility: "5201020001")
        let issued = try await tokens.issue(for: principal)
        #expect(try await tokens.principal(fromBearer: issued.token) == principal)

        let other = await TokenService(secret: Array(repeating: 2, count: 32), lifetime: .seconds(60))
        await #expect(throws: AccessError.self) { try await other.principal(fromBearer: issued.token) }
        await #expect(throws: AccessError.unauthenticated("token is malformed or not signed by this service")) {
            try await tokens.principal(fromBearer: "not.a.jwt")
        }
        let expired = try await tokens.issue(for: principal, now: Date().addingTimeInterval(-3600))
        await #expect(throws: AccessError.unauthenticated("token has expired")) { try await tokens.principal(fromBearer: expired.token) }
    }

    @Test func principalChecksRoleScopeAndFacility() throws {
        let his = Principal(clientID: "h", role: .his, facility: "A1")
        #expect(throws: AccessError.self) { try his.require(.admin, action: "x") }
        try his.require(.his, .admin, action: "x")
        try his.require(facility: "A1")
        #expect(throws: AccessError.self) { try his.require(facility: "B2") }
        #expect(throws: AccessError.self) { try his.require(scope: "surveillance.read") }
        try Principal(clientID: "a", role: .admin).require(facility: "B2")
    }
}

@Suite struct AuditChainTests {
    let event = AuditEvent(actor: "c1", role: "his", action: "resident.read", resource: "resident/1", purpose: "treatment")

    @Test func everyFieldIsCovered() {
        let base = AuditChain.hash(sequence: 1, rowID: 9, occurredAtMicros: 5, event: event, previous: AuditChain.genesis)
        var changed = event
        changed.purpose = "research"
        #expect(AuditChain.hash(sequence: 1, rowID: 9, occurredAtMicros: 5, event: changed, previous: AuditChain.genesis) != base)
        #expect(AuditChain.hash(sequence: 2, rowID: 9, occurredAtMicros: 5, event: event, previous: AuditChain.genesis) != base)
        #expect(AuditChain.hash(sequence: 1, rowID: 9, occurredAtMicros: 6, event: event, previous: AuditChain.genesis) != base)
        #expect(AuditChain.hash(sequence: 1, rowID: 8, occurredAtMicros: 5, event: event, previous: AuditChain.genesis) != base)
        var empty = event
        empty.facility = ""
        #expect(
            AuditChain.hash(sequence: 1, rowID: 9, occurredAtMicros: 5, event: empty, previous: AuditChain.genesis) != base,
            "absent ≠ empty")
    }
}

@Suite struct FacilityValidationTests {
    @Test func acceptsGradesAndPrimaryKinds() throws {
        let hospital = try FacilityDirectory.validate(.init(code: "5201020001", name: " 贵州省人民医院 ", level: "tertiary", division: "520102"))
        #expect(hospital.name == "贵州省人民医院")
        #expect(hospital.level == .tertiary && hospital.primaryKind == nil && hospital.active)
        let clinic = try FacilityDirectory.validate(.init(code: "C-1", name: "村卫生室", level: "village", division: "522634"))
        #expect(clinic.level == .primary && clinic.primaryKind == .village)
    }

    @Test(arguments: [
        ("code", FacilityDraft(code: "x", name: "n", level: "tertiary", division: "520102")),
        ("code", FacilityDraft(code: "bad code!", name: "n", level: "tertiary", division: "520102")),
        ("name", FacilityDraft(code: "A1", name: "  ", level: "tertiary", division: "520102")),
        ("level", FacilityDraft(code: "A1", name: "n", level: "quaternary", division: "520102")),
        ("division", FacilityDraft(code: "A1", name: "n", level: "tertiary", division: "5201")),
        ("division", FacilityDraft(code: "A1", name: "n", level: "tertiary", division: "990102")),
        ("primaryKind", FacilityDraft(code: "A1", name: "n", level: "tertiary", primaryKind: "village", division: "520102")),
    ])
    func refusesWithTheFieldNamed(field: String, draft: FacilityDraft) {
        #expect {
            try FacilityDirectory.validate(draft)
        } throws: { error in
            if case .invalid(let named, _) = error as? RegistryError { return named == field }
            return false
        }
    }
}

@Suite struct PaginationTests {
    @Test func cursorsRoundTripAndRejectForgeries() throws {
        let cursor = Cursor.encode("5201020001")
        #expect(Cursor.decode(cursor) == "5201020001")
        #expect(Cursor.decode("garbage") == nil)
        #expect(throws: PageError.self) { try PageRequest(limit: "0", cursor: nil) }
        #expect(throws: PageError.self) { try PageRequest(limit: "201", cursor: nil) }
        #expect(throws: PageError.self) { try PageRequest(limit: nil, cursor: "nope") }
        #expect(try PageRequest(limit: "10", cursor: cursor) == PageRequest(limit: 10, after: "5201020001"))
    }
}

@Suite struct CSVReaderTests {
    func records(_ text: String, chunk: Int) throws -> [[String]] {
        var bytes = Array(text.utf8)[...]
        var reader = CSVReader(chunks: {
            guard !bytes.isEmpty else { return nil }
            defer { bytes = bytes.dropFirst(chunk) }
            return Array(bytes.prefix(chunk))
        })
        var result: [[String]] = []
        while let record = try reader.record() { result.append(record.fields) }
        return result
    }

    @Test func quotedFieldsLineBreaksAndChunkBoundaries() throws {
        let text = "\u{FEFF}a,b,c\r\n\"x,1\",\"say \"\"hi\"\"\",\"two\nlines\"\n,,\n末,尾,\"\""
        let expected = [["a", "b", "c"], ["x,1", "say \"hi\"", "two\nlines"], ["", "", ""], ["末", "尾", ""]]
        for chunk in [1, 2, 3, 7, 1000] { #expect(try records(text, chunk: chunk) == expected, "chunk \(chunk)") }
    }

    @Test func brokenInputIsATypedError() throws {
        #expect(throws: CSVReader.Failure.unterminatedQuote(line: 2)) { try records("a\n\"open,b\nc", chunk: 4) }
        var invalid = Array("a,b\n".utf8)
        invalid.append(contentsOf: [0xFF, 0xFE, 0x0A])
        var reader = CSVReader(chunks: {
            defer { invalid = [] }
            return invalid.isEmpty ? nil : invalid
        })
        _ = try reader.record()
        #expect(throws: CSVReader.Failure.notUTF8(line: 2)) { try reader.record() }
    }
}
