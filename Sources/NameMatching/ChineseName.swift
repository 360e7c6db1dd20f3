/// A person's name as registration desks write it: Han characters (`张三`, `欧阳娜娜`), or pinyin
/// typed by a system without a Chinese input method (`Zhang San`, `ZHANGSAN`, `San Zhang`), with
/// stray spaces and the middle dot of minority names (`阿依古丽·买买提`).
public struct ChineseName: Sendable, Equatable {
    /// The name as given, trimmed, with inner whitespace removed for Han names.
    public let text: String
    /// True when the name is written in Han characters.
    public let isHan: Bool
    /// Han names: the characters. Latin names: lower-cased syllable groups as typed (`["zhang", "san"]`).
    public let parts: [String]

    /// Two-character surnames (复姓) that would otherwise be split after their first character.
    static let compoundSurnames: Set<String> = [
        "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "长孙", "宇文", "司徒", "夏侯",
        "轩辕", "端木", "独孤", "南宫", "西门", "万俟", "呼延", "澹台", "公冶", "宗政", "濮阳", "太史", "申屠", "钟离",
        "闾丘", "赫连", "拓跋", "百里", "东郭", "公羊", "左丘", "第五", "谷梁", "微生", "羊舌", "梁丘",
    ]

    public init(_ raw: String) {
        let trimmed = String(raw.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        let hanCount = trimmed.filter(Pinyin.isHan).count
        let letters = trimmed.filter { $0.isLetter }.count
        if hanCount > 0, hanCount * 2 >= letters {
            let kept = trimmed.filter { !$0.isWhitespace }
            text = kept
            isHan = true
            parts = kept.filter { Pinyin.isHan($0) || $0.isLetter }.map(String.init)
        } else {
            text = trimmed
            isHan = false
            parts = trimmed.lowercased().split(whereSeparator: { !$0.isLetter }).map(String.init)
        }
    }

    /// The surname of a Han name (compound surnames recognised); nil for Latin-typed names, whose
    /// order (surname first or last) cannot be known.
    public var surname: String? {
        guard isHan, !parts.isEmpty else { return nil }
        let firstTwo = parts.prefix(2).joined()
        return parts.count > 2 && Self.compoundSurnames.contains(firstTwo) ? firstTwo : parts[0]
    }

    /// The most common reading of each character, run together (`张三` → `zhangsan`), with the
    /// surname's own reading for surnames read differently (`单` → `shan`). Used for blocking and
    /// search keys.
    public var pinyinKey: String {
        guard isHan else { return parts.joined() }
        return parts.enumerated().map { index, character in
            if index == 0, let scalar = character.unicodeScalars.first, let surname = Pinyin.surnameReadings[scalar] {
                return surname
            }
            return Pinyin.readings(of: Character(character)).first ?? character
        }.joined()
    }

    /// Per character, every reading it may have.
    var readingSets: [[String]] {
        isHan ? parts.map { Pinyin.readings(of: Character($0)) } : parts.map { [$0] }
    }
}

extension ChineseName {
    /// Keys a demographic search looks a name up by in the stored `pinyinKey`: a Han name's own
    /// key, or both orders of a name typed in pinyin (`San Zhang` finds 张三).
    public var searchKeys: [String] {
        isHan ? [pinyinKey] : NameComparison.latinOrders(self)
    }
}
