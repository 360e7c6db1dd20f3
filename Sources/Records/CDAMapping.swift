import ClinicalXML
import Foundation
import HL7v2
import Registry

/// What a CDA document means for the record: who it is about and which items it carries.
enum CDAMapping {
    /// Identity number (居民身份证) OID of China's shared documents.
    static let identityNumberRoot = "2.16.156.10011.1.3"
    /// Health card number (居民健康卡) OID.
    static let healthCardRoot = "2.16.156.10011.1.19"
    /// ICD-10 code systems: WHO, US clinical modification, China's national clinical version.
    static let icd10Systems: Set<String> = ["2.16.840.1.113883.6.3", "2.16.840.1.113883.6.90", "2.16.156.10011.2.3.3.11"]
    /// LOINC section codes: problem lists and diagnoses, allergies.
    static let problemSections: Set<String> = ["11450-4", "29548-5", "11535-2", "29545-1", "46241-6", "10164-2"]
    static let allergySections: Set<String> = ["48765-2"]
    /// China time when a document's time carries no offset.
    static let chinaOffsetMinutes = 480

    static func time(_ text: String?) -> Date? {
        guard let text, let parsed = HL7DateTime(text) ?? HL7DateTime(fromISO: text),
            let seconds = parsed.epochSeconds(defaultOffsetMinutes: chinaOffsetMinutes)
        else { return nil }
        return Date(timeIntervalSince1970: seconds)
    }

    /// The registration a document's patient amounts to, for the matcher. The facility's own
    /// patient id is the first patient id that is neither an identity number nor a health card.
    static func draft(_ header: CDAHeader, facility: String) throws(RecordsError) -> ResidentDraft {
        let patient = header.patient
        guard let local = patient.ids.first(where: { $0.root != identityNumberRoot && $0.root != healthCardRoot && $0.extension != nil })
        else {
            throw .invalid(
                field: "recordTarget/patientRole/id",
                reason: "a facility patient id is required: an id whose root is not the identity number's \(identityNumberRoot)")
        }
        guard let name = patient.name, !name.isEmpty else {
            throw .invalid(field: "recordTarget/patientRole/patient/name", reason: "the patient's name is required")
        }
        let idNumber = patient.ids.first { $0.root == identityNumberRoot }?.extension
        let sex: String? =
            switch patient.gender?.code?.uppercased() {
            case "1", "M": "male"
            case "2", "F": "female"
            case "0", "UN", "UNK": "unknown"
            case "9": "unspecified"
            default: nil
            }
        let birth = patient.birthTime.flatMap { HL7DateTime($0) ?? HL7DateTime(fromISO: $0) }.flatMap { time -> String? in
            guard let month = time.month, let day = time.day else { return nil }
            return String(format: "%04d-%02d-%02d", time.year, month, day)
        }
        let phone = patient.telecom.first { $0.hasPrefix("tel:") }.map { String($0.dropFirst(4)) }
        return ResidentDraft(
            facility: facility, localId: String(local.extension!), name: name, sex: sex, birthDate: birth, idNumber: idNumber,
            phone: phone.flatMap { try? ResidentValidation.phone($0, field: "telecom") })
    }

    /// The document's clinical statements as record items: coded diagnoses, results and vital
    /// signs, medications, allergies, procedures. Containers (acts, organizers) and statements
    /// with nothing to show are left out; each item keeps its line in the document.
    static func entries(_ document: CDADocument) -> [RecordItem] {
        var result: [RecordItem] = []
        for statement in document.entries where !(statement.moodCode.map { $0 != "EVN" } ?? false) {
            let section = statement.sectionCode?.code ?? ""
            // A statement without its own time happened when the document says it did.
            let effective = time(statement.effectiveTime ?? statement.effectiveStart) ?? time(document.header.effectiveTime)
            var entry = RecordItem(kind: .observation)
            // A statement's own id goes in the detail, not the item key: CDA senders reuse entry
            // ids across documents, and a document's items are retired with the document anyway.
            if let id = statement.ids.first?.key, !id.isEmpty { entry.detail["id"] = id }
            entry.effectiveAt = effective
            entry.status = statement.status
            entry.detail["line"] = String(statement.line)
            if let sectionCode = statement.sectionCode?.code { entry.detail["section"] = sectionCode }
            switch statement.kind {
            case "substanceAdministration":
                guard let product = statement.product else { continue }
                entry.kind = .medication
                entry.set(product)
            case "procedure":
                guard let code = statement.code, code.code != nil else { continue }
                entry.kind = .procedure
                entry.set(code)
            case "observation":
                if case .coded(let value) = statement.value, let system = value.codeSystem,
                    icd10Systems.contains(system) || problemSections.contains(section)
                        || (value.codeSystemName?.uppercased().contains("ICD") ?? false)
                {
                    entry.kind = allergySections.contains(section) ? .allergy : .diagnosis
                    entry.set(value)
                    entry.certainty = statement.negated ? .refuted : .confirmed
                    // A problem's effectiveTime/low is when it began: surveillance counts by onset.
                    if entry.kind == .diagnosis, let onset = time(statement.effectiveStart) {
                        entry.detail["onset"] = onset.formatted(.iso8601)
                    }
                } else if allergySections.contains(section) {
                    guard case .coded(let value) = statement.value else { continue }
                    entry.kind = .allergy
                    entry.set(value)
                } else {
                    guard let code = statement.code, code.code != nil, let value = statement.value else { continue }
                    entry.set(code)
                    switch value {
                    case .quantity(let number, let unit):
                        entry.valueText = number
                        entry.valueNumber = Decimal(string: number)
                        entry.unit = unit
                    case .coded(let coded): entry.valueText = coded.displayName ?? coded.code
                    case .text(let text): entry.valueText = text
                    case .range(let low, let high, let unit):
                        entry.valueText = "\(low ?? "")–\(high ?? "")"
                        entry.unit = unit
                    }
                    entry.referenceRange = statement.referenceRange
                    entry.abnormalFlag = statement.interpretation
                }
            default:
                continue
            }
            result.append(entry)
        }
        return result
    }
}

extension RecordItem {
    mutating func set(_ code: CDACode) {
        self.code = code.code
        self.codeSystem = code.codeSystem
        self.display = code.displayName
    }
}

extension HL7DateTime {
    /// ISO 8601 as some documents write their times (`2000-04-07`, `2026-12-01T09:30:00+08:00`),
    /// read as the HL7 TS it stands for.
    init?(fromISO text: String) {
        let characters = Array(text)
        guard characters.count >= 10, characters[4] == "-", characters[7] == "-" else { return nil }
        var ts = String(characters[0..<4]) + String(characters[5..<7]) + String(characters[8..<10])
        if characters.count > 10 {
            guard characters[10] == "T" else { return nil }
            var rest = String(characters[11...])
            if rest.hasSuffix("Z") { rest = String(rest.dropLast()) + "+0000" }
            ts += rest.replacingOccurrences(of: ":", with: "")
        }
        self.init(ts)
    }
}
