import Foundation
import HTTPTypes
import IdentityNumbers
import Testing

@Suite struct ResidentIDNumberTests {
    static let today = 20261125

    /// A valid number built from parts, with its check character computed independently.
    static func make(division: String = "520102", birth: String = "19900307", sequence: String = "123") -> String {
        let body = division + birth + sequence
        let sum = zip(body.compactMap(\.wholeNumberValue), [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]).reduce(0) {
            $0 + $1.0 * $1.1
        }
        return body + String(Array("10X98765432")[sum % 11])
    }

    @Test func theStandardsOwnExampleIsValid() {
        let verdict = ResidentIDNumber.check("11010519491231002X", today: Self.today)
        #expect(verdict.valid)
        #expect(verdict.problems.isEmpty)
        #expect(verdict.normalized == "11010519491231002X")
        #expect(verdict.birthDate == "1949-12-31")
        #expect(verdict.sex == .female)
        #expect(verdict.division == "110105")
        #expect(verdict.province == "北京市")
    }

    @Test func lowerCaseXFullWidthDigitsAndSpacesAreFolded() {
        for typed in ["11010519491231002x", "１１０１０５１９４９１２３１００２Ｘ", " 110105 19491231 002X ", "110105-19491231-002x"] {
            let verdict = ResidentIDNumber.check(typed, today: Self.today)
            #expect(verdict.valid, "\(typed)")
            #expect(verdict.normalized == "11010519491231002X")
        }
    }

    @Test func firstGenerationNumbersAreUpgraded() {
        let verdict = ResidentIDNumber.check("110105491231002", today: Self.today)
        #expect(verdict.valid)
        #expect(verdict.upgradedFrom15Digits)
        #expect(verdict.normalized == "11010519491231002X")
        #expect(verdict.birthDate == "1949-12-31")
    }

    @Test(arguments: [
        ("", ResidentIDNumber.Problem.Code.empty),
        ("5201021990030712", .length),
        ("5201021990030712345", .length),
        ("52010219900307A23X", .character),
        ("X20102199003071234", .character),
        ("52010219900230123X", .birthDate),
        ("52010219901301123X", .birthDate),
        ("52010220991231123X", .birthDate),
        ("52010218000101123X", .birthDate),
        ("99010219900307123X", .division),
        ("52000119900307123X", .division),
    ])
    func eachKindOfBadNumberIsNamed(number: String, code: ResidentIDNumber.Problem.Code) {
        let verdict = ResidentIDNumber.check(number, today: Self.today)
        #expect(!verdict.valid)
        #expect(verdict.problems.map(\.code).contains(code), "\(number): \(verdict.problems)")
        for problem in verdict.problems where number.count > 6 {
            #expect(!problem.message.contains(number), "messages never repeat the number")
        }
    }

    @Test func aWrongCheckCharacterIsNamedAndTheRightOneOffered() {
        let good = Self.make()
        let wrong = String(good.dropLast()) + (good.last == "0" ? "1" : "0")
        let verdict = ResidentIDNumber.check(wrong, today: Self.today)
        #expect(!verdict.valid)
        #expect(verdict.problems.map(\.code) == [.checkDigit])
        #expect(verdict.normalized == good)
    }

    @Test func leapDaysAndSexFollowTheDigits() {
        #expect(ResidentIDNumber.check(Self.make(birth: "20000229"), today: Self.today).valid)
        #expect(!ResidentIDNumber.check(Self.make(birth: "19000229"), today: Self.today).valid)
        #expect(ResidentIDNumber.check(Self.make(sequence: "121"), today: Self.today).sex == .male)
        #expect(ResidentIDNumber.check(Self.make(sequence: "122"), today: Self.today).sex == .female)
        #expect(ResidentIDNumber.check(Self.make(birth: "20261125"), today: Self.today).valid, "born today")
        #expect(!ResidentIDNumber.check(Self.make(birth: "20261126"), today: Self.today).valid, "born tomorrow")
    }

    /// MOD 11-2 catches every single-digit error and every swap of two different adjacent digits.
    @Test func everySingleDigitTypoAndAdjacentSwapIsCaught() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let sequence = String(Int.random(in: 100...999, using: &generator))
            let good = Array(
                Self.make(birth: "19\(Int.random(in: 10...99))0\(Int.random(in: 1...9))1\(Int.random(in: 0...9))", sequence: sequence))
            #expect(ResidentIDNumber.check(String(good), today: Self.today).valid)
            let position = Int.random(in: 0..<17, using: &generator)
            var typo = good
            let digit = good[position].wholeNumberValue!
            typo[position] = Character(String((digit + Int.random(in: 1...9, using: &generator)) % 10))
            #expect(!ResidentIDNumber.check(String(typo), today: Self.today).valid)
            let swap = Int.random(in: 0..<16, using: &generator)
            if good[swap] != good[swap + 1] {
                var swapped = good
                swapped.swapAt(swap, swap + 1)
                #expect(!ResidentIDNumber.check(String(swapped), today: Self.today).valid)
            }
        }
    }
}

@Suite(needsDatabase) struct IdentityCheckRouteTests {
    @Test func theDeskGetsAVerdictAndTheNumberNeverReachesTheLogs() async throws {
        let logs = CapturedLogs()
        try await withTestApp(logger: logs.logger) { app in
            let his = try await app.token(role: .his, facility: try await Self.facility(app))
            let good = try await app.request(.get, "/api/v1/id-numbers/52010219900307123X/check", token: his)
            #expect(good.status == .ok)
            let expectedValid = ResidentIDNumber.check("52010219900307123X", today: 20261125).valid
            #expect(good.json["valid"] as? Bool == expectedValid)
            let typed = try await app.request(.get, "/api/v1/id-numbers/11010519491231002x/check", token: his)
            #expect(typed.json["valid"] as? Bool == true)
            #expect(typed.json["normalized"] as? String == "11010519491231002X")
            #expect(typed.json["masked"] as? String == "1101**********002X")
            #expect(typed.json["birthDate"] as? String == "1949-12-31")
            #expect(typed.json["sex"] as? String == "female")
            #expect(typed.json["sexCode"] as? Int == 2)
            #expect(typed.json["division"] as? String == "110105")
            let fullWidth = try await app.request(
                .get, "/api/v1/id-numbers/" + "１１０１０５１９４９１２３１００２ｘ".addingPercentEncoding(withAllowedCharacters: .alphanumerics)! + "/check",
                token: his)
            #expect(fullWidth.json["normalized"] as? String == "11010519491231002X")
            let bad = try await app.request(.get, "/api/v1/id-numbers/11010519491331002X/check", token: his)
            #expect(bad.status == .ok)
            #expect(bad.json["valid"] as? Bool == false)
            let codes = (bad.json["problems"] as? [[String: String]])?.compactMap { $0["code"] }
            #expect(codes?.contains("birth-date") == true)
            let analyst = try await app.token(role: .analyst)
            #expect(try await app.request(.get, "/api/v1/id-numbers/11010519491231002X/check", token: analyst).status == .forbidden)
            #expect(try await app.request(.get, "/api/v1/id-numbers/11010519491231002X/check").status == .unauthorized)
        }
        #expect(logs.text.contains("/api/v1/id-numbers/{number}/check"), "the route template is logged")
        #expect(!logs.text.contains("11010519491231002"), "the number is not")
        #expect(!logs.text.contains("11010519491331002"))
    }

    static func facility(_ app: TestApp) async throws -> String {
        try await app.postgres.query(
            "INSERT INTO registry.facilities (code, name, level, division) VALUES ('H1', 'h', 'secondary', '520102')")
        return "H1"
    }
}
