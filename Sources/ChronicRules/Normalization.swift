/// The kinds of reading a device sends, as named in the API.
public enum ReadingType: String, Sendable, Codable, CaseIterable {
    case bloodPressure = "blood-pressure"
    case heartRate = "heart-rate"
    case glucoseFasting = "glucose-fasting"
    case glucoseRandom = "glucose-random"
    case temperature
    case weight
    case spo2

    /// The measure a single-valued reading carries.
    public var measure: Measure? {
        switch self {
        case .bloodPressure: nil
        case .heartRate: .heartRate
        case .glucoseFasting: .fastingGlucose
        case .glucoseRandom: .randomGlucose
        case .temperature: .temperature
        case .weight: .weight
        case .spo2: .spo2
        }
    }

    /// Units accepted, lowercased, with the factor and offset to the stored unit.
    var units: [String: (factor: Double, offset: Double)] {
        switch self {
        case .bloodPressure: ["mmhg": (1, 0), "mm[hg]": (1, 0), "kpa": (7.500_62, 0)]
        case .heartRate: ["/min": (1, 0), "bpm": (1, 0), "{beats}/min": (1, 0), "次/分": (1, 0)]
        case .glucoseFasting, .glucoseRandom: ["mmol/l": (1, 0), "mg/dl": (1 / 18.016, 0)]
        case .temperature:
            [
                "cel": (1, 0), "°c": (1, 0), "℃": (1, 0), "c": (1, 0), "[degf]": (5.0 / 9.0, -32 * 5.0 / 9.0),
                "°f": (5.0 / 9.0, -32 * 5.0 / 9.0),
            ]
        case .weight: ["kg": (1, 0), "g": (0.001, 0), "[lb_av]": (0.453_592_37, 0), "lb": (0.453_592_37, 0), "斤": (0.5, 0)]
        case .spo2: ["%": (1, 0)]
        }
    }

    public var defaultUnit: String {
        switch self {
        case .bloodPressure: "mmHg"
        case .heartRate: "/min"
        case .glucoseFasting, .glucoseRandom: "mmol/L"
        case .temperature: "Cel"
        case .weight: "kg"
        case .spo2: "%"
        }
    }

    public var acceptedUnits: [String] {
        switch self {
        case .bloodPressure: ["mmHg", "kPa"]
        case .heartRate: ["/min", "bpm"]
        case .glucoseFasting, .glucoseRandom: ["mmol/L", "mg/dL"]
        case .temperature: ["Cel", "°C", "[degF]", "°F"]
        case .weight: ["kg", "g", "[lb_av]", "斤"]
        case .spo2: ["%"]
        }
    }
}

/// Physiologically possible values, in the stored units. Outside them a reading is a device or
/// typing fault, refused with a reason, never a crisis to alert on.
public enum PhysiologicalLimits {
    public static func range(_ measure: Measure) -> ClosedRange<Double> {
        switch measure {
        case .systolic: 40...300
        case .diastolic: 20...200
        case .heartRate: 20...300
        case .fastingGlucose, .randomGlucose: 0.6...55
        case .temperature: 25...45
        case .weight: 0.3...400
        case .spo2: 50...100
        }
    }
}

/// A reading's values as sent (blood pressure's three, or `value`) in the unit sent.
public struct RawValues: Sendable, Equatable {
    public var systolic: Double?
    public var diastolic: Double?
    public var heartRate: Double?
    public var value: Double?
    public var unit: String?

    public init(systolic: Double? = nil, diastolic: Double? = nil, heartRate: Double? = nil, value: Double? = nil, unit: String? = nil) {
        self.systolic = systolic
        self.diastolic = diastolic
        self.heartRate = heartRate
        self.value = value
        self.unit = unit
    }
}

/// Converts a reading to the stored units and checks it is possible; the error says why not.
public func normalize(_ type: ReadingType, _ raw: RawValues) -> Result<Values, ReadingRejection> {
    let unitText = (raw.unit ?? type.defaultUnit).trimmingSpaces.lowercased()
    guard let (factor, offset) = type.units[unitText] else {
        return .failure(
            ReadingRejection(
                field: "unit",
                reason:
                    "\(String((raw.unit ?? "").prefix(20))) is not a unit for \(type.rawValue): use \(type.acceptedUnits.joined(separator: ", "))"
            ))
    }
    func converted(_ value: Double?, _ measure: Measure, field: String, required: Bool = true) -> Result<Double?, ReadingRejection> {
        guard let value else {
            return required ? .failure(ReadingRejection(field: field, reason: "is required for \(type.rawValue)")) : .success(nil)
        }
        guard value.isFinite else { return .failure(ReadingRejection(field: field, reason: "must be a number")) }
        let stored = value * factor + offset
        let range = PhysiologicalLimits.range(measure)
        guard range.contains(stored) else {
            return .failure(
                ReadingRejection(
                    field: field,
                    reason:
                        "\(formatted(value)) \(raw.unit ?? type.defaultUnit) is not physiologically possible (\(formatted(range.lowerBound))–\(formatted(range.upperBound)) \(measure.unit))"
                ))
        }
        return .success(stored)
    }
    var values = Values()
    switch type {
    case .bloodPressure:
        guard raw.value == nil else {
            return .failure(ReadingRejection(field: "value", reason: "a blood pressure is sent as systolic and diastolic"))
        }
        let systolic: Double?
        let diastolic: Double?
        switch converted(raw.systolic, .systolic, field: "systolic") {
        case .success(let value): systolic = value
        case .failure(let rejection): return .failure(rejection)
        }
        switch converted(raw.diastolic, .diastolic, field: "diastolic") {
        case .success(let value): diastolic = value
        case .failure(let rejection): return .failure(rejection)
        }
        guard let systolic, let diastolic, systolic > diastolic else {
            return .failure(ReadingRejection(field: "diastolic", reason: "must be lower than systolic"))
        }
        values[.systolic] = systolic
        values[.diastolic] = diastolic
        if let heartRate = raw.heartRate {
            // Heart rate rides along with a blood pressure in beats per minute whatever the pressure's unit.
            guard heartRate.isFinite, PhysiologicalLimits.range(.heartRate).contains(heartRate) else {
                return .failure(ReadingRejection(field: "heartRate", reason: "must be from 20 to 300 per minute"))
            }
            values[.heartRate] = heartRate
        }
    default:
        guard raw.systolic == nil, raw.diastolic == nil else {
            return .failure(ReadingRejection(field: "value", reason: "systolic and diastolic belong to a blood-pressure reading"))
        }
        switch converted(raw.value, type.measure!, field: "value") {
        case .success(let value): values[type.measure!] = value!
        case .failure(let rejection): return .failure(rejection)
        }
    }
    return .success(values)
}

/// Why one reading of a batch was refused; the rest of the batch is kept.
public struct ReadingRejection: Error, Sendable, Equatable {
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }
}

func formatted(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e9 ? String(Int(value)) : String((value * 100).rounded() / 100)
}

extension String {
    var trimmingSpaces: String {
        var text = Substring(self)
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return String(text)
    }
}
