import Access
import Crypto
import Foundation
import HL7v2
import Logging
import Metrics
import NIOCore
import PostgresNIO
import Registry
import Storage
import Synchronization

/// The HL7 v2 gateway behind the MLLP listener. Its three promises:
/// - it never acknowledges what it has not stored: the message, its outcome and its effects
///   commit in one transaction, and the ACK is written only after that commit;
/// - it never applies a message twice: a resend (same facility, MSH-10 and bytes) gets the
///   stored ACK back, and the inbox's unique index settles a resend racing the original;
/// - it never loses one it could not apply: unparseable, unknown-sender, unsupported and failed
///   messages are stored too, with their error, for the dead-letter view and `hl7 replay`.
///
/// A control ID reused for different bytes is a different message: it is applied, and the ACK
/// carries a warning (ERR severity W, code 205) so the sender's integrator can see it.
public struct HL7Gateway: MLLPMessageHandler {
    /// Advisory-lock class for per-patient ordering (`pg_advisory_xact_lock(class, hash)`).
    static let patientLockClass: Int32 = 0x4837
    /// Messages larger than this commit alone.
    static let batchableMessageBytes = 256 << 10

    let client: PostgresClient
    let protector: FieldProtector
    let router: HL7Router
    let inbox: Inbox
    let maximumMessageBytes: Int
    let logger: Logger
    let senders = SenderCache()
    let commits: GroupCommit<PendingMessage, [[UInt8]]>

    /// `batchSize` and `concurrentBatches` shape the group commit: how many messages may share a
    /// transaction, and how many such transactions run at once.
    public init(
        client: PostgresClient, protector: FieldProtector, router: HL7Router, maximumMessageBytes: Int, batchSize: Int = 64,
        concurrentBatches: Int = 4, logger: Logger
    ) {
        self.client = client
        self.commits = GroupCommit(maximumBatch: batchSize, concurrency: concurrentBatches)
        self.protector = protector
        self.router = router
        self.inbox = Inbox(logger: logger)
        self.maximumMessageBytes = maximumMessageBytes
        self.logger = logger
    }

    public func handle(message buffer: ByteBuffer, from peer: MLLPPeer) async -> [ByteBuffer] {
        let bytes = Array(buffer.readableBytesView)
        do {
            return try await process(bytes, peer: peer).map { ByteBuffer(bytes: $0) }
        } catch {
            // Nothing was stored: say so, so the sender keeps the message and sends it again.
            logger.error("HL7 message not stored", metadata: ["error.type": "\(String(reflecting: type(of: error)))"])
            Self.count(status: "not-stored", ack: "AR")
            return [ByteBuffer(bytes: Self.notStored(bytes))]
        }
    }

    /// AR (CR in enhanced mode) with error 207: the answer when the inbox could not be written.
    static func notStored(_ bytes: [UInt8]) -> [UInt8] {
        let text = "message not stored; send it again"
        let options = HL7ParseOptions(defaultCharset: .gb18030)
        let message: HL7Message
        do {
            message = try HL7Message.parse(bytes, options: options)
        } catch {
            return HL7Acknowledgement.reject(unparseable: bytes, error: error, controlID: newControlID(), timestamp: now()).encoded()
        }
        let code: HL7AckCode = if case .enhanced = HL7AckMode(message) { .commitReject } else { .applicationReject }
        let issue = HL7AckIssue(code: .applicationInternalError, location: HL7Location(segmentID: "MSH", segmentSequence: 1), message: text)
        return HL7Acknowledgement.build(for: message, code: code, controlID: newControlID(), timestamp: now(), issues: [issue]).encoded()
    }

    /// Everything but the store failing: the acknowledgement frames to send.
    func process(_ bytes: [UInt8], peer: MLLPPeer) async throws -> [[UInt8]] {
        let receivedAt = Date()
        let contentHash = Array(SHA256.hash(data: bytes))
        let (parsed, sender, peek, xml) = try await read(bytes, trusted: try await certifiedSender(peer))
        let message: HL7Message
        switch parsed {
        case .success(let decoded): message = decoded
        case .failure(let error):
            let ack = Self.encode(
                HL7Acknowledgement.reject(
                    unparseable: xml ? [] : bytes, error: error, controlID: Self.newControlID(), timestamp: Self.now(),
                    charset: sender?.charset ?? .utf8), xml: xml)
            let entry = InboxEntry(
                id: UUID.timeOrdered(), receivedAt: receivedAt, peerAddress: peer.address, facility: sender?.facility,
                header: InboxHeader(peek: peek), contentHash: contentHash, byteCount: bytes.count,
                raw: try protector.seal(bytes: bytes, context: Inbox.rawContext), status: .rejected, ackCode: .applicationReject,
                commitAck: nil, ack: ack, error: HL7ApplicationError(error.hl7Code, error.location, error.description),
                warnings: [], residentID: nil)
            try await storeAlone(entry)
            return [ack]
        }

        let header = message.header
        let mode = HL7AckMode(message)
        var entry = InboxEntry(
            id: UUID.timeOrdered(), receivedAt: receivedAt, peerAddress: peer.address, facility: sender?.facility,
            header: InboxHeader(header), contentHash: contentHash, byteCount: bytes.count,
            raw: try protector.seal(bytes: bytes, context: Inbox.rawContext), status: .rejected, ackCode: .applicationReject,
            commitAck: nil, ack: nil, error: nil, warnings: [], residentID: nil)

        // Refusals before application: stored, answered AR (CR in enhanced mode).
        if let refusal = Self.refusal(header, resolved: sender != nil) {
            entry.error = refusal
            acknowledge(&entry, message, mode: mode, stored: true, applied: false, refused: true, xml: xml)
            try await storeAlone(entry)
            return Self.frames(entry)
        }
        let facility = sender!.facility
        let context = HL7Context(
            facility: facility,
            principal: Principal(clientID: "hl7:\(facility)", role: .his, facility: facility),
            messageID: entry.id, today: ChinaDate.today())
        let route = router.application(for: header.messageType)
        let pending = PendingMessage(message: message, entry: entry, mode: mode, xml: xml, context: context, route: route)
        return try await commits.submit(keys: Self.orderingKeys(pending), solo: !pending.batchable, pending) { batch in
            await commit(batch)
        }
    }

    /// What a message must not run beside: its patient (and a merge's prior patient), so that
    /// messages about one patient apply in arrival order; and its control ID, so that a resend or
    /// a reused ID is judged against a committed predecessor, never one still in flight.
    static func orderingKeys(_ pending: PendingMessage) -> [String] {
        let facility = pending.context.facility
        var keys = patientKeys(pending.message, facility: facility)
        keys.append(facility + "\u{1E}" + (pending.entry.header.controlID ?? pending.entry.id.uuidString))
        return keys
    }

    /// A parsed message from a known sender, waiting for its transaction.
    struct PendingMessage: Sendable {
        var message: HL7Message
        var entry: InboxEntry
        var mode: HL7AckMode
        var xml: Bool
        var context: HL7Context
        var route: Result<any HL7Application, HL7ApplicationError>

        /// Unsupported messages (no effects) and what a batch application accepts share a
        /// transaction; a large message (a base64 document, say) is stored on its own, so that a
        /// burst of them never builds one enormous statement.
        var batchable: Bool {
            guard entry.byteCount <= HL7Gateway.batchableMessageBytes else { return false }
            return switch route {
            case .failure: true
            case .success(let application): (application as? any HL7BatchApplication)?.canBatch(message) ?? false
            }
        }
    }

    /// Applies a batch of messages in one transaction (group commit) and answers each with its
    /// frames. A database conflict reruns the batch; any other database failure reruns its
    /// messages one at a time, so a value PostgreSQL refuses fails its own message only.
    func commit(_ batch: [PendingMessage]) async -> [Result<[[UInt8]], any Error>] {
        if batch.count == 1, !batch[0].batchable { return [await result { try await applyAlone(batch[0]) }] }
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await commitTogether(batch).map { .success($0) }
            } catch let error as PSQLError where attempt < 5 && Self.isTransient(error) {
                continue
            } catch is ResendRace where attempt < 5 {
                continue
            } catch {
                if batch.count > 1 {
                    logger.warning("HL7 batch failed; applying its messages one at a time", metadata: ["error.type": "\(type(of: error))"])
                }
                var results: [Result<[[UInt8]], any Error>] = []
                for pending in batch { results.append(await result { try await applyAlone(pending) }) }
                return results
            }
        }
    }

    private func result<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    /// Another gateway stored one of the batch's messages first: the batch reruns and finds it.
    struct ResendRace: Error {}

    /// A batch application answered for more or fewer messages than it was given: its messages
    /// are applied one at a time instead.
    struct BatchResultMismatch: Error {}

    func commitTogether(_ batch: [PendingMessage]) async throws -> [[[UInt8]]] {
        try await client.withConnection { connection in
            // On the connection's own event loop, BEGIN and COMMIT included: every statement's
            // result resumes the batch on the thread that read it, instead of waking a pool thread.
            try await withTaskExecutorPreference(EventLoopExecutor(connection.eventLoop)) {
                try await connection.transaction(logger: logger) {
                    try await commitTogether(batch, on: connection)
                }
            }
        }
    }

    private func commitTogether(_ batch: [PendingMessage], on connection: PostgresConnection) async throws -> [[[UInt8]]] {
        do {
            let found = try await inbox.lookup(
                batch.map { ($0.context.facility, $0.entry.header.controlID ?? "", $0.entry.contentHash) },
                locking: batch.flatMap { Self.patientKeys($0.message, facility: $0.context.facility) }, lockClass: Self.patientLockClass,
                on: connection)
            var frames = [[[UInt8]]?](repeating: nil, count: batch.count)
            var entries = batch.map(\.entry)
            var groups: [String: (application: any HL7BatchApplication, members: [Int])] = [:]
            var order: [String] = []
            for (index, pending) in batch.enumerated() {
                if let stored = found[index].stored {
                    Self.count(status: "resend", ack: "stored")
                    frames[index] = [stored.commitAck, stored.ack].compactMap { $0 }
                    continue
                }
                switch pending.route {
                case .failure(let unsupported):
                    entries[index].status = .unsupported
                    entries[index].error = unsupported
                    acknowledge(
                        &entries[index], pending.message, mode: pending.mode, stored: true, applied: false, refused: false, xml: pending.xml
                    )
                case .success(let application):
                    let name = String(reflecting: type(of: application))
                    if groups[name] == nil {
                        groups[name] = (application as! any HL7BatchApplication, [])
                        order.append(name)
                    }
                    groups[name]!.members.append(index)
                }
            }
            for name in order {
                let (application, members) = groups[name]!
                let results = try await application.apply(
                    batch: members.map { (batch[$0].message, batch[$0].context) }, on: connection)
                guard results.count == members.count else { throw BatchResultMismatch() }
                for (index, outcome) in zip(members, results) {
                    record(outcome, of: batch[index], reused: found[index].reused, in: &entries[index])
                }
            }
            let stored = entries.indices.filter { frames[$0] == nil }
            guard try await inbox.store(stored.map { entries[$0] }, on: connection) == stored.count else { throw ResendRace() }
            for index in stored {
                frames[index] = Self.frames(entries[index])
                Self.count(status: entries[index].status.rawValue, ack: entries[index].ackCode.rawValue)
            }
            return frames.map { $0! }
        }
    }

    /// Fills the entry (status, error or warnings, ACK) from one batch application's result.
    func record(_ outcome: Result<HL7Applied, any Error>, of pending: PendingMessage, reused: Bool, in entry: inout InboxEntry) {
        switch outcome {
        case .success(let applied):
            entry.status = .applied
            entry.residentID = applied.residentID
            entry.warnings = applied.warnings
            if reused {
                entry.warnings.append("control ID \(entry.header.controlID ?? "") was used before for a different message")
            }
        case .failure(let error):
            entry.status = .failed
            entry.error = applicationError(error)
        }
        acknowledge(
            &entry, pending.message, mode: pending.mode, stored: true, applied: entry.status == .applied, refused: false, xml: pending.xml)
    }

    /// The error a sender sees: the application's own, or 207 without details for anything else.
    func applicationError(_ error: any Error) -> HL7ApplicationError {
        if let failure = error as? HL7ApplicationError { return failure }
        logger.error("HL7 application failed", metadata: ["error.type": "\(String(reflecting: type(of: error)))"])
        return HL7ApplicationError(
            .applicationInternalError, HL7Location(segmentID: "MSH", segmentSequence: 1), "application internal error")
    }

    /// One message in a transaction of its own: what cannot share one, and the fallback when a batch failed.
    func applyAlone(_ pending: PendingMessage) async throws -> [[UInt8]] {
        let (message, entry, context) = (pending.message, pending.entry, pending.context)
        // The control ID as the inbox keeps it (at most 180 characters), as the batch path uses it.
        let (facility, controlID, contentHash) = (context.facility, entry.header.controlID ?? "", entry.contentHash)
        var reused = false
        if !controlID.isEmpty {
            let found = try await client.withConnection { connection in
                try await inbox.lookup(facility: facility, controlID: controlID, contentHash: contentHash, on: connection)
            }
            if let stored = found.stored {
                Self.count(status: "resend", ack: "stored")
                return [stored.commitAck, stored.ack].compactMap { $0 }
            }
            reused = found.reused
        }
        var attempt = 0
        while true {
            attempt += 1
            do {
                let outcome: InboxEntry?
                do {
                    outcome = try await client.transaction(logger: logger) { connection -> InboxEntry? in
                        var entry = entry
                        try await apply(
                            message, route: pending.route, context: context, to: &entry, mode: pending.mode, xml: pending.xml,
                            reused: reused, savepoint: false, on: connection)
                        guard try await inbox.store(entry, on: connection) else { throw ResendRace() }
                        return entry
                    }
                } catch let failure as ApplicationFailure {
                    // The message's effects rolled back with the transaction; the message is kept with its error.
                    outcome = try await client.transaction(logger: logger) { connection in
                        try await inbox.store(failure.entry, on: connection) ? failure.entry : nil
                    }
                } catch is ResendRace {
                    outcome = nil
                }
                guard let outcome else {
                    // An identical message committed first: its ACK is the answer.
                    return try await client.withConnection { connection in
                        let stored = try await inbox.resend(
                            facility: facility, controlID: controlID, contentHash: contentHash, on: connection)
                        return [stored?.commitAck, stored?.ack].compactMap { $0 }
                    }
                }
                Self.count(status: outcome.status.rawValue, ack: outcome.ackCode.rawValue)
                return Self.frames(outcome)
            } catch let error as PSQLError where attempt < 5 && Self.isTransient(error) {
                // A concurrent registration of the same patient or a deadlock: run the message again.
                continue
            }
        }
    }

    /// A content error found while applying without a savepoint: the transaction must roll back,
    /// and `entry` (status failed, its ACK built) is stored on its own.
    struct ApplicationFailure: Error {
        let entry: InboxEntry
    }

    /// Applies inside the transaction. Content errors either roll back to a savepoint (replay), or,
    /// on the gateway's hot path where the savepoint's two round trips would cost every message,
    /// throw `ApplicationFailure` so the caller rolls back and stores the message alone. Either way
    /// the message is kept with its error and nothing else; database conflicts propagate for a
    /// whole rerun. `reused` says whether the control ID came before with other bytes (nil: look).
    func apply(
        _ message: HL7Message, route: Result<any HL7Application, HL7ApplicationError>, context: HL7Context, to entry: inout InboxEntry,
        mode: HL7AckMode, xml: Bool = false, reused knownReuse: Bool? = nil, savepoint: Bool = true, on connection: PostgresConnection
    ) async throws {
        let application: any HL7Application
        switch route {
        case .failure(let unsupported):
            entry.status = .unsupported
            entry.error = unsupported
            acknowledge(&entry, message, mode: mode, stored: true, applied: false, refused: false, xml: xml)
            return
        case .success(let found): application = found
        }
        let keys = Self.patientKeys(message, facility: context.facility)
        if !keys.isEmpty {
            try await connection.query(
                """
                SELECT count(pg_advisory_xact_lock(\(Self.patientLockClass), h))
                FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest(\(keys)::text[]) AS k ORDER BY 1) AS sorted
                """, logger: logger)
        }
        // The same control ID with other bytes: another message from a sender that reuses IDs.
        var reused = knownReuse ?? false
        if knownReuse == nil {
            reused =
                !(try await connection.query(
                    """
                    SELECT 1 FROM interop.messages
                    WHERE facility = \(context.facility) AND control_id = \(entry.header.controlID) AND id <> \(entry.id) LIMIT 1
                    """, logger: logger
                ).collect().isEmpty)
        }
        if savepoint { try await connection.query("SAVEPOINT apply", logger: logger) }
        do {
            let applied = try await application.apply(message, context: context, on: connection)
            if savepoint { try await connection.query("RELEASE SAVEPOINT apply", logger: logger) }
            entry.status = .applied
            entry.residentID = applied.residentID
            entry.warnings = applied.warnings
            if reused {
                entry.warnings.append("control ID \(entry.header.controlID ?? "") was used before for a different message")
            }
        } catch let error as PSQLError where Self.isTransient(error) {
            throw error
        } catch {
            if savepoint { try await connection.query("ROLLBACK TO SAVEPOINT apply", logger: logger) }
            entry.status = .failed
            entry.error = applicationError(error)
            if !savepoint {
                entry.warnings = []
                acknowledge(&entry, message, mode: mode, stored: true, applied: false, refused: false, xml: xml)
                throw ApplicationFailure(entry: entry)
            }
        }
        acknowledge(&entry, message, mode: mode, stored: true, applied: entry.status == .applied, refused: false, xml: xml)
    }

    typealias Sender = (facility: String, charset: HL7Charset?)

    /// Decodes a frame and finds its sender. A `trusted` sender (a client certificate's, or the
    /// one recorded when a stored message was received) wins; otherwise MSH-3/MSH-4, peeked from
    /// the raw bytes for the default charset, then resolved again from the decoded header when
    /// decoding changed them. HL7 v2 XML arrives on the same port; its ACKs go back as XML.
    func read(_ bytes: [UInt8], trusted: Sender?) async throws -> (
        message: Result<HL7Message, HL7Error>, sender: Sender?, peek: SenderPeek, xml: Bool
    ) {
        let peek = SenderPeek(bytes)
        let xml = Self.looksLikeXML(bytes)
        var sender = trusted
        if sender == nil { sender = try await resolveSender(application: peek.application, facility: peek.facility) }
        let message: HL7Message
        do {
            message = try parse(bytes, xml: xml, defaultCharset: sender?.charset)
        } catch {
            return (.failure(error), sender, peek, xml)
        }
        let (application, facility) = (message.header.sendingApplication.namespaceID, message.header.sendingFacility.namespaceID)
        if trusted == nil, application != peek.application || facility != peek.facility {
            sender = try await resolveSender(application: application, facility: facility)
        }
        return (.success(message), sender, peek, xml)
    }

    func parse(_ bytes: [UInt8], xml: Bool, defaultCharset: HL7Charset?) throws(HL7Error) -> HL7Message {
        if xml { return try HL7XML.decode(bytes, options: HL7XML.Options(maxBytes: maximumMessageBytes)) }
        let options = HL7ParseOptions(maxMessageBytes: maximumMessageBytes, defaultCharset: defaultCharset)
        do {
            return try HL7Message.parse(bytes, options: options)
        } catch  where error.code == .batchNotSupported {
            // One message inside a batch envelope (FHS/BHS … BTS/FTS), as file-based senders and
            // python-hl7's mllp_send frame a batch file: the envelope is dropped. Several messages
            // in one frame are still refused: each needs its own frame and its own ACK.
            if let batch = try? HL7Batch.parse(bytes, options: options), batch.messages.count == 1 { return batch.messages[0] }
            throw error
        }
    }

    /// An XML document (after any BOM and whitespace) rather than ER7, which starts with `MSH`.
    static func looksLikeXML(_ bytes: [UInt8]) -> Bool {
        var index = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        while index < bytes.count, [0x20, 0x09, 0x0D, 0x0A].contains(bytes[index]) { index += 1 }
        return index < bytes.count && bytes[index] == UInt8(ascii: "<")
    }

    static func encode(_ ack: HL7Message, xml: Bool) -> [UInt8] {
        xml ? Array(HL7XML.encode(ack).utf8) : ack.encoded()
    }

    /// Fills the ACK code and frames for the entry's outcome.
    func acknowledge(
        _ entry: inout InboxEntry, _ message: HL7Message, mode: HL7AckMode, stored: Bool, applied: Bool, refused: Bool, xml: Bool = false
    ) {
        var issues: [HL7AckIssue] = []
        if let error = entry.error {
            issues.append(HL7AckIssue(code: error.code, severity: .error, location: error.location, message: error.text))
        }
        for warning in entry.warnings {
            let code: HL7ErrorCode = warning.hasPrefix("control ID") ? .duplicateKeyIdentifier : .messageAccepted
            issues.append(
                HL7AckIssue(code: code, severity: .warning, location: HL7Location(segmentID: "MSH", segmentSequence: 1), message: warning))
        }
        let code: HL7AckCode = refused ? .applicationReject : applied ? .applicationAccept : .applicationError
        entry.ackCode = code
        let timestamp = Self.now()
        switch mode {
        case .original:
            entry.ack = Self.encode(
                HL7Acknowledgement.build(for: message, code: code, controlID: Self.newControlID(), timestamp: timestamp, issues: issues),
                xml: xml)
        case .enhanced(let accept, let applicationCondition):
            let commitCode: HL7AckCode = refused ? .commitReject : .commitAccept
            if accept.requiresAcknowledgement(success: commitCode == .commitAccept) {
                entry.commitAck = Self.encode(
                    HL7Acknowledgement.build(
                        for: message, code: commitCode, controlID: Self.newControlID(), timestamp: timestamp, issues: refused ? issues : []),
                    xml: xml)
            }
            if !refused, applicationCondition.requiresAcknowledgement(success: applied) {
                entry.ack = Self.encode(
                    HL7Acknowledgement.build(
                        for: message, code: code, controlID: Self.newControlID(), timestamp: timestamp, issues: issues),
                    xml: xml)
            }
        }
    }

    /// What is refused before any application: an unknown sender, a version or processing id this
    /// gateway does not take.
    static func refusal(_ header: HL7MessageHeader, resolved: Bool) -> HL7ApplicationError? {
        if !resolved {
            return HL7ApplicationError(
                .unknownKeyIdentifier, HL7Location(segmentID: "MSH", segmentSequence: 1, field: 4),
                "sending facility (MSH-4) with application (MSH-3) is not a registered sender")
        }
        if !header.version.hasPrefix("2.") {
            return HL7ApplicationError(
                .unsupportedVersionID, HL7Location(segmentID: "MSH", segmentSequence: 1, field: 12), "only HL7 version 2.x is accepted")
        }
        if !["P", "T", "D"].contains(header.processingID.uppercased()) {
            return HL7ApplicationError(
                .unsupportedProcessingID, HL7Location(segmentID: "MSH", segmentSequence: 1, field: 11),
                "processing ID must be P, T or D")
        }
        return nil
    }

    static func frames(_ entry: InboxEntry) -> [[UInt8]] { [entry.commitAck, entry.ack].compactMap { $0 } }

    /// The patients of one facility a message is about: the id it applies (the same choice the
    /// ADT mapping makes) and, for a merge, the prior id. Locked per patient between gateway
    /// processes, queued per patient within one.
    static func patientKeys(_ message: HL7Message, facility: String) -> [String] {
        var ids: [String] = []
        if let id = PatientMapping.identifiers(message).localId { ids.append(id) }
        if message.segment("MRG") != nil, let prior = PatientMapping.priorIdentifierIfAny(message), !ids.contains(prior) {
            ids.append(prior)
        }
        return ids.map { facility + "\u{1F}" + $0 }
    }

    static func isTransient(_ error: PSQLError) -> Bool {
        guard let state = error.serverInfo?[.sqlState] else { return false }
        // Unique violation, deadlock, serialization failure; and the ingest sessions' lock and
        // statement timeouts, which a rerun may well get past.
        return state == "23505" || state == "40P01" || state == "40001" || state == "55P03" || state == "57014"
    }

    func storeAlone(_ entry: InboxEntry) async throws {
        _ = try await client.transaction(logger: logger) { connection in try await inbox.store(entry, on: connection) }
        Self.count(status: entry.status.rawValue, ack: entry.ackCode.rawValue)
    }

    /// The registered facility behind MSH-3/MSH-4: a row of `interop.senders` (exact application
    /// first, then any application), else an active facility whose code is MSH-4 itself.
    func resolveSender(application: String, facility: String) async throws -> Sender? {
        guard !facility.isEmpty else { return nil }
        if let known = senders.lookup(application: application, facility: facility) { return known }
        let rows = try await client.query(
            """
            SELECT facility, default_charset FROM (
                SELECT s.facility, s.default_charset, CASE WHEN s.sending_application = \(application) THEN 0 ELSE 1 END AS rank
                FROM interop.senders s JOIN registry.facilities f ON f.code = s.facility AND f.active
                WHERE s.sending_facility = \(facility) AND s.sending_application IN (\(application), '')
                UNION ALL
                SELECT code, NULL, 2 FROM registry.facilities WHERE code = \(facility) AND active
            ) AS found ORDER BY rank LIMIT 1
            """, logger: logger)
        guard let sender = try await Self.sender(rows) else { return nil }
        senders.remember(application: application, facility: facility, sender)
        return sender
    }

    /// What `hl7 replay` did with one stored message.
    public struct Replayed: Sendable {
        public var id: UUID
        public var before: String
        public var after: String
        public var ackCode: String
        /// The error that still stands, if any (codes and positions, never content).
        public var error: String?
    }

    public enum ReplayError: Error, CustomStringConvertible {
        case notFound(UUID)
        public var description: String {
            switch self {
            case .notFound(let id): "no stored message \(id.uuidString.lowercased())"
            }
        }
    }

    /// Applies a stored message again (after a fix: a registered sender, a new handler, corrected
    /// reference data). An applied message is left alone: nothing is ever applied twice. The row
    /// keeps its id and counts the attempt; its ACK becomes what the gateway would answer now.
    public func replay(id: UUID) async throws -> Replayed {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await client.transaction(logger: logger) { connection in try await replay(id: id, on: connection) }
            } catch let error as PSQLError where attempt < 5 && Self.isTransient(error) {
                continue
            }
        }
    }

    private func replay(id: UUID, on connection: PostgresConnection) async throws -> Replayed {
        let rows = try await connection.query(
            """
            SELECT raw_ciphertext, raw_key_id, status, received_at, peer_address, facility FROM interop.messages WHERE id = \(id)
            FOR UPDATE
            """, logger: logger
        ).collect()
        guard let row = rows.first else { throw ReplayError.notFound(id) }
        let (ciphertext, keyID, status, receivedAt, peer, recorded) = try row.decode((Data, String, String, Date, String?, String?).self)
        guard status != InboxEntry.Status.applied.rawValue else {
            return Replayed(id: id, before: status, after: status, ackCode: "AA", error: nil)
        }
        let bytes = try protector.openBytes(.init(keyID: keyID, bytes: Array(ciphertext)), context: Inbox.rawContext)
        // The facility resolved at receipt (perhaps from a client certificate) still holds.
        let trusted: Sender? = if let recorded { try await senderOfRecord(recorded) } else { nil }
        let (parsed, sender, _, xml) = try await read(bytes, trusted: trusted)
        let message: HL7Message
        switch parsed {
        case .success(let decoded): message = decoded
        case .failure(let error):
            try await connection.query("UPDATE interop.messages SET attempts = attempts + 1 WHERE id = \(id)", logger: logger)
            return Replayed(id: id, before: status, after: status, ackCode: "AR", error: "\(error.code.rawValue): \(error)")
        }
        let header = message.header
        let mode = HL7AckMode(message)
        var entry = InboxEntry(
            id: id, receivedAt: receivedAt, peerAddress: peer, facility: sender?.facility, header: InboxHeader(header),
            contentHash: [], byteCount: bytes.count, raw: .init(keyID: keyID, bytes: Array(ciphertext)), status: .rejected,
            ackCode: .applicationReject, commitAck: nil, ack: nil, error: nil, warnings: [], residentID: nil)
        if let refusal = Self.refusal(header, resolved: sender != nil) {
            entry.error = refusal
            acknowledge(&entry, message, mode: mode, stored: true, applied: false, refused: true, xml: xml)
        } else {
            let context = HL7Context(
                facility: sender!.facility,
                principal: Principal(clientID: "hl7:\(sender!.facility)", role: .his, facility: sender!.facility),
                messageID: id, today: ChinaDate.today())
            try await apply(
                message, route: router.application(for: header.messageType), context: context, to: &entry, mode: mode, xml: xml,
                on: connection)
        }
        try await inbox.update(entry, on: connection)
        return Replayed(
            id: id, before: status, after: entry.status.rawValue, ackCode: entry.ackCode.rawValue,
            error: entry.error.map { "\($0.code.rawValue) at \($0.location.fieldPath): \($0.text)" })
    }

    /// The sender a TLS client certificate is registered to, if the peer presented one that is.
    func certifiedSender(_ peer: MLLPPeer) async throws -> Sender? {
        guard let hash = peer.certificateSHA256 else { return nil }
        return try await Self.sender(
            client.query(
                """
                SELECT s.facility, s.default_charset FROM interop.senders s JOIN registry.facilities f ON f.code = s.facility AND f.active
                WHERE s.certificate_sha256 = \(hash)
                """, logger: logger))
    }

    /// A facility already resolved for a stored message, with the default charset its senders declare.
    func senderOfRecord(_ facility: String) async throws -> Sender {
        let charset = try await Self.sender(
            client.query(
                """
                SELECT facility, default_charset FROM interop.senders
                WHERE facility = \(facility) AND default_charset IS NOT NULL LIMIT 1
                """, logger: logger))?.charset
        return (facility, charset)
    }

    /// The first (facility, default_charset) row, if any.
    static func sender(_ rows: PostgresRowSequence) async throws -> Sender? {
        for try await (code, charset) in rows.decode((String, String?).self) {
            return (code, charset.flatMap { HL7Charset(msh18: $0) })
        }
        return nil
    }

    /// `qianyun_hl7_messages_total{status,ack}` in /metrics: low-cardinality labels only.
    static func count(status: String, ack: String) {
        Counter(label: "qianyun_hl7_messages_total", dimensions: [("status", status), ("ack", ack)]).increment()
    }

    static func now() -> HL7DateTime {
        HL7DateTime(epochSeconds: Int(Date().timeIntervalSince1970), offsetMinutes: 480)
    }

    /// ACK control IDs: short enough for v2.3/2.4's 20-character MSH-10, unique without coordination.
    static func newControlID() -> String {
        "QY" + String(UInt64.random(in: 0...UInt64.max), radix: 36).uppercased()
    }
}

/// Senders resolved in the last 30 seconds, so a busy connection does not ask PostgreSQL who it
/// is for every message. Only resolved senders are kept: a sender registered after being refused
/// is accepted at its next message; a change to a known sender takes effect within 30 seconds.
final class SenderCache: Sendable {
    typealias Sender = (facility: String, charset: HL7Charset?)
    static let lifetime: TimeInterval = 30
    private let entries = Mutex<[String: (expires: Date, sender: Sender)]>([:])

    func lookup(application: String, facility: String) -> Sender? {
        let key = application + "\u{1F}" + facility
        return entries.withLock { entries in
            guard let entry = entries[key], entry.expires > Date() else { return nil }
            return entry.sender
        }
    }

    func remember(application: String, facility: String, _ sender: Sender) {
        entries.withLock { entries in
            // Bounded: a flood of made-up MSH-4 values cannot grow it, since only resolved senders enter.
            if entries.count > 10_000 { entries.removeAll() }
            entries[application + "\u{1F}" + facility] = (Date().addingTimeInterval(Self.lifetime), sender)
        }
    }
}
