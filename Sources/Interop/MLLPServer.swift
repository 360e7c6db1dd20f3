import Crypto
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Storage

/// Who is on the other end of an MLLP connection, as far as the transport knows.
public struct MLLPPeer: Sendable {
    public let address: String?
    /// SHA-256 (hex) of the client certificate's DER, when the client presented one over TLS.
    public let certificateSHA256: String?

    public init(address: String?, certificateSHA256: String? = nil) {
        self.address = address
        self.certificateSHA256 = certificateSHA256
    }
}

/// What the gateway does with one framed message: returns the replies to frame and send, in
/// order (none, one ACK, or an enhanced-mode commit ACK and application ACK).
public protocol MLLPMessageHandler: Sendable {
    func handle(message: ByteBuffer, from peer: MLLPPeer) async -> [ByteBuffer]
}

public struct MLLPConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var maximumMessageBytes: Int
    public var idleTimeout: TimeAmount
    /// MLLP over TLS when set; with `certificateVerification` on, clients must present a
    /// certificate the trust roots accept, and it identifies the sender.
    public var tls: TLSConfiguration?

    public init(
        host: String = "127.0.0.1", port: Int = 2575, maximumMessageBytes: Int = 16 << 20, idleTimeout: TimeAmount = .seconds(300),
        tls: TLSConfiguration? = nil
    ) {
        self.host = host
        self.port = port
        self.maximumMessageBytes = maximumMessageBytes
        self.idleTimeout = idleTimeout
        self.tls = tls
    }
}

/// The MLLP listener, run as a service: one task per connection in a discarding task group,
/// each connection's errors caught and logged without touching the others.
public struct MLLPServer: Service {
    let configuration: MLLPConfiguration
    let handler: any MLLPMessageHandler
    let logger: Logger
    let onBound: @Sendable (Int) -> Void

    public init(
        configuration: MLLPConfiguration, handler: any MLLPMessageHandler, logger: Logger,
        onBound: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
        self.onBound = onBound
    }

    public func run() async throws {
        let maximum = configuration.maximumMessageBytes
        let idle = configuration.idleTimeout
        let tls = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idle))
                    try channel.pipeline.syncOperations.addHandler(IdleConnectionCloser())
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(MLLPFrameDecoder(maximumFrameSize: maximum)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(MLLPFrameEncoder()))
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let port = server.channel.localAddress?.port ?? configuration.port
        logger.info("MLLP listening", metadata: ["mllp.host": "\(configuration.host)", "mllp.port": "\(port)"])
        onBound(port)
        do {
            try await cancelWhenGracefulShutdown {
                // Discarding group: a plain one would keep every finished connection's task alive.
                try await withThrowingDiscardingTaskGroup { group in
                    try await server.executeThenClose { connections in
                        for try await connection in connections {
                            group.addTask { await self.serve(connection) }
                        }
                    }
                }
            }
        } catch is CancellationError {
            // Graceful shutdown cancels the accept loop; that is a clean stop, not a failure.
            logger.info("MLLP listener stopped")
        }
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        let address = connection.channel.remoteAddress?.ipAddress
        var peer: MLLPPeer?
        do {
            try await connection.executeThenClose { inbound, outbound in
                for try await message in inbound {
                    // The handshake is over once a message has arrived: the certificate is known.
                    if peer == nil { peer = MLLPPeer(address: address, certificateSHA256: await Self.certificateHash(connection.channel)) }
                    for reply in await handler.handle(message: message, from: peer!) {
                        try await outbound.write(reply)
                    }
                }
            }
        } catch let violation as MLLPFrameDecoder.Violation {
            logger.notice("MLLP connection closed", metadata: ["mllp.violation": "\(violation)"])
        } catch {
            logger.debug("MLLP connection ended", metadata: ["error.type": "\(type(of: error))"])
        }
    }
}

extension MLLPServer {
    static func certificateHash(_ channel: any Channel) async -> String? {
        guard let certificate = try? await channel.nioSSL_peerCertificate().get(), let der = try? certificate.toDERBytes() else {
            return nil
        }
        return SHA256.hash(data: der).hexString
    }
}

/// Closes a connection that has sent nothing for the idle timeout, so half-open peers do not
/// hold sockets forever.
final class IdleConnectionCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
