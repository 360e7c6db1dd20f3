import Access
import ClinicalXML
import Crypto
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

/// Clinical documents (CDA R2) into the shared record and back out. A submission is parsed by
/// the hardened reader, checked against the CDA schema, its patient resolved through the master
/// patient index, and filed in one transaction with its items; the original bytes are sealed and
/// returned byte for byte. A document that fails the schema is kept with its findings and
/// flagged, unless its sender is strict. A new version of a document set becomes current and
/// retires the old one (kept in history); a late older version is kept, not made current.
public struct ClinicalDocuments: Sendable {
    let client: PostgresClient
    let registry: ResidentRegistry
    let protector: FieldProtector
    let schema: XMLSchema?
    let access: RecordAccess
    let limits: XMLLimits
    let logger: Logger

    static let rawContext = "records.document"
    /// Advisory lock class of document sets: two versions of one set filed at once queue.
    static let lockClass: Int32 = 0x5244

    /// `schema` nil files documents without a schema check (findings empty, `schemaValid` true):
    /// for deployments without the CDA schema files.
    public init(
        client: PostgresClient, registry: ResidentRegistry, protector: FieldProtector, schema: XMLSchema?, relationshipDays: Int = 90,
        limits: XMLLimits = XMLLimits(), logger: Logger
    ) {
        self.client = client
        self.registry = registry
        self.protector = protector
        self.schema = schema
        self.access = RecordAccess(relationshipDays: relationshipDays, logger: logger)
        self.limits = limits
        self.logger = logger
    }

    // MARK: Submission

    public func submit(_ bytes: [UInt8], by principal: Principal, requestID: String?) async throws -> DocumentReceipt {
        try principal.require(.his, action: "submit clinical documents")
        try principal.require(scope: "records.write")
        guard let facility = principal.facility else { throw AccessError.forbidden("client is bound to no facility") }
        let parsed: XMLDocument
        do {
            parsed = try XMLDocument.parse(bytes, limits: limits)
        } catch {
            throw RecordsError.unreadable(error)
        }
        let cda: CDADocument
        do {
            cda = try CDADocument(parsed)
        } catch {
            throw RecordsError.notCDA(error)
        }
        let findings = schema?.validate(parsed) ?? []
        let header = cda.header
        let draft = try CDAMapping.draft(header, facility: facility)
        guard let effectiveAt = CDAMapping.time(header.effectiveTime) else {
            throw RecordsError.invalid(field: "effectiveTime", reason: "must be an HL7 TS such as 20261201093000+0800")
        }
        let entries = CDAMapping.entries(cda)
        let documentKey = header.id.key
        let setKey = header.setId.map(\.key) ?? documentKey
        let version = header.version ?? 1
        guard version > 0 else { throw RecordsError.invalid(field: "versionNumber", reason: "must be a positive integer") }
        let hash = Array(SHA256.hash(data: bytes))
        let sealed = try protector.seal(bytes: bytes, context: Self.rawContext)
        var row = DocumentRow(
            id: UUID.timeOrdered(), facility: facility, documentKey: documentKey, setKey: setKey, version: version,
            typeCode: header.code.code ?? "", typeSystem: header.code.codeSystem, typeDisplay: header.code.displayName,
            title: header.title, effectiveAt: effectiveAt, author: header.author?.name ?? header.author?.organization,
            custodian: header.custodian?.organization, contentHash: hash, byteCount: bytes.count, sealed: sealed,
            schemaValid: !findings.contains { $0.severity == .error }, findings: findings.map(Finding.init), receivedBy: principal.clientID)

        return try await retryingConflicts {
            try await client.transaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockClass), hashtext(\(setKey)))", logger: logger)
                if let existing = try await summary(documentKey: documentKey, on: connection) {
                    guard existing.hash == hash else {
                        throw RecordsError.conflict("document \(documentKey) is already on file with different content; send a new id")
                    }
                    return DocumentReceipt(status: .duplicate, document: existing.summary, entries: 0, patient: nil)
                }
                if !row.schemaValid, try await isStrict(facility, on: connection) { throw RecordsError.schema(findings) }
                let (resident, patient) = try await resolve(draft, principal: principal, requestID: requestID, on: connection)
                row.residentID = resident
                try await file(row, entries: entries, on: connection)
                try await AuditTrail.append(
                    AuditEvent(
                        principal: principal, action: "record.document.create", resource: "document/\(row.id.lowercased)",
                        residentPseudonym: registry.residentPseudonym(resident), purpose: "treatment", requestID: requestID),
                    on: connection, logger: logger)
                guard let filed = try await summary(documentKey: documentKey, on: connection) else {
                    throw RecordsError.notFound("document \(documentKey)")
                }
                return DocumentReceipt(status: .created, document: filed.summary, entries: entries.count, patient: patient)
            }
        }
    }

    /// The document's patient through the matcher, in the filing transaction: an id the facility
    /// already linked answers at once; otherwise the matcher links or creates.
    private func resolve(
        _ draft: ResidentDraft, principal: Principal, requestID: String?, on connection: PostgresConnection
    ) async throws -> (UUID, String) {
        let results = try await registry.registerOrFind([(draft, principal, requestID)], on: connection)
        switch results[0] {
        case .success(.existing(let id)): return (id, "existing")
        case .success(.registered(let outcome)):
            guard let text = outcome.residentId, let id = UUID(uuidString: text) else {
                throw RecordsError.invalid(field: "recordTarget", reason: outcome.reason ?? "the patient could not be registered")
            }
            return (id, outcome.kind.rawValue)
        case .failure(let error): throw error
        }
    }

    private func isStrict(_ facility: String, on connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.query(
            "SELECT strict_schema FROM records.document_policies WHERE facility = \(facility)", logger: logger)
        for try await strict in rows.decode(Bool.self) { return strict }
        return false
    }

    /// Writes the document and its items; when it is the newest version of its set, retires the
    /// current one and that one's items first (the set has one current document at a time).
    private func file(_ row: DocumentRow, entries: [RecordItem], on connection: PostgresConnection) async throws {
        var replaced: UUID?
        var current = true
        let rows = try await connection.query(
            "SELECT id, version FROM records.documents WHERE set_key = \(row.setKey) AND current FOR UPDATE", logger: logger)
        for try await (id, version) in rows.decode((UUID, Int).self) {
            if version >= row.version { current = false } else { replaced = id }
        }
        if let replaced {
            try await connection.query("UPDATE records.documents SET current = false WHERE id = \(replaced)", logger: logger)
            try await connection.query("UPDATE records.entries SET current = false WHERE document_id = \(replaced)", logger: logger)
        }
        let findings = String(decoding: try JSONEncoder().encode(row.findings), as: UTF8.self)
        try await connection.query(
            """
            INSERT INTO records.documents (id, resident_id, facility, document_key, set_key, version, type_code, type_system,
                type_display, title, effective_at, author, custodian, content_hash, byte_count, raw_ciphertext, raw_key_id,
                schema_valid, findings, current, received_by)
            VALUES (\(row.id), \(row.residentID), \(row.facility), \(row.documentKey), \(row.setKey), \(row.version), \(row.typeCode),
                \(row.typeSystem), \(row.typeDisplay), \(row.title), \(row.effectiveAt), \(row.author), \(row.custodian),
                \(ByteBuffer(bytes: row.contentHash)), \(row.byteCount), \(ByteBuffer(bytes: row.sealed.bytes)), \(row.sealed.keyID),
                \(row.schemaValid), \(findings)::jsonb, \(current), \(row.receivedBy))
            """, logger: logger)
        if let replaced {
            try await connection.query("UPDATE records.documents SET superseded_by = \(row.id) WHERE id = \(replaced)", logger: logger)
        }
        try await EntryWriter(logger: logger).insert(
            entries, resident: row.residentID!, facility: row.facility, source: .document(row.id), current: current, on: connection)
    }

    // MARK: Reads

    public func summary(id text: String, by principal: Principal, breakGlass: String?, requestID: String?) async throws
        -> DocumentSummary
    {
        try await read(id: text, by: principal, breakGlass: breakGlass, requestID: requestID, action: "record.document.read").summary
    }

    /// The original document, byte for byte.
    public func content(id text: String, by principal: Principal, breakGlass: String?, requestID: String?) async throws
        -> DocumentContent
    {
        let found = try await read(id: text, by: principal, breakGlass: breakGlass, requestID: requestID, action: "record.document.content")
        let bytes = try protector.openBytes(found.sealed, context: Self.rawContext)
        return DocumentContent(bytes: bytes, summary: found.summary)
    }

    private func read(
        id text: String, by principal: Principal, breakGlass: String?, requestID: String?, action: String
    ) async throws -> StoredDocument {
        guard let id = UUID(uuidString: text) else { throw RecordsError.notFound("document \(text.prefix(40))") }
        return try await client.withConnection { connection in
            guard let found = try await document(id: id, on: connection) else { throw RecordsError.notFound("document \(id.lowercased)") }
            let resident = UUID(uuidString: found.summary.residentId)!
            let event = AuditEvent(
                principal: principal, action: action, resource: "document/\(id.lowercased)",
                residentPseudonym: registry.residentPseudonym(resident), purpose: "treatment", requestID: requestID)
            _ = try await access.audited(
                event, principal, resident: resident, writer: found.summary.facility, breakGlass: breakGlass, on: connection)
            return found
        }
    }

    struct StoredDocument {
        var summary: DocumentSummary
        var hash: [UInt8]
        var sealed: FieldProtector.Sealed
    }

    static let columns = """
        id, resident_id, facility, document_key, set_key, version, current, superseded_by, type_code, type_system, type_display,
        title, effective_at, author, custodian, byte_count, schema_valid, findings::text, received_at, content_hash, raw_ciphertext,
        raw_key_id
        """

    private func summary(documentKey: String, on connection: PostgresConnection) async throws -> StoredDocument? {
        try await stored(
            connection.query(
                PostgresQuery(
                    unsafeSQL: "SELECT \(Self.columns) FROM records.documents WHERE document_key = $1", binds: binds(documentKey)),
                logger: logger))
    }

    private func document(id: UUID, on connection: PostgresConnection) async throws -> StoredDocument? {
        try await stored(
            connection.query(
                PostgresQuery(unsafeSQL: "SELECT \(Self.columns) FROM records.documents WHERE id = $1", binds: binds(id)), logger: logger)
        )
    }

    private func binds(_ value: some PostgresNonThrowingEncodable) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(value)
        return binds
    }

    private func stored(_ rows: PostgresRowSequence) async throws -> StoredDocument? {
        for try await row in rows {
            let cells = row.makeRandomAccess()
            func value<T: PostgresDecodable>(_ index: Int, _ type: T.Type = T.self) throws -> T { try cells[index].decode(T.self) }
            let findings = try JSONDecoder().decode([Finding].self, from: Data(try value(17, String.self).utf8))
            let summary = DocumentSummary(
                id: try value(0, UUID.self).lowercased, residentId: try value(1, UUID.self).lowercased, facility: try value(2),
                documentId: try value(3), setId: try value(4), version: try value(5), current: try value(6),
                supersededBy: try value(7, UUID?.self)?.lowercased, typeCode: try value(8), typeSystem: try value(9),
                typeDisplay: try value(10), title: try value(11), effectiveAt: try value(12), author: try value(13),
                custodian: try value(14),
                byteCount: try value(15), schemaValid: try value(16), findings: findings, receivedAt: try value(18))
            let hash = Array(buffer: try value(19, ByteBuffer.self))
            let sealed = FieldProtector.Sealed(keyID: try value(21), bytes: Array(buffer: try value(20, ByteBuffer.self)))
            return StoredDocument(summary: summary, hash: hash, sealed: sealed)
        }
        return nil
    }
}

struct DocumentRow {
    var id: UUID
    var residentID: UUID?
    var facility: String
    var documentKey: String
    var setKey: String
    var version: Int
    var typeCode: String
    var typeSystem: String?
    var typeDisplay: String?
    var title: String?
    var effectiveAt: Date
    var author: String?
    var custodian: String?
    var contentHash: [UInt8]
    var byteCount: Int
    var sealed: FieldProtector.Sealed
    var schemaValid: Bool
    var findings: [Finding]
    var receivedBy: String

    init(
        id: UUID, facility: String, documentKey: String, setKey: String, version: Int, typeCode: String, typeSystem: String?,
        typeDisplay: String?, title: String?, effectiveAt: Date, author: String?, custodian: String?, contentHash: [UInt8],
        byteCount: Int, sealed: FieldProtector.Sealed, schemaValid: Bool, findings: [Finding], receivedBy: String
    ) {
        self.id = id
        self.facility = facility
        self.documentKey = documentKey
        self.setKey = setKey
        self.version = version
        self.typeCode = typeCode
        self.typeSystem = typeSystem
        self.typeDisplay = typeDisplay
        self.title = title
        self.effectiveAt = effectiveAt
        self.author = author
        self.custodian = custodian
        self.contentHash = contentHash
        self.byteCount = byteCount
        self.sealed = sealed
        self.schemaValid = schemaValid
        self.findings = findings
        self.receivedBy = receivedBy
    }
}
