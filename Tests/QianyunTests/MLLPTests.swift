import Foundation
import Interop
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOTestUtils
import ServiceLifecycle
import Testing

@Suite struct MLLPFramingTests {
    static func framed(_ text: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(0x0B))
        buffer.writeString(text)
        buffer.writeBytes([0x1C, 0x0D])
        return buffer
    }

    @Test func decodesFramesWhateverTheChunking() throws {
        var two = Self.framed("MSH|^~\\&|A\rPID|1")
        two.writeString("\r\n")
        var second = Self.framed("MSH|^~\\&|B")
        two.writeBuffer(&second)
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: [(two, [ByteBuffer(string: "MSH|^~\\&|A\rPID|1"), ByteBuffer(string: "MSH|^~\\&|B")])],
            decoderFactory: { MLLPFrameDecoder(maximumFrameSize: 1024) })
    }

    @Test func refusesBytesOutsideAFrame() {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(MLLPFrameDecoder(maximumFrameSize: 1024)))
        #expect(throws: MLLPFrameDecoder.Violation.bytesOutsideFrame(UInt8(ascii: "M"))) {
            try channel.writeInbound(ByteBuffer(string: "MSH|^~\\&|A"))
        }
    }

    @Test func refusesOversizedFramesBeforeTheyEnd() {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(MLLPFrameDecoder(maximumFrameSize: 100)))
        var buffer = ByteBuffer(bytes: [0x0B])
        buffer.writeString(String(repeating: "A", count: 150))
        #expect(throws: MLLPFrameDecoder.Violation.frameTooLarge(limit: 100)) { try channel.writeInbound(buffer) }
    }

    @Test func refusesAnEndBlockWithoutCarriageReturn() {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(MLLPFrameDecoder(maximumFrameSize: 100)))
        #expect(throws: MLLPFrameDecoder.Violation.missingCarriageReturnAfterEnd) {
            try channel.writeInbound(ByteBuffer(bytes: [0x0B, 0x41, 0x1C, 0x41]))
        }
    }

    @Test func largeMessagesDribbledByteByByteStillDecode() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(MLLPFrameDecoder(maximumFrameSize: 1 << 20)))
        let body = "MSH|^~\\&|" + String(repeating: "X", count: 200_000)
        let framed = Self.framed(body)
        for chunk in stride(from: 0, to: framed.readableBytes, by: 997) {
            let length = min(997, framed.readableBytes - chunk)
            try channel.writeInbound(framed.getSlice(at: chunk, length: length)!)
        }
        let decoded = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(decoded.readableBytes == body.utf8.count)
    }
}

/// Answers every frame twice (as an enhanced-mode commit ACK and application ACK would be).
struct TwoRepliesHandler: MLLPMessageHandler {
    func handle(message: ByteBuffer, from peer: MLLPPeer) async -> [ByteBuffer] {
        let control = String(buffer: message).split(separator: "|", omittingEmptySubsequences: false).dropFirst(9).first ?? ""
        return ["CA", "AA"].map { ByteBuffer(string: "MSH|^~\\&|QIANYUN|QIANYUN|HIS|5201020001|\rMSA|\($0)|\(control)|\r") }
    }
}

@Suite struct MLLPServerTests {
    @Test func answersEachMessageWithEveryReplyInOrder() async throws {
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let server = MLLPServer(
            configuration: MLLPConfiguration(host: "127.0.0.1", port: 0), handler: TwoRepliesHandler(),
            logger: Logger(label: "test"), onBound: { continuation.yield($0) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            var ports = stream.makeAsyncIterator()
            let port = try #require(await ports.next())
            let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            let replies = try await client.executeThenClose { inbound, outbound in
                try await outbound.write(MLLPFramingTests.framed("MSH|^~\\&|HIS|5201020001|QY|QY|20260101||ADT^A04|MSG-1|P|2.4\rPID|1\r"))
                try await outbound.write(MLLPFramingTests.framed("MSH|^~\\&|HIS|5201020001|QY|QY|20260101||ADT^A04|MSG-2|P|2.4\r"))
                var collected = ""
                for try await chunk in inbound {
                    collected += String(buffer: chunk)
                    if collected.components(separatedBy: "\u{1C}\r").count > 4 { break }
                }
                return collected
            }
            #expect(replies.hasPrefix("\u{0B}MSH|^~\\&|QIANYUN|QIANYUN|HIS|5201020001|"))
            let order = ["MSA|CA|MSG-1|", "MSA|AA|MSG-1|", "MSA|CA|MSG-2|", "MSA|AA|MSG-2|"].map { replies.range(of: $0)?.lowerBound }
            #expect(order.allSatisfy { $0 != nil })
            #expect(order.compactMap { $0 } == order.compactMap { $0 }.sorted())
            group.cancelAll()
        }
    }
}

@Suite struct MLLPDecoderRobustnessTests {
    /// Random bytes, random chunking: the decoder returns frames or a typed violation, never
    /// crashes, and never holds more than the cap.
    @Test func randomInputNeverCrashes() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(MLLPFrameDecoder(maximumFrameSize: 256)))
            let length = Int.random(in: 0...2048, using: &generator)
            // Bias towards the framing bytes so frames actually form.
            let alphabet: [UInt8] = [0x0B, 0x1C, 0x0D, 0x0A, 0x41, 0x7C, 0x00, 0xFF]
            let bytes = (0..<length).map { _ in
                Bool.random(using: &generator) ? alphabet.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator)
            }
            var offset = 0
            do {
                while offset < bytes.count {
                    let chunk = Int.random(in: 1...64, using: &generator)
                    try channel.writeInbound(ByteBuffer(bytes: bytes[offset..<min(offset + chunk, bytes.count)]))
                    offset += chunk
                    while let frame = try channel.readInbound(as: ByteBuffer.self) {
                        #expect(frame.readableBytes <= 256)
                    }
                }
                _ = try? channel.finish()
            } catch {
                #expect(error is MLLPFrameDecoder.Violation)
            }
        }
    }
}
