import Access
import Hummingbird
import NIOCore

/// Per-request state: the request id, the caller's address, and the principal once resolved.
public struct QianyunRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var requestID: String = ""
    public var principal: Principal?
    public let remoteAddress: String?
    /// Set from configuration by `BodyLimitMiddleware` before any body is read.
    public var maxUploadSize: Int = 1 << 20

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress?.ipAddress
    }

    /// The authenticated caller; a route under `/api` never runs without one.
    public func requirePrincipal() throws(AccessError) -> Principal {
        guard let principal else { throw .unauthenticated("missing bearer token") }
        return principal
    }
}
