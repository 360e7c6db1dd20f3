import Access
import Foundation
import HL7v2
import Logging
import NIOCore
import PostgresNIO
import Storage

/// One message as the inbox keeps it.
struct InboxEntry: Sendable {
    enum Status: String, Sendable {
        case applied, rejected, failed, unsupported
    }

    var id: UUID
    var receivedAt: Date
    var peerAddress: String?
    var facility: String?
    var header: InboxHeader
    var contentHash: [UInt8]
    var byteCount: Int
    var raw: FieldProtector.Sealed
    var status: Status
    var ackCode: HL7AckCode
    var commitAck: [UInt8]?
    var ack: [UInt8]?
    var error: HL7ApplicationError?
    var warnings: [String]
    var residentID: UUID?
}

/// The MSH facts kept beside the message, from a parsed header or salvaged from one that did not parse.
struct InboxHeader: Sendable {
    var sendingApplication: String?
    var sendingFacility: String?
    var controlID: String?
    var messageType: String?
    var triggerEvent: String?
    var structure: String?
    var version: String?
    var charset: String?
    var processingID: String?

    init(_ header: HL7MessageHeader) {
        func text(_ value: String) -> String? { value.isEmpty ? nil : String(value.prefix(180)) }
        sendingApplication = text(header.sendingApplication.namespaceID)
        sendingFacility = text(header.sendingFacility.namespaceID)
        controlID = text(header.controlID)
        messageType = text(header.messageType.messageCode)
        triggerEvent = text(header.messageType.triggerEvent)
        structure = text(header.messageType.messageStructure)
        version = text(header.version)
        charset = text(header.charset.msh18Value)
        processingID = text(header.processingID)
    }

    init(peek: SenderPeek) {
        sendingApplication = peek.application.isEmpty ? nil : String(peek.application.prefix(180))
        sendingFacility = peek.facility.isEmpty ? nil : String(peek.facility.prefix(180))
    }
}

/// The inbox's SQL. Every write happens on the caller's connection, inside the transaction that
/// also holds the message's effects.
struct Inbox: Sendable {
    static let rawContext = "interop.messages.raw"
    let logger: Logger

    /// A resend of a stored message: its acknowledgements, and one more attempt counted.
    func resend(facility: String, controlID: String, contentHash: [UInt8], on connection: PostgresConnection) async throws
        -> (commitAck: [UInt8]?, ack: [UInt8]?)?
    {
        try await lookup(facility: facility, controlID: controlID, contentHash: contentHash, on: connection).stored
    }

    /// In one round trip: the stored ACKs if these bytes came before (counting the attempt), and
    /// whether the control ID was used before for other bytes.
    func lookup(facility: String, controlID: String, contentHash: [UInt8], on connection: PostgresConnection) async throws
        -> (stored: (commitAck: [UInt8]?, ack: [UInt8]?)?, reused: Bool)
    {
        let rows = try await connection.query(
            """
            WITH hit AS (
                UPDATE interop.messages SET attempts = attempts + 1
                WHERE facility = \(facility) AND control_id = \(controlID) AND content_hash = \(Data(contentHash))
                RETURNING commit_ack, ack
            )
            SELECT EXISTS (SELECT 1 FROM hit), (SELECT commit_ack FROM hit LIMIT 1), (SELECT ack FROM hit LIMIT 1),
                   EXISTS (SELECT 1 FROM interop.messages WHERE facility = \(facility) AND control_id = \(controlID))
            """, logger: logger
        ).collect()
        let (hit, commit, ack, used) = try rows[0].decode((Bool, Data?, Data?, Bool).self)
        return (hit ? (commit.map(Array.init), ack.map(Array.init)) : nil, used && !hit)
    }

    /// For each (facility, control ID, bytes) of a batch, in one round trip: the stored ACKs if
    /// these bytes came before (counting the attempt), and whether the control ID was used before
    /// for other bytes. An empty control ID is never a resend. The same statement takes the
    /// per-patient advisory locks (`locks`, hashed and sorted): its own snapshot predates them,
    /// which only means a resend committed by another gateway meanwhile is caught by the inbox's
    /// unique index instead; every later statement of the transaction sees it.
    func lookup(
        _ messages: [(facility: String, controlID: String, contentHash: [UInt8])], locking locks: [String], lockClass: Int32,
        on connection: PostgresConnection
    ) async throws -> [(stored: (commitAck: [UInt8]?, ack: [UInt8]?)?, reused: Bool)] {
        var result = [(stored: (commitAck: [UInt8]?, ack: [UInt8]?)?, reused: Bool)](repeating: (nil, false), count: messages.count)
        let asked = messages.indices.filter { !messages[$0].controlID.isEmpty }
        guard !asked.isEmpty || !locks.isEmpty else { return result }
        var binds = PostgresBindings()
        binds.append(locks)
        binds.append(lockClass)
        binds.append(asked.map { Int32($0) })
        binds.append(asked.map { messages[$0].facility })
        binds.append(asked.map { messages[$0].controlID })
        binds.append(asked.map { messages[$0].contentHash.hexString })
        var resent: [UUID] = []
        for row in try await connection.run(LockAndLookupStatement(binds: binds), logger: logger) {
            let (n, id, commit, ack, used) = try row.decode((Int32, UUID?, Data?, Data?, Bool).self)
            guard n >= 0 else { continue }
            if let id { resent.append(id) }
            result[Int(n)] = (id != nil ? (commit.map(Array.init), ack.map(Array.init)) : nil, used && id == nil)
        }
        if !resent.isEmpty {
            // Resends are rare: counting their attempts costs a round trip only when there are some.
            try await connection.query(
                "UPDATE interop.messages SET attempts = attempts + 1 WHERE id = ANY(\(resent)::uuid[])", logger: logger)
        }
        return result
    }

    /// Stores the entry; false when an identical message (same facility, MSH-10 and bytes)
    /// committed first, in which case the caller rolls back and answers with that one's ACK.
    func store(_ entry: InboxEntry, on connection: PostgresConnection) async throws -> Bool {
        try await store([entry], on: connection) == 1
    }

    /// Stores entries in one statement; returns how many were new (an identical message that
    /// committed first is skipped, and the caller decides what that means).
    func store(_ entries: [InboxEntry], on connection: PostgresConnection) async throws -> Int {
        guard !entries.isEmpty else { return 0 }
        let appliedAt = Date()
        let rows = entries.map { entry in
            StoredRow(
                id: entry.id, received_at: entry.receivedAt.timeIntervalSince1970, peer_address: entry.peerAddress,
                facility: entry.facility, sending_application: entry.header.sendingApplication,
                sending_facility: entry.header.sendingFacility, control_id: entry.header.controlID,
                message_type: entry.header.messageType, trigger_event: entry.header.triggerEvent, structure: entry.header.structure,
                version: entry.header.version, charset: entry.header.charset, processing_id: entry.header.processingID,
                content_hash: entry.contentHash.hexString, byte_count: entry.byteCount, raw_ciphertext: entry.raw.bytes.hexString,
                raw_key_id: entry.raw.keyID, status: entry.status.rawValue, ack_code: entry.ackCode.rawValue,
                commit_ack: entry.commitAck?.hexString, ack: entry.ack?.hexString, error_code: entry.error.map { "hl7.\($0.code)" },
                error_hl7_code: entry.error.map { $0.code.rawValue }, error_location: entry.error.map { $0.location.fieldPath },
                error_text: entry.error?.text, warnings: entry.warnings, resident_id: entry.residentID,
                applied_at: entry.status == .applied ? appliedAt.timeIntervalSince1970 : nil)
        }
        var binds = PostgresBindings()
        binds.append(String(decoding: try JSONEncoder().encode(rows), as: UTF8.self))
        return try await connection.run(InboxStoreStatement(binds: binds), logger: logger).count
    }

    /// An inbox row as `InboxStoreStatement` reads it: bytea as hex, times as epoch seconds.
    struct StoredRow: Encodable {
        let id: UUID
        let received_at: Double
        let peer_address, facility, sending_application, sending_facility, control_id, message_type, trigger_event: String?
        let structure, version, charset, processing_id: String?
        let content_hash: String
        let byte_count: Int
        let raw_ciphertext, raw_key_id, status, ack_code: String
        let commit_ack, ack, error_code: String?
        let error_hl7_code: Int?
        let error_location, error_text: String?
        let warnings: [String]
        let resident_id: UUID?
        let applied_at: Double?
    }

    /// Records a replay's outcome on the stored row.
    func update(_ entry: InboxEntry, on connection: PostgresConnection) async throws {
        let location = entry.error.map { $0.location.fieldPath }
        try await connection.query(
            """
            UPDATE interop.messages SET facility = \(entry.facility), status = \(entry.status.rawValue), ack_code = \(entry.ackCode.rawValue),
                commit_ack = \(entry.commitAck.map { Data($0) }), ack = \(entry.ack.map { Data($0) }),
                error_code = \(entry.error.map { "hl7.\($0.code)" }), error_hl7_code = \(entry.error.map { $0.code.rawValue }),
                error_location = \(location), error_text = \(entry.error?.text), warnings = \(entry.warnings),
                resident_id = \(entry.residentID), applied_at = \(entry.status == .applied ? Date() : nil), attempts = attempts + 1
            WHERE id = \(entry.id)
            """, logger: logger)
    }
}

/// MSH-3.1 and MSH-4.1 read from raw bytes before the message is decoded, to find the sender's
/// default charset. Good enough for that: a GBK trail byte that equals a delimiter only matters
/// inside a Chinese facility name, and the sender is resolved again from the decoded header.
struct SenderPeek: Sendable {
    var application = ""
    var facility = ""

    init(_ bytes: [UInt8]) {
        let skip = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        guard bytes.count > skip + 8, bytes[skip...].starts(with: Array("MSH".utf8)) else { return }
        let separator = bytes[skip + 3]
        var fields: [ArraySlice<UInt8>] = []
        var start = skip + 4
        var index = skip + 4
        while index < bytes.count, fields.count < 4, bytes[index] != 0x0D, bytes[index] != 0x0A {
            if bytes[index] == separator {
                fields.append(bytes[start..<index])
                start = index + 1
            }
            index += 1
        }
        if fields.count < 4 { fields.append(bytes[start..<index]) }
        func first(_ n: Int) -> String {
            guard n < fields.count else { return "" }
            let component = fields[n].split(separator: UInt8(ascii: "^"), omittingEmptySubsequences: false).first ?? []
            return String(decoding: component, as: UTF8.self)
        }
        application = first(1)
        facility = first(2)
    }
}

/// See `Inbox.lookup(_:locking:lockClass:on:)`. The `-1` row makes sure the locks are taken even
/// when no message has a control ID. Lookups are LATERAL probes with a LIMIT, so that the generic
/// plan the gateway's sessions cache stays an index probe whatever the table's size was when it
/// was made.
struct LockAndLookupStatement: PreparedSQL {
    static let sql = """
        WITH locked AS MATERIALIZED (
            SELECT count(pg_advisory_xact_lock($2::int4, h)) AS n
            FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($1::text[]) AS k ORDER BY 1) AS sorted
        )
        SELECT p.n, x.id, x.commit_ack, x.ack, u.used IS NOT NULL
        FROM locked, unnest($3::int4[], $4::text[], $5::text[], $6::text[]) AS p(n, facility, control_id, content_hash)
        LEFT JOIN LATERAL (
            SELECT id, commit_ack, ack FROM interop.messages m
            WHERE m.facility = p.facility AND m.control_id = p.control_id AND m.content_hash = decode(p.content_hash, 'hex') LIMIT 1
        ) AS x ON true
        LEFT JOIN LATERAL (
            SELECT true AS used FROM interop.messages m WHERE m.facility = p.facility AND m.control_id = p.control_id LIMIT 1
        ) AS u ON true
        UNION ALL SELECT -1, NULL, NULL, NULL, false FROM locked
        """
    let binds: PostgresBindings
}

/// Inbox rows from `Inbox.StoredRow` JSON; a resend that committed first is skipped.
struct InboxStoreStatement: PreparedSQL {
    static let sql = """
        INSERT INTO interop.messages (id, received_at, peer_address, facility, sending_application, sending_facility, control_id,
            message_type, trigger_event, structure, version, charset, processing_id, content_hash, byte_count, raw_ciphertext,
            raw_key_id, status, ack_code, commit_ack, ack, error_code, error_hl7_code, error_location, error_text, warnings,
            resident_id, applied_at)
        SELECT id, to_timestamp(received_at), peer_address, facility, sending_application, sending_facility, control_id,
            message_type, trigger_event, structure, version, charset, processing_id, decode(content_hash, 'hex'), byte_count,
            decode(raw_ciphertext, 'hex'), raw_key_id, status, ack_code, decode(commit_ack, 'hex'), decode(ack, 'hex'), error_code,
            error_hl7_code, error_location, error_text, ARRAY(SELECT jsonb_array_elements_text(warnings)), resident_id,
            to_timestamp(applied_at)
        FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, received_at float8, peer_address text, facility text,
            sending_application text, sending_facility text, control_id text, message_type text, trigger_event text,
            structure text, version text, charset text, processing_id text, content_hash text, byte_count int, raw_ciphertext text,
            raw_key_id text, status text, ack_code text, commit_ack text, ack text, error_code text, error_hl7_code int,
            error_location text, error_text text, warnings jsonb, resident_id uuid, applied_at float8)
        ON CONFLICT (facility, control_id, content_hash) WHERE facility IS NOT NULL AND control_id IS NOT NULL DO NOTHING
        RETURNING id
        """
    let binds: PostgresBindings
}
