import Crypto
import Foundation
import Interop
import NIOSSL
import PostgresNIO
import Storage
import Testing

/// MLLP over mutual TLS: certificates made by `openssl` for each run.
@Suite(needsDatabase) struct GatewayTLSTests {
    struct Certificates {
        let directory: String
        var ca: String { directory + "/ca.pem" }
        func certificate(_ name: String) -> String { directory + "/\(name).pem" }
        func key(_ name: String) -> String { directory + "/\(name).key" }
    }

    static let openssl = FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")

    /// A CA, a server certificate for 127.0.0.1 and a client certificate, all short-lived.
    static func makeCertificates() throws -> Certificates {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qy-tls-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let leaf = directory + "/leaf.ext"
        try
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
            .write(toFile: leaf, atomically: true, encoding: .utf8)
        func run(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = arguments
            process.currentDirectoryURL = URL(fileURLWithPath: directory)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "openssl \(arguments.first ?? "")")
        }
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try run(["req", "-x509"] + curve + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Qianyun test CA"])
        for name in ["server", "client"] {
            try run(["req"] + curve + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(name)"])
            try run([
                "x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "\(name).pem",
                "-days", "2", "-extfile", leaf,
            ])
        }
        return Certificates(directory: directory)
    }

    @Test(.enabled(if: openssl, "needs /usr/bin/openssl"))
    func aClientCertificateIdentifiesTheSenderAndNoCertificateNoConnection() async throws {
        let certificates = try Self.makeCertificates()
        defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
        var server = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificates.certificate("server")).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certificates.key("server"), format: .pem)))
        server.trustRoots = .file(certificates.ca)
        server.certificateVerification = .noHostnameVerification
        let clientCertificate = try NIOSSLCertificate.fromPEMFile(certificates.certificate("client"))
        let hash = SHA256.hash(data: try clientCertificate[0].toDERBytes()).hexString

        try await withTestGateway(tls: server) { gateway in
            try await gateway.postgres.query(
                """
                INSERT INTO interop.senders (sending_facility, facility, certificate_sha256) VALUES ('CERT-ONLY', '5201020001', \(hash))
                """, logger: TestDatabase.logger)
            var client = TLSConfiguration.makeClientConfiguration()
            client.trustRoots = .file(certificates.ca)
            client.certificateVerification = .noHostnameVerification
            client.certificateChain = clientCertificate.map { .certificate($0) }
            client.privateKey = .privateKey(try NIOSSLPrivateKey(file: certificates.key("client"), format: .pem))

            // MSH-4 names no registered facility: the certificate does.
            let message = Array(
                GatewayTests.adt(control: "TLS-1", localId: "T1", name: "何^静", idNumber: nil, facility: "NOT-A-FACILITY").utf8)
            let connection = try await MLLPClient.connect(host: "127.0.0.1", port: gateway.port, tls: client)
            var frames: [[UInt8]] = []
            try await connection.run { send in frames = try await send(message, 1) }
            #expect(String(decoding: try #require(frames.first), as: UTF8.self).contains("MSA|AA|TLS-1"))
            #expect(
                try await gateway.count(
                    "SELECT count(*) FROM interop.messages WHERE facility = '5201020001' AND sending_facility = 'NOT-A-FACILITY'") == 1)

            // Without a client certificate the handshake fails and nothing is stored.
            var anonymous = TLSConfiguration.makeClientConfiguration()
            anonymous.trustRoots = .file(certificates.ca)
            anonymous.certificateVerification = .noHostnameVerification
            await #expect(throws: (any Error).self) {
                let refused = try await MLLPClient.connect(host: "127.0.0.1", port: gateway.port, tls: anonymous)
                try await refused.run { send in _ = try await send(message, 1) }
            }
            // Plain TCP on the TLS port gets no acknowledgement either.
            await #expect(throws: (any Error).self) {
                let plain = try await MLLPClient.connect(host: "127.0.0.1", port: gateway.port)
                try await plain.run { send in _ = try await send(message, 1) }
            }
            #expect(try await gateway.count("SELECT count(*) FROM interop.messages") == 1)

            // `qianyun hl7 send` over mutual TLS, as an integrator would use it.
            if CLITests.binary != nil {
                let path = certificates.directory + "/a04.hl7"
                try GatewayTests.adt(control: "TLS-2", localId: "T2", name: "罗^敏", idNumber: nil, facility: "NOT-A-FACILITY")
                    .write(toFile: path, atomically: true, encoding: .utf8)
                let sent = try await CLITests.runOffPool(
                    [
                        "hl7", "send", path, "--port", String(gateway.port), "--tls-ca", certificates.ca, "--tls-cert",
                        certificates.certificate("client"), "--tls-key", certificates.key("client"),
                    ], database: gateway.database)
                #expect(sent.output.contains("TLS-2 AA"), "\(sent.output) \(sent.errors)")
                let refused = try await CLITests.runOffPool(
                    ["hl7", "send", path, "--port", String(gateway.port), "--tls-ca", certificates.ca], database: gateway.database)
                #expect(refused.status == 1)
            }
        }
    }
}
