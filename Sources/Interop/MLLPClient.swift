import HL7v2
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

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

    /// After the replies so far: whether the exchange is over, another reply is due, or one may
    /// come or not (an enhanced-mode ACK under ER or SU depends on the outcome).
    public enum ReplyNeed: Sendable {
        case complete, more, perhaps
    }

    /// Which replies a message waits for. An integer literal means that many replies.
    public struct Replies: Sendable, ExpressibleByIntegerLiteral {
        public let need: @Sendable ([[UInt8]]) -> ReplyNeed

        public init(need: @escaping @Sendable ([[UInt8]]) -> ReplyNeed) {
            self.need = need
        }

        public init(integerLiteral count: Int) {
            self.need = { $0.count >= count ? .complete : .more }
        }
    }

    let channel: any Channel
    let queue: ReplyQueue
    /// How long a due reply may take before the exchange fails (the connection is then closed,
    /// since a late reply would be taken for the next message's).
    let timeout: TimeAmount
    /// How long to wait for a reply that may not come at all.
    let grace: TimeAmount

    /// Connects, over TLS when `tls` is given (with a client certificate if it carries one).
    public static func connect(
        host: String, port: Int, tls: TLSConfiguration? = nil, maximumFrameBytes: Int = 16 << 20, timeout: TimeAmount = .seconds(30),
        grace: TimeAmount = .seconds(2)
    ) async throws -> MLLPClient {
        let context = try tls.map { try NIOSSLContext(configuration: $0) }
        let queue = ReplyQueue()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(MLLPFrameDecoder(maximumFrameSize: maximumFrameBytes)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(MLLPFrameEncoder()))
                    try channel.pipeline.syncOperations.addHandler(queue)
                }
            }
            .connect(host: host, port: port).get()
        return MLLPClient(channel: channel, queue: queue, timeout: timeout, grace: grace)
    }

    /// Hands `body` a `send` that writes one message and returns the replies `replies` asks for.
    /// The connection is closed when the body ends.
    public func run(_ body: (_ send: (_ message: [UInt8], _ replies: Replies) async throws -> [[UInt8]]) async throws -> Void)
        async throws
    {
        do {
            try await body { message, replies in
                try await channel.writeAndFlush(ByteBuffer(bytes: message))
                var frames: [[UInt8]] = []
                while true {
                    let need = replies.need(frames)
                    if need == .complete { return frames }
                    switch await queue.next(within: need == .more ? timeout : grace, on: channel.eventLoop) {
                    case .frame(let frame): frames.append(frame)
                    case .timedOut where need == .perhaps: return frames
                    case .timedOut:
                        channel.close(promise: nil)
                        throw Failure.timedOut
                    case .closed: throw Failure.closed
                    }
                }
            }
        } catch {
            try? await channel.close()
            throw error
        }
        try? await channel.close()
    }
}

extension MLLPClient.Replies {
    /// The replies a message waits for, as the gateway sends them (`HL7AckMode`): one ACK in
    /// original mode; in enhanced mode a commit ACK under MSH-15, then, unless the commit was
    /// refused, an application ACK under MSH-16. A reply under ER or SU depends on the outcome,
    /// so it is waited for only briefly. A message that does not parse gets one AR.
    public static func acknowledgements(of message: [UInt8]) -> MLLPClient.Replies {
        guard let parsed = try? HL7Message.parse(message, options: HL7ParseOptions(defaultCharset: .gb18030)),
            case .enhanced(let accept, let application) = HL7AckMode(parsed)
        else { return 1 }
        return MLLPClient.Replies { frames in
            let codes = frames.map { (try? HL7Message.parse($0, options: HL7ParseOptions(defaultCharset: .gb18030)))?["MSA-1"] ?? "" }
            if codes.contains(where: { $0.hasPrefix("A") }) || codes.contains("CR") || codes.contains("CE") { return .complete }
            if codes.contains("CA") {
                return application == .never ? .complete : application == .always ? .more : .perhaps
            }
            // Nothing yet: a commit ACK under AL always comes; otherwise perhaps the application ACK.
            return accept == .always || application == .always ? .more : .perhaps
        }
    }
}

/// Frames as they arrive, for one waiter at a time; a waiter gives up after its deadline.
final class ReplyQueue: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    enum Next: Sendable {
        case frame([UInt8])
        case timedOut
        case closed
    }

    private struct State {
        var frames: [[UInt8]] = []
        var closed = false
        var waiter: (ticket: Int, continuation: CheckedContinuation<Next, Never>)?
        var tickets = 0
    }

    private let state = Mutex(State())

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Array(unwrapInboundIn(data).readableBytesView)
        let waiter = state.withLock { state in
            guard let waiter = state.waiter else {
                state.frames.append(frame)
                return nil as CheckedContinuation<Next, Never>?
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume(returning: .frame(frame))
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A framing violation or a TLS failure: nothing more can be read on this connection.
        context.close(promise: nil)
    }

    private func finish() {
        let waiter = state.withLock { state in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        waiter?.resume(returning: .closed)
    }

    /// The next frame, or `.timedOut` after `limit`, or `.closed` once the connection is gone.
    func next(within limit: TimeAmount, on loop: any EventLoop) async -> Next {
        await withCheckedContinuation { continuation in
            let ticket: Int? = state.withLock { state in
                if !state.frames.isEmpty {
                    continuation.resume(returning: .frame(state.frames.removeFirst()))
                    return nil
                }
                if state.closed {
                    continuation.resume(returning: .closed)
                    return nil
                }
                state.tickets += 1
                state.waiter = (state.tickets, continuation)
                return state.tickets
            }
            guard let ticket else { return }
            loop.scheduleTask(in: limit) {
                let expired = self.state.withLock { state in
                    guard let waiter = state.waiter, waiter.ticket == ticket else { return nil as CheckedContinuation<Next, Never>? }
                    state.waiter = nil
                    return waiter.continuation
                }
                expired?.resume(returning: .timedOut)
            }
        }
    }
}
