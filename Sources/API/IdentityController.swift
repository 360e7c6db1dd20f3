import Access
import Foundation
import Hummingbird
import IdentityNumbers
import Registry

/// `GET /api/v1/id-numbers/{number}/check`: the registration desk's check of a resident ID
/// number before anyone is registered. It reads no resident data, so it leaves no audit row; the
/// number travels in the path, which is why request logs carry route templates only.
public struct IdentityController: Sendable {
    public init() {}

    public func addRoutes(to group: RouterGroup<QianyunRequestContext>) {
        group.get("id-numbers/{number}/check", use: check)
    }

    struct Check: Encodable, Sendable {
        let valid: Bool
        let normalized: String?
        let masked: String?
        let birthDate: String?
        let sex: String?
        /// GB/T 2261.1: 1 male, 2 female.
        let sexCode: Int?
        let division: String?
        let province: String?
        let upgradedFrom15Digits: Bool
        let problems: [ResidentIDNumber.Problem]
    }

    @Sendable func check(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Check> {
        let principal = try context.requirePrincipal()
        try principal.require(.his, .clinician, .admin, .patient, action: "check identity numbers")
        // Percent-decode: a desk may send full-width digits (１２…), which arrive encoded.
        let raw = try context.parameters.require("number")
        let number = raw.removingPercentEncoding ?? raw
        guard number.unicodeScalars.count <= 64 else {
            throw Problem(.badRequest, code: "bad-identity-number", title: "Not an identity number", detail: "the value is far too long")
        }
        let verdict = ResidentIDNumber.check(number, today: ChinaDate.today())
        return JSONBody(
            Check(
                valid: verdict.valid, normalized: verdict.normalized, masked: verdict.normalized.map(FieldProtector.mask),
                birthDate: verdict.birthDate, sex: verdict.sex?.rawValue, sexCode: verdict.sex?.code, division: verdict.division,
                province: verdict.province, upgradedFrom15Digits: verdict.upgradedFrom15Digits, problems: verdict.problems),
            headers: [.cacheControl: "no-store"])
    }
}
