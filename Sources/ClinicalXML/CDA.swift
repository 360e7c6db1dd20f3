/// CDA R2 (`urn:hl7-org:v3`) as values: the header every shared document carries and the coded
/// entries of its structured body. Reading is lenient, as real documents are (HL7's own examples
/// fail the schema): only what a document cannot be stored without is required; everything else
/// is optional and read when present. Times stay as the document wrote them (HL7 TS,
/// `20261201083000+0800`): the record layer parses them.
public enum CDA {
    public static let namespace = "urn:hl7-org:v3"
    static let xsi = "http://www.w3.org/2001/XMLSchema-instance"
}

public struct CDAIdentifier: Sendable, Equatable, Hashable, Codable {
    public var root: String?
    public var `extension`: String?

    public init(root: String?, extension: String?) {
        self.root = root
        self.extension = `extension`
    }

    /// `root^extension`, or the root alone: how an II is written as one key.
    public var key: String { [root, `extension`].compactMap { $0 }.joined(separator: "^") }
}

public struct CDACode: Sendable, Equatable, Codable {
    public var code: String?
    public var codeSystem: String?
    public var codeSystemName: String?
    public var displayName: String?

    public init(code: String?, codeSystem: String?, codeSystemName: String? = nil, displayName: String? = nil) {
        self.code = code
        self.codeSystem = codeSystem
        self.codeSystemName = codeSystemName
        self.displayName = displayName
    }
}

/// An entry's value, by its `xsi:type`.
public enum CDAValue: Sendable, Equatable, Codable {
    /// PQ: a number with a UCUM unit, the number as written.
    case quantity(value: String, unit: String?)
    /// CD/CE/CV/CO/CS: a code.
    case coded(CDACode)
    /// ST/ED, or any type read as text.
    case text(String)
    /// IVL_PQ and the rest: kept as text of low–high.
    case range(low: String?, high: String?, unit: String?)
}

public struct CDAPerson: Sendable, Equatable {
    public var ids: [CDAIdentifier] = []
    /// The name as written: `<name>张三</name>`, or family then given joined (a Chinese name has no space).
    public var name: String?
    public var gender: CDACode?
    public var birthTime: String?
    public var telecom: [String] = []
    public var organization: String?
    public var organizationIds: [CDAIdentifier] = []
}

public struct CDAHeader: Sendable, Equatable {
    public var id: CDAIdentifier
    public var code: CDACode
    public var title: String?
    public var effectiveTime: String
    public var confidentiality: String?
    public var language: String?
    public var setId: CDAIdentifier?
    public var version: Int?
    public var patient: CDAPerson
    public var author: CDAPerson?
    public var authorTime: String?
    public var custodian: CDAPerson?
    /// The encompassing encounter's id and period, when the document names one.
    public var encounterIds: [CDAIdentifier] = []
    public var encounterStart: String?
    public var encounterEnd: String?
}

/// A clinical statement of the structured body: observation, substance administration,
/// procedure, encounter, act. Statements nested in entry relationships and organizers are read
/// too, each carrying the section it came from.
public struct CDAEntry: Sendable, Equatable {
    public var kind: String
    public var moodCode: String?
    public var negated: Bool
    public var ids: [CDAIdentifier]
    public var code: CDACode?
    public var value: CDAValue?
    public var status: String?
    public var effectiveTime: String?
    public var effectiveStart: String?
    public var effectiveEnd: String?
    public var interpretation: String?
    public var referenceRange: String?
    /// substanceAdministration's consumable (the drug), for medications.
    public var product: CDACode?
    public var sectionCode: CDACode?
    public var line: Int
}

public enum CDAProblem: Error, Equatable, Sendable, CustomStringConvertible {
    case notClinicalDocument(root: String, namespace: String?)
    case missing(String)

    public var description: String {
        switch self {
        case .notClinicalDocument(let root, let namespace):
            "the root element is \(root) in \(namespace ?? "no namespace"), not ClinicalDocument in urn:hl7-org:v3"
        case .missing(let what): "the document has no \(what)"
        }
    }
}

public struct CDADocument: Sendable {
    public var header: CDAHeader
    public var entries: [CDAEntry]

    /// Reads a parsed document. Throws only when it is not a CDA document at all, or lacks what
    /// it cannot be filed without: its id, type code, effective time and patient id.
    public init(_ document: XMLDocument) throws(CDAProblem) {
        guard let root = document.root, root.name == "ClinicalDocument", root.namespace == CDA.namespace else {
            throw .notClinicalDocument(root: document.root?.name ?? "", namespace: document.root?.namespace)
        }
        guard let id = root.child("id").map(Self.identifier), id.root != nil else { throw .missing("id (an II with a root)") }
        guard let code = root.child("code").map(Self.code), code.code != nil else { throw .missing("code (the document type)") }
        guard let effectiveTime = root.child("effectiveTime")?.attribute("value") else { throw .missing("effectiveTime") }
        guard let patientRole = root.path("recordTarget", "patientRole") else { throw .missing("recordTarget/patientRole") }
        var patient = Self.person(patientRole, personName: "patient", organizationName: "providerOrganization")
        // China's shared documents (WS/T 500) put the identity number under patient/id.
        patient.ids = (patientRole.children("id") + (patientRole.child("patient")?.children("id") ?? [])).map(Self.identifier)
            .filter { $0.root != nil || $0.extension != nil }
        guard !patient.ids.isEmpty else { throw .missing("patient id (recordTarget/patientRole/id)") }

        var header = CDAHeader(
            id: id, code: code, title: root.child("title")?.text.trimmedSpaces, effectiveTime: effectiveTime,
            confidentiality: root.child("confidentialityCode")?.attribute("code"), language: root.child("languageCode")?.attribute("code"),
            setId: root.child("setId").map(Self.identifier), version: root.child("versionNumber")?.attribute("value").flatMap { Int($0) },
            patient: patient)
        if let author = root.child("author") {
            header.authorTime = author.child("time")?.attribute("value")
            if let assigned = author.child("assignedAuthor") {
                var person = Self.person(assigned, personName: "assignedPerson", organizationName: "representedOrganization")
                person.ids = assigned.children("id").map(Self.identifier)
                header.author = person
            }
        }
        if let organization = root.path("custodian", "assignedCustodian", "representedCustodianOrganization") {
            var custodian = CDAPerson()
            custodian.ids = organization.children("id").map(Self.identifier)
            custodian.organization = organization.child("name")?.text.trimmedSpaces
            header.custodian = custodian
        }
        if let encounter = root.path("componentOf", "encompassingEncounter") {
            header.encounterIds = encounter.children("id").map(Self.identifier)
            let time = encounter.child("effectiveTime")
            header.encounterStart = time?.child("low")?.attribute("value") ?? time?.attribute("value")
            header.encounterEnd = time?.child("high")?.attribute("value")
        }
        self.header = header
        self.entries = Self.entries(root)
    }

    static func identifier(_ element: XMLElement) -> CDAIdentifier {
        CDAIdentifier(root: element.attribute("root"), extension: element.attribute("extension"))
    }

    static func code(_ element: XMLElement) -> CDACode {
        CDACode(
            code: element.attribute("code"), codeSystem: element.attribute("codeSystem"),
            codeSystemName: element.attribute("codeSystemName"),
            displayName: element.attribute("displayName") ?? element.child("originalText")?.text.trimmedSpaces.nonEmpty)
    }

    static func person(_ role: XMLElement, personName: String, organizationName: String) -> CDAPerson {
        var person = CDAPerson()
        person.telecom = role.children("telecom").compactMap { $0.attribute("value") }
        if let who = role.child(personName) {
            person.name = who.child("name").map(Self.name)
            person.gender = who.child("administrativeGenderCode").map(Self.code)
            person.birthTime = who.child("birthTime")?.attribute("value")
        }
        if let organization = role.child(organizationName) {
            person.organization = organization.child("name")?.text.trimmedSpaces.nonEmpty
            person.organizationIds = organization.children("id").map(Self.identifier)
        }
        return person
    }

    /// `<name>张三</name>` as is; structured names as family then given, with a space only
    /// between Latin-script parts (a Chinese name is written without one).
    static func name(_ element: XMLElement) -> String {
        // Some examples write a part as `<family value="Levin"/>` rather than as text.
        func part(_ element: XMLElement) -> String { element.text.trimmedSpaces.nonEmpty ?? element.attribute("value") ?? "" }
        let family = element.children("family").map(part)
        let given = element.children("given").map(part)
        guard !family.isEmpty || !given.isEmpty else { return element.text.trimmedSpaces }
        let parts = (family + given).filter { !$0.isEmpty }
        let latin = parts.allSatisfy { $0.unicodeScalars.allSatisfy { $0.value < 0x2E80 } }
        return latin ? (given + family).filter { !$0.isEmpty }.joined(separator: " ") : parts.joined()
    }

    static let statementKinds: Set<String> = ["observation", "substanceAdministration", "procedure", "encounter", "act", "supply"]

    /// The clinical statements of every section (nested sections included), in document order.
    static func entries(_ root: XMLElement) -> [CDAEntry] {
        guard let body = root.path("component", "structuredBody") else { return [] }
        var result: [CDAEntry] = []
        for section in body.descendants("section") {
            let sectionCode = section.child("code").map(Self.code)
            for entry in section.children("entry") {
                for statement in entry.children() { collect(statement, section: sectionCode, into: &result) }
            }
        }
        return result
    }

    /// A statement and the statements under it (entryRelationship, organizer component),
    /// iteratively: nesting depth is bounded by the parse limits, and the walk keeps no stack
    /// frames per level.
    static func collect(_ start: XMLElement, section: CDACode?, into result: inout [CDAEntry]) {
        var pending = [start]
        while let element = pending.popLast() {
            if statementKinds.contains(element.name) { result.append(statement(element, section: section)) }
            var nested: [XMLElement] = []
            for link in element.children() where link.name == "entryRelationship" || link.name == "component" {
                nested.append(contentsOf: link.children().filter { statementKinds.contains($0.name) || $0.name == "organizer" })
            }
            pending.append(contentsOf: nested.reversed())
        }
    }

    static func statement(_ element: XMLElement, section: CDACode?) -> CDAEntry {
        let time = element.child("effectiveTime")
        var entry = CDAEntry(
            kind: element.name, moodCode: element.attribute("moodCode"), negated: element.attribute("negationInd") == "true",
            ids: element.children("id").map(Self.identifier), code: element.child("code").map(Self.code),
            value: element.child("value").flatMap(Self.value), status: element.child("statusCode")?.attribute("code"),
            effectiveTime: time?.attribute("value"), effectiveStart: time?.child("low")?.attribute("value"),
            effectiveEnd: time?.child("high")?.attribute("value"), interpretation: element.child("interpretationCode")?.attribute("code"),
            referenceRange: nil, product: nil, sectionCode: section, line: element.line)
        if let range = element.path("referenceRange", "observationRange") {
            if let value = range.child("value"), let read = Self.value(value) {
                switch read {
                case .range(let low, let high, let unit):
                    entry.referenceRange = "\(low ?? "")–\(high ?? "")" + (unit.map { " " + $0 } ?? "")
                case .quantity(let value, let unit): entry.referenceRange = value + (unit.map { " " + $0 } ?? "")
                case .text(let text): entry.referenceRange = text
                case .coded(let code): entry.referenceRange = code.displayName ?? code.code
                }
            } else {
                entry.referenceRange = range.child("text")?.text.trimmedSpaces.nonEmpty
            }
        }
        if let material = element.path("consumable", "manufacturedProduct", "manufacturedMaterial")?.child("code") {
            entry.product = Self.code(material)
        }
        return entry
    }

    static func value(_ element: XMLElement) -> CDAValue? {
        let type = element.attribute("type", namespace: CDA.xsi).map { $0.split(separator: ":").last.map(String.init) ?? $0 } ?? ""
        switch type {
        case "PQ", "INT", "REAL", "MO":
            return element.attribute("value").map { .quantity(value: $0, unit: element.attribute("unit") ?? element.attribute("currency")) }
        case "CD", "CE", "CV", "CO", "CS":
            return .coded(Self.code(element))
        case "IVL_PQ", "IVL_INT":
            let low = element.child("low")
            let high = element.child("high")
            return .range(
                low: low?.attribute("value"), high: high?.attribute("value"), unit: low?.attribute("unit") ?? high?.attribute("unit"))
        default:
            if let value = element.attribute("value") { return .text(value) }
            let text = element.text.trimmedSpaces
            return text.isEmpty ? nil : .text(text)
        }
    }
}

extension String {
    var trimmedSpaces: String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }

    var nonEmpty: String? { isEmpty ? nil : self }
}
