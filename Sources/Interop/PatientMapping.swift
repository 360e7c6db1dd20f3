import Foundation
import HL7v2
import IdentityNumbers
import Registry

/// A PID segment read as a registration: the facility's own patient id, the demographics, and
/// where in the message each field came from, so a refusal can point the sender at it (ERR-2).
struct PatientDemographics: Sendable {
    var localId: String
    var draft: ResidentDraft
    /// Registry field name → where the value was read (`idNumber` → `PID-3(2)`).
    var sources: [String: HL7Location]
    /// Things read but not used, for ERR warnings (never the values themselves).
    var warnings: [String] = []

    /// The same demographics as a patch: fields the message left empty stay as they are.
    var patch: ResidentPatch {
        ResidentPatch(
            name: draft.name, sex: draft.sex, birthDate: draft.birthDate, ethnicity: draft.ethnicity, document: draft.document,
            idNumber: draft.idNumber, phone: draft.phone, division: draft.division, address: draft.address,
            deceased: draft.deceased == true ? true : nil, deceasedDate: draft.deceasedDate)
    }
}

/// A refusal of a message's content, with the HL7 error code (table 0357) and where it is.
public struct HL7ApplicationError: Error, Sendable, CustomStringConvertible {
    public var code: HL7ErrorCode
    public var location: HL7Location
    /// Says what is wrong and where; never repeats the value.
    public var text: String

    public init(_ code: HL7ErrorCode, _ location: HL7Location, _ text: String) {
        self.code = code
        self.location = location
        self.text = text
    }

    public var description: String { text }
}

enum PatientMapping {
    /// Identifier types (table 0203) that name a facility's own record of the patient.
    static let localTypes: Set<String> = ["PI", "MR", "PT", "PN", "AN", "MRN", "PID", ""]
    /// Identifier types a Chinese HIS uses for the resident identity number: the v2.5 national
    /// number of China, the generic national number, and local spellings seen in the wild.
    static let nationalTypes: Set<String> = ["NNCHN", "NI", "NN", "SFZ", "ID", "IDCARD", "CZ"]
    static let passportTypes: Set<String> = ["PPN", "PP", "PASSPORT", "HZ"]

    static func location(_ field: Int, repetition: Int? = nil, component: Int? = nil, segment: String = "PID") -> HL7Location {
        HL7Location(segmentID: segment, segmentSequence: 1, field: field, repetition: repetition, component: component)
    }

    /// 15 or 18 digits (full-width too) with an optional final X, by the identity-number rules
    /// themselves: what a resident identity number looks like before its date and check digit count.
    static func hasResidentIDShape(_ value: String) -> Bool {
        !ResidentIDNumber.check(value, today: 0).problems.contains { [.empty, .length, .character].contains($0.code) }
    }

    /// Reads the first PID (and a guardian from NK1 for minors). `today` is yyyymmdd.
    static func demographics(_ message: HL7Message, today: Int) throws(HL7ApplicationError) -> PatientDemographics {
        guard message.segment("PID") != nil else {
            throw HL7ApplicationError(.segmentSequenceError, HL7Location(segmentID: "PID"), "the message has no PID segment")
        }
        var sources: [String: HL7Location] = [:]
        var warnings: [String] = []

        // PID-3: the facility's id and, often, the identity number beside it.
        let identified = identifiers(message)
        var document = identified.document
        guard let localId = identified.localId else {
            throw HL7ApplicationError(.requiredFieldMissing, location(3), "PID-3 carries no patient identifier of the sending facility")
        }
        guard localId.count <= 64 else {
            throw HL7ApplicationError(.valueTooLong, location(3), "the patient identifier exceeds 64 characters")
        }
        // PID-19 is the SSN in the standard and the identity number in many Chinese profiles: taken
        // as an identity number when it has that shape (a mistyped one is then refused, 102), and
        // otherwise (a foreign social security number, say) left out with a warning.
        if document == nil, let ssn = message["PID-19"]?.trimmingCharacters(in: .whitespaces), !ssn.isEmpty {
            if hasResidentIDShape(ssn) {
                document = (DocumentInput(type: DocumentType.residentID.rawValue, number: ssn), location(19))
            } else {
                warnings.append("PID-19 is not a resident identity number; not recorded")
            }
        }

        guard let name = personName(message.values(XPN.self, HL7Path(segmentID: "PID", field: 5))) else {
            throw HL7ApplicationError(.requiredFieldMissing, location(5), "PID-5 (patient name) is empty")
        }
        sources["name"] = location(5)

        var draft = ResidentDraft(localId: localId, name: name)
        if let (input, here) = document {
            draft.document = input
            sources["document.number"] = here
            sources["idNumber"] = here
        }
        if let birth = message["PID-7"], !birth.isEmpty {
            guard let time = HL7DateTime(birth) else {
                throw HL7ApplicationError(.dataTypeError, location(7), "PID-7 (birth date) is not an HL7 date")
            }
            if let month = time.month, let day = time.day {
                draft.birthDate = isoDate(time, month: month, day: day)
                sources["birthDate"] = location(7)
            } else {
                warnings.append("PID-7 gives no day of birth; birth date not recorded")
            }
        }
        if let sex = message["PID-8"], !sex.isEmpty {
            switch sex.uppercased() {
            case "M", "1": draft.sex = "male"
            case "F", "2": draft.sex = "female"
            case "U", "0": draft.sex = "unknown"
            case "O", "A", "N", "9": draft.sex = "unspecified"
            default: throw HL7ApplicationError(.tableValueNotFound, location(8), "PID-8 (administrative sex) is not a table 0001 value")
            }
            sources["sex"] = location(8)
        }
        if let address = message.values(XAD.self, HL7Path(segmentID: "PID", field: 11)).first {
            let text = [address.stateOrProvince, address.city, address.street, address.otherDesignation]
                .map { $0.trimmedSpaces }.filter { !$0.isEmpty }.joined(separator: " ")
            if !text.isEmpty {
                draft.address = text
                sources["address"] = location(11)
            }
            // XAD-9 (county/parish) carries the GB/T 2260 division in Chinese profiles.
            let county = address.countyCode.trimmedSpaces
            if county.count == 6, county.allSatisfy(\.isNumber) {
                draft.division = county
                sources["division"] = location(11, component: 9)
            }
        }
        let numbers = message.values(XTN.self, HL7Path(segmentID: "PID", field: 13))
        if let phone = phoneNumber(numbers) {
            draft.phone = phone
            sources["phone"] = location(13)
        } else if numbers.contains(where: { !$0.telephoneNumber.trimmedSpaces.isEmpty || !$0.localNumber.trimmedSpaces.isEmpty }) {
            warnings.append("PID-13 holds no usable telephone number; phone not recorded")
        }
        if let ethnicity = message.value(CWE.self, HL7Path(segmentID: "PID", field: 22))?.identifier, !ethnicity.isEmpty {
            // GB 3304 codes are two digits; a one-digit "1" is the same code with its zero dropped.
            let code = ethnicity.count == 1 && ethnicity.allSatisfy(\.isNumber) ? "0" + ethnicity : ethnicity
            if code.count == 2, code.allSatisfy(\.isNumber) {
                draft.ethnicity = code
                sources["ethnicity"] = location(22)
            } else {
                warnings.append("PID-22 is not a GB 3304 code; ethnicity not recorded")
            }
        }
        if let death = message["PID-29"], !death.isEmpty {
            guard let time = HL7DateTime(death), let month = time.month, let day = time.day else {
                throw HL7ApplicationError(.dataTypeError, location(29), "PID-29 (death date) is not an HL7 date")
            }
            draft.deceasedDate = isoDate(time, month: month, day: day)
            sources["deceasedDate"] = location(29)
        }
        if message["PID-30"]?.uppercased() == "Y" { draft.deceased = true }
        if let guardian = guardian(message, birthDate: draft.birthDate, today: today) {
            draft.guardian = guardian
            sources["guardian"] = location(2, segment: "NK1")
        }
        return PatientDemographics(localId: localId, draft: draft, sources: sources, warnings: warnings)
    }

    /// The sending facility's own patient id (PID-3's first repetition that is not an identity
    /// document, else PID-2 or PID-4, as some pre-2.5 senders do), and the identity document
    /// beside it with where it was read. The gateway orders messages by the same id it applies.
    static func identifiers(_ message: HL7Message) -> (localId: String?, document: (DocumentInput, HL7Location)?) {
        var localId: String?
        var document: (DocumentInput, HL7Location)?
        for (index, cx) in message.values(CX.self, HL7Path(segmentID: "PID", field: 3)).enumerated() {
            let id = cx.id.trimmedSpaces
            guard !id.isEmpty else { continue }
            let type = cx.identifierTypeCode.uppercased()
            let here = location(3, repetition: index + 1, component: 1)
            if nationalTypes.contains(type) || (!localTypes.contains(type) && looksLikeResidentID(id)) {
                if document == nil { document = (DocumentInput(type: DocumentType.residentID.rawValue, number: id), here) }
            } else if passportTypes.contains(type) {
                if document == nil { document = (DocumentInput(type: DocumentType.passport.rawValue, number: id), here) }
            } else if localId == nil {
                localId = id
            }
        }
        for field in [2, 4] where localId == nil {
            if let id = message.value(CX.self, HL7Path(segmentID: "PID", field: field))?.id.trimmedSpaces, !id.isEmpty { localId = id }
        }
        return (localId, document)
    }

    /// MRG-1's prior id, if the message has one (for ordering; `priorIdentifier` explains its absence).
    static func priorIdentifierIfAny(_ message: HL7Message) -> String? {
        try? priorIdentifier(message)
    }

    /// MRG-1: the prior patient id an ADT^A40 merges away.
    static func priorIdentifier(_ message: HL7Message) throws(HL7ApplicationError) -> String {
        guard message.segment("MRG") != nil else {
            throw HL7ApplicationError(.segmentSequenceError, HL7Location(segmentID: "MRG"), "an A40 needs an MRG segment")
        }
        for cx in message.values(CX.self, HL7Path(segmentID: "MRG", field: 1)) {
            let id = cx.id.trimmedSpaces
            let type = cx.identifierTypeCode.uppercased()
            if !id.isEmpty, !nationalTypes.contains(type), !passportTypes.contains(type) { return id }
        }
        throw HL7ApplicationError(.requiredFieldMissing, location(1, segment: "MRG"), "MRG-1 carries no prior patient identifier")
    }

    static func looksLikeResidentID(_ id: String) -> Bool {
        (id.count == 18 || id.count == 15) && id.dropLast().allSatisfy(\.isNumber)
    }

    /// The legal name if one is marked, else the first. Chinese names are family name then given
    /// name with no space (张 + 三 = 张三); names in Latin letters keep a space.
    static func personName(_ names: [XPN]) -> String? {
        let chosen = names.first { $0.nameTypeCode.uppercased() == "L" } ?? names.first
        guard let name = chosen else { return nil }
        let family = name.familyName.trimmedSpaces
        let given = [name.givenName, name.middleName].map { $0.trimmedSpaces }.filter { !$0.isEmpty }
            .joined(separator: " ")
        let parts = [family, given].filter { !$0.isEmpty }
        guard !parts.isEmpty else { return nil }
        let han = parts.joined().unicodeScalars.contains { $0.properties.isIdeographic }
        return parts.joined(separator: han ? "" : " ")
    }

    /// Mobile first (equipment CP), then any number: the first one the registry accepts, from
    /// the v2.5 components (area code and local number) or else the v2.3 free-form number. A feed's
    /// unusable number (a four-digit extension, a placeholder) is left out rather than failing the
    /// registration.
    static func phoneNumber(_ numbers: [XTN]) -> String? {
        func usable(_ xtn: XTN) -> String? {
            let local = xtn.localNumber.trimmedSpaces
            let candidates = [local.isEmpty ? "" : xtn.areaCode.trimmedSpaces + local, xtn.telephoneNumber.trimmedSpaces]
            return candidates.first { !$0.isEmpty && (try? ResidentValidation.phone($0, field: "phone")) != nil }
        }
        let ordered = numbers.filter { $0.equipmentType.uppercased() == "CP" } + numbers.filter { $0.equipmentType.uppercased() != "CP" }
        return ordered.lazy.compactMap(usable).first
    }

    /// NK1 as the guardian of a minor: name, relationship, phone.
    static func guardian(_ message: HL7Message, birthDate: String?, today: Int) -> GuardianInput? {
        guard let birthDate, let birth = Int(birthDate.replacingOccurrences(of: "-", with: "")), today - birth < 18_0000 else { return nil }
        guard message.segment("NK1") != nil, let name = personName(message.values(XPN.self, HL7Path(segmentID: "NK1", field: 2))) else {
            return nil
        }
        let relation = message.value(CWE.self, HL7Path(segmentID: "NK1", field: 3)).map { relationship($0.identifier) }
        let phone = phoneNumber(message.values(XTN.self, HL7Path(segmentID: "NK1", field: 5)))
        return GuardianInput(name: name, relation: relation, phone: phone)
    }

    /// Table 0063 relationship codes as the registry's words.
    static func relationship(_ code: String) -> String {
        switch code.uppercased() {
        case "MTH": "mother"
        case "FTH": "father"
        case "GRP": "grandparent"
        case "GRD", "GUA": "legal-guardian"
        case "PAR": "parent"
        default: code.lowercased()
        }
    }

    static func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

    static func isoDate(_ time: HL7DateTime, month: Int, day: Int) -> String {
        let year = "\(time.year)"
        return String(repeating: "0", count: max(0, 4 - year.count)) + year + "-" + two(month) + "-" + two(day)
    }
}

extension String {
    /// Without leading and trailing white space. Native, unlike Foundation's `trimmingCharacters`,
    /// which bridges through NSString; every PID field passes through here.
    var trimmedSpaces: String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        if first == scalars.startIndex && last == scalars.index(before: scalars.endIndex) { return self }
        return String(scalars[first...last])
    }
}
