/// Checks of the mainland resident identity number (居民身份证号码) per GB 11643-1999: six digits
/// of administrative division (GB/T 2260), eight of birth date, three of sequence (odd for men,
/// even for women) and an ISO 7064 MOD 11-2 check character. Pure: no I/O, no clock of its own.
public enum ResidentIDNumber {
    /// One thing wrong with a number. Positions are 1-based; messages never repeat the number.
    public struct Problem: Sendable, Equatable, Codable {
        public enum Code: String, Sendable, Codable {
            case empty, length, character, division
            case birthDate = "birth-date"
            case checkDigit = "check-digit"
        }

        public let code: Code
        public let message: String
    }

    public enum Sex: String, Sendable, Codable {
        case male, female

        /// GB/T 2261.1 code: 1 male, 2 female.
        public var code: Int { self == .male ? 1 : 2 }
    }

    public struct Verdict: Sendable, Equatable, Codable {
        public let valid: Bool
        /// The 18-character form: full-width digits folded, `x` upper-cased, a 15-digit number upgraded.
        public let normalized: String?
        /// `YYYY-MM-DD`.
        public let birthDate: String?
        public let sex: Sex?
        public let division: String?
        public let province: String?
        public let upgradedFrom15Digits: Bool
        public let problems: [Problem]
    }

    static let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    static let checkCharacters: [Character] = ["1", "0", "X", "9", "8", "7", "6", "5", "4", "3", "2"]

    /// The MOD 11-2 check character for the first 17 digits.
    public static func checkCharacter(for first17: some Sequence<Int>) -> Character {
        let sum = zip(first17, weights).reduce(0) { $0 + $1.0 * $1.1 }
        return checkCharacters[sum % 11]
    }

    /// Checks `raw` as a desk would receive it. `today` (`YYYYMMDD`) bounds the birth date; pass the
    /// current date in the province's time zone.
    public static func check(_ raw: String, today: Int) -> Verdict {
        let folded = fold(raw)
        var problems: [Problem] = []
        func verdict(normalized: String? = nil, birth: String? = nil, sex: Sex? = nil, division: String? = nil, upgraded: Bool = false)
            -> Verdict
        {
            Verdict(
                valid: problems.isEmpty, normalized: normalized, birthDate: birth, sex: sex, division: division,
                province: division.flatMap { provinces[String($0.prefix(2))] }, upgradedFrom15Digits: upgraded, problems: problems)
        }
        guard !folded.isEmpty else {
            problems.append(Problem(code: .empty, message: "no identity number was given"))
            return verdict()
        }
        guard folded.count == 18 || folded.count == 15 else {
            problems.append(
                Problem(
                    code: .length, message: "has \(folded.count) characters; a resident ID number has 18 (or 15 for first-generation cards)"
                ))
            return verdict()
        }
        let characters = Array(folded)
        for (index, character) in characters.enumerated() {
            let isLast18 = folded.count == 18 && index == 17
            if !(character.isASCII && character.isNumber) && !(isLast18 && character == "X") {
                problems.append(
                    Problem(
                        code: .character,
                        message: "character \(index + 1) is not a digit" + (isLast18 ? " or X" : "")
                            + (index == 17 ? "" : "; only the last of 18 may be X")))
                return verdict()
            }
        }
        let digits = characters.map { $0.wholeNumberValue ?? 10 }
        let upgraded = folded.count == 15
        let body: [Int] = upgraded ? Array(digits[0..<6]) + [1, 9] + Array(digits[6..<15]) : Array(digits[0..<17])

        let division = String(folded.prefix(6))
        if provinces[String(division.prefix(2))] == nil {
            problems.append(Problem(code: .division, message: "digits 1–2 are not a GB/T 2260 province code"))
        } else if division.dropFirst(2).prefix(2) == "00" && division.suffix(2) != "00" {
            problems.append(Problem(code: .division, message: "digits 3–4 name no prefecture"))
        }

        let year = body[6] * 1000 + body[7] * 100 + body[8] * 10 + body[9]
        let month = body[10] * 10 + body[11]
        let day = body[12] * 10 + body[13]
        let birth = year * 10000 + month * 100 + day
        var birthText: String?
        let dateDigits = upgraded ? "7–12" : "7–14"
        if !(1...12).contains(month) || day < 1 || day > daysIn(month: month, year: year) {
            problems.append(Problem(code: .birthDate, message: "digits \(dateDigits) are not a calendar date"))
        } else if year < 1880 {
            problems.append(Problem(code: .birthDate, message: "digits \(dateDigits) give a birth year before 1880"))
        } else if birth > today {
            problems.append(Problem(code: .birthDate, message: "digits \(dateDigits) give a birth date in the future"))
        } else {
            birthText = pad(year, to: 4) + "-" + pad(month, to: 2) + "-" + pad(day, to: 2)
        }

        let expected = checkCharacter(for: body)
        if !upgraded, characters[17] != expected {
            problems.append(Problem(code: .checkDigit, message: "the check character (18th) does not match the first 17 digits"))
        }
        let sex: Sex = body[16] % 2 == 1 ? .male : .female
        let normalized = String(body.map { Character(String($0)) }) + String(expected)
        return verdict(normalized: normalized, birth: birthText, sex: sex, division: division, upgraded: upgraded)
    }

    /// Folds what desks and phones type: surrounding and inner spaces, hyphens, full-width digits
    /// and letters (`１２Ｘ`), lower-case `x`.
    static func fold(_ raw: String) -> String {
        var result = ""
        for scalar in raw.unicodeScalars {
            switch scalar.value {
            case 0x20, 0x09, 0x0A, 0x0D, 0x2D, 0x3000: continue
            case 0xFF10...0xFF19: result.unicodeScalars.append(Unicode.Scalar(scalar.value - 0xFF10 + 0x30)!)
            case 0xFF38, 0xFF58, 0x78: result.append("X")
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// GB/T 2260 province-level codes and names.
    public static let provinces: [String: String] = [
        "11": "北京市", "12": "天津市", "13": "河北省", "14": "山西省", "15": "内蒙古自治区", "21": "辽宁省", "22": "吉林省",
        "23": "黑龙江省", "31": "上海市", "32": "江苏省", "33": "浙江省", "34": "安徽省", "35": "福建省", "36": "江西省",
        "37": "山东省", "41": "河南省", "42": "湖北省", "43": "湖南省", "44": "广东省", "45": "广西壮族自治区", "46": "海南省",
        "50": "重庆市", "51": "四川省", "52": "贵州省", "53": "云南省", "54": "西藏自治区", "61": "陕西省", "62": "甘肃省",
        "63": "青海省", "64": "宁夏回族自治区", "65": "新疆维吾尔自治区", "71": "台湾省", "81": "香港特别行政区", "82": "澳门特别行政区",
    ]
}

func pad(_ value: Int, to width: Int) -> String {
    let digits = "\(value)"
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
