/// How far two names agree, strongest first. Levels, not a score: the matcher gives each level
/// its own weight (m- and u-probabilities in the Fellegi–Sunter sense).
public enum NameAgreement: Int, Sendable, Comparable, CaseIterable {
    case different = 0
    /// Only the surname agrees (exactly or by sound).
    case surnameOnly
    /// Pinyin typed with a small slip (Jaro–Winkler ≥ 0.92), or Han names alike once the dialect's
    /// merged sounds are folded (`陈` / `程`, `刘` / `牛`).
    case similar
    /// Same sounds, different characters (`张三` / `章三`), or one written in pinyin (`Zhang San`).
    case homophone
    /// The same characters.
    case exact

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

public enum NameComparison {
    public static func compare(_ a: ChineseName, _ b: ChineseName) -> NameAgreement {
        guard !a.parts.isEmpty, !b.parts.isEmpty else { return .different }
        if a.isHan && b.isHan {
            if a.parts == b.parts { return .exact }
            if soundsAlike(a.readingSets, b.readingSets) { return .homophone }
        } else if a.isHan || b.isHan {
            // One side typed in pinyin: spell the Han side's readings against it, in either order.
            let (han, latin) = a.isHan ? (a, b) : (b, a)
            if latinOrders(latin).contains(where: { consume(Substring($0), han.readingSets[...]) }) { return .homophone }
        } else {
            if a.parts == b.parts { return .exact }
            if !Set(latinOrders(a)).isDisjoint(with: latinOrders(b)) { return .homophone }
        }
        if a.isHan && b.isHan {
            // Between Han names, a near spelling is no evidence (siblings: 陈建国, 陈建军); a sound
            // the local dialect merges is (an IME pick of 程 for 陈).
            if soundsAlike(a.readingSets.map(Self.dialectFold), b.readingSets.map(Self.dialectFold)) { return .similar }
        } else if JaroWinkler.similarity(a.pinyinKey, b.pinyinKey) >= 0.92 {
            return .similar
        }
        if let sa = a.surname, let sb = b.surname,
            sa == sb || soundsAlike(ChineseName(sa).readingSets, ChineseName(sb).readingSets)
        {
            return .surnameOnly
        }
        return .different
    }

    /// Folds the distinctions southwestern Mandarin (Guizhou's) does not make: retroflex and flat
    /// initials (zh/z, ch/c, sh/s), n and l, and front and back nasal finals (en/eng, in/ing, an/ang).
    static func dialectFold(_ readings: [String]) -> [String] {
        readings.map { reading in
            var folded = reading
            for (from, to) in [("zh", "z"), ("ch", "c"), ("sh", "s")] where folded.hasPrefix(from) {
                folded = to + folded.dropFirst(2)
            }
            if folded.hasPrefix("l") { folded = "n" + folded.dropFirst() }
            for (from, to) in [("eng", "en"), ("ing", "in"), ("ang", "an")] where folded.hasSuffix(from) {
                folded = String(folded.dropLast(3)) + to
            }
            return folded
        }
    }

    /// Same number of characters and every position shares a reading.
    static func soundsAlike(_ a: [[String]], _ b: [[String]]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { !Set($0).isDisjoint(with: $1) }
    }

    /// A Latin-typed name run together, as typed and with its last group moved first
    /// (`San Zhang` → `sanzhang`, `zhangsan`): systems differ on surname order.
    static func latinOrders(_ name: ChineseName) -> [String] {
        guard name.parts.count > 1 else { return [name.parts.joined()] }
        return [name.parts.joined(), (name.parts.suffix(1) + name.parts.dropLast()).joined()]
    }

    static func consume(_ latin: Substring, _ readings: ArraySlice<[String]>) -> Bool {
        guard let first = readings.first else { return latin.isEmpty }
        for reading in first where latin.hasPrefix(reading) {
            if consume(latin.dropFirst(reading.count), readings.dropFirst()) { return true }
        }
        return false
    }
}

/// How two birth dates agree. Desks swap day and month, and mistype one digit.
public enum DateAgreement: Int, Sendable, Comparable {
    case different = 0
    case oneDigitOff
    case dayMonthSwapped
    case exact

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Compares `YYYY-MM-DD` (or `YYYYMMDD`) dates.
    public static func compare(_ a: String, _ b: String) -> DateAgreement {
        let x = a.filter(\.isNumber)
        let y = b.filter(\.isNumber)
        guard x.count == 8, y.count == 8 else { return .different }
        if x == y { return .exact }
        let (xa, ya) = (Array(x), Array(y))
        if xa[0..<4] == ya[0..<4], xa[4..<6] == ya[6..<8], xa[6..<8] == ya[4..<6] { return .dayMonthSwapped }
        if zip(xa, ya).filter({ $0 != $1 }).count == 1 { return .oneDigitOff }
        return .different
    }
}

/// Jaro–Winkler similarity, 0…1, on Unicode scalars.
public enum JaroWinkler {
    public static func similarity(_ a: String, _ b: String) -> Double {
        let s = Array(a.unicodeScalars)
        let t = Array(b.unicodeScalars)
        if s.isEmpty && t.isEmpty { return 1 }
        if s.isEmpty || t.isEmpty { return 0 }
        let window = max(0, max(s.count, t.count) / 2 - 1)
        var sMatched = [Bool](repeating: false, count: s.count)
        var tMatched = [Bool](repeating: false, count: t.count)
        var matches = 0
        for i in 0..<s.count {
            let low = max(0, i - window)
            let high = min(t.count - 1, i + window)
            guard low <= high else { continue }
            for j in low...high where !tMatched[j] && s[i] == t[j] {
                sMatched[i] = true
                tMatched[j] = true
                matches += 1
                break
            }
        }
        guard matches > 0 else { return 0 }
        var transpositions = 0
        var k = 0
        for i in 0..<s.count where sMatched[i] {
            while !tMatched[k] { k += 1 }
            if s[i] != t[k] { transpositions += 1 }
            k += 1
        }
        let m = Double(matches)
        let jaro = (m / Double(s.count) + m / Double(t.count) + (m - Double(transpositions / 2)) / m) / 3
        var prefix = 0
        while prefix < min(4, s.count, t.count), s[prefix] == t[prefix] { prefix += 1 }
        return jaro + Double(prefix) * 0.1 * (1 - jaro)
    }
}
