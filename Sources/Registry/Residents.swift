import Access
import Foundation
import IdentityNumbers
import NameMatching

/// GB/T 2261.1 sex codes.
public enum Sex: Int, Sendable, Codable, CaseIterable {
    case unknown = 0
    case male = 1
    case female = 2
    case unspecified = 9

    public var name: String {
        switch self {
        case .unknown: "unknown"
        case .male: "male"
        case .female: "female"
        case .unspecified: "unspecified"
        }
    }

    /// What desks and HIS exports write: `male`, `M`, `1`, `男`, …
    public init?(text: String) {
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "1", "m", "male", "男": self = .male
        case "2", "f", "female", "女": self = .female
        case "0", "u", "unknown", "未知": self = .unknown
        case "9", "unspecified", "未说明": self = .unspecified
        default: return nil
        }
    }
}

/// Identity documents a resident may be registered with.
public enum DocumentType: String, Sendable, Codable, CaseIterable {
    /// 居民身份证 (GB 11643), also the 18-digit residence permits of Hong Kong, Macao and Taiwan residents.
    case residentID = "resident-id"
    case passport
    /// 港澳居民来往内地通行证: H or M and 8 or 10 digits.
    case hkMacaoPermit = "hk-macao-permit"
    /// 台湾居民来往大陆通行证: 8 or 10 digits.
    case taiwanPermit = "taiwan-permit"
    /// 外国人永久居留身份证: 15 characters (2004) or 18 digits beginning with 9 (2023).
    case foreignPermanentResidence = "foreign-permanent-residence"
    /// 出生医学证明: a letter and nine digits, for newborns without an ID number yet.
    case birthCertificate = "birth-certificate"
}

public struct DocumentInput: Sendable, Codable, Equatable {
    public var type: String?
    public var number: String

    public init(type: String? = nil, number: String) {
        self.type = type
        self.number = number
    }
}

public struct GuardianInput: Sendable, Codable, Equatable {
    public var residentId: String?
    public var name: String?
    /// e.g. `mother`, `father`, `grandparent`, `legal-guardian`.
    public var relation: String?
    public var phone: String?

    public init(residentId: String? = nil, name: String? = nil, relation: String? = nil, phone: String? = nil) {
        self.residentId = residentId
        self.name = name
        self.relation = relation
        self.phone = phone
    }
}

/// What a registration desk, a HIS or an import row sends. Everything but the name may be unknown.
public struct ResidentDraft: Sendable, Codable, Equatable {
    /// The registering facility; a HIS client's own facility is used when absent.
    public var facility: String?
    /// The facility's own patient id (required from a HIS: it is how the HIS finds the resident again).
    public var localId: String?
    public var name: String
    public var sex: String?
    public var birthDate: String?
    public var ethnicity: String?
    public var document: DocumentInput?
    /// Shorthand for `document: {type: "resident-id", number: …}`.
    public var idNumber: String?
    public var phone: String?
    public var division: String?
    public var address: String?
    public var guardian: GuardianInput?
    public var deceased: Bool?
    public var deceasedDate: String?

    public init(
        facility: String? = nil, localId: String? = nil, name: String, sex: String? = nil, birthDate: String? = nil,
        ethnicity: String? = nil, document: DocumentInput? = nil, idNumber: String? = nil, phone: String? = nil,
        division: String? = nil, address: String? = nil, guardian: GuardianInput? = nil, deceased: Bool? = nil,
        deceasedDate: String? = nil
    ) {
        self.facility = facility
        self.localId = localId
        self.name = name
        self.sex = sex
        self.birthDate = birthDate
        self.ethnicity = ethnicity
        self.document = document
        self.idNumber = idNumber
        self.phone = phone
        self.division = division
        self.address = address
        self.guardian = guardian
        self.deceased = deceased
        self.deceasedDate = deceasedDate
    }
}

/// A partial update; absent fields stay as they are, `""` clears an optional text field.
public struct ResidentPatch: Sendable, Codable, Equatable {
    public var name: String?
    public var sex: String?
    public var birthDate: String?
    public var ethnicity: String?
    public var document: DocumentInput?
    public var idNumber: String?
    public var phone: String?
    public var division: String?
    public var address: String?
    public var guardian: GuardianInput?
    public var deceased: Bool?
    public var deceasedDate: String?

    public init(
        name: String? = nil, sex: String? = nil, birthDate: String? = nil, ethnicity: String? = nil, document: DocumentInput? = nil,
        idNumber: String? = nil, phone: String? = nil, division: String? = nil, address: String? = nil, guardian: GuardianInput? = nil,
        deceased: Bool? = nil, deceasedDate: String? = nil
    ) {
        self.name = name
        self.sex = sex
        self.birthDate = birthDate
        self.ethnicity = ethnicity
        self.document = document
        self.idNumber = idNumber
        self.phone = phone
        self.division = division
        self.address = address
        self.guardian = guardian
        self.deceased = deceased
        self.deceasedDate = deceasedDate
    }
}

/// A validated identity document: the normalised number, never shown outside the registry.
public struct Document: Sendable, Equatable {
    public let type: DocumentType
    public let number: String

    public var masked: String { FieldProtector.mask(number) }
}

/// A resident's demographics after validation and normalisation: what is stored and matched.
public struct ResidentRecord: Sendable, Equatable {
    public var name: String
    public var namePinyin: String
    public var sex: Sex
    public var birthDate: String?
    public var ethnicity: String?
    public var document: Document?
    public var phone: String?
    public var division: String?
    public var address: String?
    public var guardianID: UUID?
    public var guardianName: String?
    public var guardianRelation: String?
    public var guardianPhone: String?
    public var deceased: Bool
    public var deceasedDate: String?

    /// The matcher's view of this record.
    public var person: PersonRecord {
        let id = document.flatMap { $0.type == .residentID ? $0.number : nil }
        return PersonRecord(
            name: name, sex: sex == .male || sex == .female ? sex.rawValue : nil, birthDate: birthDate, idNumber: id,
            idNumberValid: id != nil, phone: phone, division: division, address: address)
    }
}

/// Field-by-field validation of resident data. Pure: `today` is passed in.
public enum ResidentValidation {
    /// GB 3304: 01 (Han) to 56 (Jino), 97 other, 98 naturalised foreigner.
    static func validEthnicity(_ code: String) -> Bool {
        guard code.count == 2, let value = Int(code) else { return false }
        return (1...56).contains(value) || value == 97 || value == 98
    }

    public static func validate(_ draft: ResidentDraft, today: Int) throws(RegistryError) -> ResidentRecord {
        var record = ResidentRecord(
            name: try name(draft.name), namePinyin: "", sex: .unknown, birthDate: nil, ethnicity: nil, document: nil, phone: nil,
            division: nil, address: nil, deceased: draft.deceased ?? false)
        record.namePinyin = ChineseName(record.name).pinyinKey
        if let text = nonEmpty(draft.sex) {
            guard let sex = Sex(text: text) else {
                throw .invalid(field: "sex", reason: "must be male, female, unknown or unspecified (or 1, 2, 0, 9)")
            }
            record.sex = sex
        }
        if let text = nonEmpty(draft.birthDate) { record.birthDate = try date(text, field: "birthDate", today: today) }
        try apply(document: try documentInput(draft.document, idNumber: draft.idNumber), to: &record, today: today)
        if let text = nonEmpty(draft.ethnicity) {
            guard validEthnicity(text) else { throw .invalid(field: "ethnicity", reason: "must be a GB 3304 code: 01 to 56, 97 or 98") }
            record.ethnicity = text
        }
        record.phone = try nonEmpty(draft.phone).map { text throws(RegistryError) in try phone(text, field: "phone") }
        record.division = try nonEmpty(draft.division).map { text throws(RegistryError) in try division(text) }
        if let text = nonEmpty(draft.address) {
            guard text.count <= 300, !text.contains(where: \.isControl) else {
                throw .invalid(field: "address", reason: "must be at most 300 characters without control characters")
            }
            record.address = text
        }
        try apply(guardian: draft.guardian, to: &record)
        if let text = nonEmpty(draft.deceasedDate) {
            record.deceasedDate = try date(text, field: "deceasedDate", today: today)
            record.deceased = true
        }
        if let birth = record.birthDate, let death = record.deceasedDate, death < birth {
            throw .invalid(field: "deceasedDate", reason: "is before the birth date")
        }
        return record
    }

    /// Applies a patch to a stored record, validating what changes.
    public static func apply(_ patch: ResidentPatch, to current: ResidentRecord, today: Int) throws(RegistryError) -> ResidentRecord {
        var record = current
        if let text = patch.name {
            record.name = try name(text)
            record.namePinyin = ChineseName(record.name).pinyinKey
        }
        if let text = patch.sex {
            guard let sex = Sex(text: text) else {
                throw .invalid(field: "sex", reason: "must be male, female, unknown or unspecified (or 1, 2, 0, 9)")
            }
            record.sex = sex
        }
        if let text = patch.birthDate {
            record.birthDate = try nonEmpty(text).map { t throws(RegistryError) in try date(t, field: "birthDate", today: today) }
        }
        if let input = try documentInput(patch.document, idNumber: patch.idNumber) {
            try apply(document: input, to: &record, today: today)
        } else if let document = record.document, document.type == .residentID, patch.birthDate != nil || patch.sex != nil {
            // Re-check the stored number against the changed birth date or sex.
            try apply(document: (document.type, document.number), to: &record, today: today)
        }
        if let text = patch.ethnicity {
            if let code = nonEmpty(text), !validEthnicity(code) {
                throw .invalid(field: "ethnicity", reason: "must be a GB 3304 code: 01 to 56, 97 or 98")
            }
            record.ethnicity = nonEmpty(text)
        }
        if let text = patch.phone { record.phone = try nonEmpty(text).map { t throws(RegistryError) in try phone(t, field: "phone") } }
        if let text = patch.division { record.division = try nonEmpty(text).map { t throws(RegistryError) in try division(t) } }
        if let text = patch.address {
            guard text.count <= 300, !text.contains(where: \.isControl) else {
                throw .invalid(field: "address", reason: "must be at most 300 characters without control characters")
            }
            record.address = nonEmpty(text)
        }
        if let guardian = patch.guardian { try apply(guardian: guardian, to: &record) }
        if let deceased = patch.deceased {
            record.deceased = deceased
            if !deceased { record.deceasedDate = nil }
        }
        if let text = patch.deceasedDate {
            record.deceasedDate = try nonEmpty(text).map { t throws(RegistryError) in try date(t, field: "deceasedDate", today: today) }
            if record.deceasedDate != nil { record.deceased = true }
        }
        if let birth = record.birthDate, let death = record.deceasedDate, death < birth {
            throw .invalid(field: "deceasedDate", reason: "is before the birth date")
        }
        return record
    }

    static func nonEmpty(_ text: String?) -> String? {
        guard let trimmed = text?.trimmingCharacters(in: .whitespacesAndNewlines), !trimmed.isEmpty else { return nil }
        return trimmed
    }

    static func name(_ raw: String) throws(RegistryError) -> String {
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty, text.count <= 100 else { throw .invalid(field: "name", reason: "must be 1 to 100 characters") }
        guard !text.contains(where: \.isControl), text.contains(where: \.isLetter) else {
            throw .invalid(field: "name", reason: "must contain letters and no control characters")
        }
        return text
    }

    /// `YYYY-MM-DD` (or `YYYYMMDD`), a calendar date from 1880 to today.
    static func date(_ text: String, field: String, today: Int) throws(RegistryError) -> String {
        let digits = text.filter { $0 != "-" }
        guard digits.count == 8, digits.allSatisfy({ $0.isASCII && $0.isNumber }), text.count == 8 || text.count == 10,
            text.count == 8 || (Array(text)[4] == "-" && Array(text)[7] == "-")
        else {
            throw .invalid(field: field, reason: "must be a date written YYYY-MM-DD")
        }
        let value = Int(digits)!
        let (year, month, day) = (value / 10000, value / 100 % 100, value % 100)
        var components = DateComponents()
        (components.year, components.month, components.day) = (year, month, day)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 0)!
        guard (1...12).contains(month), day >= 1, let date = calendar.date(from: components),
            calendar.component(.day, from: date) == day
        else {
            throw .invalid(field: field, reason: "is not a calendar date")
        }
        guard year >= 1880 else { throw .invalid(field: field, reason: "is before 1880") }
        guard value <= today else { throw .invalid(field: field, reason: "is in the future") }
        return String(digits.prefix(4)) + "-" + String(digits.dropFirst(4).prefix(2)) + "-" + String(digits.suffix(2))
    }

    /// Mobile numbers lose a leading +86/0086; landlines keep their area code.
    public static func phone(_ raw: String, field: String) throws(RegistryError) -> String {
        var text = raw.filter { !$0.isWhitespace && $0 != "-" && $0 != "(" && $0 != ")" }
        if text.hasPrefix("+86") { text.removeFirst(3) } else if text.hasPrefix("0086") { text.removeFirst(4) }
        let body = text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        guard (5...20).contains(body.count), body.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw .invalid(field: field, reason: "must be a telephone number of 5 to 20 digits")
        }
        if !text.hasPrefix("+"), text.count == 11, text.hasPrefix("1"), !"3456789".contains(Array(text)[1]) {
            throw .invalid(field: field, reason: "is not a mainland mobile number (13x to 19x)")
        }
        return text
    }

    static func division(_ text: String) throws(RegistryError) -> String {
        guard text.count == 6, text.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw .invalid(field: "division", reason: "must be a six-digit GB/T 2260 code such as 520102")
        }
        guard ResidentIDNumber.provinces[String(text.prefix(2))] != nil else {
            throw .invalid(field: "division", reason: "\(text.prefix(2)) is not a GB/T 2260 province code")
        }
        return text
    }

    static func documentInput(_ document: DocumentInput?, idNumber: String?) throws(RegistryError) -> (DocumentType, String)? {
        if let document, idNumber != nil {
            _ = document
            throw .invalid(field: "idNumber", reason: "give either idNumber or document, not both")
        }
        if let number = nonEmpty(idNumber) { return (.residentID, number) }
        guard let document else { return nil }
        let typeText = document.type ?? DocumentType.residentID.rawValue
        guard let type = DocumentType(rawValue: typeText) else {
            throw .invalid(
                field: "document.type", reason: "must be one of " + DocumentType.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard let number = nonEmpty(document.number) else { throw .invalid(field: "document.number", reason: "is required") }
        return (type, number)
    }

    static func apply(document input: (DocumentType, String)?, to record: inout ResidentRecord, today: Int) throws(RegistryError) {
        guard let (type, raw) = input else { return }
        let field = "document.number"
        switch type {
        case .residentID:
            guard raw.unicodeScalars.count <= 64 else { throw .invalid(field: field, reason: "is far too long for an identity number") }
            let verdict = ResidentIDNumber.check(raw, today: today)
            guard verdict.valid, let number = verdict.normalized else { throw .identityNumber(verdict.problems) }
            let sex: Sex = verdict.sex == .male ? .male : .female
            if let given = record.birthDate, given != verdict.birthDate {
                throw .invalid(field: "birthDate", reason: "disagrees with the birth date in the identity number")
            }
            if record.sex == .male || record.sex == .female, record.sex != sex {
                throw .invalid(field: "sex", reason: "disagrees with the sex coded in the identity number")
            }
            record.birthDate = verdict.birthDate
            record.sex = sex
            record.document = Document(type: type, number: number)
        default:
            let number = String(raw.uppercased().filter { !$0.isWhitespace && $0 != "-" })
            let ok: Bool
            let digits = { (s: Substring) in s.allSatisfy { $0.isASCII && $0.isNumber } }
            let chars = Substring(number)
            switch type {
            case .passport: ok = (5...17).contains(number.count) && number.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
            case .hkMacaoPermit:
                ok = (number.first == "H" || number.first == "M") && [9, 11].contains(number.count) && digits(chars.dropFirst())
            case .taiwanPermit: ok = [8, 10].contains(number.count) && digits(chars)
            case .foreignPermanentResidence:
                ok =
                    (number.count == 15 && number.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
                    || (number.count == 18 && number.first == "9" && digits(chars.dropLast()))
            case .birthCertificate: ok = number.count == 10 && number.first!.isASCII && number.first!.isLetter && digits(chars.dropFirst())
            case .residentID: ok = false
            }
            guard ok else { throw .invalid(field: field, reason: "is not a well-formed \(type.rawValue) number") }
            record.document = Document(type: type, number: number)
        }
    }

    static func apply(guardian: GuardianInput?, to record: inout ResidentRecord) throws(RegistryError) {
        guard let guardian else { return }
        if let text = nonEmpty(guardian.residentId) {
            guard let id = UUID(uuidString: text) else { throw .invalid(field: "guardian.residentId", reason: "must be a resident id") }
            record.guardianID = id
        } else {
            record.guardianID = nil
        }
        record.guardianName = try nonEmpty(guardian.name).map { t throws(RegistryError) in try name(t) }
        if let relation = nonEmpty(guardian.relation) {
            guard relation.count <= 32, !relation.contains(where: \.isControl) else {
                throw .invalid(field: "guardian.relation", reason: "must be at most 32 characters")
            }
            record.guardianRelation = relation
        } else {
            record.guardianRelation = nil
        }
        record.guardianPhone = try nonEmpty(guardian.phone).map { t throws(RegistryError) in try phone(t, field: "guardian.phone") }
        if record.guardianID == nil, record.guardianName == nil, record.guardianRelation != nil || record.guardianPhone != nil {
            throw .invalid(field: "guardian.name", reason: "is required unless guardian.residentId is given")
        }
    }
}

extension Character {
    /// C0/C1 controls and other format characters that have no place in a name or an id.
    var isControl: Bool {
        unicodeScalars.contains { $0.properties.generalCategory == .control || $0.properties.generalCategory == .format }
    }
}
