import Access
import Foundation
import HTTPTypes
import Hummingbird
import NameMatching
import Registry

/// A read-only FHIR R4 view of the registry: `Patient` read and search, and the capability
/// statement. Errors are `OperationOutcome`s, as FHIR clients expect.
public struct FHIRController: Sendable {
    let residents: ResidentRegistry

    public init(residents: ResidentRegistry) {
        self.residents = residents
    }

    static let residentSystem = "urn:qianyun:resident"
    static let facilitySystemPrefix = "urn:qianyun:facility:"
    static let documentSystemPrefix = "urn:qianyun:document:"

    public func addRoutes(to router: Router<QianyunRequestContext>, authentication: AuthenticationMiddleware) {
        let fhir = router.group("fhir/r4").add(middleware: OperationOutcomeMiddleware())
        fhir.get("metadata", use: metadata)
        let secured = fhir.group().add(middleware: authentication)
        secured.get("Patient", use: search)
        secured.get("Patient/{id}", use: read)
    }

    @Sendable func read(_ request: Request, context: QianyunRequestContext) async throws -> FHIRBody<Patient> {
        let resident = try await residents.get(
            id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID)
        return FHIRBody(Patient(resident))
    }

    @Sendable func search(_ request: Request, context: QianyunRequestContext) async throws -> FHIRBody<Bundle> {
        let principal = try context.requirePrincipal()
        let parameters = request.uri.queryParameters
        let known: Set<String> = ["identifier", "name", "birthdate", "gender", "phone", "telecom", "_count", "_format"]
        if let unknown = parameters.first(where: { !known.contains(String($0.key)) }) {
            throw RegistryError.invalid(field: String(unknown.key), reason: "is not a supported search parameter of Patient")
        }
        var limit = 20
        if let count = parameters["_count"] {
            guard let value = Int(String(count)), (1...100).contains(value) else {
                throw RegistryError.invalid(field: "_count", reason: "must be from 1 to 100")
            }
            limit = value
        }
        var residentsFound: [Resident] = []
        if let identifier = parameters["identifier"].map(String.init) {
            guard let bar = identifier.firstIndex(of: "|") else {
                throw RegistryError.invalid(field: "identifier", reason: "must be written system|value")
            }
            let system = String(identifier[..<bar])
            let value = String(identifier[identifier.index(after: bar)...])
            guard !value.isEmpty else { throw RegistryError.invalid(field: "identifier", reason: "has no value") }
            do {
                if system == Self.residentSystem {
                    residentsFound = [try await residents.get(id: value, by: principal, requestID: context.requestID)]
                } else if system.hasPrefix(Self.facilitySystemPrefix) {
                    let facility = String(system.dropFirst(Self.facilitySystemPrefix.count))
                    residentsFound = [
                        try await residents.lookup(facility: facility, localId: value, by: principal, requestID: context.requestID)
                    ]
                } else if system == Self.documentSystemPrefix + DocumentType.residentID.rawValue {
                    var query = Self.query(parameters, limit: limit)
                    query.idNumber = value
                    residentsFound = try await residents.search(query, by: principal, requestID: context.requestID).map(\.resident)
                } else {
                    throw RegistryError.invalid(
                        field: "identifier",
                        reason:
                            "system must be \(Self.residentSystem), \(Self.facilitySystemPrefix)<facility> or \(Self.documentSystemPrefix)resident-id"
                    )
                }
            } catch RegistryError.notFound {
                residentsFound = []
            }
        } else {
            residentsFound = try await residents.search(Self.query(parameters, limit: limit), by: principal, requestID: context.requestID)
                .map(\.resident)
        }
        let base = "/fhir/r4/Patient"
        return FHIRBody(
            Bundle(
                resourceType: "Bundle", type: "searchset", total: residentsFound.count,
                link: [.init(relation: "self", url: base + (request.uri.query.map { "?" + $0 } ?? ""))],
                entry: residentsFound.isEmpty
                    ? nil
                    : residentsFound.map { .init(fullUrl: "\(base)/\($0.id)", resource: Patient($0), search: .init(mode: "match")) }))
    }

    static func query(_ parameters: Hummingbird.Parameters, limit: Int) -> ResidentQuery {
        var birth = parameters["birthdate"].map(String.init)
        if let value = birth, value.hasPrefix("eq") { birth = String(value.dropFirst(2)) }
        let gender = parameters["gender"].map(String.init)
        return ResidentQuery(
            name: parameters["name"].map(String.init), birthDate: birth, sex: gender == "unknown" ? "0" : gender, division: nil,
            phone: (parameters["phone"] ?? parameters["telecom"]).map(String.init), idNumber: nil, limit: limit)
    }

    @Sendable func metadata(_ request: Request, context: QianyunRequestContext) async throws -> Response {
        let statement = """
            {"resourceType":"CapabilityStatement","status":"active","date":"2026-11-25","kind":"instance",\
            "software":{"name":"Qianyun"},"fhirVersion":"4.0.1","format":["json"],\
            "rest":[{"mode":"server","resource":[{"type":"Patient","interaction":[{"code":"read"},{"code":"search-type"}],\
            "searchParam":[{"name":"identifier","type":"token"},{"name":"name","type":"string"},{"name":"birthdate","type":"date"},\
            {"name":"gender","type":"token"},{"name":"phone","type":"token"}],\
            "operation":[{"name":"everything","definition":"http://hl7.org/fhir/OperationDefinition/Patient-everything"}]},\
            \(FHIRRecordController.types.keys.sorted().map { type in
                #"{"type":"\#(type)","interaction":[{"code":"read"},{"code":"search-type"}],"#
                    + #""searchParam":[{"name":"patient","type":"reference"},{"name":"code","type":"token"},{"name":"date","type":"date"}]}"#
            }.joined(separator: ",")),\
            \(FHIRSchedulingController.capabilities)]}]}
            """
        return Response(
            status: .ok, headers: [.contentType: "application/fhir+json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: statement)))
    }
}

/// FHIR R4 `Patient`, with only the elements the registry has; empty elements are left out, as
/// FHIR requires.
public struct Patient: Codable, Sendable {
    struct Coding: Codable, Sendable {
        var system: String
        var code: String
        var display: String?
    }

    struct CodeableConcept: Codable, Sendable {
        var coding: [Coding]?
        var text: String?
    }

    struct Reference: Codable, Sendable {
        var reference: String?
        var display: String?
    }

    struct Identifier: Codable, Sendable {
        var use: String?
        var type: CodeableConcept?
        var system: String
        var value: String
        var assigner: Reference?
    }

    struct HumanName: Codable, Sendable {
        var use: String?
        var text: String
        var family: String?
        var given: [String]?
    }

    struct ContactPoint: Codable, Sendable {
        var system: String
        var value: String
    }

    struct Address: Codable, Sendable {
        var text: String?
        var district: String?
        var state: String?
        var country: String?
    }

    struct Contact: Codable, Sendable {
        var relationship: [CodeableConcept]?
        var name: HumanName?
        var telecom: [ContactPoint]?
    }

    struct Link: Codable, Sendable {
        var other: Reference
        var type: String
    }

    struct Meta: Codable, Sendable {
        var versionId: String
    }

    var resourceType = "Patient"
    var id: String
    var meta: Meta
    var identifier: [Identifier]?
    var active: Bool
    var name: [HumanName]?
    var telecom: [ContactPoint]?
    var gender: String
    var birthDate: String?
    var deceasedBoolean: Bool?
    var deceasedDateTime: String?
    var address: [Address]?
    var contact: [Contact]?
    var link: [Link]?

    init(_ resident: Resident) {
        id = resident.id
        meta = Meta(versionId: String(resident.version))
        var identifiers = [Identifier(use: "official", system: FHIRController.residentSystem, value: resident.id)]
        for local in resident.identifiers {
            identifiers.append(
                Identifier(
                    use: "usual",
                    type: CodeableConcept(coding: [Coding(system: "http://terminology.hl7.org/CodeSystem/v2-0203", code: "MR")]),
                    system: FHIRController.facilitySystemPrefix + local.facility, value: local.localId,
                    assigner: Reference(display: local.facility)))
        }
        if let document = resident.document {
            let code = document.type == DocumentType.passport.rawValue ? "PPN" : "NI"
            identifiers.append(
                Identifier(
                    use: "official",
                    type: CodeableConcept(
                        coding: [Coding(system: "http://terminology.hl7.org/CodeSystem/v2-0203", code: code)], text: document.type),
                    system: FHIRController.documentSystemPrefix + document.type, value: document.masked))
        }
        identifier = identifiers
        active = resident.status == "active"
        let parsed = ChineseName(resident.name)
        var names = [HumanName(use: "official", text: resident.name)]
        if let surname = parsed.surname, resident.name.hasPrefix(surname), resident.name.count > surname.count {
            names[0].family = surname
            names[0].given = [String(resident.name.dropFirst(surname.count))]
        }
        if parsed.isHan { names.append(HumanName(use: "usual", text: resident.namePinyin)) }
        name = names
        telecom = resident.phone.map { [ContactPoint(system: "phone", value: $0)] }
        gender =
            switch resident.sexCode {
            case 1: "male"
            case 2: "female"
            default: "unknown"
            }
        birthDate = resident.birthDate
        if let date = resident.deceasedDate {
            deceasedDateTime = date
        } else if resident.deceased {
            deceasedBoolean = true
        }
        if resident.address != nil || resident.division != nil {
            address = [Address(text: resident.address, district: resident.division, country: "CN")]
        }
        if let guardian = resident.guardian {
            var contact = Contact()
            contact.relationship = [
                CodeableConcept(
                    coding: [Coding(system: "http://terminology.hl7.org/CodeSystem/v2-0131", code: "N", display: "Next-of-Kin")],
                    text: guardian.relation)
            ]
            if let name = guardian.name { contact.name = HumanName(text: name) }
            if let phone = guardian.phone { contact.telecom = [ContactPoint(system: "phone", value: phone)] }
            self.contact = [contact]
        }
        if let survivor = resident.mergedInto {
            link = [Link(other: Reference(reference: "Patient/\(survivor)"), type: "replaced-by")]
        }
    }
}

public struct Bundle: Codable, Sendable {
    struct Link: Codable, Sendable {
        var relation: String
        var url: String
    }

    struct Entry: Codable, Sendable {
        struct Search: Codable, Sendable {
            var mode: String
        }

        var fullUrl: String
        var resource: Patient
        var search: Search
    }

    var resourceType: String
    var type: String
    var total: Int
    var link: [Link]
    var entry: [Entry]?
}

/// A FHIR resource response (`application/fhir+json`).
public struct FHIRBody<Value: Encodable & Sendable>: ResponseGenerator, Sendable {
    let value: Value

    init(_ value: Value) {
        self.value = value
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/fhir+json; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: try JSONEncoder.api.encode(value))))
    }
}

/// Turns every error under `/fhir` into an `OperationOutcome` with the status the JSON API would give.
struct OperationOutcomeMiddleware: RouterMiddleware {
    typealias Context = QianyunRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let problem = Problem.from(error)
            let code =
                switch problem.status.code {
                case 401: "login"
                case 403: "forbidden"
                case 404: "not-found"
                case 409: "conflict"
                case 400, 422: "invalid"
                case 429: "throttled"
                default: "exception"
                }
            let outcome: [String: Any] = [
                "resourceType": "OperationOutcome",
                "issue": [["severity": "error", "code": code, "diagnostics": problem.detail]],
            ]
            var headers = problem.headers
            headers[.contentType] = "application/fhir+json; charset=utf-8"
            headers[.cacheControl] = "no-store"
            let data = try JSONSerialization.data(withJSONObject: outcome, options: [.sortedKeys])
            return Response(status: problem.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
    }
}
