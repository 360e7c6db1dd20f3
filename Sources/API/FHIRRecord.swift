import Access
import ChronicCare
import Foundation
import HTTPTypes
import Hummingbird
import Records
import Storage

/// FHIR R4 views of the shared record: read and search for `Encounter`, `Condition`,
/// `Observation`, `MedicationRequest`, `AllergyIntolerance`, `Procedure` and `DocumentReference`
/// (the original CDA as its attachment), and `Patient/{id}/$everything`. Same access and audit
/// as the JSON API; errors are OperationOutcomes.
public struct FHIRRecordController: Sendable {
    let reader: RecordReader
    let documents: ClinicalDocuments
    /// Home-device readings, shown as vital-signs Observations beside the record's results.
    let readings: ReadingService?

    public init(reader: RecordReader, documents: ClinicalDocuments, readings: ReadingService? = nil) {
        self.reader = reader
        self.documents = documents
        self.readings = readings
    }

    /// FHIR type → the record's item type.
    static let types: [String: String] = [
        "Encounter": "encounter", "Condition": "diagnosis", "Observation": "observation", "MedicationRequest": "medication",
        "AllergyIntolerance": "allergy", "Procedure": "procedure", "DocumentReference": "document",
    ]

    public func addRoutes(to router: Router<QianyunRequestContext>, authentication: AuthenticationMiddleware) {
        let fhir = router.group("fhir/r4").add(middleware: OperationOutcomeMiddleware()).add(middleware: authentication)
        for type in Self.types.keys.sorted() {
            fhir.get(RouterPath(stringLiteral: type)) { request, context in try await search(type, request, context) }
            fhir.get(RouterPath(stringLiteral: type + "/{id}")) { request, context in try await read(type, request, context) }
        }
        fhir.get("Patient/{id}/$everything", use: everything)
    }

    func read(_ type: String, _ request: Request, _ context: QianyunRequestContext) async throws -> FHIRBody<JSONValue> {
        let principal = try context.requirePrincipal()
        if type == "Observation", let readings, let id = context.parameters.get("id"),
            let reading = try? await readings.reading(id: id, by: principal, requestID: context.requestID)
        {
            return FHIRBody(Self.observation(reading))
        }
        let item = try await reader.item(
            id: try context.parameters.require("id"), by: principal, breakGlass: request.headers[.breakGlassReason],
            requestID: context.requestID)
        guard item.type == Self.types[type] else { throw RecordsError.notFound("\(type)/\(item.id)") }
        var resource = Self.resource(item)
        if type == "DocumentReference", case .object(var fields) = resource {
            // A read carries the document itself; a search only its address.
            let content = try await documents.content(
                id: item.id, by: principal, breakGlass: request.headers[.breakGlassReason], requestID: context.requestID)
            fields["content"] = Self.attachment(item, data: Data(content.bytes).base64EncodedString(), size: content.bytes.count)
            resource = .object(fields)
        }
        return FHIRBody(resource)
    }

    func search(_ type: String, _ request: Request, _ context: QianyunRequestContext) async throws -> FHIRBody<JSONValue> {
        let parameters = request.uri.queryParameters
        let known: Set<String> =
            type == "Observation"
            ? ["patient", "subject", "code", "date", "_count", "_format", "category"]
            : ["patient", "subject", "code", "date", "_count", "_format"]
        if let unknown = parameters.first(where: { !known.contains(String($0.key)) }) {
            throw RecordsError.invalid(field: String(unknown.key), reason: "is not a supported search parameter of \(type)")
        }
        guard let patient = (parameters["patient"] ?? parameters["subject"]).map({ String($0) }) else {
            throw RecordsError.invalid(field: "patient", reason: "is required: search one resident's record (patient=<id>)")
        }
        let resident = patient.hasPrefix("Patient/") ? String(patient.dropFirst("Patient/".count)) : patient
        var limit = 50
        if let count = parameters["_count"] {
            guard let value = Int(String(count)), (1...PageRequest.maximumLimit).contains(value) else {
                throw RecordsError.invalid(field: "_count", reason: "must be from 1 to \(PageRequest.maximumLimit)")
            }
            limit = value
        }
        var filter = TimelineFilter(types: [Self.types[type]!])
        if let code = parameters["code"].map(String.init) {
            // token: [system|]code
            filter.code = code.split(separator: "|", omittingEmptySubsequences: false).last.map(String.init)
        }
        for date in parameters[values: "date"] {
            let text = String(date)
            let prefix = String(text.prefix(2))
            let value = ["ge", "gt", "le", "lt", "eq"].contains(prefix) ? String(text.dropFirst(2)) : text
            guard let time = ISO8601DateFormatter().date(from: value) ?? ISO8601DateFormatter().date(from: value + "T00:00:00+08:00") else {
                throw RecordsError.invalid(field: "date", reason: "must be a date or time, optionally prefixed ge, gt, le or lt")
            }
            switch prefix {
            case "lt", "le": filter.to = time
            default: filter.from = time
            }
        }
        let category = parameters["category"].map { String($0).split(separator: "|").last.map(String.init) ?? "" }
        if let category, !["vital-signs", "laboratory"].contains(category) {
            throw RecordsError.invalid(
                field: "category", reason: "must be vital-signs (home-device readings) or laboratory (the record's results)")
        }
        var entries: [JSONValue] = []
        if category != "vital-signs" {
            let timeline = try await reader.timeline(
                resident: resident, filter: filter, page: PageRequest(limit: limit), by: try context.requirePrincipal(),
                breakGlass: request.headers[.breakGlassReason], requestID: context.requestID)
            if case .object(let bundle) = Self.bundle(type: "searchset", items: timeline.items, total: nil),
                case .array(let found) = bundle["entry"]
            {
                entries = found
            }
        }
        if type == "Observation", category != "laboratory", let readings, filter.code == nil {
            let found = try await readings.list(
                resident: resident, type: nil, from: filter.from, to: filter.to, page: PageRequest(limit: limit),
                by: try context.requirePrincipal(),
                requestID: context.requestID)
            entries += found.readings.map { reading in
                .object([
                    "fullUrl": .string("urn:uuid:\(reading.id)"), "resource": Self.observation(reading),
                    "search": .object(["mode": .string("match")]),
                ])
            }
        }
        return FHIRBody(.object(["resourceType": .string("Bundle"), "type": .string("searchset"), "entry": .array(entries)]))
    }

    @Sendable func everything(_ request: Request, context: QianyunRequestContext) async throws -> FHIRBody<JSONValue> {
        let resident = try context.parameters.require("id")
        let record = try await reader.everything(
            resident: resident, by: try context.requirePrincipal(), breakGlass: request.headers[.breakGlassReason],
            requestID: context.requestID)
        return FHIRBody(Self.bundle(type: "searchset", items: record.items, total: record.items.count))
    }

    static func bundle(type: String, items: [TimelineItem], total: Int?) -> JSONValue {
        var fields: [String: JSONValue] = [
            "resourceType": .string("Bundle"), "type": .string(type),
            "entry": .array(
                items.map { item in
                    .object([
                        "fullUrl": .string("urn:uuid:\(item.id)"), "resource": resource(item),
                        "search": .object(["mode": .string("match")]),
                    ])
                }),
        ]
        if let total { fields["total"] = .int(total) }
        return .object(fields)
    }

    // MARK: Mapping

    /// A home-device reading as a vital-signs Observation (LOINC-coded, UCUM units).
    static func observation(_ reading: StoredReading) -> JSONValue {
        func coding(_ code: String, _ display: String) -> JSONValue {
            .object([
                "coding": .array([.object(["system": .string("http://loinc.org"), "code": .string(code), "display": .string(display)])])
            ])
        }
        func quantity(_ value: Double, _ unit: String) -> JSONValue {
            .object([
                "value": .decimal(Decimal(Int((value * 100).rounded())) / 100), "unit": .string(unit),
                "system": .string("http://unitsofmeasure.org"), "code": .string(unit),
            ])
        }
        var fields: [String: JSONValue] = [
            "resourceType": .string("Observation"), "id": .string(reading.id), "status": .string("final"),
            "meta": .object(["tag": .array([.object(["system": .string("urn:qianyun:source"), "code": .string("home-device")])])]),
            "category": .array([
                .object([
                    "coding": .array([
                        .object([
                            "system": .string("http://terminology.hl7.org/CodeSystem/observation-category"), "code": .string("vital-signs"),
                        ])
                    ])
                ])
            ]),
            "subject": .object(["reference": .string("Patient/\(reading.resident)")]),
            "effectiveDateTime": .string(reading.measuredAt),
            "device": .object(["display": .string(reading.deviceId)]),
        ]
        switch reading.type {
        case "blood-pressure":
            fields["code"] = coding("85354-9", "Blood pressure panel")
            var components: [JSONValue] = []
            if let systolic = reading.systolic {
                components.append(
                    .object(["code": coding("8480-6", "Systolic blood pressure"), "valueQuantity": quantity(systolic, "mm[Hg]")]))
            }
            if let diastolic = reading.diastolic {
                components.append(
                    .object(["code": coding("8462-4", "Diastolic blood pressure"), "valueQuantity": quantity(diastolic, "mm[Hg]")]))
            }
            if let heartRate = reading.heartRate {
                components.append(.object(["code": coding("8867-4", "Heart rate"), "valueQuantity": quantity(heartRate, "/min")]))
            }
            fields["component"] = .array(components)
        default:
            let (code, display, unit): (String, String, String) =
                switch reading.type {
                case "heart-rate": ("8867-4", "Heart rate", "/min")
                case "glucose-fasting": ("14771-0", "Fasting glucose [Moles/volume] in Serum or Plasma", "mmol/L")
                case "glucose-random": ("15074-8", "Glucose [Moles/volume] in Blood", "mmol/L")
                case "temperature": ("8310-5", "Body temperature", "Cel")
                case "weight": ("29463-7", "Body weight", "kg")
                default: ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%")
                }
            fields["code"] = coding(code, display)
            if let value = reading.value { fields["valueQuantity"] = quantity(value, unit) }
        }
        return .object(fields)
    }

    static func resource(_ item: TimelineItem) -> JSONValue {
        var fields: [String: JSONValue] = ["id": .string(item.id)]
        let subject = JSONValue.object(["reference": .string("Patient/\(item.residentId ?? "")")])
        let time = item.time.map { JSONValue.string(instant($0)) }
        let encounter = item.encounterId.map { JSONValue.object(["reference": .string("Encounter/\($0)")]) }
        func set(_ key: String, _ value: JSONValue?) { if let value { fields[key] = value } }
        switch item.type {
        case "encounter":
            fields["resourceType"] = .string("Encounter")
            fields["status"] = .string(item.status ?? "unknown")
            fields["class"] = encounterClass(item.value)
            fields["subject"] = subject
            var period: [String: JSONValue] = [:]
            if let time { period["start"] = time }
            if let ended = item.ended { period["end"] = .string(instant(ended)) }
            if !period.isEmpty { fields["period"] = .object(period) }
            set("serviceType", item.display.map { .object(["text": .string($0)]) })
            fields["serviceProvider"] = facility(item.facility)
        case "diagnosis":
            fields["resourceType"] = .string("Condition")
            fields["clinicalStatus"] = concept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active")
            let verification =
                switch item.certainty {
                case "suspected": "provisional"
                case "refuted": "refuted"
                default: "confirmed"
                }
            fields["verificationStatus"] = concept("http://terminology.hl7.org/CodeSystem/condition-ver-status", verification)
            fields["category"] = .array([
                concept(
                    "http://terminology.hl7.org/CodeSystem/condition-category",
                    item.primary == true ? "encounter-diagnosis" : "problem-list-item")
            ])
            fields["code"] = code(item)
            fields["subject"] = subject
            set("encounter", encounter)
            set("recordedDate", time)
        case "observation":
            fields["resourceType"] = .string("Observation")
            let statuses: Set<String> = ["registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error"]
            fields["status"] = .string(item.status.flatMap { statuses.contains($0) ? $0 : nil } ?? "final")
            fields["code"] = code(item)
            fields["subject"] = subject
            set("encounter", encounter)
            set("effectiveDateTime", time)
            if let value = item.value {
                if let number = Decimal(string: value), value.allSatisfy({ $0.isNumber || $0 == "." || $0 == "-" }) {
                    var quantity: [String: JSONValue] = ["value": .decimal(number)]
                    if let unit = item.unit {
                        quantity["unit"] = .string(unit)
                        quantity["system"] = .string("http://unitsofmeasure.org")
                        quantity["code"] = .string(unit)
                    }
                    fields["valueQuantity"] = .object(quantity)
                } else {
                    fields["valueString"] = .string(value)
                }
            }
            set(
                "interpretation",
                item.abnormalFlag.map { .array([concept("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", $0)]) })
            set("referenceRange", item.referenceRange.map { .array([.object(["text": .string($0)])]) })
        case "medication":
            fields["resourceType"] = .string("MedicationRequest")
            fields["status"] = .string(item.status == "cancelled" ? "cancelled" : item.status == "completed" ? "completed" : "active")
            fields["intent"] = .string("order")
            fields["medicationCodeableConcept"] = code(item)
            fields["subject"] = subject
            set("encounter", encounter)
            set("authoredOn", time)
        case "allergy":
            fields["resourceType"] = .string("AllergyIntolerance")
            fields["verificationStatus"] = concept(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                item.certainty == "refuted" ? "refuted" : "confirmed")
            fields["code"] = code(item)
            fields["patient"] = subject
            set("encounter", encounter)
            set("recordedDate", time)
        case "procedure":
            fields["resourceType"] = .string("Procedure")
            fields["status"] = .string("completed")
            fields["code"] = code(item)
            fields["subject"] = subject
            set("encounter", encounter)
            set("performedDateTime", time)
        default:
            fields["resourceType"] = .string("DocumentReference")
            fields["status"] = .string(item.status == "superseded" ? "superseded" : "current")
            fields["type"] = code(item)
            fields["subject"] = subject
            set("date", time)
            set("description", item.display.map { .string($0) })
            fields["custodian"] = facility(item.facility)
            fields["content"] = attachment(item, data: nil, size: nil)
        }
        fields["meta"] = .object(["source": .string("urn:qianyun:facility:\(item.facility)")])
        return .object(fields)
    }

    static func attachment(_ item: TimelineItem, data: String?, size: Int?) -> JSONValue {
        var attachment: [String: JSONValue] = [
            "contentType": .string("application/hl7-cda+xml"), "url": .string("/api/v1/documents/\(item.id)/content"),
        ]
        if let data { attachment["data"] = .string(data) }
        if let size { attachment["size"] = .int(size) }
        if let title = item.display { attachment["title"] = .string(title) }
        return .array([
            .object([
                "attachment": .object(attachment),
                "format": .object([
                    "system": .string("http://ihe.net/fhir/ValueSet/IHE.FormatCode.codesystem"),
                    "code": .string("urn:hl7-org:sdwg:ccda-structuredBody:2.1"),
                ]),
            ])
        ])
    }

    static func facility(_ code: String) -> JSONValue {
        .object(["identifier": .object(["system": .string("urn:qianyun:facility"), "value": .string(code)]), "display": .string(code)])
    }

    static func concept(_ system: String, _ code: String) -> JSONValue {
        .object(["coding": .array([.object(["system": .string(system), "code": .string(code)])])])
    }

    static func code(_ item: TimelineItem) -> JSONValue {
        var coding: [String: JSONValue] = [:]
        if let code = item.code { coding["code"] = .string(code) }
        if let system = codeSystem(item.codeSystem) { coding["system"] = .string(system) }
        if let display = item.display { coding["display"] = .string(display) }
        var concept: [String: JSONValue] = [:]
        if !coding.isEmpty { concept["coding"] = .array([.object(coding)]) }
        if let display = item.display { concept["text"] = .string(display) }
        return .object(concept.isEmpty ? ["text": .string("unknown")] : concept)
    }

    /// HL7 v2 coding-system names and OIDs as FHIR system URIs.
    static func codeSystem(_ system: String?) -> String? {
        guard let system, !system.isEmpty else { return nil }
        switch system.uppercased() {
        case "LN", "LOINC", "2.16.840.1.113883.6.1": return "http://loinc.org"
        case "I10", "ICD10", "ICD-10", "2.16.840.1.113883.6.3": return "http://hl7.org/fhir/sid/icd-10"
        case "I10C", "ICD10CM", "2.16.840.1.113883.6.90": return "http://hl7.org/fhir/sid/icd-10-cm"
        case "SCT", "SNOMEDCT", "2.16.840.1.113883.6.96": return "http://snomed.info/sct"
        case "RXNORM", "2.16.840.1.113883.6.88": return "http://www.nlm.nih.gov/research/umls/rxnorm"
        default:
            if system.allSatisfy({ $0.isNumber || $0 == "." }) { return "urn:oid:" + system }
            return "urn:qianyun:code-system:" + (system.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "local")
        }
    }

    static func encounterClass(_ value: String?) -> JSONValue {
        let code =
            switch value {
            case "inpatient": "IMP"
            case "emergency": "EMER"
            case "online": "VR"
            default: "AMB"
            }
        return .object(["system": .string("http://terminology.hl7.org/CodeSystem/v3-ActCode"), "code": .string(code)])
    }

    static func instant(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(secondsFromGMT: 8 * 3600)
        return formatter.string(from: date)
    }
}
