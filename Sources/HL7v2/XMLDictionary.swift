/// The compact v2.5 data dictionary the XML encoding needs to name elements: each segment's field
/// data types, each composite type's component types, and a few message structures' groups.
/// Definitions are v2.5 (compatible with 2.3-2.4 for naming purposes).
enum HL7Dictionary {
    static let segmentSource: [String: String] = [
        "MSH": "ST ST HD HD HD HD TS ST MSG ST PT VID NM ST ID ID ID ID CE ID EI",
        "EVN": "ID TS TS IS XCN TS HD",
        "PID":
            "SI CX CX CX XPN XPN TS IS XPN CE XAD IS XTN XTN CE CE CE CX ST DLN CX CE ST ID NM CE CE CE TS ID ID IS TS HD CE CE ST CE CE",
        "PD1": "IS IS XON XCN IS IS IS IS ID CX CE ID DT XON CE IS DT DT IS IS IS",
        "NK1": "SI XPN CE XAD XTN XTN CE DT DT ST JCC CX XON CE IS TS IS IS CE CE IS CE ID IS CE XPN CE CE CE XPN XTN XAD CX"
            + " IS CE IS ST CE CE",
        "PV1":
            "SI IS PL IS CX PL XCN XCN XCN IS PL IS IS IS IS IS XCN IS CX FC IS IS IS IS DT NM NM IS IS DT IS NM NM IS DT IS DLD CE IS IS"
            + " IS PL PL TS TS NM NM NM NM CX IS XCN",
        "PV2": "PL CE CE CE ST ST IS TS TS NM NM ST XCN DT ID IS DT IS ID NM IS ID XON IS IS DT IS DT DT CE IS ID TS ID ID ID ID CE CE CE"
            + " CE CE IS IS CE DT TS",
        "MRG": "CX CX CX CX CX CX XPN",
        "OBR": "SI EI EI CE ID TS TS TS CQ XCN ID CE ST TS SPS XCN XTN ST ST ST ST TS MOC ID ID PRL TQ XCN EIP ID CE NDL NDL NDL NDL TS NM"
            + " CE CE CE ID ID CE CE CE CE CE CWE IS",
        "OBX": "SI ID CE ST * CE ST IS NM ID ID TS ST TS CE XCN CE EI TS",
        "ORC": "ID EI EI EI ID ID TQ EIP TS XCN XCN XCN PL XTN TS CE CE CE XCN CE XON XAD XTN XAD CWE CWE TS CWE CWE CNE",
        "NTE": "SI ID FT CE",
        "AL1": "SI CE CE CE ST DT",
        "DG1": "SI ID CE ST TS IS CE CE ID IS CE NM CP ST ID XCN IS ID TS EI ID",
        "MSA": "ID ST ST NM ID CE",
        "ERR": "ELD ERL CWE ID CWE ST TX TX IS IS CWE XTN",
        "QRD": "TS ID ID ST ID TS CQ XCN CE CE CE ID",
        "IN1": "SI CE CX XON XAD XPN XTN ST XON CX XON DT DT AUI IS XPN CE TS XAD IS IS ST ID DT ID DT IS ST TS XCN IS IS NM NM IS ST CP"
            + " CP NM CP CP CE IS XAD ST IS IS IS CX IS DT ST IS",
    ]

    static let compositeSource: [String: String] = [
        "HD": "IS ST ID", "CX": "ST ST ID HD ID HD DT DT CWE CWE", "XPN": "FN ST ST ST ST IS ID ID CE DR ID TS TS ST",
        "FN": "ST ST ST ST ST", "XAD": "SAD ST ST ST ST ID ID ST IS IS ID DR TS TS", "SAD": "ST ST ST",
        "XTN": "ST ID ID ST NM NM NM NM ST", "CE": "ST ST ID ST ST ID", "CWE": "ST ST ID ST ST ID ST ST ST",
        "CNE": "ST ST ID ST ST ID ST ST ST", "XCN": "ST FN ST ST ST ST IS IS HD ID ST ID ID HD ID CE DR ID TS TS ST CWE CWE",
        "XON": "ST IS NM NM ID HD ID HD ID ST", "PL": "IS IS IS HD IS IS IS HD ST EI", "EI": "ST IS ST ID", "EIP": "EI EI",
        "TS": "DTM ID", "MSG": "ID ID ID", "PT": "ID ID", "VID": "ID CE CE", "CQ": "NM CE", "DLD": "IS TS", "FC": "IS TS",
        "DLN": "ST IS DT", "JCC": "IS IS TX", "CP": "MO ID NM NM CE ID", "MO": "NM ID", "ELD": "ST NM NM CE",
        "ERL": "ST NM NM NM NM NM", "SPS": "CWE CWE CWE CWE CWE CWE CWE", "MOC": "MO CE", "PRL": "CE CE ST",
        "NDL": "CNN TS TS PL PL PL PL PL PL PL PL PL", "CNN": "ST ST ST ST ST ST IS IS IS ID",
        "TQ": "CQ RI ST TS TS ST ST TX ID OSD CE NM", "RI": "IS ST", "OSD": "ID ST IS ST IS ST NM ST ID ID ID", "DR": "TS TS",
        "AUI": "ST DT ST", "ED": "HD ID ID ID TX", "RP": "ST HD ID ID", "SN": "ST NM ST NM",
    ]

    static let segments: [String: [String]] = segmentSource.mapValues { $0.split(separator: " ").map(String.init) }
    static let composites: [String: [String]] = compositeSource.mapValues { $0.split(separator: " ").map(String.init) }

    /// The data type of a field, nil when unknown (or "varies", as OBX-5 is).
    static func fieldType(segment: String, field: Int) -> String? {
        guard let fields = segments[segment], field >= 1, field <= fields.count, fields[field - 1] != "*" else { return nil }
        return fields[field - 1]
    }

    static func componentType(of composite: String, component: Int) -> String? {
        guard let components = composites[composite], component >= 1, component <= components.count else { return nil }
        return components[component - 1]
    }

    static func isComposite(_ type: String) -> Bool { composites[type] != nil }

    // MARK: Message structures

    /// Group definitions: `*` repeats, `?` optional, `NAME{…}` a group.
    static let structureSource: [String: String] = [
        "ADT_A01": "MSH SFT*? EVN PID PD1? ROL*? NK1*? PV1 PV2? ROL*? DB1*? OBX*? AL1*? DG1*? DRG? PROCEDURE*?{PR1 ROL*?} GT1*?"
            + " INSURANCE*?{IN1 IN2? IN3*? ROL*?} ACC? UB1? UB2? PDA?",
        "ORU_R01": "MSH SFT*? PATIENT_RESULT*{PATIENT?{PID PD1? NTE*? NK1*? VISIT?{PV1 PV2?}} ORDER_OBSERVATION*{ORC? OBR NTE*?"
            + " TIMING_QTY*?{TQ1 TQ2*?} CTD? OBSERVATION*?{OBX NTE*?} FT1*? CTI*? SPECIMEN*?{SPM OBX*?}}} DSC?",
        "ACK": "MSH SFT*? MSA ERR*?",
    ]

    /// Trigger events whose v2.5 structure is another's.
    static let structureAliases: [String: String] = [
        "ADT_A04": "ADT_A01", "ADT_A08": "ADT_A01", "ADT_A13": "ADT_A01", "ORU_R01": "ORU_R01",
    ]

    final class Group: Sendable {
        let name: String
        let elements: [Element]
        init(name: String, elements: [Element]) {
            self.name = name
            self.elements = elements
        }
    }

    enum Element: Sendable {
        case segment(String, repeats: Bool, optional: Bool)
        case group(Group, repeats: Bool, optional: Bool)

        var repeats: Bool {
            switch self {
            case .segment(_, let repeats, _), .group(_, let repeats, _): repeats
            }
        }
        var optional: Bool {
            switch self {
            case .segment(_, _, let optional), .group(_, _, let optional): optional
            }
        }
    }

    static let structures: [String: Group] = structureSource.reduce(into: [:]) { result, entry in
        result[entry.key] = parseStructure(name: entry.key, entry.value)
    }

    /// Parses a structure definition with an explicit stack (the definitions are our own).
    static func parseStructure(name: String, _ source: String) -> Group {
        var stack: [(name: String, elements: [Element], repeats: Bool, optional: Bool)] = [(name, [], false, false)]
        var token = ""
        func flushToken(opensGroup: Bool) {
            guard !token.isEmpty else { return }
            let repeats = token.contains("*")
            let optional = token.contains("?")
            let bare = token.filter { $0 != "*" && $0 != "?" }
            token = ""
            if opensGroup {
                stack.append((name + "." + bare, [], repeats, optional))
            } else {
                stack[stack.count - 1].elements.append(.segment(bare, repeats: repeats, optional: optional))
            }
        }
        for character in source {
            switch character {
            case " ": flushToken(opensGroup: false)
            case "{": flushToken(opensGroup: true)
            case "}":
                flushToken(opensGroup: false)
                let done = stack.removeLast()
                stack[stack.count - 1].elements.append(
                    .group(Group(name: done.name, elements: done.elements), repeats: done.repeats, optional: done.optional))
            default: token.append(character)
            }
        }
        flushToken(opensGroup: false)
        return Group(name: name, elements: stack[0].elements)
    }

    /// Whether `segment` can begin `group` (its first elements up to the first required one).
    static func canBegin(_ group: Group, with segment: String) -> Bool {
        for element in group.elements {
            switch element {
            case .segment(let id, _, _): if id == segment { return true }
            case .group(let child, _, _): if canBegin(child, with: segment) { return true }
            }
            if !element.optional { return false }
        }
        return false
    }
}
