/// Toneless Mandarin readings of Han characters, for matching names across homophone characters
/// and names typed in pinyin. Pure: the table is compiled in, parsed once on first use.
public enum Pinyin {
    /// Readings by character, most common first (`单` → dan, chan, shan).
    static let readingsByScalar: [Unicode.Scalar: [String]] = {
        var result: [Unicode.Scalar: [String]] = [:]
        result.reserveCapacity(42_000)
        for entry in table.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            guard let scalar = entry.unicodeScalars.first else { continue }
            let rest = String(entry.unicodeScalars.dropFirst())
            result[scalar] = rest.split(separator: "/").map(String.init)
        }
        return result
    }()

    /// Surname readings that differ from the character's common reading.
    static let surnameReadings: [Unicode.Scalar: String] = [
        "单": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "朴": "piao", "区": "ou", "查": "zha", "盖": "ge",
        "乐": "yue", "尉": "yu", "缪": "miao", "翟": "zhai", "覃": "qin", "繁": "po", "员": "yun", "华": "hua",
        "任": "ren", "沈": "shen", "秘": "bi", "召": "shao", "褚": "chu", "纪": "ji", "葛": "ge", "蕃": "pi",
    ]

    /// Every reading of `character`; a Latin letter or digit stands for itself, lower-cased.
    public static func readings(of character: Character) -> [String] {
        guard let scalar = character.unicodeScalars.first else { return [] }
        if let readings = readingsByScalar[scalar] { return readings }
        return [String(character).lowercased()]
    }

    public static func isHan(_ character: Character) -> Bool {
        guard let scalar = character.unicodeScalars.first else { return false }
        return readingsByScalar[scalar] != nil
    }
}
