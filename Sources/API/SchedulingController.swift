import Access
import Foundation
import HTTPTypes
import Hummingbird
import Scheduling

/// `/api/v1/departments`, `providers`, `schedules`, `slots`, `bookings`, `referrals`, `waitlist`.
public struct SchedulingController: Sendable {
    let directory: SchedulingDirectory
    let slots: SlotDirectory
    let bookings: BookingService
    let referrals: ReferralService
    let waitingList: WaitingList
    let worker: SchedulingWorker

    public init(
        directory: SchedulingDirectory, slots: SlotDirectory, bookings: BookingService, referrals: ReferralService,
        waitingList: WaitingList,
        worker: SchedulingWorker
    ) {
        self.directory = directory
        self.slots = slots
        self.bookings = bookings
        self.referrals = referrals
        self.waitingList = waitingList
        self.worker = worker
    }

    public func addRoutes(to group: RouterGroup<QianyunRequestContext>) {
        group.post("departments", use: createDepartment)
        group.get("departments", use: listDepartments)
        group.post("providers", use: createProvider)
        group.get("providers", use: listProviders)
        group.get("providers/{id}", use: provider)
        group.post("schedules", use: createSchedule)
        group.get("schedules", use: listSchedules)
        group.get("schedules/{id}", use: schedule)
        group.get("slots", use: searchSlots)
        group.get("slots/{id}", use: slot)
        group.post("slots/{id}/cancel", use: cancelSlot)
        group.post("bookings", use: book)
        group.get("bookings", use: listBookings)
        group.get("bookings/{id}", use: booking)
        group.post("bookings/{id}/cancel", use: cancel)
        group.post("bookings/{id}/reschedule", use: reschedule)
        group.post("bookings/{id}/check-in", use: checkIn)
        group.post("bookings/{id}/no-show", use: noShow)
        group.post("referrals", use: refer)
        group.get("referrals", use: listReferrals)
        group.post("waitlist", use: joinWaitlist)
        group.get("waitlist", use: listWaitlist)
        group.post("waitlist/{id}/cancel", use: leaveWaitlist)
        group.post("scheduling/run", use: run)
    }

    struct Items<Item: Encodable & Sendable>: Encodable, Sendable {
        let items: [Item]
    }

    func query(_ request: Request, _ name: String) -> String? {
        request.uri.queryParameters[name[...]].map(String.init)
    }

    @Sendable func createDepartment(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Department> {
        let body = try await request.decodeJSON(DepartmentDraft.self, context: context)
        return JSONBody(
            try await directory.createDepartment(body, by: try context.requirePrincipal(), requestID: context.requestID), status: .created)
    }

    @Sendable func listDepartments(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<Department>> {
        _ = try context.requirePrincipal()
        return JSONBody(Items(items: try await directory.departments(facility: query(request, "facility"))))
    }

    struct ProviderBody: Decodable, Sendable {
        var facility: String?
        var department: String
        var kind: String
        var code: String
        var name: String
        var title: String?
        var modality: String?
        var client: String?
    }

    @Sendable func createProvider(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Provider> {
        let body = try await request.decodeJSON(ProviderBody.self, context: context)
        let draft = ProviderDraft(
            department: body.department, kind: body.kind, code: body.code, name: body.name, title: body.title, modality: body.modality,
            client: body.client)
        return JSONBody(
            try await directory.createProvider(
                draft, facility: body.facility, by: try context.requirePrincipal(), requestID: context.requestID),
            status: .created)
    }

    @Sendable func listProviders(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<Provider>> {
        _ = try context.requirePrincipal()
        return JSONBody(
            Items(
                items: try await directory.providers(
                    facility: query(request, "facility"), department: query(request, "department"), kind: query(request, "kind"))))
    }

    @Sendable func provider(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Provider> {
        _ = try context.requirePrincipal()
        return JSONBody(try await directory.provider(id: try context.parameters.require("id")))
    }

    @Sendable func createSchedule(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Schedule> {
        let body = try await request.decodeJSON(ScheduleDraft.self, context: context)
        return JSONBody(
            try await directory.createSchedule(body, by: try context.requirePrincipal(), requestID: context.requestID), status: .created)
    }

    @Sendable func listSchedules(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<Schedule>> {
        _ = try context.requirePrincipal()
        return JSONBody(
            Items(items: try await directory.schedules(facility: query(request, "facility"), provider: query(request, "provider"))))
    }

    @Sendable func schedule(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Schedule> {
        _ = try context.requirePrincipal()
        return JSONBody(try await directory.schedule(id: try context.parameters.require("id")))
    }

    @Sendable func searchSlots(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<Slot>> {
        _ = try context.requirePrincipal()
        var search = SlotQuery()
        search.facility = query(request, "facility")
        search.department = query(request, "department")
        search.provider = query(request, "provider")
        search.kind = query(request, "kind")
        search.from = query(request, "date") ?? query(request, "from")
        search.to = query(request, "date") ?? query(request, "to")
        if let available = query(request, "available") {
            guard let flag = Bool(available) else { throw SchedulingError.invalid(field: "available", reason: "true or false") }
            search.onlyAvailable = flag
        }
        if let limit = query(request, "limit") {
            guard let value = Int(limit) else { throw SchedulingError.invalid(field: "limit", reason: "a whole number") }
            search.limit = value
        }
        return JSONBody(Items(items: try await slots.search(search)), headers: [.cacheControl: "no-cache"])
    }

    @Sendable func slot(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Slot> {
        _ = try context.requirePrincipal()
        return JSONBody(try await slots.slot(id: try context.parameters.require("id")), headers: [.cacheControl: "no-cache"])
    }

    struct SlotCancellation: Encodable, Sendable {
        let slot: String
        let bookingsCancelled: Int
    }

    @Sendable func cancelSlot(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<SlotCancellation> {
        let body = try await request.decodeJSONOrEmpty(Cancellation.self, context: context) ?? Cancellation(reason: nil)
        let id = try context.parameters.require("id")
        let count = try await bookings.cancelSlot(id: id, body, by: try context.requirePrincipal(), requestID: context.requestID)
        return JSONBody(SlotCancellation(slot: id, bookingsCancelled: count), headers: noStore)
    }

    @Sendable func book(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Booking> {
        let body = try await request.decodeJSON(BookingRequest.self, context: context)
        return JSONBody(
            try await bookings.book(body, by: try context.requirePrincipal(), requestID: context.requestID), status: .created,
            headers: noStore)
    }

    @Sendable func listBookings(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<Booking>> {
        JSONBody(
            Items(
                items: try await bookings.list(
                    resident: query(request, "resident"), day: query(request, "date"), status: query(request, "status"),
                    by: try context.requirePrincipal(), requestID: context.requestID)), headers: noStore)
    }

    @Sendable func booking(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Booking> {
        JSONBody(
            try await bookings.get(
                id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func cancel(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Booking> {
        let body = try await request.decodeJSONOrEmpty(Cancellation.self, context: context) ?? Cancellation(reason: nil)
        return JSONBody(
            try await bookings.cancel(
                id: try context.parameters.require("id"), body, by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func reschedule(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Booking> {
        let body = try await request.decodeJSON(Rescheduling.self, context: context)
        return JSONBody(
            try await bookings.reschedule(
                id: try context.parameters.require("id"), body, by: try context.requirePrincipal(), requestID: context.requestID),
            status: .created, headers: noStore)
    }

    @Sendable func checkIn(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Booking> {
        JSONBody(
            try await bookings.checkIn(
                id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func noShow(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Booking> {
        JSONBody(
            try await bookings.markNoShow(
                id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func refer(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Referral> {
        let body = try await request.decodeJSON(ReferralRequest.self, context: context)
        return JSONBody(
            try await referrals.create(body, by: try context.requirePrincipal(), requestID: context.requestID), status: .created,
            headers: noStore)
    }

    @Sendable func listReferrals(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<Referral>> {
        JSONBody(
            Items(
                items: try await referrals.list(
                    direction: query(request, "direction"), by: try context.requirePrincipal(), requestID: context.requestID)),
            headers: noStore)
    }

    @Sendable func joinWaitlist(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<WaitlistEntry> {
        let body = try await request.decodeJSON(WaitlistRequest.self, context: context)
        return JSONBody(
            try await waitingList.join(body, by: try context.requirePrincipal(), requestID: context.requestID), status: .created,
            headers: noStore)
    }

    @Sendable func listWaitlist(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<WaitlistEntry>> {
        JSONBody(
            Items(
                items: try await waitingList.list(
                    slot: query(request, "slot"), by: try context.requirePrincipal(), requestID: context.requestID)),
            headers: noStore)
    }

    @Sendable func leaveWaitlist(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<WaitlistEntry> {
        JSONBody(
            try await waitingList.leave(
                id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    struct RunReport: Encodable, Sendable {
        let slotsCreated: Int
        let waitlistBooked: Int
        let reminders: Int
        let delivered: Int
    }

    /// The worker's passes on demand (admin): slot generation, waiting lists, reminders, delivery.
    @Sendable func run(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<RunReport> {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, action: "run the scheduling worker")
        let created = try await directory.generateSlots()
        let promoted = try await waitingList.promotePending()
        let reminded = try await worker.remind()
        var delivered = 0
        while case let count = try await worker.deliver(), count > 0 { delivered += count }
        return JSONBody(RunReport(slotsCreated: created, waitlistBooked: promoted, reminders: reminded, delivered: delivered))
    }
}
