import Foundation

/// A deterministic generator (SplitMix64), so every run with the same seed sees the same residents.
struct SplitMix64 {
    private var state: UInt64
    private var spareNormal: Double?

    init(seed: UInt64) { state = seed }

    /// A generator of its own for item `number` of a stream seeded with `seed`: each resident is
    /// generated alone, so the population does not depend on how the work is split over threads.
    init(seed: UInt64, stream number: Int) {
        state = Self.mix(seed ^ Self.mix(UInt64(truncatingIfNeeded: number) &+ 0x5851_F42D_4C95_7F2D))
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }

    mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * uniform() }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    mutating func chance(_ probability: Double) -> Bool { uniform() < probability }

    /// Normal (Box–Muller, the second value kept for the next call).
    mutating func normal(_ mean: Double = 0, _ deviation: Double = 1) -> Double {
        if let spare = spareNormal {
            spareNormal = nil
            return mean + deviation * spare
        }
        let radius = (-2 * log(1 - uniform())).squareRoot()
        let angle = 2 * Double.pi * uniform()
        spareNormal = radius * sin(angle)
        return mean + deviation * radius * cos(angle)
    }

    /// An index drawn with the given weights (which need not sum to 1).
    mutating func pick(_ weights: [Double]) -> Int {
        var remaining = uniform() * weights.reduce(0, +)
        for (index, weight) in weights.enumerated() {
            remaining -= weight
            if remaining < 0 { return index }
        }
        return weights.count - 1
    }
}

extension Double {
    func clamped(_ range: ClosedRange<Double>) -> Double { Swift.min(Swift.max(self, range.lowerBound), range.upperBound) }
}
