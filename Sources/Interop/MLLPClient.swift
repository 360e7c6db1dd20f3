import NIOCore
import NIOPosix
import NIOSSL

/// A minimal MLLP sender for `qianyun hl7 send` and the benchmarks: one connection, one message
/// at a time, each answered by one or more framed replies.
public struct MLLPClient: Sendable {
    public enum Failure: Error, CustomStringConvertible {
        case closed
        case timedOut

        public var description: String {
            switch self {
            case .closed: "the gateway closed the connection before answering"
            case .timedOut: "no acknowledgement within the timeout"
            }
        }
    }

    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>

    /// Connects, over TLS when `tls` is given (with a client certificate if it carries one).
    public static func connect(host: String, port: Int, tls: TLSConfiguration? = nil, maximumFrameBytes: Int = 16 << 20) async throws
        -> MLLPClient
    {
        let context = try tls.map { try NIOSSLContext(configuration: $0) }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(MLLPFrameDecoder(maximumFrameSize: maximumFrameBytes)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(MLLPFrameEncoder()))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return MLLPClient(channel: channel)
    }

    /// Sends each message and hands it, with the frames `replies(message)` says to wait for, to
    /// `received`. The connection is closed when the body ends.
    public func run(
        _ body: (_ send: (_ message: [UInt8], _ replies: Int) async throws -> [[UInt8]]) async throws -> Void
    ) async throws {
        try await channel.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            try await body { message, replies in
                try await outbound.write(ByteBuffer(bytes: message))
                var frames: [[UInt8]] = []
                while frames.count < replies {
                    guard let frame = try await iterator.next() else { throw Failure.closed }
                    frames.append(Array(frame.readableBytesView))
                }
                return frames
            }
        }
    }
}
