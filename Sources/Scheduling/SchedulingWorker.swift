import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Storage

/// Where notifications go once they leave the outbox. The outbox is the contract; a deployment
/// plugs its SMS gateway or push service in here. The default only counts what it delivered.
public protocol NotificationSink: Sendable {
    /// Delivers one notification; throwing leaves it in the outbox for the next pass.
    func deliver(topic: String, resident: UUID, payload: String) async throws
}

/// Logs the topic and the row, never the payload (it names a resident's appointment).
public struct LoggingNotificationSink: NotificationSink {
    let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    public func deliver(topic: String, resident: UUID, payload: String) async throws {
        logger.debug("notification delivered", metadata: ["notification.topic": "\(topic)"])
    }
}

/// The module's background work: slots kept generated ahead, reminders the day before, freed
/// places handed to waiting lists, and the outbox drained. Each pass is callable on its own.
public struct SchedulingWorker: Service {
    let client: PostgresClient
    let directory: SchedulingDirectory
    let waitingList: WaitingList
    let sink: any NotificationSink
    let interval: Duration
    let logger: Logger

    public init(
        client: PostgresClient, directory: SchedulingDirectory, waitingList: WaitingList, sink: any NotificationSink,
        interval: Duration = .seconds(30), logger: Logger
    ) {
        self.client = client
        self.directory = directory
        self.waitingList = waitingList
        self.sink = sink
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        var lastGeneration = ContinuousClock.now - .seconds(3600)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                if ContinuousClock.now - lastGeneration >= .seconds(3600) {
                    let created = try await directory.generateSlots()
                    lastGeneration = ContinuousClock.now
                    logger.info("slots generated", metadata: ["scheduling.slots.created": "\(created)"])
                }
                _ = try await waitingList.promotePending()
                _ = try await remind()
                while try await deliver() > 0 {}
            } catch is CancellationError {
                return
            } catch {
                logger.error("scheduling worker step failed", metadata: ["error.type": "\(type(of: error))"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// A reminder for every booking of tomorrow (local date of its schedule) not yet reminded.
    @discardableResult
    public func remind() async throws -> Int {
        try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                WITH due AS (
                    UPDATE scheduling.bookings b SET reminded_at = now()
                    FROM scheduling.slots s JOIN scheduling.schedules sc ON sc.id = s.schedule_id
                    WHERE s.id = b.slot_id AND b.status = 'booked' AND b.reminded_at IS NULL
                      AND b.day <= (now() AT TIME ZONE sc.time_zone)::date + 1 AND b.starts_at > now()
                    RETURNING b.id, b.resident_id, b.slot_id, b.facility, b.provider_id, b.starts_at
                )
                INSERT INTO scheduling.outbox (topic, resident_id, booking_id, payload)
                SELECT 'booking.reminder', resident_id, id,
                       jsonb_build_object('booking', id, 'slot', slot_id, 'facility', facility, 'provider', provider_id, 'start', starts_at)
                FROM due RETURNING 1
                """, logger: logger
            ).collect()
            return rows.count
        }
    }

    /// Hands up to 200 pending notifications to the sink; a failed one stays with its attempt counted.
    @discardableResult
    public func deliver() async throws -> Int {
        try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                SELECT id, topic, resident_id, payload::text FROM scheduling.outbox WHERE delivered_at IS NULL AND attempts < 20
                ORDER BY id LIMIT 200 FOR UPDATE SKIP LOCKED
                """, logger: logger
            ).collect()
            var delivered: [Int64] = []
            var failed: [Int64] = []
            for row in rows {
                let (id, topic, resident, payload) = try row.decode((Int64, String, UUID, String).self)
                do {
                    try await sink.deliver(topic: topic, resident: resident, payload: payload)
                    delivered.append(id)
                } catch {
                    failed.append(id)
                }
            }
            _ = try await connection.query(
                "UPDATE scheduling.outbox SET delivered_at = now(), attempts = attempts + 1 WHERE id = ANY(\(delivered)::int8[])",
                logger: logger)
            _ = try await connection.query(
                "UPDATE scheduling.outbox SET attempts = attempts + 1 WHERE id = ANY(\(failed)::int8[])", logger: logger)
            return delivered.count
        }
    }
}
