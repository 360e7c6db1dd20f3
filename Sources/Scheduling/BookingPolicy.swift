import Foundation

/// The rules Chinese booking platforms enforce, as numbers an operator can change.
public struct BookingPolicy: Sendable, Equatable {
    /// Bookings not yet attended (status booked, slot still ahead) a resident may hold at once.
    public var activeLimit = 5
    /// This many no-shows within `noShowWindowDays` suspend online booking for `suspensionDays`.
    public var noShowLimit = 3
    public var noShowWindowDays = 90
    public var suspensionDays = 90
    /// Waiting lists a resident may be on at once.
    public var waitlistLimit = 5
    /// Days ahead the worker keeps slots generated for every schedule.
    public var horizonDays = 14
    /// Booking attempts: a burst, then a steady rate, per resident and per API client.
    public var residentBurst = 10
    public var residentPerMinute = 10
    public var clientBurst = 200
    public var clientPerSecond = 100

    public init() {}
}

/// Token buckets in memory, one per key. Booking rushes are decided in the database; the buckets
/// only keep a script from sending thousands of attempts a second for one resident or from one
/// client, so that people on phones are not crowded out. Per process: with several service
/// instances behind a balancer each keeps its own buckets, and the limit scales with them.
public actor RateLimiter {
    struct Bucket {
        var tokens: Double
        var updated: Double
    }

    private let capacity: Double
    private let refillPerSecond: Double
    private var buckets: [String: Bucket] = [:]
    private var lastPrune: Double = 0

    public init(burst: Int, perSecond: Double) {
        capacity = Double(max(1, burst))
        refillPerSecond = max(perSecond, 0.000_1)
    }

    /// Takes one token for `key`, or returns the whole seconds to wait for one.
    public func take(_ key: String, now: Double = Date().timeIntervalSinceReferenceDate) -> Int? {
        prune(now: now)
        var bucket = buckets[key] ?? Bucket(tokens: capacity, updated: now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * refillPerSecond)
        bucket.updated = now
        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            buckets[key] = bucket
            return nil
        }
        buckets[key] = bucket
        return max(1, Int(((1 - bucket.tokens) / refillPerSecond).rounded(.up)))
    }

    /// Full buckets carry no information: dropping them keeps memory bounded by recent callers.
    private func prune(now: Double) {
        guard now - lastPrune > 60 else { return }
        lastPrune = now
        let fullAfter = capacity / refillPerSecond
        buckets = buckets.filter { now - $0.value.updated < fullAfter }
    }
}
