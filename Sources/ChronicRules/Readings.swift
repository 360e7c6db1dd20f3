/// What a home device or a clinic measures. A blood-pressure reading carries systolic, diastolic
/// and often heart rate; every other reading carries one measure.
public enum Measure: String, Sendable, Codable, CaseIterable {
    case systolic, diastolic, heartRate, fastingGlucose, randomGlucose, temperature, weight, spo2

    /// The measure's place in `Values` and in a rule's measure mask.
    var slot: Int {
        switch self {
        case .systolic: 0
        case .diastolic: 1
        case .heartRate: 2
        case .fastingGlucose: 3
        case .randomGlucose: 4
        case .temperature: 5
        case .weight: 6
        case .spo2: 7
        }
    }

    /// The unit every value of this measure is stored and compared in.
    public var unit: String {
        switch self {
        case .systolic, .diastolic: "mmHg"
        case .heartRate: "/min"
        case .fastingGlucose, .randomGlucose: "mmol/L"
        case .temperature: "Cel"
        case .weight: "kg"
        case .spo2: "%"
        }
    }
}

/// A set of measures as a bit mask, so that "does this reading carry anything this rule looks
/// at" is one AND on the hot path.
public struct MeasureSet: Sendable, Equatable, Hashable {
    public var bits: UInt8

    public init(bits: UInt8 = 0) { self.bits = bits }
    public init(_ measures: [Measure]) {
        bits = 0
        for measure in measures { insert(measure) }
    }

    public mutating func insert(_ measure: Measure) { bits |= 1 << UInt8(measure.slot) }
    public mutating func remove(_ measure: Measure) { bits &= ~(1 << UInt8(measure.slot)) }
    public func contains(_ measure: Measure) -> Bool { bits & (1 << UInt8(measure.slot)) != 0 }
    public func intersects(_ other: MeasureSet) -> Bool { bits & other.bits != 0 }
    public var isEmpty: Bool { bits == 0 }
    public var measures: [Measure] { Measure.allCases.filter(contains) }
}

/// A reading's values, in each measure's stored unit; a measure the reading lacks is NaN.
public struct Values: Sendable, Equatable {
    var storage: (Double, Double, Double, Double, Double, Double, Double, Double) = (
        .nan, .nan, .nan, .nan, .nan, .nan, .nan, .nan
    )
    public private(set) var present = MeasureSet()

    public init() {}
    public init(_ pairs: [Measure: Double]) {
        for (measure, value) in pairs { self[measure] = value }
    }

    public subscript(measure: Measure) -> Double {
        get {
            switch measure.slot {
            case 0: storage.0
            case 1: storage.1
            case 2: storage.2
            case 3: storage.3
            case 4: storage.4
            case 5: storage.5
            case 6: storage.6
            default: storage.7
            }
        }
        set {
            switch measure.slot {
            case 0: storage.0 = newValue
            case 1: storage.1 = newValue
            case 2: storage.2 = newValue
            case 3: storage.3 = newValue
            case 4: storage.4 = newValue
            case 5: storage.5 = newValue
            case 6: storage.6 = newValue
            default: storage.7 = newValue
            }
            if newValue.isNaN { present.remove(measure) } else { present.insert(measure) }
        }
    }

    public static func == (lhs: Values, rhs: Values) -> Bool {
        lhs.present == rhs.present && Measure.allCases.allSatisfy { lhs[$0] == rhs[$0] || (lhs[$0].isNaN && rhs[$0].isNaN) }
    }
}

/// One reading as the engine sees it. Times are seconds since 1970 UTC; `utcOffset` is the
/// resident's clock when they measured (seconds east of UTC), which decides the local day that
/// "two consecutive days" counts in.
public struct Reading: Sendable, Equatable {
    public var time: Int64
    public var utcOffset: Int32
    public var values: Values

    public init(time: Int64, utcOffset: Int32 = 8 * 3600, values: Values) {
        self.time = time
        self.utcOffset = utcOffset
        self.values = values
    }

    /// Days since 1970-01-01 on the resident's own calendar.
    public var localDay: Int64 { floorDivide(time + Int64(utcOffset), 86_400) }
}

func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
    let quotient = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient
}
