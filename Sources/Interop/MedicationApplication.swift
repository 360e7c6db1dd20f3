import Access
import Foundation
import HL7v2
import PostgresNIO
import Records
import Registry
import Storage

/// RDE^O11 / RDE^O25 (pharmacy encoded orders) and OMP^O09 (pharmacy orders) into the record as
/// medication orders. A change (ORC-1 XO) or cancellation (CA, DC) of an order replaces it under
/// its placer number, the earlier state kept in history. The patient is found or registered as
/// for results.
public struct MedicationApplication: HL7Application {
    public static let routes: [(String, [String])] = [("RDE", ["O11", "O25"]), ("OMP", ["O09"])]

    let results: ResultApplication

    public init(registry: ResidentRegistry, record: ClinicalRecord) {
        self.results = ResultApplication(registry: registry, record: record)
    }

    public func apply(_ message: HL7Message, context: HL7Context, on connection: PostgresConnection) async throws -> HL7Applied {
        try ResultApplication.requireOnePatient(message, carrying: "orders")
        let patient = try PatientMapping.demographics(message, today: context.today)
        let orders = try ClinicalMapping.medications(message)
        guard !orders.isEmpty else {
            throw HL7ApplicationError(.segmentSequenceError, HL7Location(segmentID: "RXE"), "the message has no RXE or RXO segment")
        }
        var applied: HL7Applied
        do {
            applied = try await results.resident(patient, context: context, on: connection)
        } catch {
            throw ADTRegistration.senderError(error, sources: patient.sources)
        }
        guard let resident = applied.residentID else { return applied }
        var encounter: UUID?
        if let key = message["PV1-19"] {
            encounter = try await results.record.encounterID(facility: context.facility, key: key, on: connection)
        }
        let outcomes = try await results.record.record(
            orders, resident: resident, facility: context.facility, encounter: encounter, source: .message(context.messageID),
            on: connection)
        try await AuditTrail.append(
            AuditEvent(
                principal: context.principal, action: "record.medications.create", resource: "message/\(context.messageID.lowercased)",
                residentPseudonym: results.registry.residentPseudonym(resident), purpose: "treatment",
                requestID: context.messageID.uuidString.lowercased()), on: connection, logger: results.record.logger)
        if outcomes.contains(.history) { applied.warnings.append("an order older than the one on file was kept as history only") }
        return applied
    }
}
