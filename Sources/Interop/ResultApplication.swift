import Access
import Foundation
import HL7v2
import PostgresNIO
import Records
import Registry
import Storage

/// ORU^R01 into the shared record: each OBX a result under its order, keyed so that a later
/// message correcting it (OBX-11 preliminary → final → corrected) supersedes it and keeps it in
/// history. A patient the facility has not registered yet goes through the matcher (as an A04
/// would) rather than failing; one it has is not updated from a result message.
public struct ResultApplication: HL7Application {
    public static let triggers = ["R01"]

    let registry: ResidentRegistry
    let record: ClinicalRecord

    public init(registry: ResidentRegistry, record: ClinicalRecord) {
        self.registry = registry
        self.record = record
    }

    public func apply(_ message: HL7Message, context: HL7Context, on connection: PostgresConnection) async throws -> HL7Applied {
        try Self.requireOnePatient(message, carrying: "results")
        let patient = try PatientMapping.demographics(message, today: context.today)
        let results = try ClinicalMapping.results(message)
        guard !results.isEmpty else {
            throw HL7ApplicationError(.segmentSequenceError, HL7Location(segmentID: "OBX"), "the message has no OBX segment")
        }
        var applied: HL7Applied
        do {
            applied = try await resident(patient, context: context, on: connection)
        } catch {
            throw ADTRegistration.senderError(error, sources: patient.sources)
        }
        guard let resident = applied.residentID else { return applied }
        var encounter: UUID?
        if let key = message["PV1-19"] {
            encounter = try await record.encounterID(facility: context.facility, key: key, on: connection)
            if encounter == nil {
                encounter = try await record.recordEncounter(
                    EncounterInput(
                        key: key, encounterClass: ClinicalMapping.encounterClass(message["PV1-2"]), status: .inProgress,
                        startedAt: ClinicalMapping.time(message["PV1-44"])), resident: resident, facility: context.facility,
                    source: .message(context.messageID), on: connection)
            }
        }
        let outcomes = try await record.record(
            results, resident: resident, facility: context.facility, encounter: encounter, source: .message(context.messageID),
            on: connection)
        try await AuditTrail.append(
            AuditEvent(
                principal: context.principal, action: "record.results.create", resource: "message/\(context.messageID.lowercased)",
                residentPseudonym: registry.residentPseudonym(resident), purpose: "treatment",
                requestID: context.messageID.uuidString.lowercased()), on: connection, logger: record.logger)
        let late = outcomes.filter { $0 == .history }.count
        if late > 0 { applied.warnings.append("\(late) result(s) less final than the one on file were kept as history only") }
        return applied
    }

    /// The facility's patient, or a new registration through the matcher.
    func resident(_ patient: PatientDemographics, context: HL7Context, on connection: PostgresConnection) async throws -> HL7Applied {
        if let existing = try await registry.residentID(facility: context.facility, localId: patient.localId, on: connection) {
            return HL7Applied(residentID: existing, warnings: patient.warnings)
        }
        var draft = patient.draft
        draft.facility = context.facility
        let outcome = try await registry.registerOutcome(
            draft, by: context.principal, requestID: context.messageID.uuidString.lowercased(), today: context.today, on: connection)
        return ADTRegistration.applied(outcome, patient)
    }

    /// Items are filed against the message's one patient; a message carrying several patients'
    /// would need each item matched to its own PID, so it is refused whole.
    static func requireOnePatient(_ message: HL7Message, carrying what: String) throws(HL7ApplicationError) {
        let pids = message.segments.filter { $0.id == "PID" }.count
        guard pids <= 1 else {
            throw HL7ApplicationError(
                .segmentSequenceError, HL7Location(segmentID: "PID", segmentSequence: 2),
                "the message carries \(what) for \(pids) patients; send one message per patient")
        }
    }
}
