import Access
import Foundation
import Logging

/// `qianyun import residents FILE.csv`: a hospital's existing patient list, streamed through the
/// matcher in batches. Every batch is one transaction, so a crash loses at most the batches in
/// flight, and a rerun finds the rows already linked (`existing`) and changes nothing.
public struct ResidentImport: Sendable {
    public struct Summary: Sendable, Equatable {
        public var rows = 0
        public var created = 0
        public var linked = 0
        public var review = 0
        public var existing = 0
        public var rejected = 0
        public var seconds = 0.0

        public var rate: Double { seconds > 0 ? Double(rows) / seconds : 0 }

        mutating func count(_ kind: RegistrationOutcome.Kind) {
            rows += 1
            switch kind {
            case .created: created += 1
            case .linked: linked += 1
            case .review: review += 1
            case .existing: existing += 1
            case .rejected: rejected += 1
            }
        }

        public var line: String {
            String(
                format: "%d rows in %.1f s (%.0f rows/s): %d created, %d linked, %d sent to review, %d already linked, %d rejected",
                rows, seconds, rate, created, linked, review, existing, rejected)
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    static let required = ["facility", "local_id", "name"]
    static let known = ["facility", "local_id", "name", "sex", "birth_date", "id_number", "phone", "division"]

    let registry: ResidentRegistry
    let logger: Logger
    let batchSize: Int
    let workers: Int

    public init(registry: ResidentRegistry, logger: Logger, batchSize: Int = 250, workers: Int = 2) {
        self.registry = registry
        self.logger = logger
        self.batchSize = batchSize
        self.workers = workers
    }

    /// One CSV row after validation, or why it was refused.
    enum Parsed {
        case row(line: Int, localId: String, registration: Registration)
        case refused(line: Int, facility: String, localId: String, reason: String)
    }

    /// Imports `path`, writing rejected and reviewed rows to `reportPath` (CSV). `progress` is
    /// called after every batch with the running summary.
    public func run(path: String, reportPath: String, today: Int = ChinaDate.today(), progress: @escaping @Sendable (Summary) -> Void)
        async throws -> Summary
    {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw Failure(description: "cannot read \(path)") }
        defer { try? handle.close() }
        guard FileManager.default.createFile(atPath: reportPath, contents: Data("line,facility,local_id,outcome,resident_id,reason\n".utf8))
        else {
            throw Failure(description: "cannot write the report file \(reportPath)")
        }
        let report = try FileHandle(forWritingTo: URL(fileURLWithPath: reportPath))
        defer { try? report.close() }
        report.seekToEndOfFile()

        var reader = CSVReader(fileHandle: handle)
        guard let header = try reader.record() else { throw Failure(description: "\(path) is empty: a header line is required") }
        let columns = header.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        var index: [String: Int] = [:]
        for (position, name) in columns.enumerated() where Self.known.contains(name) && index[name] == nil { index[name] = position }
        let missing = Self.required.filter { index[$0] == nil }
        guard missing.isEmpty else {
            throw Failure(
                description: "the header lacks column(s) \(missing.joined(separator: ", ")); it needs \(Self.known.joined(separator: ", "))"
            )
        }

        let principal = Principal(clientID: "cli:import", role: .admin)
        let started = ContinuousClock.now
        var summary = Summary()
        var reportLines: [String] = []

        func record(_ parsed: [Parsed], _ outcomes: [RegistrationOutcome]) {
            var rows = parsed.makeIterator()
            var results = outcomes.makeIterator()
            while let row = rows.next() {
                switch row {
                case .refused(let line, let facility, let localId, let reason):
                    summary.count(.rejected)
                    reportLines.append(Self.csv([String(line), facility, localId, "rejected", "", reason]))
                case .row(let line, let localId, let registration):
                    let outcome = results.next()!
                    summary.count(outcome.kind)
                    if outcome.kind == .rejected || outcome.kind == .review {
                        reportLines.append(
                            Self.csv([
                                String(line), registration.facility ?? "", localId, outcome.kind.rawValue, outcome.residentId ?? "",
                                outcome.reason ?? (outcome.evidence ?? []).joined(separator: " "),
                            ]))
                    }
                }
            }
        }

        try await withThrowingTaskGroup(of: ([Parsed], [RegistrationOutcome]).self) { group in
            var running = 0
            var batch: [Parsed] = []
            func submit(_ parsed: [Parsed]) {
                let registrations = parsed.compactMap { if case .row(_, _, let r) = $0 { r } else { nil } }
                let registry = self.registry
                group.addTask {
                    let outcomes = registrations.isEmpty ? [] : try await registry.register(batch: registrations, by: principal)
                    return (parsed, outcomes)
                }
                running += 1
            }
            func drainOne() async throws {
                if let (parsed, outcomes) = try await group.next() {
                    running -= 1
                    record(parsed, outcomes)
                    summary.seconds = Self.seconds(since: started)
                    if !reportLines.isEmpty {
                        report.write(Data(reportLines.joined().utf8))
                        reportLines.removeAll(keepingCapacity: true)
                    }
                    progress(summary)
                }
            }
            while let (line, fields) = try reader.record() {
                if fields.count == 1, fields[0].trimmingCharacters(in: .whitespaces).isEmpty { continue }
                batch.append(Self.parse(line: line, fields: fields, columns: columns.count, index: index, today: today))
                if batch.count >= batchSize {
                    if running >= workers { try await drainOne() }
                    submit(batch)
                    batch = []
                }
            }
            if !batch.isEmpty { submit(batch) }
            while running > 0 { try await drainOne() }
        }
        summary.seconds = Self.seconds(since: started)
        return summary
    }

    static func parse(line: Int, fields: [String], columns: Int, index: [String: Int], today: Int) -> Parsed {
        func value(_ name: String) -> String? {
            guard let position = index[name], position < fields.count else { return nil }
            let text = fields[position].trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? nil : text
        }
        let facility = value("facility") ?? ""
        let localId = value("local_id") ?? ""
        guard fields.count == columns else {
            return .refused(
                line: line, facility: facility, localId: localId, reason: "has \(fields.count) fields; the header has \(columns)")
        }
        guard !facility.isEmpty else { return .refused(line: line, facility: facility, localId: localId, reason: "facility: is required") }
        guard !localId.isEmpty, localId.count <= 64, !localId.contains(where: \.isControl) else {
            return .refused(line: line, facility: facility, localId: localId, reason: "local_id: must be 1 to 64 characters")
        }
        let draft = ResidentDraft(
            facility: facility, localId: localId, name: value("name") ?? "", sex: value("sex"), birthDate: value("birth_date"),
            idNumber: value("id_number"), phone: value("phone"), division: value("division"))
        do {
            let record = try ResidentValidation.validate(draft, today: today)
            return .row(
                line: line, localId: localId,
                registration: Registration(facility: facility, localId: localId, record: record, source: "import"))
        } catch {
            let reason = "\(error)".replacingOccurrences(of: "document.number", with: "id_number")
                .replacingOccurrences(of: "birthDate", with: "birth_date")
            return .refused(line: line, facility: facility, localId: localId, reason: reason)
        }
    }

    static func csv(_ fields: [String]) -> String {
        fields.map { field in
            field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : field
        }.joined(separator: ",") + "\n"
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
