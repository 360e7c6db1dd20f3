import Access
import Foundation
import Logging
import PostgresNIO
import Registry
import Storage

/// A document a message points at (kept elsewhere: the record, an object store).
public struct AttachmentReference: Sendable, Codable, Equatable {
    public var reference: String
    public var contentType: String
    public var title: String?
}

public struct ConsultationMessage: Sendable, Codable, Equatable {
    public var id: String
    public var consultation: String
    public var sender: String
    public var text: String
    public var attachments: [AttachmentReference]
    public var sentAt: Date
}

public struct MessageRequest: Sendable, Decodable {
    public var text: String?
    public var attachments: [AttachmentReference]?
}

/// The thread of a consultation, open to its participants only: the resident and the clinician
/// holding it.
public struct MessageService: Sendable {
    let client: PostgresClient
    let consultations: ConsultationService
    let logger: Logger

    public init(client: PostgresClient, consultations: ConsultationService, logger: Logger) {
        self.client = client
        self.consultations = consultations
        self.logger = logger
    }

    /// The caller's role in the thread, or a refusal.
    func participant(_ row: ConsultationService.Row, _ principal: Principal, on connection: PostgresConnection) async throws -> String {
        if principal.role == .patient { return "resident" }
        let me = try await ConsultationAccess.clinician(principal, on: connection, logger: logger)
        guard row.provider == me.provider else {
            throw ConsultationError.forbidden(code: "not-a-participant", detail: "only the resident and the clinician holding it take part")
        }
        return "clinician"
    }

    public func post(_ body: MessageRequest, consultation text: String, by principal: Principal, requestID: String?) async throws
        -> ConsultationMessage
    {
        let id = try ConsultationAccess.uuid(text, "consultation")
        let message = (body.text ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...4000).contains(message.count) else {
            throw ConsultationError.invalid(field: "text", reason: "is required (at most 4000 characters)")
        }
        let attachments = body.attachments ?? []
        guard attachments.count <= 10 else { throw ConsultationError.invalid(field: "attachments", reason: "at most 10") }
        for (index, attachment) in attachments.enumerated() {
            guard (1...500).contains(attachment.reference.count), !attachment.reference.contains(where: \.isNewline),
                !attachment.reference.unicodeScalars.contains(where: { $0.value < 0x20 })
            else {
                throw ConsultationError.invalid(field: "attachments.\(index).reference", reason: "must be 1 to 500 printable characters")
            }
            guard Self.isMediaType(attachment.contentType) else {
                throw ConsultationError.invalid(field: "attachments.\(index).contentType", reason: "must be a media type (image/jpeg)")
            }
            guard (attachment.title?.count ?? 0) <= 200 else {
                throw ConsultationError.invalid(field: "attachments.\(index).title", reason: "at most 200 characters")
            }
        }
        let encoded = String(decoding: try JSONEncoder().encode(attachments), as: UTF8.self)
        let messageID = UUID.timeOrdered()
        return try await client.transaction(logger: logger) { connection in
            // FOR SHARE: the thread and the consultation's state change one after the other.
            let row = try await consultations.visible(id, by: principal, on: connection)
            let role = try await participant(row, principal, on: connection)
            let status = try await connection.query(
                "SELECT status FROM consultation.consultations WHERE id = \(id) FOR SHARE", logger: logger
            ).collect().first?.decode(String.self)
            guard status == "queued" || status == "claimed" || status == "in-progress" else {
                throw ConsultationError.conflict(
                    code: "consultation-\(status ?? "gone")", detail: "the consultation is \(status ?? "gone"); its thread is closed")
            }
            let rows = try await connection.query(
                """
                INSERT INTO consultation.messages (id, consultation_id, sender_role, sender_client, body, attachments)
                VALUES (\(messageID), \(id), \(role), \(principal.clientID), \(message), \(encoded)::jsonb)
                RETURNING sent_at
                """, logger: logger)
            let sentAt = try await rows.collect().first?.decode(Date.self) ?? Date()
            try await consultations.audit.record(
                principal, "consultation.message.create", resident: row.resident,
                resource: "consultations/\(row.consultation.id)/messages/\(messageID.lowercased)", requestID: requestID, on: connection)
            return ConsultationMessage(
                id: messageID.lowercased, consultation: row.consultation.id, sender: role, text: message, attachments: attachments,
                sentAt: sentAt)
        }
    }

    /// The thread in the order it was written (at most the last 1,000 messages).
    public func messages(consultation text: String, by principal: Principal, requestID: String?) async throws -> [ConsultationMessage] {
        let id = try ConsultationAccess.uuid(text, "consultation")
        return try await client.withConnection { connection in
            let row = try await consultations.visible(id, by: principal, on: connection)
            _ = try await participant(row, principal, on: connection)
            let rows = try await connection.query(
                """
                SELECT id, sender_role, body, attachments::text, sent_at FROM (
                    SELECT * FROM consultation.messages WHERE consultation_id = \(id) ORDER BY sent_at DESC, id DESC LIMIT 1000) m
                ORDER BY sent_at, id
                """, logger: logger)
            var result: [ConsultationMessage] = []
            for try await (messageID, sender, body, attachments, sentAt) in rows.decode((UUID, String, String, String, Date).self) {
                result.append(
                    ConsultationMessage(
                        id: messageID.lowercased, consultation: row.consultation.id, sender: sender, text: body,
                        attachments: (try? JSONDecoder().decode([AttachmentReference].self, from: Data(attachments.utf8))) ?? [],
                        sentAt: sentAt))
            }
            try await consultations.audit.record(
                principal, "consultation.message.list", resident: row.resident, resource: "consultations/\(row.consultation.id)/messages",
                requestID: requestID, on: connection)
            return result
        }
    }

    static func isMediaType(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard text.count <= 100, parts.count == 2 else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty
                && part.unicodeScalars.allSatisfy {
                    $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "+-.".unicodeScalars.contains($0))
                }
        }
    }
}
