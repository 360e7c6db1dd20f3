import Foundation
import IdentityNumbers
import NameMatching

/// A deterministic generator, so every run of the benchmark sees the same population.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

struct Person {
    var truth: Int
    var name: String
    var sex: Int
    var birth: String  // YYYYMMDD
    var idNumber: String?
    var phone: String?
    var division: String
    var address: String
    var corruptions: [String] = []

    var record: PersonRecord {
        let verdict = idNumber.map { ResidentIDNumber.check($0, today: 20261125) }
        return PersonRecord(
            name: name, sex: sex,
            birthDate: "\(birth.prefix(4))-\(birth.dropFirst(4).prefix(2))-\(birth.suffix(2))",
            // An invalid number is kept as typed: its "normalised" form would carry a recomputed check character.
            idNumber: verdict?.valid == true ? verdict?.normalized : idNumber, idNumberValid: verdict?.valid ?? false, phone: phone,
            division: division, address: address)
    }
}

/// Realistic Guizhou residents and the ways HIS data goes wrong.
struct PopulationGenerator {
    var random: SplitMix64

    // Surnames by rough frequency (heavier first), with two compound ones.
    static let surnames =
        Array("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤杨吴龙").map(String.init)
        + ["欧阳", "司马"]
    static let givenCharacters = Array("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅建国文斌宇浩凯鹏子涵轩欣怡梓萱雨晨博思佳嘉俊宏志海林云飞鑫辉成波亮龙庆贵黔筑春燕琴秋菊兵权正德安福义仁礼智信忠孝永昌荣发金银")
    // Guizhou counties (GB/T 2260).
    static let divisions = [
        "520102", "520103", "520111", "520112", "520113", "520115", "520121", "520181", "520201", "520203", "520302",
        "520303", "520321", "520402", "520502", "520521", "520602", "520621", "522301", "522601", "522634", "522701",
    ]
    static let roads = Array("中山延安遵义北京解放人民文化新华宝山瑞金花溪沙冲市西都司").map(String.init)

    /// Characters grouped by their common reading, for homophone substitutions a pinyin IME makes.
    static let homophones: [String: [Character]] = {
        var groups: [String: [Character]] = [:]
        for character
            in "张章彰樟李理里礼丽莉力立利刘留流柳陈晨辰臣王汪旺望杨阳洋扬黄皇凰煌赵照召周州洲舟吴武伍午徐许旭胡湖虎户林琳霖临伟卫维为芳方放娜纳敏民明鸣名静晶精景军君均俊杰洁捷强墙蔷磊雷蕾洋羊艳燕雁宇雨语玉涛桃陶浩豪好凯开鹏朋涵寒韩含轩宣萱欣新心馨怡宜仪依梓子紫佳家嘉宏红洪志智至海凯云芸飞菲辉慧惠成诚城波博亮良龙隆庆晴清春纯琴勤秋球兵冰权泉正政德得安福富义仪仁人礼华花金今银英莹贵桂"
        {
            guard let reading = Pinyin.readings(of: character).first else { continue }
            groups[reading, default: []].append(character)
        }
        return groups.filter { $0.value.count > 1 }
    }()

    init(seed: UInt64) { random = SplitMix64(state: seed) }

    mutating func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
    mutating func chance(_ p: Double) -> Bool { Double(random.next() % 1_000_000) / 1_000_000 < p }
    mutating func number(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(random.next() % UInt64(range.count)) }

    mutating func givenName() -> String {
        let first = pick(Self.givenCharacters)
        return chance(0.25) ? String(first) : String(first) + String(pick(Self.givenCharacters))
    }

    mutating func idNumber(division: String, birth: String, sex: Int) -> String {
        var sequence = number(0...499) * 2 + (sex == 1 ? 1 : 0)
        if sequence == 0 { sequence = 2 }
        let body = division + birth + String(format3: sequence)
        return body + String(ResidentIDNumber.checkCharacter(for: body.compactMap(\.wholeNumberValue)))
    }

    mutating func person(truth: Int) -> Person {
        let sex = chance(0.5) ? 1 : 2
        let year = number(1930...2024)
        let month = number(1...12)
        let day = number(1...28)
        let birth = "\(year)" + String(format2: month) + String(format2: day)
        let division = pick(Self.divisions)
        let phone = chance(0.85) ? "1\(pick([3, 5, 7, 8, 9]))\(number(100_000_000...999_999_999))" : nil
        return Person(
            truth: truth, name: pick(Self.surnames) + givenName(), sex: sex, birth: birth,
            idNumber: idNumber(division: division, birth: birth, sex: sex), phone: phone, division: division,
            address: pick(Self.roads) + "路\(number(1...300))号")
    }

    /// The twin of `person`: same surname, birth date, address, phone and county; another given
    /// name and another (valid) identity number.
    mutating func twin(of person: Person, truth: Int) -> Person {
        var twin = person
        twin.truth = truth
        let surname = ChineseName(person.name).surname ?? String(person.name.prefix(1))
        repeat { twin.name = surname + givenName() } while twin.name == person.name
        twin.sex = chance(0.5) ? 1 : 2
        repeat {
            twin.idNumber = idNumber(division: person.division, birth: person.birth, sex: twin.sex)
        } while twin.idNumber == person.idNumber
        return twin
    }

    /// A namesake: the same name in the same county, otherwise another person.
    mutating func namesake(of person: Person, truth: Int) -> Person {
        var other = self.person(truth: truth)
        other.name = person.name
        other.division = person.division
        other.idNumber = idNumber(division: other.division, birth: other.birth, sex: other.sex)
        return other
    }

    /// The same person as another facility's HIS records them.
    mutating func corrupted(_ person: Person) -> Person {
        var copy = person
        let count = number(1...3)
        for _ in 0..<count {
            switch number(0...8) {
            case 0: substituteHomophone(&copy)
            case 1: typeInPinyin(&copy)
            case 2:
                copy.idNumber = nil
                copy.corruptions.append("id-missing")
            case 3:
                if var digits = copy.idNumber.map(Array.init) {
                    let position = number(0...16)
                    let old = digits[position].wholeNumberValue!
                    digits[position] = Character(String((old + number(1...9)) % 10))
                    copy.idNumber = String(digits)
                    copy.corruptions.append("id-typo")
                }
            case 4:
                let month = copy.birth.dropFirst(4).prefix(2)
                let day = copy.birth.suffix(2)
                if Int(day)! <= 12, month != day {
                    copy.birth = String(copy.birth.prefix(4) + day + month)
                    copy.corruptions.append("birth-swapped")
                }
            case 5:
                copy.phone = "1\(pick([3, 5, 7, 8, 9]))\(number(100_000_000...999_999_999))"
                copy.corruptions.append("phone-changed")
            case 6:
                copy.division = pick(Self.divisions)
                copy.address = pick(Self.roads) + "路\(number(1...300))号"
                copy.corruptions.append("moved")
            case 7:
                copy.phone = nil
                copy.corruptions.append("phone-missing")
            default:
                substituteHomophone(&copy)
            }
        }
        return copy
    }

    mutating func substituteHomophone(_ person: inout Person) {
        var characters = Array(person.name)
        guard ChineseName(person.name).isHan else { return }
        let positions = characters.indices.shuffled(using: &random)
        for position in positions {
            guard let reading = Pinyin.readings(of: characters[position]).first, let group = Self.homophones[reading] else { continue }
            let others = group.filter { $0 != characters[position] }
            guard !others.isEmpty else { continue }
            characters[position] = pick(others)
            person.name = String(characters)
            person.corruptions.append("homophone")
            return
        }
    }

    mutating func typeInPinyin(_ person: inout Person) {
        let name = ChineseName(person.name)
        guard name.isHan, let surname = name.surname else { return }
        let surnameSyllables = ChineseName(surname).pinyinKey
        let given = String(name.pinyinKey.dropFirst(surnameSyllables.count))
        let forms = [
            surnameSyllables.capitalized + " " + given.capitalized, (surnameSyllables + given).uppercased(),
            given.capitalized + " " + surnameSyllables.capitalized, surnameSyllables + given,
        ]
        person.name = pick(forms)
        person.corruptions.append("pinyin")
    }
}

extension String {
    init(format2 value: Int) { self = value < 10 ? "0\(value)" : "\(value)" }
    init(format3 value: Int) { self = value < 10 ? "00\(value)" : value < 100 ? "0\(value)" : "\(value)" }
}
