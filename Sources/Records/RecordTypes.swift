import ClinicalXML
import Foundation

public enum RecordsError: Error, Equatable, CustomStringConvertible {
    case invalid(field: String, reason: String)
    /// The XML was refused before anything read it (malformed, DOCTYPE, limits).
    case unreadable(XMLProblem)
    /// Well-formed, but not a CDA document, or missing what a document cannot be filed without.
    case notCDA(CDAProblem)
    /// The sender is strict and the document fails the CDA schema.
    case schema([XMLFinding])
    case notFound(String)
    /// The document id is already on file with different content.
    case conflict(String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "\(field): \(reason)"
        case .unreadable(let problem): problem.description
        case .notCDA(let problem): problem.description
        case .schema(let findings):
            "the document fails the CDA R2 schema: " + findings.prefix(5).map(\.description).joined(separator: "; ")
        case .notFound(let what): "\(what) was not found"
        case .conflict(let detail): detail
        }
    }
}

public enum EntryKind: String, Sendable, Codable, CaseIterable {
    case diagnosis, observation, medication, allergy, procedure
}

public enum Certainty: String, Sendable, Codable {
    case confirmed, suspected, refuted
}

/// An item on its way into `records.entries`: what a message or document says, before it is
/// filed against a resident and a facility.
public struct RecordItem: Sendable, Equatable {
    public var kind: EntryKind
    /// The facility's own id of the item (an OBX's order, code and sub-id): a later item with
    /// the same key corrects this one.
    public var itemKey: String?
    public var code: String?
    public var codeSystem: String?
    public var display: String?
    public var valueText: String?
    public var valueNumber: Decimal?
    public var unit: String?
    public var referenceRange: String?
    public var abnormalFlag: String?
    /// preliminary, final, corrected, cancelled (results); active, completed (others).
    public var status: String?
    public var certainty: Certainty?
    public var isPrimary: Bool?
    public var effectiveAt: Date?
    public var detail: [String: String] = [:]

    public init(kind: EntryKind) { self.kind = kind }
}

/// One schema finding, as the API shows it.
public struct Finding: Sendable, Codable, Equatable {
    public var severity: String
    public var line: Int
    public var message: String

    init(_ finding: XMLFinding) {
        severity = finding.severity.rawValue
        line = finding.line
        message = finding.message
    }
}

/// A clinical document on file: its header, not its content.
public struct DocumentSummary: Sendable, Codable, Equatable {
    public var id: String
    public var residentId: String
    public var facility: String
    public var documentId: String
    public var setId: String
    public var version: Int
    public var current: Bool
    public var supersededBy: String?
    public var typeCode: String
    public var typeSystem: String?
    public var typeDisplay: String?
    public var title: String?
    public var effectiveAt: Date
    public var author: String?
    public var custodian: String?
    public var byteCount: Int
    public var schemaValid: Bool
    public var findings: [Finding]
    public var receivedAt: Date
}

/// What a submission did: stored (`created`), or found already on file (`duplicate`, the same
/// bytes sent again), with the schema's verdict.
public struct DocumentReceipt: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable { case created, duplicate }
    public var status: Status
    public var document: DocumentSummary
    /// Items read into the record (0 for a duplicate).
    public var entries: Int
    /// How the patient was resolved: `existing`, `linked`, `created` or `review`.
    public var patient: String?
}

/// The original bytes of a document, for `…/content`.
public struct DocumentContent: Sendable {
    public var bytes: [UInt8]
    public var summary: DocumentSummary
}
