import Access
import Foundation
import Hummingbird
import Scheduling

/// FHIR R4 views of appointments: `Schedule`, `Slot` and `Appointment`, read and search. Same
/// access and audit as the JSON API (schedules and slots are open to any signed-in caller; an
/// appointment only to its resident and the facilities involved).
public struct FHIRSchedulingController: Sendable {
    let directory: SchedulingDirectory
    let slots: SlotDirectory
    let bookings: BookingService

    public init(directory: SchedulingDirectory, slots: SlotDirectory, bookings: BookingService) {
        self.directory = directory
        self.slots = slots
        self.bookings = bookings
    }

    /// For the CapabilityStatement.
    static let capabilities = """
        {"type":"Schedule","interaction":[{"code":"read"},{"code":"search-type"}],\
        "searchParam":[{"name":"actor","type":"reference"},{"name":"facility","type":"token"}]},\
        {"type":"Slot","interaction":[{"code":"read"},{"code":"search-type"}],\
        "searchParam":[{"name":"schedule","type":"reference"},{"name":"start","type":"date"},{"name":"status","type":"token"}]},\
        {"type":"Appointment","interaction":[{"code":"read"},{"code":"search-type"}],\
        "searchParam":[{"name":"patient","type":"reference"},{"name":"date","type":"date"},{"name":"status","type":"token"}]}
        """

    public func addRoutes(to router: Router<QianyunRequestContext>, authentication: AuthenticationMiddleware) {
        let fhir = router.group("fhir/r4").add(middleware: OperationOutcomeMiddleware()).add(middleware: authentication)
        fhir.get("Schedule", use: searchSchedules)
        fhir.get("Schedule/{id}", use: readSchedule)
        fhir.get("Slot", use: searchSlots)
        fhir.get("Slot/{id}", use: readSlot)
        fhir.get("Appointment", use: searchAppointments)
        fhir.get("Appointment/{id}", use: readAppointment)
    }

    static func parameters(_ request: Request, allowed: Set<String>, type: String) throws -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in request.uri.queryParameters {
            guard allowed.contains(String(key)) || key == "_format" else {
                throw SchedulingError.invalid(field: String(key), reason: "is not a supported search parameter of \(type)")
            }
            result[String(key)] = String(value)
        }
        return result
    }

    static func id(_ reference: String, _ type: String) -> String {
        reference.hasPrefix(type + "/") ? String(reference.dropFirst(type.count + 1)) : reference
    }

    static func bundle(_ resources: [JSONValue]) -> JSONValue {
        .object([
            "resourceType": .string("Bundle"), "type": .string("searchset"), "total": .int(resources.count),
            "entry": .array(resources.map { .object(["resource": $0, "search": .object(["mode": .string("match")])]) }),
        ])
    }

    static func time(_ date: Date) -> JSONValue { .string(date.formatted(.iso8601)) }

    // MARK: Schedule

    static func schedule(_ schedule: Schedule, provider: Provider?) -> JSONValue {
        let actorType = provider?.kind == "resource" ? "Device" : "Practitioner"
        var actor: [String: JSONValue] = ["reference": .string("\(actorType)/\(schedule.provider)")]
        if let provider { actor["display"] = .string(provider.name) }
        var horizon: [String: JSONValue] = ["start": .string(schedule.validFrom)]
        if let until = schedule.validUntil { horizon["end"] = .string(until) }
        let days = ["", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        return .object([
            "resourceType": .string("Schedule"), "id": .string(schedule.id), "active": .bool(schedule.active),
            "serviceType": .array([.object(["text": .string(provider?.departmentCode ?? schedule.department)])]),
            "actor": .array([.object(actor)]), "planningHorizon": .object(horizon),
            "comment": .string(
                "\(schedule.session) \(schedule.start)-\(schedule.end) \(schedule.weekdays.map { days[$0] }.joined(separator: ",")); "
                    + "\(schedule.capacity) places per slot, \(schedule.feeClass)"),
        ])
    }

    @Sendable func readSchedule(_ request: Request, context: QianyunRequestContext) async throws -> FHIRBody<JSONValue> {
        _ = try context.requirePrincipal()
        let schedule = try await directory.schedule(id: try context.parameters.require("id"))
        return FHIRBody(Self.schedule(schedule, provider: try? await directory.provider(id: schedule.provider)))
    }

    @Sendable func searchSchedules(_ request: Request, context: QianyunRequestContext) async throws -> FHIRBody<JSONValue> {
        _ = try context.requirePrincipal()
        let parameters = try Self.parameters(request, allowed: ["actor", "facility", "_count"], type: "Schedule")
        let actor = parameters["actor"].map { Self.id(Self.id($0, "Practitioner"), "Device") }
        let found = try await directory.schedules(facility: parameters["facility"], provider: actor)
        var resources: [JSONValue] = []
        for schedule in found { resources.append(Self.schedule(schedule, provider: try? await directory.provider(id: schedule.provider))) }
        return FHIRBody(Self.bundle(resources))
    }

    // MARK: Slot

    static func slot(_ slot: Slot) -> JSONValue {
        let status =
            slot.status == "cancelled" || !slot.released ? "busy-unavailable" : slot.available > 0 ? "free" : "busy"
        return .object([
            "resourceType": .string("Slot"), "id": .string(slot.id),
            "schedule": .object(["reference": .string("Schedule/\(slot.schedule)")]),
            "serviceType": .array([.object(["text": .string(slot.department)])]),
            "status": .string(status), "start": time(slot.start), "end": time(slot.end),
            "comment": .string("\(slot.available) of \(slot.capacity) places free; released \(slot.releaseAt.formatted(.iso8601))"),
        ])
    }

    @Sendable func readSlot(_ request: Request, context: QianyunRequestContext) async throws -> FHIRBody<JSONValue> {
        _ = try context.requirePrincipal()
        return FHIRBody(Self.slot(try await slots.slot(id: try context.parameters.require("id"))))
    }

    /// `start=ge2026-12-01`, `start=le…`, `start=2026-12-01` (one day).
    static func dateRange(_ values: [String]) throws -> (from: String?, to: String?) {
        var from: String? = nil
        var to: String? = nil
        for value in values {
            let prefix = String(value.prefix(2))
            let date = String((["ge", "gt", "le", "lt", "eq"].contains(prefix) ? value.dropFirst(2) : value[...]).prefix(10))
            switch prefix {
            case "ge", "gt": from = date
            case "le", "lt": to = date
            default:
                from = date
                to = date
            }
        }
        return (from, to)
    }

    @Sendable func searchSlots(_ request: Request, context: QianyunRequestContext) async throws -> FHIRBody<JSONValue> {
        _ = try context.requirePrincipal()
        let parameters = try Self.parameters(request, allowed: ["schedule", "start", "status", "_count"], type: "Slot")
        guard let scheduleID = parameters["schedule"].map({ Self.id($0, "Schedule") }) else {
            throw SchedulingError.invalid(field: "schedule", reason: "is required (Slot?schedule=<id>)")
        }
        let schedule = try await directory.schedule(id: scheduleID)
        var search = SlotQuery()
        search.provider = schedule.provider
        let starts = request.uri.queryParameters.getAll("start").map { String($0) }
        (search.from, search.to) = try Self.dateRange(starts)
        if let count = parameters["_count"] {
            guard let value = Int(count), (1...1000).contains(value) else {
                throw SchedulingError.invalid(field: "_count", reason: "from 1 to 1000")
            }
            search.limit = value
        }
        let status = parameters["status"]
        let resources = try await slots.search(search).filter { $0.schedule == schedule.id }.map(Self.slot).filter { resource in
            guard let status, case .object(let fields) = resource, case .string(let value) = fields["status"] else { return true }
            return value == status
        }
        return FHIRBody(Self.bundle(resources))
    }

    // MARK: Appointment

    static let appointmentStatus = [
        "booked": "booked", "checked-in": "arrived", "completed": "fulfilled", "cancelled": "cancelled", "no-show": "noshow",
    ]

    static func appointment(_ booking: Booking) -> JSONValue {
        var fields: [String: JSONValue] = [
            "resourceType": .string("Appointment"), "id": .string(booking.id),
            "status": .string(appointmentStatus[booking.status] ?? "booked"),
            "serviceType": .array([.object(["text": .string(booking.department)])]),
            "start": time(booking.start), "end": time(booking.end), "created": time(booking.bookedAt),
            "slot": .array([.object(["reference": .string("Slot/\(booking.slot)")])]),
            "participant": .array([
                .object(["actor": .object(["reference": .string("Patient/\(booking.resident)")]), "status": .string("accepted")]),
                .object(["actor": .object(["reference": .string("Practitioner/\(booking.provider)")]), "status": .string("accepted")]),
            ]),
        ]
        if let referral = booking.referral { fields["basedOn"] = .array([.object(["reference": .string("ServiceRequest/\(referral)")])]) }
        if let reason = booking.cancelReason { fields["cancelationReason"] = .object(["text": .string(reason)]) }
        if let number = booking.queueNumber { fields["comment"] = .string("queue number \(number)") }
        return .object(fields)
    }

    @Sendable func readAppointment(_ request: Request, context: QianyunRequestContext) async throws -> FHIRBody<JSONValue> {
        FHIRBody(
            Self.appointment(
                try await bookings.get(
                    id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID)))
    }

    @Sendable func searchAppointments(_ request: Request, context: QianyunRequestContext) async throws -> FHIRBody<JSONValue> {
        let principal = try context.requirePrincipal()
        let parameters = try Self.parameters(request, allowed: ["patient", "date", "status", "_count"], type: "Appointment")
        let patient = parameters["patient"].map { Self.id($0, "Patient") }
        let dates = request.uri.queryParameters.getAll("date").map { String($0) }
        let day = try Self.dateRange(dates)
        var status: String? = nil
        if let wanted = parameters["status"] {
            guard let stored = Self.appointmentStatus.first(where: { $0.value == wanted })?.key else {
                throw SchedulingError.invalid(
                    field: "status", reason: "one of \(Self.appointmentStatus.values.sorted().joined(separator: ", "))")
            }
            status = stored
        }
        let found = try await bookings.list(
            resident: patient, day: day.from == day.to ? day.from : nil, status: status, by: principal, requestID: context.requestID)
        return FHIRBody(
            Self.bundle(
                found.filter { booking in
                    (day.from == nil || booking.day >= day.from!) && (day.to == nil || booking.day <= day.to!)
                }.map(Self.appointment)))
    }
}
