import Access
import Foundation
import HL7v2
import PostgresNIO
import Records
import Registry
import Storage

/// ADT into the master patient index: A01/A04/A05/A28 register the patient (through the matcher,
/// linking the PID-3 id to the sending facility), A08/A31/A03 update them (registering first when
/// the id is new), A40 merges the facility's prior patient id (MRG-1) into the surviving one
/// (PID-3). With a record to write to, A01/A04 also open a visit (PV1), A03 ends it, and DG1
/// diagnoses are filed against the visit.
public struct ADTRegistration: HL7BatchApplication {
    public static let triggers = ["A01", "A03", "A04", "A05", "A08", "A28", "A31", "A40"]

    let registry: ResidentRegistry
    let merges: MergeService
    let record: ClinicalRecord?

    public init(registry: ResidentRegistry, merges: MergeService, record: ClinicalRecord? = nil) {
        self.registry = registry
        self.merges = merges
        self.record = record
    }

    /// The visit and diagnoses a message carries, read before anything is written.
    struct ClinicalFacts {
        var encounter: EncounterInput?
        var diagnoses: [RecordItem]
        var visitKey: String?

        init(_ message: HL7Message) throws(HL7ApplicationError) {
            encounter = try ClinicalMapping.encounter(message)
            diagnoses = try ClinicalMapping.diagnoses(message)
            visitKey = message["PV1-19"]
        }

        var isEmpty: Bool { encounter == nil && diagnoses.isEmpty }
    }

    public func apply(_ message: HL7Message, context: HL7Context, on connection: PostgresConnection) async throws -> HL7Applied {
        let patient = try PatientMapping.demographics(message, today: context.today)
        let facts = try ClinicalFacts(message)
        do {
            if message.header.messageType.triggerEvent.uppercased() == "A40" {
                return try await merge(message, patient, context: context, on: connection)
            }
            let applied = try await register(patient, context: context, on: connection)
            try await file(facts, resident: applied.residentID, context: context, on: connection)
            return applied
        } catch {
            throw Self.senderError(error, sources: patient.sources)
        }
    }

    /// Opens, ends or finds the visit, and files the diagnoses against it.
    func file(_ facts: ClinicalFacts, resident: UUID?, context: HL7Context, on connection: PostgresConnection) async throws {
        guard let record, let resident, !facts.isEmpty else { return }
        var encounter: UUID?
        if let input = facts.encounter {
            encounter = try await record.recordEncounter(
                input, resident: resident, facility: context.facility, source: .message(context.messageID), on: connection)
        } else if let key = facts.visitKey {
            encounter = try await record.encounterID(facility: context.facility, key: key, on: connection)
        }
        if !facts.diagnoses.isEmpty {
            _ = try await record.record(
                facts.diagnoses, resident: resident, facility: context.facility, encounter: encounter,
                source: .message(context.messageID), on: connection)
        }
        try await AuditTrail.append(
            AuditEvent(
                principal: context.principal, action: "record.visit.update", resource: "message/\(context.messageID.lowercased)",
                residentPseudonym: registry.residentPseudonym(resident), purpose: "treatment",
                requestID: context.messageID.uuidString.lowercased()), on: connection, logger: record.logger)
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
        var facts: [Int: ClinicalFacts] = [:]
        for (index, item) in items.enumerated() {
            do {
                let patient = try PatientMapping.demographics(item.message, today: item.context.today)
                facts[index] = try ClinicalFacts(item.message)
                patients.append((index, patient))
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
        // The visits and diagnoses of the messages applied; a database error here aborts the batch
        // and the gateway reruns its messages one at a time.
        for (index, result) in results.enumerated() {
            guard case .success(let applied)? = result, let facts = facts[index] else { continue }
            try await file(facts, resident: applied.residentID, context: items[index].context, on: connection)
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
