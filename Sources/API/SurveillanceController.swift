import Aberration
import Access
import Foundation
import HTTPTypes
import Hummingbird
import Surveillance

/// `/api/v1/surveillance/…`: definitions, counts, the de-identified line list, timeliness, case
/// review, export approvals, aberration detection and signals. Counts and the line list answer
/// JSON, or CSV to `Accept: text/csv`.
public struct SurveillanceController: Sendable {
    let service: SurveillanceService
    let signals: SignalService

    public init(service: SurveillanceService, signals: SignalService) {
        self.service = service
        self.signals = signals
    }

    public func addRoutes(to group: RouterGroup<QianyunRequestContext>) {
        group.get("surveillance/diseases", use: diseases)
        group.get("surveillance/divisions", use: divisions)
        group.get("surveillance/counts", use: counts)
        group.get("surveillance/cases", use: cases)
        group.post("surveillance/cases/{id}/review", use: review)
        group.get("surveillance/timeliness", use: timeliness)
        group.post("surveillance/approvals", use: approve)
        group.post("surveillance/aberration", use: aberration)
        group.get("surveillance/signals", use: listSignals)
        group.post("surveillance/signals/run", use: runSignals)
        group.get("surveillance/signals/{id}", use: signal)
        group.post("surveillance/signals/{id}/status", use: transition)
    }

    func parameters(_ request: Request) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { result[String(key)] = String(value) }
        return result
    }

    func wantsCSV(_ request: Request) -> Bool {
        request.headers[.accept]?.lowercased().contains("text/csv") ?? false
    }

    // MARK: Reference data

    struct DiseaseView: Encodable, Sendable {
        let code: String
        let nameZh: String
        let nameEn: String
        let `class`: String
        let reportWithinHours: Int
        let episodeDays: Int?
        let icd10: [String]
        let labs: [String]
    }

    struct DiseaseList: Encodable, Sendable {
        let version: String
        let diseases: [DiseaseView]
    }

    @Sendable func diseases(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<DiseaseList> {
        _ = try context.requirePrincipal()
        let definitions = service.definitions
        return JSONBody(
            DiseaseList(
                version: definitions.version,
                diseases: definitions.diseases.map {
                    DiseaseView(
                        code: $0.code, nameZh: $0.name.zh, nameEn: $0.name.en, class: $0.class.rawValue,
                        reportWithinHours: definitions.reportWithinHours($0), episodeDays: $0.episodeDays, icd10: $0.icd10,
                        labs: $0.labs ?? [])
                }))
    }

    struct CountyView: Encodable, Sendable {
        let code: String
        let name: String
        let population: Int
    }

    struct PrefectureView: Encodable, Sendable {
        let code: String
        let name: String
        let population: Int
        let counties: [CountyView]
    }

    struct DivisionList: Encodable, Sendable {
        let province: Divisions.Province
        let prefectures: [PrefectureView]
    }

    @Sendable func divisions(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<DivisionList> {
        _ = try context.requirePrincipal()
        let population = try await service.population(level: .county)
        let divisions = service.divisions
        return JSONBody(
            DivisionList(
                province: divisions.province,
                prefectures: divisions.prefectures.map { prefecture in
                    let counties = prefecture.counties.map {
                        CountyView(code: $0.code, name: $0.name, population: population[$0.code] ?? 0)
                    }
                    return PrefectureView(
                        code: prefecture.code, name: prefecture.name, population: counties.reduce(0) { $0 + $1.population },
                        counties: counties)
                }))
    }

    // MARK: Counts

    @Sendable func counts(_ request: Request, context: QianyunRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let query = try CountQuery(query: parameters(request), definitions: service.definitions)
        let csv = wantsCSV(request)
        let table = try await service.counts(query, by: principal, format: csv ? "csv" : "json", requestID: context.requestID)
        var headers: HTTPFields = [.cacheControl: "no-store"]
        if csv {
            headers[.contentType] = "text/csv; charset=utf-8"
            headers[.contentDisposition] = "attachment; filename=\"surveillance-counts.csv\""
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: countsCSV(table))))
        }
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: countsJSON(table))))
    }

    /// Written by hand: a five-year county-by-week table has hundreds of thousands of cells.
    func countsJSON(_ table: SurveillanceService.CountTable) -> String {
        var out = "{\"groupBy\":["
        out += table.query.groupBy.map { "\"\($0.rawValue)\"" }.joined(separator: ",")
        out += "],\"divisionLevel\":\"\(table.query.divisionLevel.rawValue)\",\"threshold\":\(table.threshold)"
        out += ",\"dateBasis\":\"\(table.query.filter.dateBasis.rawValue)\""
        out += ",\"from\":\"\(CaseFilter.format(table.query.filter.from))\",\"to\":\"\(CaseFilter.format(table.query.filter.to))\""
        out += ",\"cells\":["
        var first = true
        for cell in table.cells {
            if !first { out += "," }
            first = false
            out += "{"
            for dimension in table.query.groupBy {
                let value = cell.key[dimension] ?? ""
                out += "\"\(dimension.rawValue)\":\(jsonString(value)),"
                if let name = service.name(dimension, value) { out += "\"\(dimension.rawValue)Name\":\(jsonString(name))," }
            }
            out += cell.suppressed ? "\"count\":null,\"suppressed\":true" : "\"count\":\(cell.count),\"suppressed\":false"
            if table.query.groupBy.contains(.division) {
                out += ",\"population\":\(cell.population.map(String.init) ?? "null")"
                out += ",\"rate\":\(cell.rate.map { String($0) } ?? "null")"
            }
            out += "}"
        }
        out += "],\"margins\":{"
        out += table.margins.map { dimension, values in
            "\"\(dimension.rawValue)\":["
                + values.map { margin in
                    var item = "{\"\(dimension.rawValue)\":\(jsonString(margin.value))"
                    if let name = service.name(dimension, margin.value) { item += ",\"\(dimension.rawValue)Name\":\(jsonString(name))" }
                    item += margin.suppressed ? ",\"count\":null,\"suppressed\":true}" : ",\"count\":\(margin.count),\"suppressed\":false}"
                    return item
                }.joined(separator: ",") + "]"
        }.joined(separator: ",")
        out += "},\"total\":"
        out += table.totalSuppressed ? "{\"count\":null,\"suppressed\":true}" : "{\"count\":\(table.total),\"suppressed\":false}"
        out += "}"
        return out
    }

    func countsCSV(_ table: SurveillanceService.CountTable) -> String {
        var header: [String] = []
        for dimension in table.query.groupBy {
            header.append(dimension.rawValue)
            if dimension == .disease || dimension == .division { header.append(dimension.rawValue + "Name") }
        }
        header += ["count", "suppressed"]
        let rates = table.query.groupBy.contains(.division)
        if rates { header += ["population", "ratePer100k"] }
        var lines = [header.joined(separator: ",")]
        for cell in table.cells {
            var fields: [String] = []
            for dimension in table.query.groupBy {
                let value = cell.key[dimension] ?? ""
                fields.append(csvField(value))
                if dimension == .disease || dimension == .division { fields.append(csvField(service.name(dimension, value) ?? "")) }
            }
            fields += cell.suppressed ? ["", "true"] : [String(cell.count), "false"]
            if rates { fields += [cell.population.map(String.init) ?? "", cell.rate.map { String($0) } ?? ""] }
            lines.append(fields.joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    // MARK: Line list

    struct LineListView: Encodable, Sendable {
        let fields: [String]
        let cases: [[String: String?]]
        let nextCursor: String?
    }

    @Sendable func cases(_ request: Request, context: QianyunRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.require(scope: "surveillance.read")
        let query = parameters(request)
        let filter = try CaseFilter(query: query, definitions: service.definitions)
        let fields = try await service.allowedFields(query["fields"], for: principal)
        var limit = 1000
        if let text = query["limit"] {
            guard let value = Int(text) else { throw SurveillanceError.invalid(field: "limit", reason: "must be 1 to 10000") }
            limit = value
        }
        let csv = wantsCSV(request)
        let page = try await service.lineList(
            filter, fields: fields, limit: limit, cursor: query["cursor"], by: principal, format: csv ? "csv" : "json",
            requestID: context.requestID)
        var headers: HTTPFields = [.cacheControl: "no-store"]
        if csv {
            var lines = [page.fields.map(\.rawValue).joined(separator: ",")]
            for row in page.rows { lines.append(page.fields.map { csvField((row[$0] ?? nil) ?? "") }.joined(separator: ",")) }
            headers[.contentType] = "text/csv; charset=utf-8"
            headers[.contentDisposition] = "attachment; filename=\"surveillance-cases.csv\""
            if let next = page.nextCursor { headers[HTTPField.Name("X-Next-Cursor")!] = next }
            return Response(
                status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: lines.joined(separator: "\r\n") + "\r\n")))
        }
        let view = LineListView(
            fields: page.fields.map(\.rawValue),
            cases: page.rows.map { row in
                var out: [String: String?] = [:]
                for field in page.fields { out[field.rawValue] = row[field] ?? nil }
                return out
            }, nextCursor: page.nextCursor)
        return try JSONBody(view, headers: headers).response(from: request, context: context)
    }

    @Sendable func review(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<SurveillanceService.ReviewedCase> {
        let body = try await request.decodeJSON(SurveillanceService.Review.self, context: context)
        return JSONBody(
            try await service.review(
                case: try context.parameters.require("id"), body, by: try context.requirePrincipal(), requestID: context.requestID),
            headers: [.cacheControl: "no-store"])
    }

    @Sendable func timeliness(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<SurveillanceService.Timeliness> {
        let principal = try context.requirePrincipal()
        let query = parameters(request)
        let filter = try CaseFilter(query: query, definitions: service.definitions)
        return JSONBody(
            try await service.timeliness(filter, groupBy: query["groupBy"] ?? "disease", by: principal, requestID: context.requestID),
            headers: [.cacheControl: "no-store"])
    }

    @Sendable func approve(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<SurveillanceService.Approval> {
        let body = try await request.decodeJSON(SurveillanceService.ApprovalRequest.self, context: context)
        return JSONBody(
            try await service.approve(body, by: try context.requirePrincipal(), requestID: context.requestID), status: .created)
    }

    // MARK: Aberration

    struct AberrationRequest: Decodable, Sendable {
        let method: String
        let counts: [Int]
        let range: [Int]?
        let baseline: Int?
        let alpha: Double?
        let minSigma: Double?
        let k: Double?
        let h: Double?
        let m: Double?
        let years: Int?
        let neighbours: Int?
        let percentile: Double?
        let minCount: Int?
        let period: Int?
    }

    struct AberrationPointView: Encodable, Sendable {
        let index: Int
        let observed: Int
        let upperbound: Double?
        let alarm: Bool

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encode(observed, forKey: .observed)
            // NaN has no JSON: R's NA and NaN both come out as null.
            if let upperbound, upperbound.isFinite {
                try container.encode(upperbound, forKey: .upperbound)
            } else {
                try container.encodeNil(forKey: .upperbound)
            }
            try container.encode(alarm, forKey: .alarm)
        }

        enum CodingKeys: String, CodingKey { case index, observed, upperbound, alarm }
    }

    struct AberrationResult: Encodable, Sendable {
        let method: String
        let points: [AberrationPointView]
    }

    @Sendable func aberration(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<AberrationResult> {
        let principal = try context.requirePrincipal()
        try principal.require(scope: "surveillance.read")
        let body = try await request.decodeJSON(AberrationRequest.self, context: context)
        guard let method = AberrationMethod(rawValue: body.method) else {
            throw SurveillanceError.invalid(field: "method", reason: "must be C1, C2, C3, CUSUM or CIDARS")
        }
        guard body.counts.count <= 100_000 else { throw SurveillanceError.invalid(field: "counts", reason: "at most 100000 counts") }
        var range = 1...max(body.counts.count, 1)
        if let given = body.range {
            guard given.count == 2, given[0] <= given[1] else {
                throw SurveillanceError.invalid(field: "range", reason: "must be [first, last] with first <= last, 1-based")
            }
            range = given[0]...given[1]
        } else {
            range = min(Aberration.minimumFirstIndex(method, parameters: .init()), max(body.counts.count, 1))...max(body.counts.count, 1)
        }
        var parameters = AberrationParameters()
        if let value = body.baseline { parameters.baseline = value }
        if let value = body.alpha { parameters.alpha = value }
        if let value = body.minSigma { parameters.minSigma = value }
        if let value = body.k { parameters.k = value }
        if let value = body.h { parameters.h = value }
        parameters.m = body.m
        if let value = body.years { parameters.years = value }
        if let value = body.neighbours { parameters.neighbours = value }
        if let value = body.percentile { parameters.percentile = value }
        if let value = body.minCount { parameters.minCount = value }
        if let value = body.period { parameters.period = value }
        let points: [AberrationPoint]
        do {
            points = try Aberration.detect(method, counts: body.counts, range: range, parameters: parameters)
        } catch {
            let field: String =
                switch error {
                case .emptyCounts, .invalidCount: "counts"
                case .rangeOutOfBounds, .rangeTooEarly: "range"
                case .invalidParameter(let name, _): name
                }
            throw SurveillanceError.invalid(field: field, reason: error.description)
        }
        return JSONBody(
            AberrationResult(
                method: method.rawValue,
                points: points.map {
                    AberrationPointView(index: $0.index, observed: $0.observed, upperbound: $0.upperbound, alarm: $0.alarm)
                }
            ))
    }

    // MARK: Signals

    struct SignalList: Encodable, Sendable {
        let signals: [SignalService.Signal]
    }

    @Sendable func listSignals(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<SignalList> {
        let query = parameters(request)
        return JSONBody(
            SignalList(
                signals: try await signals.list(
                    status: query["status"], disease: query["disease"], division: query["division"], by: try context.requirePrincipal(),
                    requestID: context.requestID)),
            headers: [.cacheControl: "no-store"])
    }

    @Sendable func signal(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<SignalService.Signal> {
        JSONBody(
            try await signals.get(try context.parameters.require("id"), by: try context.requirePrincipal(), requestID: context.requestID),
            headers: [.cacheControl: "no-store"])
    }

    @Sendable func transition(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<SignalService.Signal> {
        let body = try await request.decodeJSON(SignalService.Transition.self, context: context)
        return JSONBody(
            try await signals.transition(
                try context.parameters.require("id"), body, by: try context.requirePrincipal(), requestID: context.requestID))
    }

    struct RunRequest: Decodable, Sendable {
        let date: String?
    }

    @Sendable func runSignals(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<SignalService.RunSummary> {
        let principal = try context.requirePrincipal()
        guard principal.role == .admin || principal.scopes.contains("surveillance.review") else {
            throw AccessError.forbidden("running the signal job needs scope surveillance.review or the admin role")
        }
        let body = try await request.decodeJSON(RunRequest.self, context: context)
        let day = try body.date.map { try CaseFilter.parseDate($0, field: "date") } ?? CaseFilter.today()
        return JSONBody(try await signals.run(day: day))
    }
}

func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                out += String(format: "\\u%04x", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

/// RFC 4180, and a leading =, +, - or @ quoted away so a spreadsheet does not run it.
func csvField(_ text: String) -> String {
    var value = text
    if let first = value.first, "=+-@".contains(first) { value = "'" + value }
    guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) || value != text else { return value }
    return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}
