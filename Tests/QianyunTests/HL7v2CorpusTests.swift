import Foundation
import Testing

@testable import HL7v2

/// Test data written outside the team (`../shared/corpora` beside the checkout, or the folder
/// named by QIANYUN_CORPORA); tests that need it skip when it is absent so a clone elsewhere still passes.
enum Corpus {
    static let root: String = {
        if let named = ProcessInfo.processInfo.environment["QIANYUN_CORPORA"] { return named }
        let candidates = [TestDatabase.repositoryRoot + "/../shared/corpora", "/work/shared/corpora"]
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? candidates[0]
    }()
    static let er7Folder = root + "/hl7v2"
    static let xmlFolder = root + "/hl7v2-xml"
    static var er7Available: Bool { FileManager.default.fileExists(atPath: er7Folder) }
    static var xmlAvailable: Bool { FileManager.default.fileExists(atPath: xmlFolder) }

    static func files(in folder: String, suffixes: [String]) -> [(name: String, bytes: [UInt8])] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder) else { return [] }
        var files: [(String, [UInt8])] = []
        while let path = enumerator.nextObject() as? String {
            guard suffixes.contains(where: { path.hasSuffix($0) }),
                let data = FileManager.default.contents(atPath: folder + "/" + path)
            else { continue }
            files.append((path, Array(data)))
        }
        return files.sorted { $0.0 < $1.0 }
    }

    static var er7Files: [(name: String, bytes: [UInt8])] { files(in: er7Folder, suffixes: [".hl7", ".txt"]) }

    /// Every message of the corpus as UTF-8 with `\r` terminators.
    static var messages: [[UInt8]] {
        er7Files.flatMap { file in (try? HL7Batch.parse(file.bytes))?.messages.map(\.utf8Bytes) ?? [] }
    }

    /// The input as the library should give it back: no BOM, every line end `\r`.
    static func normalised(_ bytes: [UInt8]) -> [UInt8] {
        var input = bytes
        if input.starts(with: [0xEF, 0xBB, 0xBF]) { input.removeFirst(3) }
        return ER7Scanner.normalisingLineEnds(input)
    }
}

@Suite("HL7v2 corpus round trips")
struct HL7v2CorpusTests {
    @Test("every corpus file parses and serialises back to its bytes", .enabled(if: Corpus.er7Available, "corpus folder absent"))
    func roundTrips() throws {
        let files = Corpus.er7Files
        #expect(files.count > 150)
        var messages = 0
        for file in files {
            let refusedOnPurpose = file.name.contains("sample_bad_")
            do {
                let batch = try HL7Batch.parse(file.bytes)
                #expect(batch.utf8Bytes == Corpus.normalised(file.bytes), "\(file.name)")
                messages += batch.messages.count
                if batch.items.count == 1, case .message? = batch.items.first {
                    let single = try HL7Message.parse(file.bytes)
                    #expect(single.utf8Bytes == Corpus.normalised(file.bytes), "\(file.name)")
                    #expect(try HL7Message.parse(single.er7).utf8Bytes == single.utf8Bytes)
                }
            } catch {
                // The python-hl7 "bad" samples have segments outside any message.
                #expect(refusedOnPurpose, "\(file.name): \(error)")
                #expect(error.code == .batchStructure)
            }
        }
        #expect(messages >= 170)
    }

    @Test("multi-message files split at MSH and keep their wrappers", .enabled(if: Corpus.er7Available, "corpus folder absent"))
    func batches() throws {
        let file = try #require(Corpus.er7Files.first { $0.name.hasSuffix("python-hl7/sample_file1.hl7") })
        let batch = try HL7Batch.parse(file.bytes)
        #expect(batch.messages.count == 3)
        let wrappers = batch.items.compactMap { if case .wrapper(let text) = $0 { String(text.prefix(3)) } else { nil } }
        #expect(wrappers.first == "FHS")
        #expect(wrappers.last == "FTS")
        #expect(throws: HL7Error.self) { try HL7Message.parse(file.bytes) }
        let oml = try #require(Corpus.er7Files.first { $0.name.hasSuffix("example_oml_o21.hl7") })
        #expect(try HL7Batch.parse(oml.bytes).messages.count == 13)
        do {
            _ = try HL7Message.parse(oml.bytes)
            Issue.record("two messages parsed as one")
        } catch {
            #expect(error.code == .multipleMessages)
            #expect(error.location.segmentID == "MSH")
        }
    }

    @Test("corpus messages read like python-hl7 reads them", .enabled(if: Corpus.er7Available, "corpus folder absent"))
    func reads() throws {
        let file = try #require(Corpus.er7Files.first { $0.name.hasSuffix("python-hl7/sample_hl7.hl7") })
        let message = try HL7Message.parse(file.bytes)
        #expect(message.segmentCount == 5)
        #expect(message["MSH-9.1"] == "ORU")
        #expect(message["MSH-1"] == "|")
        #expect(message["MSH-2"] == "^~\\&")
        for position in 0..<message.segmentCount {
            #expect(message.segment(at: position)!.fieldCount >= 1)
        }
    }
}
