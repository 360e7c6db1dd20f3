/// What the matcher knows of a person: a registration, or a resident already in the registry.
public struct PersonRecord: Sendable, Equatable {
    public var name: ChineseName
    /// GB/T 2261.1: 1 male, 2 female; nil when unknown.
    public var sex: Int?
    /// `YYYY-MM-DD`.
    public var birthDate: String?
    /// The 18-character form when one was given, valid or not.
    public var idNumber: String?
    /// Whether `idNumber` passed its GB 11643 checks.
    public var idNumberValid: Bool
    public var phone: String?
    /// GB/T 2260 six-digit division of the address.
    public var division: String?
    public var address: String?

    public init(
        name: String, sex: Int? = nil, birthDate: String? = nil, idNumber: String? = nil, idNumberValid: Bool = false,
        phone: String? = nil, division: String? = nil, address: String? = nil
    ) {
        self.name = ChineseName(name)
        self.sex = sex
        self.birthDate = birthDate
        self.idNumber = idNumber
        self.idNumberValid = idNumberValid
        self.phone = phone.map { $0.filter(\.isNumber) }.flatMap { $0.isEmpty ? nil : String($0.suffix(11)) }
        self.division = division
        self.address = address.map(Self.normalizeAddress).flatMap { $0.isEmpty ? nil : $0 }
    }

    static func normalizeAddress(_ text: String) -> String {
        text.filter { !$0.isWhitespace && !$0.isPunctuation && $0 != "号" && $0 != "室" }.lowercased()
    }
}

public enum MatchDecision: String, Sendable, Codable {
    /// Same person: link the registration to the resident.
    case link
    /// Perhaps: an admin decides on the review queue.
    case review
    /// Another person: create a new resident.
    case distinct
}

public struct MatchScore: Sendable, Equatable {
    /// Sum of log2 likelihood ratios: positive is evidence of one person.
    public let weight: Double
    public let decision: MatchDecision
    /// One short token per field that moved the weight (`id:equal`, `name:homophone`).
    public let evidence: [String]
}

/// Fellegi–Sunter-style scoring: each field's agreement level adds its log2(m/u) weight; two
/// thresholds split link, review and distinct. Two vetoes keep the classic false merges out of
/// automatic links: valid identity numbers that disagree mean two people, and given names that
/// disagree (twins share surname, birth date, address and phone) never link without an admin.
public struct Matcher: Sendable {
    public struct Weights: Sendable {
        public var idEqual = 14.0, idTypo = 6.0, idConflict = -14.0
        public var nameExact = 7.0, nameHomophone = 5.0, nameSimilar = 2.5, nameSurnameOnly = -8.0, nameDifferent = -10.0
        public var birthExact = 7.0, birthSwapped = 3.0, birthOneDigit = 2.0, birthDifferent = -7.0
        public var sexAgree = 0.5, sexDisagree = -6.0
        public var phoneEqual = 6.0, phoneDiffer = -1.0
        public var divisionEqual = 1.5, prefectureEqual = 0.5, divisionDiffer = -1.0
        public var addressEqual = 2.0
        public init() {}
    }

    public var weights = Weights()
    public var linkThreshold = 15.0
    public var reviewThreshold = 6.0

    public init() {}

    public func score(_ a: PersonRecord, _ b: PersonRecord) -> MatchScore {
        var weight = 0.0
        var evidence: [String] = []
        var veto: MatchDecision?
        func add(_ w: Double, _ token: String) {
            weight += w
            evidence.append(token)
        }

        if let x = a.idNumber, let y = b.idNumber {
            if x == y {
                add(weights.idEqual, "id:equal")
            } else if a.idNumberValid && b.idNumberValid {
                add(weights.idConflict, "id:conflict")
                veto = .distinct
            } else if zip(x, y).filter({ $0 != $1 }).count <= 1 && x.count == y.count {
                add(weights.idTypo, "id:typo")
            } else {
                add(weights.idConflict / 2, "id:differs")
            }
        }

        let name = NameComparison.compare(a.name, b.name)
        switch name {
        case .exact: add(weights.nameExact, "name:exact")
        case .homophone: add(weights.nameHomophone, "name:homophone")
        case .similar: add(weights.nameSimilar, "name:similar")
        case .surnameOnly: add(weights.nameSurnameOnly, "name:surname-only")
        case .different: add(weights.nameDifferent, "name:different")
        }
        if name < .similar { veto = veto ?? .review }

        if let x = a.birthDate, let y = b.birthDate {
            switch DateAgreement.compare(x, y) {
            case .exact: add(weights.birthExact, "birth:exact")
            case .dayMonthSwapped: add(weights.birthSwapped, "birth:swapped")
            case .oneDigitOff: add(weights.birthOneDigit, "birth:one-digit")
            case .different: add(weights.birthDifferent, "birth:different")
            }
        }
        if let x = a.sex, let y = b.sex, x != 0, y != 0 {
            x == y ? add(weights.sexAgree, "sex:agree") : add(weights.sexDisagree, "sex:disagree")
        }
        if let x = a.phone, let y = b.phone {
            x == y ? add(weights.phoneEqual, "phone:equal") : add(weights.phoneDiffer, "phone:differs")
        }
        if let x = a.division, let y = b.division {
            if x == y {
                add(weights.divisionEqual, "division:equal")
            } else if x.prefix(4) == y.prefix(4) {
                add(weights.prefectureEqual, "division:prefecture")
            } else {
                add(weights.divisionDiffer, "division:differs")
            }
        }
        if let x = a.address, let y = b.address, x == y {
            add(weights.addressEqual, "address:equal")
        }

        var decision: MatchDecision = weight >= linkThreshold ? .link : weight >= reviewThreshold ? .review : .distinct
        if veto == .distinct {
            decision = .distinct
        } else if veto == .review, decision == .link {
            decision = .review
        }
        return MatchScore(weight: weight, decision: decision, evidence: evidence)
    }

    /// Blocking keys: a registration is scored only against residents sharing one of these, so
    /// the cost of matching does not grow with the population. Each key tolerates the errors the
    /// other keys do not: a changed phone, a homophone name, a swapped birth date, a missing ID.
    public static func blockingKeys(_ record: PersonRecord) -> Set<String> {
        var keys = Set<String>()
        if let id = record.idNumber, id.count == 18 {
            keys.insert("id:" + id)
            // A one-digit typo keeps the birth date or the division: block on both halves.
            keys.insert("id6+8:" + id.prefix(14))
            keys.insert("id-tail:" + id.suffix(8))
        }
        // Keyed under both day/month orders, so a swapped date still meets its original.
        let digits = Array((record.birthDate ?? "").filter(\.isNumber))
        var dates: Set<String> = []
        if digits.count == 8 {
            dates.insert(String(digits))
            dates.insert(String(digits[0..<4]) + String(digits[6..<8]) + String(digits[4..<6]))
        }
        for sound in ChineseName.soundKeys(record.name) {
            for date in dates { keys.insert("sound+birth:\(sound)|\(date)") }
        }
        if let phone = record.phone { keys.insert("phone:" + phone) }
        return keys
    }
}

extension ChineseName {
    /// Sound keys that survive homophone characters, pinyin typed in either order, and (for Han
    /// names) the dialect's merged sounds: `张三`, `章三`, `Zhang San` and `San Zhang` share one.
    static func soundKeys(_ name: ChineseName) -> [String] {
        guard !name.parts.isEmpty else { return [] }
        if name.isHan {
            let folded = NameComparison.dialectFold(name.parts.map { Pinyin.readings(of: Character($0)).first ?? $0 }).joined()
            return [name.pinyinKey, "~" + folded]
        }
        return NameComparison.latinOrders(name)
    }
}
