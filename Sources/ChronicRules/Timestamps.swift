/// ISO 8601 times as devices send them, read and written without Foundation's date formatters
/// (which cost tens of microseconds each to set up, more than the rest of a reading's ingest).
public struct DeviceTimestamp: Sendable, Equatable {
    /// Seconds since 1970 of the wall-clock time, as if it were UTC.
    public var localSeconds: Int64
    /// Fractional seconds, kept for round trips.
    public var nanoseconds: Int32
    /// The offset written in the text (`Z`, `+08:00`, `-0500`), in minutes east of UTC; nil when the text has none.
    public var offsetMinutes: Int?

    /// The instant, given the offset to assume when the text has none.
    public func instant(assumingOffsetMinutes fallback: Int) -> Int64 {
        localSeconds - Int64(offsetMinutes ?? fallback) * 60
    }

    /// Reads `YYYY-MM-DDThh:mm[:ss[.fff]][Z|±hh:mm|±hhmm]` (a space may stand for the `T`).
    public static func parse(_ text: String) -> DeviceTimestamp? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 16, bytes.count <= 40 else { return nil }
        var position = 0
        func number(_ digits: Int) -> Int? {
            guard position + digits <= bytes.count else { return nil }
            var value = 0
            for _ in 0..<digits {
                let byte = bytes[position]
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
                position += 1
            }
            return value
        }
        func expect(_ byte: UInt8) -> Bool {
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            return true
        }
        guard let year = number(4), expect(45), let month = number(2), expect(45), let day = number(2) else { return nil }
        guard position < bytes.count, bytes[position] == 84 || bytes[position] == 116 || bytes[position] == 32 else { return nil }
        position += 1
        guard let hour = number(2), expect(58), let minute = number(2) else { return nil }
        var second = 0
        var nanoseconds: Int32 = 0
        if expect(58) {
            guard let value = number(2) else { return nil }
            second = value
            if expect(46) || expect(44) {
                var scale: Int32 = 100_000_000
                var digits = 0
                while position < bytes.count, bytes[position] >= 48, bytes[position] <= 57 {
                    nanoseconds += Int32(bytes[position] - 48) * scale
                    scale /= 10
                    position += 1
                    digits += 1
                    guard digits <= 9 else { return nil }
                }
                guard digits > 0 else { return nil }
            }
        }
        var offset: Int?
        if position < bytes.count {
            let sign = bytes[position]
            if sign == 90 || sign == 122 {
                position += 1
                offset = 0
            } else if sign == 43 || sign == 45 {
                position += 1
                guard let hours = number(2) else { return nil }
                _ = expect(58)
                guard let minutes = number(2), hours <= 14, minutes < 60 else { return nil }
                offset = (sign == 45 ? -1 : 1) * (hours * 60 + minutes)
            } else {
                return nil
            }
        }
        guard position == bytes.count else { return nil }
        guard (1900...2999).contains(year), (1...12).contains(month), day >= 1, day <= daysInMonth(year, month), hour <= 23, minute <= 59,
            second <= 60
        else { return nil }
        let days = daysFromCivil(year, month, day)
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59))
        return DeviceTimestamp(localSeconds: seconds, nanoseconds: nanoseconds, offsetMinutes: offset)
    }

    /// `2026-11-30T07:45:00+08:00`: the instant on the clock of `offsetMinutes`.
    public static func format(seconds: Int64, offsetMinutes: Int) -> String {
        let local = seconds + Int64(offsetMinutes) * 60
        let days = floorDivide(local, 86_400)
        let secondOfDay = Int(local - days * 86_400)
        let (year, month, day) = civilFromDays(days)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let sign = offsetMinutes < 0 ? "-" : "+"
        let offset = abs(offsetMinutes)
        let zone = offsetMinutes == 0 ? "Z" : "\(sign)\(two(offset / 60)):\(two(offset % 60))"
        return "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))\(zone)"
    }

    static func daysInMonth(_ year: Int, _ month: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    static func civilFromDays(_ days: Int64) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (Int(yearOfEra + era * 400 + (month <= 2 ? 1 : 0)), Int(month), Int(day))
    }
}
