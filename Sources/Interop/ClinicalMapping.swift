import Foundation
import HL7v2
import Records

/// What an HL7 v2 message says for the medical record: the visit (PV1), diagnoses (DG1) and
/// results (OBR/OBX). Pure: everything is read and checked before anything is written, so a
/// message the sender must fix changes nothing.
enum ClinicalMapping {
    /// Times without an offset are China time.
    static let chinaOffsetMinutes = 480

    static func time(_ text: String?) -> Date? {
        guard let text, let parsed = HL7DateTime(text), let seconds = parsed.epochSeconds(defaultOffsetMinutes: chinaOffsetMinutes)
        else { return nil }
        return Date(timeIntervalSince1970: seconds)
    }

    static func location(_ segment: String, _ sequence: Int, _ field: Int) -> HL7Location {
        HL7Location(segmentID: segment, segmentSequence: sequence, field: field)
    }

    /// A time field that is there must be an HL7 time.
    static func time(_ segment: HL7Segment, _ field: Int, sequence: Int) throws(HL7ApplicationError) -> Date? {
        guard let text = segment.value(field) else { return nil }
        guard let date = time(text) else {
            throw HL7ApplicationError(
                .dataTypeError, location(segment.id, sequence, field), "\(segment.id)-\(field) is not an HL7 date/time")
        }
        return date
    }

    // MARK: Visits

    /// The visit PV1 describes, for A01 (admit), A04 (register an outpatient or emergency
    /// visit) and A03 (discharge); nil for other triggers or without PV1.
    static func encounter(_ message: HL7Message) throws(HL7ApplicationError) -> EncounterInput? {
        let trigger = message.header.messageType.triggerEvent.uppercased()
        guard ["A01", "A03", "A04"].contains(trigger), let pv1 = message.segment("PV1") else { return nil }
        let admitted = try time(pv1, 44, sequence: 1)
        let discharged = try time(pv1, 45, sequence: 1)
        let event = time(message["EVN-6"] ?? message["EVN-2"]) ?? time(message["MSH-7"])
        var input = EncounterInput(
            key: pv1.value(19), encounterClass: encounterClass(pv1.value(2)), status: trigger == "A03" ? .finished : .inProgress,
            startedAt: admitted ?? (trigger == "A03" ? nil : event), endedAt: trigger == "A03" ? (discharged ?? event) : nil,
            department: pv1.value(10) ?? pv1.value(3))
        if trigger == "A03", input.key == nil {
            // A discharge that names no visit cannot find its admission: record it as a visit of its own.
            input.startedAt = admitted ?? input.endedAt
        }
        return input
    }

    /// PV1-2 (table 0004).
    static func encounterClass(_ code: String?) -> EncounterClass {
        switch code?.uppercased() {
        case "I", "P": .inpatient
        case "O": .outpatient
        case "E": .emergency
        default: .other
        }
    }

    // MARK: Diagnoses

    /// DG1 segments: the code (ICD-10 in China), primary or not (DG1-15), and how certain
    /// (DG1-6: A admitting and W working are suspected, F final is confirmed).
    static func diagnoses(_ message: HL7Message) throws(HL7ApplicationError) -> [RecordItem] {
        var items: [RecordItem] = []
        var sequence = 0
        let visit = message["PV1-19"] ?? ""
        for segment in message.segments where segment.id == "DG1" {
            sequence += 1
            guard let code = segment.value(3) else {
                throw HL7ApplicationError(.requiredFieldMissing, location("DG1", sequence, 3), "DG1-3 (diagnosis code) is required")
            }
            var item = RecordItem(kind: .diagnosis)
            item.code = code
            item.display = segment.value(3, component: 2) ?? segment.value(4)
            item.codeSystem = segment.value(3, component: 3) ?? segment.value(2)
            item.effectiveAt = try time(segment, 5, sequence: sequence) ?? time(message["MSH-7"])
            item.certainty =
                switch segment.value(6)?.uppercased() {
                case "A", "W": .suspected
                default: .confirmed
                }
            item.isPrimary = segment.value(15) == "1"
            item.status = "active"
            item.itemKey = "DG1|\(visit)|\(code)"
            items.append(item)
        }
        return items
    }

    // MARK: Results

    /// OBX-11 (table 0085) as a result status.
    static func resultStatus(_ code: String?) -> String {
        switch code?.uppercased() {
        case "P", "R", "S", "I": "preliminary"
        case "C": "corrected"
        case "X", "D", "W": "cancelled"
        default: "final"
        }
    }

    /// Every OBX under its OBR: one item per observation, keyed by the order (filler number,
    /// else placer number), the observation code and sub-id, so a corrected result finds the
    /// one it corrects.
    static func results(_ message: HL7Message) throws(HL7ApplicationError) -> [RecordItem] {
        var items: [RecordItem] = []
        var order = ""
        var orderTime: Date?
        var obr = 0
        var obx = 0
        let sent = time(message["MSH-7"])
        for segment in message.segments {
            switch segment.id {
            case "OBR":
                obr += 1
                order = segment.value(3) ?? segment.value(2) ?? "OBR\(obr)"
                orderTime = try time(segment, 7, sequence: obr)
            case "OBX":
                obx += 1
                guard let code = segment.value(3) else {
                    throw HL7ApplicationError(
                        .requiredFieldMissing, location("OBX", obx, 3), "OBX-3 (observation identifier) is required")
                }
                var item = RecordItem(kind: .observation)
                item.code = code
                item.display = segment.value(3, component: 2)
                item.codeSystem = segment.value(3, component: 3)
                item.itemKey = "\(order)|\(code)|\(segment.value(4) ?? "")"
                let type = segment.value(2)?.uppercased() ?? "ST"
                let value = segment.value(5)
                switch type {
                case "NM":
                    if let value {
                        guard let number = Decimal(string: value.trimmingCharacters(in: .whitespaces)) else {
                            throw HL7ApplicationError(.dataTypeError, location("OBX", obx, 5), "OBX-5 is not a number although OBX-2 is NM")
                        }
                        item.valueNumber = number
                        item.valueText = value.trimmingCharacters(in: .whitespaces)
                    }
                case "CE", "CWE", "CNE", "CF":
                    item.valueText = segment.value(5, component: 2) ?? value
                case "ED", "RP":
                    // An embedded document (often a base64 PDF) or a reference to one: the
                    // timeline shows that it is there; the bytes stay with the stored message.
                    let present = segment.field(5).map { !$0.er7.isEmpty } ?? false
                    item.valueText = present ? "[\(type == "ED" ? "embedded data" : "reference"), in message]" : nil
                case "SN":
                    // Structured numeric: comparator, number, separator, number (">^10", "^1^:^128").
                    item.valueText = (1...4).compactMap { segment.value(5, component: $0) }.joined()
                default:
                    let repetitions = (1...20).compactMap { segment.value(5, repetition: $0) }
                    item.valueText = repetitions.isEmpty ? nil : repetitions.joined(separator: "\n")
                }
                item.unit = segment.value(6) ?? segment.value(6, component: 2)
                item.referenceRange = segment.value(7)
                item.abnormalFlag = segment.value(8)
                item.status = resultStatus(segment.value(11))
                item.effectiveAt = try time(segment, 14, sequence: obx) ?? orderTime ?? sent
                items.append(item)
            default:
                continue
            }
        }
        return items
    }

    // MARK: Medication orders

    /// ORC-1 (table 0119) as the order's state: new and changed orders are active, cancelled
    /// or discontinued ones are not.
    static func orderStatus(_ control: String?) -> String {
        switch control?.uppercased() {
        case "CA", "CR", "OC", "UC": "cancelled"
        case "DC", "OD", "DR": "stopped"
        default: "active"
        }
    }

    /// RDE (RXE: the pharmacy's encoded give code, amount and units) and OMP (RXO: the
    /// requested give code), each order under its ORC, keyed by the placer order number so a
    /// change or cancellation of the order replaces it.
    static func medications(_ message: HL7Message) throws(HL7ApplicationError) -> [RecordItem] {
        var items: [RecordItem] = []
        var orc: HL7Segment?
        var orcSequence = 0
        var sequence: [String: Int] = [:]
        let sent = time(message["MSH-7"])
        for segment in message.segments {
            if segment.id == "ORC" {
                orc = segment
                orcSequence += 1
                continue
            }
            guard segment.id == "RXE" || segment.id == "RXO" else { continue }
            sequence[segment.id, default: 0] += 1
            let codeField = segment.id == "RXE" ? 2 : 1
            guard let code = segment.value(codeField) else {
                throw HL7ApplicationError(
                    .requiredFieldMissing, location(segment.id, sequence[segment.id]!, codeField),
                    "\(segment.id)-\(codeField) (the medication's code) is required")
            }
            var item = RecordItem(kind: .medication)
            item.code = code
            item.display = segment.value(codeField, component: 2)
            item.codeSystem = segment.value(codeField, component: 3)
            let amountField = segment.id == "RXE" ? 3 : 2
            let unitField = segment.id == "RXE" ? 5 : 4
            item.valueText = segment.value(amountField)
            item.unit = segment.value(unitField) ?? segment.value(unitField, component: 2)
            item.status = orderStatus(orc?.value(1))
            let order = orc?.value(2) ?? orc?.value(3) ?? "\(segment.id)\(sequence[segment.id]!)"
            item.itemKey = "\(order)|\(code)"
            var ordered: Date?
            if let orc { ordered = try time(orc, 9, sequence: orcSequence) }
            item.effectiveAt = ordered ?? sent
            if let route = message["RXR-1"] { item.detail["route"] = route }
            items.append(item)
        }
        return items
    }
}
