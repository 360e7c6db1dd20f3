import Access
import Foundation
import PostgresNIO
import Storage
import Testing

@Suite(needsDatabase) struct AuditTrailTests {
    static func event(_ n: Int) -> AuditEvent {
        AuditEvent(
            actor: "client-\(n % 7)", role: "clinician", facility: "5201020001", action: "resident.read",
            resource: "resident/\(n)", residentPseudonym: String(repeating: "ab", count: 32), purpose: "treatment",
            requestID: "req-\(n)")
    }

    @Test func concurrentWritersKeepOneUnbrokenChain() async throws {
        try await withTestDatabase { client, _ in
            let trail = AuditTrail(client: client, logger: TestDatabase.logger)
            // Writers and two sealers (two instances of the service) all at once.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in 0..<200 { group.addTask { try await trail.record(Self.event(n)) } }
                for _ in 0..<2 {
                    group.addTask {
                        for _ in 0..<10 {
                            try await trail.seal(batchSize: 16)
                            try await Task.sleep(for: .milliseconds(5))
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await trail.seal()
            let result = try await trail.verify()
            #expect(result.isIntact)
            #expect(result.rowsChecked == 200)
            let distinct = try await client.query("SELECT count(DISTINCT prev_hash) FROM access.audit_chain").collect().first?.decode(
                Int.self)
            #expect(distinct == 200, "no two rows claim the same predecessor: the chain never forked")
            #expect(result.unsealed == 0)
        }
    }

    @Test func rowsCannotBeChangedOrDeletedThroughSQL() async throws {
        try await withTestDatabase { client, _ in
            let trail = AuditTrail(client: client, logger: TestDatabase.logger)
            try await trail.record(Self.event(1))
            // Unsealed or sealed, a row is never changed: sealing appends to the chain instead.
            await #expect(throws: PSQLError.self) { try await client.query("UPDATE access.audit_log SET actor = 'x'") }
            try await trail.seal()
            await #expect(throws: PSQLError.self) { try await client.query("UPDATE access.audit_log SET actor = 'x'") }
            await #expect(throws: PSQLError.self) { try await client.query("DELETE FROM access.audit_log") }
            await #expect(throws: PSQLError.self) { try await client.query("TRUNCATE access.audit_log") }
            await #expect(throws: PSQLError.self) { try await client.query("UPDATE access.audit_chain SET hash = repeat('f', 64)") }
            await #expect(throws: PSQLError.self) { try await client.query("DELETE FROM access.audit_chain") }
            await #expect(throws: PSQLError.self) { try await client.query("TRUNCATE access.audit_chain") }
            #expect(try await client.query("SELECT count(*) FROM access.audit_unsealed").collect().first?.decode(Int.self) == 0)
            #expect(try await trail.verify().isIntact)
            #expect(try await trail.verify().rowsChecked == 1)
        }
    }

    @Test func rowsOfARolledBackTransactionNeverEnterTheChain() async throws {
        try await withTestDatabase { client, _ in
            let trail = AuditTrail(client: client, logger: TestDatabase.logger)
            try await trail.record(Self.event(1))
            struct Abort: Error {}
            await #expect(throws: Abort.self) {
                try await client.transaction(logger: TestDatabase.logger) { connection in
                    try await AuditTrail.append(Self.event(2), on: connection, logger: TestDatabase.logger)
                    throw Abort()
                }
            }
            try await trail.record(Self.event(3))
            #expect(try await trail.seal() == 2)
            let result = try await trail.verify()
            #expect(result.isIntact && result.rowsChecked == 2)
        }
    }

    @Test func aTamperedRowIsNamed() async throws {
        try await withTestDatabase { client, _ in
            let trail = AuditTrail(client: client, logger: TestDatabase.logger)
            for n in 1...10 { try await trail.record(Self.event(n)) }
            try await trail.seal()
            // Someone with owner rights disables the guard and rewrites history.
            try await client.withConnection { connection in
                try await connection.query(
                    "ALTER TABLE access.audit_log DISABLE TRIGGER audit_log_append_only", logger: TestDatabase.logger)
                try await connection.query(
                    "UPDATE access.audit_log SET purpose = 'research' WHERE id = (SELECT audit_id FROM access.audit_chain WHERE seq = 4)",
                    logger: TestDatabase.logger)
                try await connection.query("ALTER TABLE access.audit_log ENABLE TRIGGER audit_log_append_only", logger: TestDatabase.logger)
            }
            let result = try await trail.verify()
            #expect(result.firstBroken?.sequence == 4)
            #expect(result.rowsChecked == 3)
            #expect(result.firstBroken?.reason.contains("hash") == true)
        }
    }

    @Test func aDeletedRowAndACutTailAreNamed() async throws {
        try await withTestDatabase { client, _ in
            let trail = AuditTrail(client: client, logger: TestDatabase.logger)
            for n in 1...6 { try await trail.record(Self.event(n)) }
            try await trail.seal()
            try await client.withConnection { connection in
                try await connection.query(
                    "ALTER TABLE access.audit_chain DISABLE TRIGGER audit_chain_append_only", logger: TestDatabase.logger)
                try await connection.query("DELETE FROM access.audit_chain WHERE seq = 6", logger: TestDatabase.logger)
            }
            #expect(try await trail.verify().firstBroken?.sequence == 6, "a cut tail shows against the head")
            try await client.withConnection { connection in
                try await connection.query(
                    "ALTER TABLE access.audit_log DISABLE TRIGGER audit_log_append_only", logger: TestDatabase.logger)
                try await connection.query(
                    "DELETE FROM access.audit_log WHERE id = (SELECT audit_id FROM access.audit_chain WHERE seq = 3)",
                    logger: TestDatabase.logger)
            }
            let result = try await trail.verify()
            #expect(result.firstBroken?.sequence == 3)
            #expect(result.firstBroken?.reason.contains("missing") == true)
        }
    }

    @Test func aRewrittenChainTailIsCaughtByItsLinks() async throws {
        try await withTestDatabase { client, _ in
            let trail = AuditTrail(client: client, logger: TestDatabase.logger)
            for n in 1...5 { try await trail.record(Self.event(n)) }
            try await trail.seal()
            // Recomputing one row's own hash is not enough: the next row's link breaks.
            try await client.withConnection { connection in
                try await connection.query(
                    "ALTER TABLE access.audit_chain DISABLE TRIGGER audit_chain_append_only", logger: TestDatabase.logger)
                try await connection.query(
                    "UPDATE access.audit_chain SET hash = repeat('f', 64) WHERE seq = 2", logger: TestDatabase.logger)
            }
            let result = try await trail.verify()
            #expect(result.firstBroken?.sequence == 2)
        }
    }
}
