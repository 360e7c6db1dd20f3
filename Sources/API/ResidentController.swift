import Access
import Foundation
import Hummingbird
import Registry
import Storage

/// `/api/v1/residents`, `/api/v1/identifiers`, `/api/v1/cards` and `/api/v1/matching/review`: the
/// registry and master patient index over JSON.
public struct ResidentController: Sendable {
    let residents: ResidentRegistry
    let cards: HealthCardService
    let merges: MergeService

    public init(residents: ResidentRegistry, cards: HealthCardService, merges: MergeService) {
        self.residents = residents
        self.cards = cards
        self.merges = merges
    }

    public func addRoutes(to group: RouterGroup<QianyunRequestContext>) {
        group.post("residents", use: register)
        group.get("residents", use: search)
        group.get("residents/{id}", use: get)
        group.patch("residents/{id}", use: update)
        group.get("residents/{id}/identifiers", use: identifiers)
        group.post("residents/{id}/identifiers", use: link)
        group.get("residents/{id}/history", use: history)
        group.post("residents/{id}/merge", use: merge)
        group.post("residents/{id}/unmerge", use: unmerge)
        group.get("residents/{id}/cards", use: listCards)
        group.post("residents/{id}/cards", use: issueCard)
        group.get("identifiers/{facility}/{localId}", use: lookup)
        group.get("cards/{cardNumber}", use: getCard)
        group.post("cards/{cardNumber}/verify", use: verify)
        group.post("cards/{cardNumber}/status", use: changeCard)
        group.post("cards/{cardNumber}/replace", use: replaceCard)
        group.get("matching/review", use: reviews)
        group.post("matching/review/{reviewId}", use: resolve)
    }

    struct Found: Encodable, Sendable {
        let items: [SearchHit]
    }

    struct LinkRequest: Decodable, Sendable {
        let facility: String?
        let localId: String
    }

    struct MergeRequest: Decodable, Sendable {
        let mergedId: String
    }

    struct StatusRequest: Decodable, Sendable {
        let status: String
        let reason: String?
    }

    struct ReplaceRequest: Decodable, Sendable {
        let cardNumber: String?
        let reason: String?
        let issuingFacility: String?
    }

    struct Decision: Decodable, Sendable {
        let decision: String
    }

    struct Identifiers: Encodable, Sendable {
        let residentId: String
        let items: [FacilityIdentifier]
    }

    struct Cards: Encodable, Sendable {
        let items: [HealthCard]
    }

    struct History: Encodable, Sendable {
        let items: [ResidentEvent]
    }

    @Sendable func register(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<RegistrationResult> {
        let principal = try context.requirePrincipal()
        try principal.require(.his, .admin, action: "register residents")
        let draft = try await request.decodeJSON(ResidentDraft.self, context: context)
        let result = try await residents.register(draft, by: principal, requestID: context.requestID)
        let created = result.match.kind == .created || result.match.kind == .review
        return JSONBody(
            result, status: created ? .created : .ok,
            headers: [.location: "/api/v1/residents/\(result.resident.id)", .cacheControl: "no-store"])
    }

    @Sendable func search(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Found> {
        let principal = try context.requirePrincipal()
        let query = request.uri.queryParameters
        var limit = 20
        if let text = query["limit"] {
            guard let value = Int(String(text)) else { throw RegistryError.invalid(field: "limit", reason: "must be from 1 to 100") }
            limit = value
        }
        let search = ResidentQuery(
            name: query["name"].map(String.init), birthDate: query["birthDate"].map(String.init), sex: query["sex"].map(String.init),
            division: query["division"].map(String.init), phone: query["phone"].map(String.init),
            idNumber: query["idNumber"].map(String.init), limit: limit)
        return JSONBody(Found(items: try await residents.search(search, by: principal, requestID: context.requestID)), headers: noStore)
    }

    @Sendable func get(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Resident> {
        JSONBody(
            try await residents.get(
                id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func update(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Resident> {
        let principal = try context.requirePrincipal()
        try principal.require(.his, .admin, .patient, action: "change residents")
        let patch = try await request.decodeJSON(ResidentPatch.self, context: context)
        return JSONBody(
            try await residents.update(id: try context.parameters.require("id"), with: patch, by: principal, requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func identifiers(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Identifiers> {
        let resident = try await residents.get(
            id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID)
        return JSONBody(Identifiers(residentId: resident.id, items: resident.identifiers), headers: noStore)
    }

    @Sendable func link(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Resident> {
        let principal = try context.requirePrincipal()
        try principal.require(.his, .admin, action: "link identifiers")
        let body = try await request.decodeJSON(LinkRequest.self, context: context)
        guard let facility = body.facility ?? principal.facility else {
            throw RegistryError.invalid(field: "facility", reason: "is required")
        }
        return JSONBody(
            try await residents.link(
                id: try context.parameters.require("id"), identifier: FacilityIdentifier(facility: facility, localId: body.localId),
                by: principal, requestID: context.requestID),
            status: .created, headers: noStore)
    }

    @Sendable func history(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<History> {
        JSONBody(History(items: try await residents.history(id: try context.parameters.require("id"), by: try context.requirePrincipal())))
    }

    @Sendable func merge(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<MergeRecord> {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, action: "merge residents")
        let body = try await request.decodeJSON(MergeRequest.self, context: context)
        return JSONBody(
            try await merges.merge(
                survivor: try context.parameters.require("id"), merged: body.mergedId, by: principal, requestID: context.requestID))
    }

    @Sendable func unmerge(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<MergeRecord> {
        JSONBody(
            try await merges.unmerge(
                merged: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID))
    }

    @Sendable func listCards(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Cards> {
        JSONBody(
            Cards(
                items: try await cards.cards(
                    ofResident: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID)),
            headers: noStore)
    }

    @Sendable func issueCard(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<HealthCard> {
        let principal = try context.requirePrincipal()
        try principal.require(.his, .admin, action: "issue cards")
        let body = try await request.decodeJSON(CardIssue.self, context: context)
        let card = try await cards.issue(
            residentID: try context.parameters.require("id"), body, by: principal, requestID: context.requestID)
        return JSONBody(card, status: .created, headers: [.location: "/api/v1/cards/\(card.cardNumber)"])
    }

    @Sendable func lookup(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Resident> {
        JSONBody(
            try await residents.lookup(
                facility: try Self.pathParameter("facility", context), localId: try Self.pathParameter("localId", context),
                by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func getCard(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<HealthCard> {
        JSONBody(
            try await cards.get(
                cardNumber: try Self.pathParameter("cardNumber", context), by: try context.requirePrincipal(), requestID: context.requestID)
        )
    }

    @Sendable func verify(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<CardVerification> {
        JSONBody(
            try await cards.verify(
                cardNumber: try Self.pathParameter("cardNumber", context), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func changeCard(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<HealthCard> {
        let principal = try context.requirePrincipal()
        try principal.require(.his, .admin, .patient, action: "change cards")
        let body = try await request.decodeJSON(StatusRequest.self, context: context)
        guard let status = HealthCard.Status(rawValue: body.status) else {
            throw RegistryError.invalid(field: "status", reason: "must be active, suspended or revoked")
        }
        return JSONBody(
            try await cards.change(
                cardNumber: try Self.pathParameter("cardNumber", context), to: status, reason: body.reason, by: principal,
                requestID: context.requestID))
    }

    @Sendable func replaceCard(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<HealthCard> {
        let principal = try context.requirePrincipal()
        try principal.require(.his, .admin, action: "replace cards")
        let body = try await request.decodeJSON(ReplaceRequest.self, context: context)
        let card = try await cards.replace(
            cardNumber: try Self.pathParameter("cardNumber", context),
            with: CardIssue(cardNumber: body.cardNumber, issuingFacility: body.issuingFacility), reason: body.reason, by: principal,
            requestID: context.requestID)
        return JSONBody(card, status: .created, headers: [.location: "/api/v1/cards/\(card.cardNumber)"])
    }

    @Sendable func reviews(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Page<MatchReview>> {
        let query = request.uri.queryParameters
        let page = try PageRequest(limit: query["limit"].map(String.init), cursor: query["cursor"].map(String.init))
        return JSONBody(
            try await merges.reviews(
                status: query["status"].map(String.init) ?? "open", page: page, by: try context.requirePrincipal(),
                requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func resolve(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<MatchReview> {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, action: "resolve matching reviews")
        guard let id = Int64(try context.parameters.require("reviewId")) else { throw RegistryError.notFound("review") }
        let body = try await request.decodeJSON(Decision.self, context: context)
        return JSONBody(try await merges.resolve(review: id, decision: body.decision, by: principal, requestID: context.requestID))
    }

    /// Path parameters arrive percent-encoded (a local id may hold `/` or Chinese characters).
    static func pathParameter(_ name: String, _ context: QianyunRequestContext) throws -> String {
        let raw = try context.parameters.require(name)
        return raw.removingPercentEncoding ?? raw
    }
}

let noStore: HTTPFields = [.cacheControl: "no-store"]
