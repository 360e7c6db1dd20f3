import Access
import Foundation
import Interop
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import QianyunServer
import Registry
import Testing

/// A running HL7 gateway on a fresh database: the real MLLP listener on a loopback port, the
/// real inbox and routes, and facility 5201020001 registered.
struct TestGateway: Sendable {
    let port: Int
    let postgres: PostgresClient
    let protector: FieldProtector
    let database: String
    /// The keys the gateway seals with, for commands run against the same database.
    let keys: [String: String]

    static let facility = "5201020001"

    func count(_ sql: String) async throws -> Int {
        try await postgres.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).collect().first?.decode(Int.self) ?? -1
    }

    /// Sends the messages one at a time on one connection, as a HIS does, waiting after each for
    /// `framesPerMessage` replies (2 in enhanced mode); returns every frame received, in order.
    func send(_ messages: [[UInt8]], framesPerMessage: Int = 1) async throws -> [[UInt8]] {
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await client.executeThenClose { inbound, outbound in
            var frames: [[UInt8]] = []
            var pending: [UInt8] = []
            var iterator = inbound.makeAsyncIterator()
            for (index, message) in messages.enumerated() {
                try await outbound.write(ByteBuffer(bytes: [0x0B] + message + [0x1C, 0x0D]))
                while frames.count < (index + 1) * framesPerMessage {
                    guard let chunk = try await iterator.next() else { return frames }
                    pending += Array(chunk.readableBytesView)
                    while let start = pending.firstIndex(of: 0x0B), let end = pending[start...].firstIndex(of: 0x1C) {
                        frames.append(Array(pending[(start + 1)..<end]))
                        pending.removeSubrange(0..<min(end + 2, pending.count))
                    }
                }
            }
            return frames
        }
    }

    func send(_ message: String) async throws -> String {
        String(decoding: try await send([Array(message.utf8)]).first ?? [], as: UTF8.self)
    }
}

func withTestGateway<Result: Sendable>(
    tls: TLSConfiguration? = nil, routes: @Sendable (inout HL7Router) -> Void = { _ in },
    _ body: @Sendable (TestGateway) async throws -> Result
) async throws -> Result {
    try await withTestDatabase { postgres, database in
        try await postgres.query(
            "INSERT INTO registry.facilities (code, name, level, division) VALUES ('5201020001', '贵州省人民医院', 'tertiary', '520102')",
            logger: TestDatabase.logger)
        func key() -> String { Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString() }
        let keys = ["QIANYUN_ENCRYPTION_KEYS": "k1:\(key())", "QIANYUN_PSEUDONYM_KEY": key(), "QIANYUN_JWT_SECRET": key()]
        let configuration = try testConfiguration(keys)
        let protector = try QianyunServer.fieldProtector(configuration)
        let logger = TestDatabase.logger
        let residents = ResidentRegistry(client: postgres, protector: protector, logger: logger)
        let merges = MergeService(client: postgres, registry: residents, logger: logger)
        var router = hl7Routes(residents: residents, merges: merges, logger: logger)
        routes(&router)
        let sealedRouter = router
        // The gateway's own sessions, as in production: generic plans for its prepared statements.
        return try await withClient(database: database, startupParameters: QianyunServer.ingestSessionSettings) { ingest in
            let gateway = HL7Gateway(
                client: ingest, protector: protector, router: sealedRouter, maximumMessageBytes: 1 << 20, logger: logger)
            let (ports, continuation) = AsyncStream<Int>.makeStream()
            let server = MLLPServer(
                configuration: MLLPConfiguration(host: "127.0.0.1", port: 0, maximumMessageBytes: 1 << 20, tls: tls), handler: gateway,
                logger: logger,
                onBound: { continuation.yield($0) })
            return try await withThrowingTaskGroup(of: Result?.self) { group in
                group.addTask {
                    try await server.run()
                    return nil
                }
                var iterator = ports.makeAsyncIterator()
                let port = try #require(await iterator.next())
                let result = try await body(
                    TestGateway(port: port, postgres: postgres, protector: protector, database: database, keys: keys))
                group.cancelAll()
                return result
            }
        }
    }
}
