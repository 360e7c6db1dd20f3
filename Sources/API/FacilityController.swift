import Access
import Hummingbird
import Registry
import Storage

/// `/api/v1/facilities`: admins register and update; every authenticated caller reads.
public struct FacilityController: Sendable {
    let directory: FacilityDirectory

    public init(directory: FacilityDirectory) {
        self.directory = directory
    }

    public func addRoutes(to group: RouterGroup<QianyunRequestContext>) {
        group.get("facilities", use: list)
        group.post("facilities", use: create)
        group.get("facilities/{code}", use: get)
        group.patch("facilities/{code}", use: update)
    }

    @Sendable func list(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Page<Facility>> {
        let query = request.uri.queryParameters
        let page = try PageRequest(limit: query["limit"].map(String.init), cursor: query["cursor"].map(String.init))
        var filter = FacilityFilter(division: query["division"].map(String.init))
        if let level = query["level"] {
            guard let parsed = Facility.Level(rawValue: String(level)) else {
                throw RegistryError.invalid(field: "level", reason: "must be tertiary, secondary or primary")
            }
            filter.level = parsed
        }
        if let active = query["active"] {
            guard let parsed = Bool(String(active)) else { throw RegistryError.invalid(field: "active", reason: "must be true or false") }
            filter.active = parsed
        }
        return JSONBody(try await directory.list(filter, page: page, by: try context.requirePrincipal()))
    }

    @Sendable func get(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Facility> {
        let code = try context.parameters.require("code")
        return JSONBody(try await directory.get(code: code, by: try context.requirePrincipal()))
    }

    @Sendable func create(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Facility> {
        let principal = try context.requirePrincipal()
        // Authorise before reading the body: a non-admin learns nothing from validation errors.
        try principal.require(.admin, action: "register facilities")
        let draft = try await request.decodeJSON(FacilityDraft.self, context: context)
        let facility = try await directory.create(draft, by: principal, requestID: context.requestID)
        return JSONBody(facility, status: .created, headers: [.location: "/api/v1/facilities/\(facility.code)"])
    }

    @Sendable func update(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Facility> {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, action: "update facilities")
        let code = try context.parameters.require("code")
        let patch = try await request.decodeJSON(FacilityPatch.self, context: context)
        return JSONBody(try await directory.update(code: code, with: patch, by: principal, requestID: context.requestID))
    }
}
