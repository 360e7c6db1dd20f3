import ArgumentParser
import Foundation
import HL7v2
import Interop
import Logging
import NIOSSL
import PostgresNIO
import QianyunServer
import Registry
import Synchronization

/// What the connections of `hl7 send` saw, shared between them.
final class SendTally: Sendable {
    let codes = Mutex<[String: Int]>([:])
    let latencies = Mutex<[Double]>([])
    let unanswered = Mutex(0)
}

struct HL7: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hl7", abstract: "The HL7 v2 gateway: send, replay, inspect.", subcommands: [Send.self, Replay.self, Inspect.self])

    /// Splits a file into messages as integrators keep them: one after another, each starting
    /// with `MSH`, lines ended by `\r`, `\n` or `\r\n`, MLLP framing bytes and byte-order marks
    /// ignored. The bytes are otherwise sent as they are (a GBK file stays GBK).
    static func messages(in bytes: [UInt8]) -> [[UInt8]] {
        var cleaned: [UInt8] = []
        cleaned.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0B || byte == 0x1C {
                index += 1
                continue
            }
            // A byte-order mark where a line starts (files saved by Windows editors) is not content.
            if byte == 0xEF, bytes[index...].starts(with: [0xEF, 0xBB, 0xBF]), cleaned.last == nil || cleaned.last == 0x0D {
                index += 3
                continue
            }
            if byte == 0x0D || byte == 0x0A {
                if cleaned.last != 0x0D { cleaned.append(0x0D) }
                index += 1
                continue
            }
            cleaned.append(byte)
            index += 1
        }
        // A batch file's envelope (FHS/BHS … BTS/FTS) is not sent: over MLLP each message goes alone.
        var lines = cleaned.split(separator: 0x0D, omittingEmptySubsequences: false)
        lines.removeAll { line in line.count >= 4 && ["FHS", "BHS", "BTS", "FTS"].contains { line.starts(with: Array($0.utf8)) } }
        cleaned = Array(lines.joined(separator: [0x0D]))
        var messages: [[UInt8]] = []
        var start: Int?
        for position in cleaned.indices where cleaned[position...].starts(with: Array("MSH".utf8)) {
            guard position == 0 || cleaned[position - 1] == 0x0D else { continue }
            if let begin = start { messages.append(Array(cleaned[begin..<position])) }
            start = position
        }
        if let begin = start { messages.append(Array(cleaned[begin...])) }
        return messages.filter { !$0.isEmpty }
    }

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a file of HL7 v2 messages to a gateway over MLLP and report every acknowledgement.",
            discussion: """
                Each connection sends its share of the messages one at a time, waiting for the ACK \
                (two ACKs when MSH-15 and MSH-16 are both AL). Prints one line per ACK unless --quiet, \
                then a summary with the ACK codes and latencies. Exits 1 when a message got no ACK.
                """)
        @Argument(help: "A file of messages.") var file: String
        @Option(help: "Gateway host.") var host = "127.0.0.1"
        @Option(help: "Gateway MLLP port.") var port = 2575
        @Option(help: "Connections sending at once; messages are dealt out round-robin.") var connections = 1
        @Option(help: "Send the whole file this many times.") var `repeat` = 1
        @Flag(help: "Print only the summary.") var quiet = false
        @Option(help: "Seconds to wait for an acknowledgement before giving up on the connection.") var timeout = 30
        @Flag(help: "MLLP over TLS.") var tls = false
        @Option(help: "PEM CA bundle the gateway's certificate must chain to (implies --tls; default: the system's).")
        var tlsCA: String?
        @Option(help: "PEM client certificate for mutual TLS (implies --tls; with --tls-key).") var tlsCert: String?
        @Option(help: "PEM key of the client certificate.") var tlsKey: String?

        func validate() throws {
            guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
            guard (1...1024).contains(connections) else { throw ValidationError("--connections must be from 1 to 1024") }
            guard (1...100_000).contains(`repeat`) else { throw ValidationError("--repeat must be from 1 to 100000") }
            guard (1...3600).contains(timeout) else { throw ValidationError("--timeout must be from 1 to 3600 seconds") }
        }

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file) else { throw StartupFailure(message: "cannot read \(file)") }
            let messages = HL7.messages(in: Array(data))
            guard !messages.isEmpty else { throw StartupFailure(message: "no HL7 v2 messages (segments starting MSH) in \(file)") }
            let all = Array(repeatElement(messages, count: `repeat`).joined())
            let (host, port, quiet, connections, timeout) = (self.host, self.port, self.quiet, self.connections, self.timeout)
            let tlsConfiguration = try clientTLS()
            let tally = SendTally()
            let clock = ContinuousClock()
            let started = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<connections {
                    let share = stride(from: lane, to: all.count, by: connections).map { all[$0] }
                    group.addTask {
                        do {
                            let client = try await MLLPClient.connect(
                                host: host, port: port, tls: tlsConfiguration, timeout: .seconds(Int64(timeout)))
                            try await client.run { send in
                                for message in share {
                                    let began = clock.now
                                    let frames = try await send(message, .acknowledgements(of: message))
                                    let elapsed = clock.now - began
                                    tally.latencies.withLock {
                                        $0.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)
                                    }
                                    for frame in frames {
                                        let (code, line) = HL7.describe(ack: frame)
                                        tally.codes.withLock { $0[code, default: 0] += 1 }
                                        if !quiet { print(line) }
                                    }
                                }
                            }
                        } catch {
                            tally.unanswered.withLock { $0 += 1 }
                            FileHandle.standardError.write(Data("connection \(lane): \(error)\n".utf8))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let seconds = Double((clock.now - started).components.attoseconds) / 1e18 + Double((clock.now - started).components.seconds)
            let sorted = tally.latencies.withLock { $0.sorted() }
            func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
            let summary = tally.codes.withLock { $0.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") }
            print(
                String(
                    format:
                        "sent %d messages on %d connections in %.2f s (%.0f messages/s); ACKs: %@; ACK latency p50 %.2f ms, p99 %.2f ms",
                    sorted.count, connections, seconds, Double(sorted.count) / max(seconds, 1e-9), summary, percentile(0.5),
                    percentile(0.99)))
            if tally.unanswered.withLock({ $0 }) > 0 || sorted.count < all.count { throw ExitCode(1) }
        }

        /// The gateway's certificate is checked against the CA (or the system's roots); its host
        /// name is not, since gateways are usually addressed by IP inside a hospital network.
        func clientTLS() throws -> TLSConfiguration? {
            guard tls || tlsCA != nil || tlsCert != nil else { return nil }
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .noHostnameVerification
            if let tlsCA { configuration.trustRoots = .file(tlsCA) }
            if let tlsCert, let tlsKey {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(tlsCert).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: tlsKey, format: .pem))
            }
            return configuration
        }
    }

    /// `MSA-1`, and a line naming the acknowledged control ID and any error.
    static func describe(ack: [UInt8]) -> (String, String) {
        guard let message = try? HL7Message.parse(ack, options: HL7ParseOptions(defaultCharset: .gb18030)) else {
            return ("unreadable", "unreadable acknowledgement (\(ack.count) bytes)")
        }
        let code = message["MSA-1"] ?? "?"
        var line = "\(message["MSA-2"] ?? "") \(code)"
        if let error = message["ERR-3"] { line += " \(error) \(message["ERR-8"] ?? message["ERR-3.2"] ?? "")" }
        return (code, line)
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply stored messages again after a fix; applied messages are never applied twice.",
            discussion: "Select by --id, or by --status (default failed and unsupported) with --facility and --since.")
        @OptionGroup var common: Common
        @Option(name: .customLong("id"), help: "A message id (repeatable).") var ids: [String] = []
        @Option(help: "Statuses to replay (repeatable): failed, unsupported, rejected.") var status: [String] = []
        @Option(help: "Only messages from this facility.") var facility: String?
        @Option(help: "Only messages received at or after this time (ISO 8601, e.g. 2026-11-25T08:00:00+08:00).") var since: String?
        @Option(help: "At most this many messages.") var limit = 1000
        @Flag(help: "List what would be replayed, change nothing.") var dryRun = false

        func run() async throws {
            let (configuration, logger) = try common.load()
            let protector = try QianyunServer.fieldProtector(configuration)
            let ids = try self.ids.map { text in
                guard let id = UUID(uuidString: text) else { throw ValidationError("--id \(text) is not a message id") }
                return id
            }
            let statuses = status.isEmpty ? ["failed", "unsupported"] : status
            guard statuses.allSatisfy({ ["failed", "unsupported", "rejected"].contains($0) }) else {
                throw ValidationError("--status takes failed, unsupported or rejected")
            }
            let sinceDate = try since.map { text in
                guard let date = ISO8601DateFormatter().date(from: text) else { throw ValidationError("--since is not an ISO 8601 time") }
                return date
            }
            let (limit, facility, dryRun) = (self.limit, self.facility, self.dryRun)
            let results = try await withPostgres(configuration, logger: logger) { client -> [String] in
                let selected: [UUID]
                if !ids.isEmpty {
                    selected = ids
                } else {
                    let rows = try await client.query(
                        """
                        SELECT id FROM interop.messages
                        WHERE status = ANY(\(statuses)::text[]) AND (\(facility)::text IS NULL OR facility = \(facility))
                          AND (\(sinceDate)::timestamptz IS NULL OR received_at >= \(sinceDate))
                        ORDER BY received_at, id LIMIT \(limit)
                        """, logger: logger)
                    var found: [UUID] = []
                    for try await id in rows.decode(UUID.self) { found.append(id) }
                    selected = found
                }
                if dryRun { return selected.map { "would replay \($0.uuidString.lowercased())" } }
                let residents = ResidentRegistry(client: client, protector: protector, logger: logger)
                let gateway = HL7Gateway(
                    client: client, protector: protector,
                    router: hl7Routes(
                        residents: residents, merges: MergeService(client: client, registry: residents, logger: logger), logger: logger),
                    maximumMessageBytes: configuration.mllpMaximumMessageBytes, logger: logger)
                var lines: [String] = []
                for id in selected {
                    let result = try await gateway.replay(id: id)
                    lines.append(
                        "\(id.uuidString.lowercased()) \(result.before) → \(result.after) \(result.ackCode)"
                            + (result.error.map { " \($0)" } ?? ""))
                }
                return lines
            }
            for line in results { print(line) }
            print("\(dryRun ? "would replay" : "replayed") \(results.count) message(s)")
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print HL7 v2 messages as a tree: segments, fields, repetitions, components, decoded values.")
        @Argument(help: "A file of messages (or use --id for a stored one).") var file: String?
        @Option(help: "A stored message's id (read from the inbox and decrypted; needs the database and keys).") var id: String?
        @Option(help: "Charset when the bytes are not UTF-8 and MSH-18 is empty (e.g. GB18030).") var charset: String?
        @OptionGroup var common: Common

        func run() async throws {
            let fallback = try charset.map { name in
                guard let found = HL7Charset(msh18: name) else { throw ValidationError("unknown charset \(name)") }
                return found
            }
            var inputs: [[UInt8]] = []
            if let id {
                guard let uuid = UUID(uuidString: id) else { throw ValidationError("--id \(id) is not a message id") }
                let (configuration, logger) = try common.load()
                let protector = try QianyunServer.fieldProtector(configuration)
                let sealed = try await withPostgres(configuration, logger: logger) { client -> (String, Data)? in
                    let rows = try await client.query(
                        "SELECT raw_key_id, raw_ciphertext FROM interop.messages WHERE id = \(uuid)", logger: logger
                    ).collect()
                    return try rows.first?.decode((String, Data).self)
                }
                guard let (keyID, ciphertext) = sealed else { throw StartupFailure(message: "no stored message \(id)") }
                inputs = [try protector.openBytes(.init(keyID: keyID, bytes: Array(ciphertext)), context: "interop.messages.raw")]
            } else if let file {
                guard let data = FileManager.default.contents(atPath: file) else { throw StartupFailure(message: "cannot read \(file)") }
                inputs = HL7.messages(in: Array(data))
            } else {
                throw ValidationError("give a file or --id")
            }
            for (number, bytes) in inputs.enumerated() {
                if inputs.count > 1 { print("# message \(number + 1)") }
                do {
                    let message = try HL7Message.parse(bytes, options: HL7ParseOptions(defaultCharset: fallback))
                    print(HL7.tree(message), terminator: "")
                } catch {
                    print("not parsed: \(error.code.rawValue): \(error)")
                }
            }
        }
    }

    static func tree(_ message: HL7Message) -> String {
        var out = "charset \(message.charset.msh18Value)\n"
        var occurrences: [String: Int] = [:]
        for segment in message.segments {
            let id = segment.id
            occurrences[id, default: 0] += 1
            let name = occurrences[id]! > 1 ? "\(id)(\(occurrences[id]!))" : id
            out += name + "\n"
            guard segment.fieldCount > 0 else { continue }
            for number in 1...segment.fieldCount {
                guard let field = segment.field(number), !field.er7.isEmpty else { continue }
                out += "  \(name)-\(number)  \(field.er7)\n"
                let repetitions = field.repetitions
                for (r, repetition) in repetitions.enumerated() {
                    let values = repetition.values
                    let repetitionName = repetitions.count > 1 ? "\(name)-\(number)(\(r + 1))" : "\(name)-\(number)"
                    guard values.count > 1 || repetitions.count > 1 else { continue }
                    for (c, component) in values.enumerated() where component.contains(where: { !$0.isEmpty }) {
                        out += "    \(repetitionName).\(c + 1)  \(component.joined(separator: "&"))\n"
                    }
                }
            }
        }
        return out
    }
}
