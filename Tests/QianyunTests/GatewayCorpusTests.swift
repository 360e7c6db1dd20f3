import Crypto
import Foundation
import HL7v2
import Interop
import PostgresNIO
import Testing

/// The real-world messages of `../shared/corpora/hl7v2` (ADT of almost every trigger, ORU, ORM,
/// SIU, MDM, VXU…, from FHIR-Converter, python-hl7 and HAPI) through a running gateway, every
/// sender registered: each message is answered as its MSH-15/16 ask, with its own control ID, no
/// internal error, and kept exactly once.
@Suite(needsDatabase) struct GatewayCorpusTests {
    @Test(.enabled(if: Corpus.er7Available, "../shared/corpora/hl7v2 is not here"))
    func everyCorpusMessageIsAnsweredAndKept() async throws {
        let messages = Corpus.messages
        #expect(messages.count > 100)
        try await withTestGateway { gateway in
            let parsed = try messages.map { try HL7Message.parse($0) }
            for facility in Set(parsed.map(\.header.sendingFacility.namespaceID)) where !facility.isEmpty {
                try await gateway.postgres.query(
                    "INSERT INTO interop.senders (sending_facility, facility) VALUES (\(String(facility.prefix(180))), '5201020001')",
                    logger: TestDatabase.logger)
            }
            // The gateway writes a message's replies together: a short wait shows that none is coming.
            let client = try await MLLPClient.connect(
                host: "127.0.0.1", port: gateway.port, timeout: .seconds(20), grace: .milliseconds(300))
            var answers: [[[UInt8]]] = []
            try await client.run { send in
                for message in messages { answers.append(try await send(message, .acknowledgements(of: message))) }
            }
            var kept = Set<String>()
            var expectedRows = 0
            for (index, (message, frames)) in zip(parsed, answers).enumerated() {
                let control = message.header.controlID
                if frames.isEmpty {
                    // Only a sender that asked for no reply in some outcome (MSH-15/16 NE, ER, SU) gets none.
                    #expect(
                        MLLPClient.Replies.acknowledgements(of: messages[index]).need([]) == .perhaps,
                        "message \(index) (\(control)) got no acknowledgement")
                }
                for frame in frames {
                    let ack = try HL7Message.parse(frame)
                    #expect((ack["MSA-2"] ?? "") == control, "message \(index): the ACK names \(ack["MSA-2"] ?? "nothing")")
                    #expect(ack["ERR-3"] != "207", "message \(index) (\(control)) hit an internal error: \(ack["ERR-8"] ?? "")")
                }
                // Identical bytes from a known sender under one control ID are a resend: kept once,
                // answered from the store. Without a sender or a control ID nothing is a resend.
                let key = control + "\u{1F}" + SHA256.hash(data: messages[index]).description
                let sender = message.header.sendingFacility.namespaceID
                if control.isEmpty || sender.isEmpty || kept.insert(key).inserted { expectedRows += 1 }
            }
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages") == expectedRows)
            // ADT registrations applied (the corpus also holds birth dates like 1013-11-13, refused 102).
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages WHERE status = 'applied'") > 0)
            #expect(try await gateway.count("SELECT count(*) FROM registry.residents") > 0)
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM interop.messages WHERE status = 'applied' AND message_type = 'ADT' AND resident_id IS NULL") == 0)
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages WHERE error_hl7_code = 207") == 0)
        }
    }
}
