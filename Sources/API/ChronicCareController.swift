import Access
import ChronicCare
import ChronicRules
import Foundation
import HTTPTypes
import Hummingbird
import Storage

/// `/api/v1/programmes`, `enrolments`, `readings`, `alerts`, `rules` and the clinic's work lists.
public struct ChronicCareController: Sendable {
    let readings: ReadingService
    let enrolments: EnrolmentService
    let alerts: AlertService
    let rules: RuleService
    let worker: MonitoringWorker

    public init(readings: ReadingService, enrolments: EnrolmentService, alerts: AlertService, rules: RuleService, worker: MonitoringWorker)
    {
        self.readings = readings
        self.enrolments = enrolments
        self.alerts = alerts
        self.rules = rules
        self.worker = worker
    }

    public func addRoutes(to group: RouterGroup<QianyunRequestContext>) {
        group.get("programmes", use: programmes)
        group.post("enrolments", use: enrol)
        group.get("enrolments", use: listEnrolments)
        group.post("enrolments/{id}/follow-ups", use: followUp)
        group.post("enrolments/{id}/discharge", use: discharge)
        group.get("worklists/overdue-follow-ups", use: overdue)
        group.get("worklists/no-readings", use: silent)
        group.post("readings", use: ingest)
        group.get("residents/{id}/readings", use: listReadings)
        group.get("readings", use: listReadings)
        group.get("alerts", use: listAlerts)
        group.get("alerts/{id}", use: alert)
        group.post("alerts/{id}/acknowledge", use: acknowledge)
        group.post("alerts/{id}/close", use: close)
        group.get("rules", use: listRules)
        group.post("rules/dry-run", use: dryRun)
        group.post("rules/sweep", use: sweep)
    }

    struct Items<Item: Encodable & Sendable>: Encodable, Sendable {
        let items: [Item]
        var nextCursor: String? = nil
    }

    struct ProgrammeView: Encodable, Sendable {
        let code: String
        let name: LocalizedMessage
        let diagnoses: [String]
        let followUpDays: Int?
        let measures: [Measure]
    }

    @Sendable func programmes(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<ProgrammeView>> {
        _ = try context.requirePrincipal()
        return JSONBody(
            Items(
                items: rules.programmes.map {
                    ProgrammeView(
                        code: $0.code, name: $0.name, diagnoses: $0.diagnoses, followUpDays: $0.followUpDays, measures: $0.measures)
                }))
    }

    @Sendable func enrol(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Enrolment> {
        let body = try await request.decodeJSON(EnrolmentRequest.self, context: context)
        let enrolment = try await enrolments.enrol(body, by: try context.requirePrincipal(), requestID: context.requestID)
        return JSONBody(enrolment, status: .created, headers: noStore)
    }

    @Sendable func listEnrolments(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<Enrolment>> {
        let query = request.uri.queryParameters
        let found = try await enrolments.list(
            resident: query["resident"].map(String.init), programme: query["programme"].map(String.init),
            status: query["status"].map(String.init), by: try context.requirePrincipal(), requestID: context.requestID)
        return JSONBody(Items(items: found), headers: noStore)
    }

    @Sendable func followUp(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Enrolment> {
        let body = try await request.decodeJSON(FollowUpRequest.self, context: context)
        return JSONBody(
            try await enrolments.followUp(
                body, enrolment: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func discharge(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Enrolment> {
        let body = try await request.decodeJSON(DischargeRequest.self, context: context)
        return JSONBody(
            try await enrolments.discharge(
                body, enrolment: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func overdue(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<WorkListEntry>> {
        JSONBody(
            Items(
                items: try await enrolments.workList(
                    overdue: true, noReadingsDays: nil, programme: request.uri.queryParameters["programme"].map(String.init),
                    by: try context.requirePrincipal(), requestID: context.requestID)), headers: noStore)
    }

    @Sendable func silent(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<WorkListEntry>> {
        let query = request.uri.queryParameters
        var days = 14
        if let text = query["days"] {
            guard let value = Int(String(text)) else { throw ChronicCareError.invalid(field: "days", reason: "must be a whole number") }
            days = value
        }
        return JSONBody(
            Items(
                items: try await enrolments.workList(
                    overdue: false, noReadingsDays: days, programme: query["programme"].map(String.init),
                    by: try context.requirePrincipal(),
                    requestID: context.requestID)), headers: noStore)
    }

    @Sendable func ingest(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<IngestResult> {
        let batch = try await request.decodeJSON(ReadingBatch.self, context: context)
        let result = try await readings.ingest(batch, by: try context.requirePrincipal(), requestID: context.requestID)
        return JSONBody(result, headers: noStore)
    }

    @Sendable func listReadings(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<StoredReading>> {
        let query = request.uri.queryParameters
        let page = try PageRequest(limit: query["limit"].map(String.init), cursor: query["cursor"].map(String.init))
        // `/residents/{id}/readings`, or `/readings?resident=…` beside the POST.
        guard let resident = context.parameters.get("id") ?? query["resident"].map(String.init) else {
            throw ChronicCareError.invalid(field: "resident", reason: "is required (readings?resident=<id>)")
        }
        let found = try await readings.list(
            resident: resident, type: query["type"].map(String.init), from: try time(query, "from"),
            to: try time(query, "to"), page: page, by: try context.requirePrincipal(), requestID: context.requestID)
        return JSONBody(Items(items: found.readings, nextCursor: found.nextCursor), headers: noStore)
    }

    func time(_ query: Hummingbird.Parameters, _ name: String) throws -> Date? {
        guard let text = query[name[...]].map(String.init) else { return nil }
        if let date = ISO8601DateFormatter().date(from: text) ?? ISO8601DateFormatter().date(from: text + "T00:00:00+08:00") { return date }
        throw ChronicCareError.invalid(field: name, reason: "must be a date (2026-12-01) or an ISO 8601 time")
    }

    @Sendable func listAlerts(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Items<Alert>> {
        let query = request.uri.queryParameters
        let page = try PageRequest(limit: query["limit"].map(String.init), cursor: query["cursor"].map(String.init))
        let found = try await alerts.list(
            status: query["status"].map(String.init), severity: query["severity"].map(String.init),
            programme: query["programme"].map(String.init), resident: query["resident"].map(String.init), page: page,
            by: try context.requirePrincipal(), requestID: context.requestID)
        return JSONBody(Items(items: found.alerts, nextCursor: found.nextCursor), headers: noStore)
    }

    @Sendable func alert(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Alert> {
        JSONBody(
            try await alerts.alert(
                id: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func acknowledge(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Alert> {
        JSONBody(
            try await alerts.transition(
                .acknowledge, alert: try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: noStore)
    }

    @Sendable func close(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Alert> {
        let body = try await request.decodeJSON(AlertNote.self, context: context)
        return JSONBody(
            try await alerts.transition(
                .close(note: body.note ?? ""), alert: try context.parameters.require("id"), by: try context.requirePrincipal(),
                requestID: context.requestID), headers: noStore)
    }

    struct RuleList: Encodable, Sendable {
        let version: String
        let items: [RuleSummary]
    }

    @Sendable func listRules(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<RuleList> {
        _ = try context.requirePrincipal()
        return JSONBody(RuleList(version: rules.version, items: rules.list()))
    }

    struct DryRunBody: Decodable, Sendable {
        var ruleSet: RuleSet?
        var from: Date?
        var to: Date?
        var programme: String?
        var closeAfterDays: Int?
    }

    @Sendable func dryRun(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<DryRunReport> {
        let body = try await request.decodeJSON(DryRunBody.self, context: context)
        return JSONBody(
            try await rules.dryRun(
                DryRunRequest(
                    ruleSet: body.ruleSet, from: body.from, to: body.to, programme: body.programme, closeAfterDays: body.closeAfterDays),
                by: try context.requirePrincipal(), requestID: context.requestID), headers: noStore)
    }

    struct SweepResult: Encodable, Sendable {
        let evaluated: Int
        let escalated: Int
        let swept: Int
    }

    /// Runs the background steps now (an operator's or a test's lever): pending readings,
    /// escalation, the sweep.
    @Sendable func sweep(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<SweepResult> {
        try context.requirePrincipal().require(.admin, action: "run the monitoring sweep")
        var evaluated = 0
        while true {
            let count = try await worker.evaluatePending()
            evaluated += count
            if count == 0 { break }
        }
        let escalated = try await alerts.escalate()
        let swept = try await worker.sweep()
        return JSONBody(SweepResult(evaluated: evaluated, escalated: escalated, swept: swept))
    }
}
