/// An HL7 DTM value: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`.
///
/// Parsing is strict: digits in the right places, real calendar dates (leap years included),
/// hours 0-23, minutes 0-59, seconds 0-59, 1-4 fraction digits only after seconds, offsets of
/// at most ±14:00 with minutes < 60. Anything else gives nil.
public struct HL7DateTime: Sendable, Hashable, CustomStringConvertible {
    public enum Precision: Int, Sendable, Hashable, Comparable {
        case year, month, day, hour, minute, second, fraction
        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    public var year: Int
    public var month: Int?
    public var day: Int?
    public var hour: Int?
    public var minute: Int?
    public var second: Int?
    /// The fraction digits as written (1 to 4), for example "532".
    public var fractionDigits: String?
    /// UTC offset in minutes (`+0800` is 480); nil when the value carries none.
    public var offsetMinutes: Int?

    public var precision: Precision {
        if fractionDigits != nil { return .fraction }
        if second != nil { return .second }
        if minute != nil { return .minute }
        if hour != nil { return .hour }
        if day != nil { return .day }
        if month != nil { return .month }
        return .year
    }

    /// The fraction of a second as a number (0 when absent).
    public var fraction: Double {
        guard let fractionDigits, let value = Int(fractionDigits) else { return 0 }
        var scale = 1.0
        for _ in fractionDigits.utf8 { scale *= 10 }
        return Double(value) / scale
    }

    public init(
        year: Int, month: Int? = nil, day: Int? = nil, hour: Int? = nil, minute: Int? = nil, second: Int? = nil,
        fractionDigits: String? = nil, offsetMinutes: Int? = nil
    ) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
        self.fractionDigits = fractionDigits
        self.offsetMinutes = offsetMinutes
    }

    /// Builds a second-precision value from epoch seconds, shown at the given offset
    /// (the library has no clock: callers pass the time, for example for ACK MSH-7).
    public init(epochSeconds: Int, offsetMinutes: Int) {
        let local = epochSeconds + offsetMinutes * 60
        let days = local >= 0 ? local / 86_400 : -((-local + 86_399) / 86_400)
        let secondsOfDay = local - days * 86_400
        let (year, month, day) = Self.civil(fromDays: days)
        self.init(
            year: year, month: month, day: day, hour: secondsOfDay / 3600, minute: secondsOfDay / 60 % 60, second: secondsOfDay % 60,
            offsetMinutes: offsetMinutes)
    }

    /// Parses a DTM (or the DTM in TS component 1); nil when invalid.
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        var index = 0
        func digits(_ count: Int) -> Int? {
            guard index + count <= bytes.count else { return nil }
            var value = 0
            for offset in 0..<count {
                let byte = bytes[index + offset]
                guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += count
            return value
        }
        func atFieldBoundary() -> Bool { index == bytes.count || bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") }
        guard let year = digits(4) else { return nil }
        self.init(year: year)
        let units: [WritableKeyPath<HL7DateTime, Int?>] = [\.month, \.day, \.hour, \.minute, \.second]
        for unit in units {
            if atFieldBoundary() { break }
            guard let value = digits(2) else { return nil }
            self[keyPath: unit] = value
        }
        if second != nil, index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
            guard index - start >= 1 && index - start <= 4 else { return nil }
            fractionDigits = String(decoding: bytes[start..<index], as: UTF8.self)
        }
        if index < bytes.count {
            let sign = bytes[index]
            guard sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") else { return nil }
            index += 1
            guard let hours = digits(2), let minutes = digits(2), hours <= 14, minutes < 60 else { return nil }
            offsetMinutes = (hours * 60 + minutes) * (sign == UInt8(ascii: "-") ? -1 : 1)
        }
        guard index == bytes.count, isValid else { return nil }
    }

    var isValid: Bool {
        if let month, !(1...12).contains(month) { return false }
        if let day, let month, !(1...Self.daysInMonth(year: year, month: month)).contains(day) { return false }
        if let hour, !(0...23).contains(hour) { return false }
        if let minute, !(0...59).contains(minute) { return false }
        if let second, !(0...59).contains(second) { return false }
        return true
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// The DTM text, for example `20240131083000.5+0800`.
    public var er7: String {
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        var text = String(repeating: "0", count: max(0, 4 - String(year).count)) + String(year)
        for value in [month, day, hour, minute, second] {
            guard let value else { break }
            text += two(value)
        }
        if let fractionDigits, second != nil { text += "." + fractionDigits }
        if let offsetMinutes {
            let magnitude = abs(offsetMinutes)
            text += (offsetMinutes < 0 ? "-" : "+") + two(magnitude / 60) + two(magnitude % 60)
        }
        return text
    }

    public var description: String { er7 }

    /// Seconds since 1970-01-01T00:00:00Z of the value's start (missing parts count as their
    /// lowest value), using the value's own offset or, without one, `defaultOffsetMinutes`
    /// (China: 480). Nil when neither gives an offset.
    public func epochSeconds(defaultOffsetMinutes: Int? = nil) -> Double? {
        guard let offset = offsetMinutes ?? defaultOffsetMinutes else { return nil }
        let days = Self.days(fromCivil: year, month ?? 1, day ?? 1)
        let seconds = days * 86_400 + (hour ?? 0) * 3600 + (minute ?? 0) * 60 + (second ?? 0) - offset * 60
        return Double(seconds) + fraction
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func days(fromCivil year: Int, _ month: Int, _ day: Int) -> Int {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civil(fromDays days: Int) -> (Int, Int, Int) {
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
