import Hummingbird
import Prometheus

/// Liveness, readiness, metrics and the OpenAPI document: unauthenticated, carrying no PHI.
public struct SystemController: Sendable {
    public struct Readiness: Sendable, Encodable {
        public var status: String
        public var checks: [String: String]

        public init(ready: Bool, checks: [String: String]) {
            self.status = ready ? "ready" : "not-ready"
            self.checks = checks
        }

        public var isReady: Bool { status == "ready" }
    }

    let readiness: @Sendable () async -> Readiness
    let metrics: PrometheusCollectorRegistry?
    let openAPIDocument: String

    public init(readiness: @escaping @Sendable () async -> Readiness, metrics: PrometheusCollectorRegistry?, openAPIDocument: String) {
        self.readiness = readiness
        self.metrics = metrics
        self.openAPIDocument = openAPIDocument
    }

    public func addRoutes(to router: Router<QianyunRequestContext>) {
        router.get("/healthz") { _, _ in
            JSONBody(["status": "ok"])
        }
        router.get("/readyz") { _, _ in
            let result = await readiness()
            return JSONBody(result, status: result.isReady ? .ok : .serviceUnavailable, headers: [.cacheControl: "no-store"])
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics?.emitToBuffer() ?? [])))
        }
        router.get("/openapi.yaml") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: openAPIDocument)))
        }
    }
}

/// Everything the routes need, built by the composition root.
public struct APIDependencies: Sendable {
    public var tokens: TokenController
    public var facilities: FacilityController
    public var residents: ResidentController
    public var fhir: FHIRController
    public var interop: InteropController
    public var documents: DocumentController
    public var records: RecordController
    public var consents: ConsentController
    public var fhirRecord: FHIRRecordController
    public var chronicCare: ChronicCareController
    public var scheduling: SchedulingController
    public var fhirScheduling: FHIRSchedulingController
    public var consultation: ConsultationController
    public var surveillance: SurveillanceController
    public var system: SystemController
    public var tokenService: Access.TokenService
    public var maximumBodyBytes: Int
    /// The cap on one clinical document (`POST /api/v1/documents`), which may carry attachments.
    public var maximumDocumentBytes: Int

    public init(
        tokens: TokenController, facilities: FacilityController, residents: ResidentController, fhir: FHIRController,
        interop: InteropController, documents: DocumentController, records: RecordController, consents: ConsentController,
        fhirRecord: FHIRRecordController, chronicCare: ChronicCareController, scheduling: SchedulingController,
        fhirScheduling: FHIRSchedulingController, consultation: ConsultationController, surveillance: SurveillanceController,
        system: SystemController,
        tokenService: Access.TokenService,
        maximumBodyBytes: Int, maximumDocumentBytes: Int
    ) {
        self.tokens = tokens
        self.facilities = facilities
        self.residents = residents
        self.fhir = fhir
        self.interop = interop
        self.documents = documents
        self.records = records
        self.consents = consents
        self.fhirRecord = fhirRecord
        self.chronicCare = chronicCare
        self.scheduling = scheduling
        self.fhirScheduling = fhirScheduling
        self.consultation = consultation
        self.surveillance = surveillance
        self.system = system
        self.tokenService = tokenService
        self.maximumBodyBytes = maximumBodyBytes
        self.maximumDocumentBytes = maximumDocumentBytes
    }
}

import Access

/// Builds the router: edge middleware on everything, authentication on `/api`.
public func buildRouter(_ dependencies: APIDependencies) -> Router<QianyunRequestContext> {
    let router = Router(context: QianyunRequestContext.self)
    let table = RouteTable()
    router.add(
        middleware: EdgeMiddleware(
            maximumBodyBytes: dependencies.maximumBodyBytes, routes: table,
            largerBodies: ["/api/v1/documents": dependencies.maximumDocumentBytes]))
    router.add(middleware: MetricsMiddleware())
    dependencies.system.addRoutes(to: router)
    dependencies.tokens.addRoutes(to: router)
    DashboardController().addRoutes(to: router)
    let authentication = AuthenticationMiddleware(tokens: dependencies.tokenService)
    let api = router.group("api/v1").add(middleware: authentication)
    dependencies.facilities.addRoutes(to: api)
    dependencies.residents.addRoutes(to: api)
    dependencies.interop.addRoutes(to: api)
    dependencies.documents.addRoutes(to: api)
    dependencies.records.addRoutes(to: api)
    dependencies.consents.addRoutes(to: api)
    dependencies.chronicCare.addRoutes(to: api)
    dependencies.scheduling.addRoutes(to: api)
    dependencies.consultation.addRoutes(to: api)
    dependencies.surveillance.addRoutes(to: api)
    IdentityController().addRoutes(to: api)
    dependencies.fhir.addRoutes(to: router, authentication: authentication)
    dependencies.fhirRecord.addRoutes(to: router, authentication: authentication)
    dependencies.fhirScheduling.addRoutes(to: router, authentication: authentication)
    table.fill(router.routes.map { ($0.path.description, $0.method) })
    return router
}
