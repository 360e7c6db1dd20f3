import Access
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Storage

/// One entry of `consultation.events`: a state change or a new message. It carries ids and
/// states only; a client reads the consultation or its messages for the content.
public struct ConsultationStreamEvent: Sendable, Codable, Equatable {
    public var id: Int64
    public var kind: String
    public var consultation: String
    public var status: String
    public var department: String
    public var fromDepartment: String?
    public var clinician: String?
    public var message: String?
    public var at: Date
}

/// What a live stream follows.
public enum ConsultationStreamScope: Sendable, Equatable {
    case consultation(UUID)
    case department(UUID)
}

/// Wakes the live streams when a consultation changes.
///
/// The triggers of migration 0011 call `pg_notify` in the changing transaction, so the wake-up
/// is sent only if and when the change commits, and it reaches the streams of every instance
/// behind the load balancer, not only those of the instance that made the change (an in-process
/// broadcaster fed after commit would miss changes made elsewhere: another instance, the
/// escalation worker of another process, SQL run by an operator). The hub holds one connection
/// that LISTENs and bumps a generation counter; streams wait for the counter to move (or for
/// their keep-alive interval, so a lost connection degrades to polling) and then read the events
/// table, which is what makes `Last-Event-ID` resumption exact.
public actor ConsultationEventHub: Service {
    public static let channel = "consultation_events"
    nonisolated let client: PostgresClient
    nonisolated let logger: Logger
    private var generation: UInt64 = 0
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiter = 0

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public nonisolated func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown {
                    try await self.client.withConnection { connection in
                        try await connection.listen(on: Self.channel) { notifications in
                            // Wake the streams once listening: anything they missed while the
                            // hub was reconnecting is in the table.
                            await self.bump()
                            for try await _ in notifications { await self.bump() }
                        }
                    }
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                logger.warning("consultation event listener lost; retrying", metadata: ["error.type": "\(type(of: error))"])
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            }
        }
    }

    func bump() {
        generation &+= 1
        for waiter in waiters.values { waiter.resume() }
        waiters = [:]
    }

    public func current() -> UInt64 { generation }

    /// Returns once a change was notified after generation `seen`, or after `timeout`.
    public nonisolated func wait(beyond seen: UInt64, timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.changed(beyond: seen) }
            group.addTask { try? await Task.sleep(for: timeout) }
            _ = await group.next()
            group.cancelAll()
        }
    }

    private func changed(beyond seen: UInt64) async {
        if generation != seen { return }
        let id = nextWaiter
        nextWaiter += 1
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if generation != seen || Task.isCancelled {
                    continuation.resume()
                } else {
                    waiters[id] = continuation
                }
            }
        } onCancel: {
            Task { await self.release(id) }
        }
    }

    private func release(_ id: Int) {
        waiters.removeValue(forKey: id)?.resume()
    }
}

/// Reads the events a stream may see, after checking once (and auditing) that the caller may
/// follow that consultation or department.
public struct ConsultationEventFeed: Sendable {
    let client: PostgresClient
    let consultations: ConsultationService
    public let hub: ConsultationEventHub
    let logger: Logger

    public init(client: PostgresClient, consultations: ConsultationService, hub: ConsultationEventHub, logger: Logger) {
        self.client = client
        self.consultations = consultations
        self.hub = hub
        self.logger = logger
    }

    /// The consultation's resident and the clinicians of its desk may follow a consultation;
    /// the clinicians of a department's desk may follow the department.
    public func authorize(_ scope: ConsultationStreamScope, by principal: Principal, requestID: String?) async throws {
        try await client.withConnection { connection in
            switch scope {
            case .consultation(let id):
                let row = try await consultations.visible(id, by: principal, on: connection)
                try await consultations.audit.record(
                    principal, "consultation.events.read", resident: row.resident, resource: "consultations/\(row.consultation.id)/events",
                    requestID: requestID, on: connection)
            case .department(let department):
                let me = try await ConsultationAccess.clinician(principal, on: connection, logger: logger)
                guard try await ConsultationAccess.isOnDesk(me, department: department, on: connection, logger: logger) else {
                    throw ConsultationError.forbidden(code: "not-on-desk", detail: "you are not a clinician of this department")
                }
                try await consultations.audit.record(
                    principal, "consultation.stream.read", resident: nil, resource: "departments/\(department.lowercased)/stream",
                    requestID: requestID, on: connection)
            }
        }
    }

    public static let pageSize = 500

    /// Events after id `after` (at most `pageSize`, oldest first).
    public func events(_ scope: ConsultationStreamScope, after: Int64) async throws -> [ConsultationStreamEvent] {
        var consultation: UUID?
        var department: UUID?
        switch scope {
        case .consultation(let id): consultation = id
        case .department(let id): department = id
        }
        let rows = try await client.query(
            """
            SELECT id, kind, consultation_id, status, department_id, from_department_id, provider_id, message_id, created_at
            FROM consultation.events
            WHERE id > \(after) AND (\(consultation)::uuid IS NULL OR consultation_id = \(consultation))
              AND (\(department)::uuid IS NULL OR department_id = \(department) OR from_department_id = \(department))
            ORDER BY id LIMIT \(Self.pageSize)
            """, logger: logger)
        var result: [ConsultationStreamEvent] = []
        for try await (id, kind, consultation, status, department, from, provider, message, at) in rows.decode(
            (Int64, String, UUID, String, UUID, UUID?, UUID?, UUID?, Date).self)
        {
            result.append(
                ConsultationStreamEvent(
                    id: id, kind: kind, consultation: consultation.lowercased, status: status, department: department.lowercased,
                    fromDepartment: from?.lowercased, clinician: provider?.lowercased, message: message?.lowercased, at: at))
        }
        return result
    }
}
