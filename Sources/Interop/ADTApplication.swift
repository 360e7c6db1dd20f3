import Access
import Foundation
import HL7v2
import PostgresNIO
import Registry

/// ADT into the master patient index: A01/A04/A05/A28 register the patient (through the matcher,
/// linking the PID-3 id to the sending facility), A08/A31 update them (registering first when the
/// id is new), A40 merges the facility's prior patient id (MRG-1) into the surviving one (PID-3).
public struct ADTRegistration: HL7Application {
    public static let triggers = ["A01", "A04", "A05", "A08", "A28", "A31", "A40"]

    let registry: ResidentRegistry
    let merges: MergeService

    public init(registry: ResidentRegistry, merges: MergeService) {
        self.registry = registry
        self.merges = merges
    }

    public func apply(_ message: HL7Message, context: HL7Context, on connection: PostgresConnection) async throws -> HL7Applied {
        let patient = try PatientMapping.demographics(message, today: context.today)
        do {
            if message.header.messageType.triggerEvent.uppercased() == "A40" {
                return try await merge(message, patient, context: context, on: connection)
            }
            return try await register(patient, context: context, on: connection)
        } catch let error as RegistryError {
            throw Self.hl7Error(error, sources: patient.sources)
        } catch let error as AccessError {
            throw HL7ApplicationError(.applicationInternalError, HL7Location(segmentID: "PID", segmentSequence: 1), error.description)
        }
    }

    func register(_ patient: PatientDemographics, context: HL7Context, on connection: PostgresConnection) async throws -> HL7Applied {
        let requestID = context.messageID.uuidString.lowercased()
        if let existing = try await registry.residentID(facility: context.facility, localId: patient.localId, on: connection) {
            _ = try await registry.update(
                id: existing, with: patient.patch, by: context.principal, requestID: requestID, today: context.today, on: connection)
            return HL7Applied(residentID: existing, warnings: patient.warnings)
        }
        var draft = patient.draft
        draft.facility = context.facility
        let outcome = try await registry.registerOutcome(
            draft, by: context.principal, requestID: requestID, today: context.today, on: connection)
        var warnings = patient.warnings
        if outcome.kind == RegistrationOutcome.Kind.review {
            warnings.append("registered as a new resident; a possible duplicate waits on the matching review queue")
        }
        return HL7Applied(residentID: outcome.residentId.flatMap(UUID.init(uuidString:)), warnings: warnings)
    }

    func merge(_ message: HL7Message, _ patient: PatientDemographics, context: HL7Context, on connection: PostgresConnection)
        async throws -> HL7Applied
    {
        let prior = try PatientMapping.priorIdentifier(message)
        let outcome: FacilityMergeOutcome
        do {
            outcome = try await merges.mergeFacilityRecords(
                facility: context.facility, survivorLocalId: patient.localId, priorLocalId: prior, by: context.principal,
                requestID: context.messageID.uuidString.lowercased(), on: connection)
        } catch RegistryError.notFound {
            throw HL7ApplicationError(
                .unknownKeyIdentifier, PatientMapping.location(1, segment: "MRG"), "MRG-1 names no patient of this facility")
        }
        var warnings = patient.warnings
        switch outcome {
        case .alreadyOne: warnings.append("both identifiers already named one resident")
        case .reviewQueued:
            warnings.append("the prior patient is also known to other facilities: the merge waits on the matching review queue")
        case .relinked, .merged: break
        }
        return HL7Applied(residentID: outcome.residentID, warnings: warnings)
    }

    /// Registry refusals as HL7 errors located at the field the value came from.
    static func hl7Error(_ error: RegistryError, sources: [String: HL7Location]) -> HL7ApplicationError {
        let pid = HL7Location(segmentID: "PID", segmentSequence: 1)
        switch error {
        case .invalid(let field, let reason):
            let key = field.split(separator: ".").first.map(String.init) ?? field
            let location = sources[field] ?? sources[key] ?? pid
            let code: HL7ErrorCode = field == "sex" || field == "ethnicity" ? .tableValueNotFound : .dataTypeError
            return HL7ApplicationError(code, location, "\(location.fieldPath) (\(field)) \(reason)")
        case .identityNumber(let problems):
            let location = sources["idNumber"] ?? pid
            return HL7ApplicationError(
                .dataTypeError, location,
                "\(location.fieldPath) identity number: " + problems.map(\.message).joined(separator: "; "))
        case .notFound(let what): return HL7ApplicationError(.unknownKeyIdentifier, pid, "\(what) was not found")
        case .duplicate(let what): return HL7ApplicationError(.duplicateKeyIdentifier, pid, "\(what) already exists")
        case .conflict(let code, let detail): return HL7ApplicationError(.applicationInternalError, pid, "\(code): \(detail)")
        }
    }
}
