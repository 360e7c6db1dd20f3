import Access
import Foundation
import HL7v2
import PostgresNIO
import Registry

/// ADT into the master patient index: A01/A04/A05/A28 register the patient (through the matcher,
/// linking the PID-3 id to the sending facility), A08/A31 update them (registering first when the
/// id is new), A40 merges the facility's prior patient id (MRG-1) into the surviving one (PID-3).
public struct ADTRegistration: HL7BatchApplication {
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
        } catch {
            throw Self.senderError(error, sources: patient.sources)
        }
    }

    /// Merges run alone: they touch several residents and write as they go.
    public func canBatch(_ message: HL7Message) -> Bool {
        message.header.messageType.triggerEvent.uppercased() != "A40"
    }

    /// Registrations and updates of several patients: the facility ids looked up together, the
    /// known ones updated one by one, the new ones matched and written as one registrar batch.
    public func apply(batch items: [(message: HL7Message, context: HL7Context)], on connection: PostgresConnection) async throws
        -> [Result<HL7Applied, any Error>]
    {
        var results = [Result<HL7Applied, any Error>?](repeating: nil, count: items.count)
        var patients: [(index: Int, patient: PatientDemographics)] = []
        for (index, item) in items.enumerated() {
            do {
                patients.append((index, try PatientMapping.demographics(item.message, today: item.context.today)))
            } catch {
                results[index] = .failure(error)
            }
        }
        let found = try await registry.registerOrFind(
            patients.map { index, patient in
                var draft = patient.draft
                draft.facility = items[index].context.facility
                let context = items[index].context
                return (draft, context.principal, context.messageID.uuidString.lowercased())
            }, today: items.first?.context.today ?? ChinaDate.today(), on: connection)
        var updates: [(index: Int, patient: PatientDemographics, change: ResidentRegistry.Change)] = []
        for ((index, patient), outcome) in zip(patients, found) {
            let context = items[index].context
            switch outcome {
            case .failure(let error): results[index] = .failure(Self.senderError(error, sources: patient.sources))
            case .success(.registered(let registration)): results[index] = .success(Self.applied(registration, patient))
            case .success(.existing(let id)):
                // Known to the facility: the message updates the resident, with what it carries.
                updates.append(
                    (
                        index, patient,
                        .init(
                            id: id, patch: patient.patch, principal: context.principal, requestID: context.messageID.uuidString.lowercased()
                        )
                    ))
            }
        }
        if !updates.isEmpty {
            let changed = try await registry.updateQuietly(updates.map(\.change), today: items[0].context.today, on: connection)
            for (update, result) in zip(updates, changed) {
                results[update.index] = result.map { _ in HL7Applied(residentID: update.change.id, warnings: update.patient.warnings) }
                    .mapError { Self.senderError($0, sources: update.patient.sources) }
            }
        }
        return results.map { $0! }
    }

    static func applied(_ outcome: RegistrationOutcome, _ patient: PatientDemographics) -> HL7Applied {
        var warnings = patient.warnings
        if outcome.kind == RegistrationOutcome.Kind.review {
            warnings.append("registered as a new resident; a possible duplicate waits on the matching review queue")
        }
        return HL7Applied(residentID: outcome.residentId.flatMap(UUID.init(uuidString:)), warnings: warnings)
    }

    /// A registry refusal as the HL7 error the sender sees; database errors pass through.
    static func senderError(_ error: any Error, sources: [String: HL7Location]) -> any Error {
        switch error {
        case let error as RegistryError: hl7Error(error, sources: sources)
        case let error as AccessError:
            HL7ApplicationError(.applicationInternalError, HL7Location(segmentID: "PID", segmentSequence: 1), error.description)
        default: error
        }
    }

    func register(_ patient: PatientDemographics, context: HL7Context, on connection: PostgresConnection) async throws -> HL7Applied {
        let requestID = context.messageID.uuidString.lowercased()
        if let existing = try await registry.residentID(facility: context.facility, localId: patient.localId, on: connection) {
            _ = try await registry.updateQuietly(
                [.init(id: existing, patch: patient.patch, principal: context.principal, requestID: requestID)], today: context.today,
                on: connection)[0].get()
            return HL7Applied(residentID: existing, warnings: patient.warnings)
        }
        var draft = patient.draft
        draft.facility = context.facility
        let outcome = try await registry.registerOutcome(
            draft, by: context.principal, requestID: requestID, today: context.today, on: connection)
        return Self.applied(outcome, patient)
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
