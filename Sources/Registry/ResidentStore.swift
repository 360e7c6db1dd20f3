import Access
import Foundation
import Logging
import NameMatching
import PostgresNIO
import Storage

/// A facility's own patient id for a resident.
public struct FacilityIdentifier: Sendable, Codable, Equatable {
    public var facility: String
    public var localId: String
    public var source: String?

    public init(facility: String, localId: String, source: String? = nil) {
        self.facility = facility
        self.localId = localId
        self.source = source
    }
}

/// A resident as the API shows them: the identity document masked, never in full.
public struct Resident: Sendable, Codable, Equatable {
    public struct DocumentView: Sendable, Codable, Equatable {
        public var type: String
        public var masked: String
    }

    public struct Guardian: Sendable, Codable, Equatable {
        public var residentId: String?
        public var name: String?
        public var relation: String?
        public var phone: String?
    }

    public var id: String
    /// `active`, or `merged` (then `mergedInto` names the surviving resident).
    public var status: String
    public var mergedInto: String?
    public var name: String
    public var namePinyin: String
    public var sex: String
    /// GB/T 2261.1.
    public var sexCode: Int
    public var birthDate: String?
    public var ethnicity: String?
    public var document: DocumentView?
    public var phone: String?
    public var division: String?
    public var address: String?
    public var guardian: Guardian?
    public var deceased: Bool
    public var deceasedDate: String?
    public var registeredBy: String?
    public var version: Int
    public var identifiers: [FacilityIdentifier]
}

/// A resident row as loaded, with the document opened: only the registry ever sees `record.document`.
struct StoredResident: Sendable {
    let id: UUID
    var record: ResidentRecord
    let documentMasked: String?
    let registeredBy: String?
    let status: String
    let mergedInto: UUID?
    let pseudonym: String
    let version: Int

    /// Refuses changes to a resident merged into another: they belong on the survivor.
    func requireActive() throws(RegistryError) {
        if let survivor = mergedInto {
            throw .conflict(code: "resident-merged", detail: "resident was merged into \(survivor.lowercased)")
        }
    }

    func view(identifiers: [FacilityIdentifier]) -> Resident {
        let guardian: Resident.Guardian? =
            record.guardianID == nil && record.guardianName == nil
            ? nil
            : Resident.Guardian(
                residentId: record.guardianID?.uuidString.lowercased(), name: record.guardianName, relation: record.guardianRelation,
                phone: record.guardianPhone)
        return Resident(
            id: id.uuidString.lowercased(), status: status, mergedInto: mergedInto?.uuidString.lowercased(), name: record.name,
            namePinyin: record.namePinyin, sex: record.sex.name, sexCode: record.sex.rawValue, birthDate: record.birthDate,
            ethnicity: record.ethnicity,
            document: record.document.map { Resident.DocumentView(type: $0.type.rawValue, masked: documentMasked ?? $0.masked) },
            phone: record.phone, division: record.division, address: record.address, guardian: guardian, deceased: record.deceased,
            deceasedDate: record.deceasedDate, registeredBy: registeredBy, version: version, identifiers: identifiers)
    }
}

/// Encryption, keyed hashes and row decoding shared by every part of the registry.
struct ResidentCodec: Sendable {
    static let documentContext = "registry.residents.document"
    let protector: FieldProtector

    static let columns = """
        id, name, name_pinyin, sex, birth_date::text, ethnicity, document_type, document_ciphertext, document_key_id,
        document_masked, phone, division, address, guardian_id, guardian_name, guardian_relation, guardian_phone, deceased,
        deceased_date::text, registered_by, status, merged_into, pseudonym, version
        """

    func decode(_ row: PostgresRow) throws -> StoredResident {
        let (
            id, name, pinyin, sex, birth, ethnicity, documentType, ciphertext, keyID, masked, phone, division, address, guardianID,
            guardianName, guardianRelation, guardianPhone, deceased, deceasedDate, registeredBy, status, mergedInto, pseudonym, version
        ) = try row.decode(
            (
                UUID, String, String, Int16, String?, String?, String?, ByteBuffer?, String?, String?, String?, String?, String?, UUID?,
                String?, String?, String?, Bool, String?, String?, String, UUID?, String, Int32
            ).self)
        var document: Document?
        if let documentType, let type = DocumentType(rawValue: documentType), let ciphertext, let keyID {
            let number = try protector.open(
                .init(keyID: keyID, bytes: Array(ciphertext.readableBytesView)), context: Self.documentContext)
            document = Document(type: type, number: number)
        }
        let record = ResidentRecord(
            name: name, namePinyin: pinyin, sex: Sex(rawValue: Int(sex)) ?? .unknown, birthDate: birth, ethnicity: ethnicity,
            document: document, phone: phone, division: division, address: address, guardianID: guardianID, guardianName: guardianName,
            guardianRelation: guardianRelation, guardianPhone: guardianPhone, deceased: deceased, deceasedDate: deceasedDate)
        return StoredResident(
            id: id, record: record, documentMasked: masked, registeredBy: registeredBy, status: status, mergedInto: mergedInto,
            pseudonym: pseudonym, version: Int(version))
    }

    func documentHash(_ document: Document) -> String {
        protector.pseudonym(document.type.rawValue + ":" + document.number, domain: "document")
    }

    func residentPseudonym(_ id: UUID) -> String {
        protector.pseudonym(id.uuidString.lowercased(), domain: "resident")
    }

    /// The first 8 bytes of the key's HMAC: a collision only adds a candidate, never loses one.
    func matchKeys(_ record: ResidentRecord) -> [Int64] {
        Matcher.blockingKeys(record.person).map { key in
            let hex = protector.pseudonym(key, domain: "match-key")
            return Int64(bitPattern: UInt64(hex.prefix(16), radix: 16)!)
        }.sorted()
    }

    /// The columns written for a resident, as one JSON object for `jsonb_to_recordset`.
    func row(id: UUID, record: ResidentRecord, registeredBy: String?) throws -> ResidentRow {
        var row = ResidentRow(
            id: id, name: record.name, name_pinyin: record.namePinyin, sex: record.sex.rawValue, birth_date: record.birthDate,
            ethnicity: record.ethnicity, phone: record.phone, division: record.division, address: record.address,
            guardian_id: record.guardianID, guardian_name: record.guardianName, guardian_relation: record.guardianRelation,
            guardian_phone: record.guardianPhone, deceased: record.deceased, deceased_date: record.deceasedDate,
            registered_by: registeredBy, pseudonym: residentPseudonym(id))
        if let document = record.document {
            let sealed = try protector.seal(document.number, context: Self.documentContext)
            row.document_type = document.type.rawValue
            row.document_ciphertext = sealed.bytes.hexString
            row.document_key_id = sealed.keyID
            row.document_hash = documentHash(document)
            row.document_masked = document.masked
        }
        return row
    }
}

struct ResidentRow: Encodable {
    var id: UUID
    var name: String
    var name_pinyin: String
    var sex: Int
    var birth_date: String?
    var ethnicity: String?
    var document_type: String?
    var document_ciphertext: String?
    var document_key_id: String?
    var document_hash: String?
    var document_masked: String?
    var phone: String?
    var division: String?
    var address: String?
    var guardian_id: UUID?
    var guardian_name: String?
    var guardian_relation: String?
    var guardian_phone: String?
    var deceased: Bool
    var deceased_date: String?
    var registered_by: String?
    var pseudonym: String

    static let copyColumns = [
        "id", "name", "name_pinyin", "sex", "birth_date", "ethnicity", "document_type", "document_ciphertext", "document_key_id",
        "document_hash", "document_masked", "phone", "division", "address", "guardian_id", "guardian_name", "guardian_relation",
        "guardian_phone", "deceased", "deceased_date", "registered_by", "pseudonym",
    ]

    /// The row in `copyColumns` order, as COPY text; bytea in its `\\x` hex form.
    var copyValues: [String?] {
        [
            id.lowercased, name, name_pinyin, String(sex), birth_date, ethnicity, document_type, document_ciphertext.map { "\\x" + $0 },
            document_key_id, document_hash, document_masked, phone, division, address, guardian_id?.lowercased, guardian_name,
            guardian_relation, guardian_phone, deceased ? "t" : "f", deceased_date, registered_by, pseudonym,
        ]
    }

    static let recordType = """
        x(id uuid, name text, name_pinyin text, sex smallint, birth_date date, ethnicity text, document_type text,
          document_ciphertext text, document_key_id text, document_hash text, document_masked text, phone text, division text,
          address text, guardian_id uuid, guardian_name text, guardian_relation text, guardian_phone text, deceased boolean,
          deceased_date date, registered_by text, pseudonym text)
        """
}

func jsonText(_ value: some Encodable) throws -> String {
    String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
}
