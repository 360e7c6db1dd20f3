import DashboardAssets
import Foundation
import HTTPTypes
import Hummingbird

extension HTTPField.Name {
    static let contentSecurityPolicy = Self("Content-Security-Policy")!
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xFrameOptions = Self("X-Frame-Options")!
}

/// `GET /dashboard` and `GET /dashboard/assets/{file}`: the public-health analyst's page, its one
/// script, its stylesheet and its icon, from the files of the `DashboardAssets` target
/// (`Sources/DashboardAssets/Dashboard`), read once at start.
///
/// Public and free of data: the page signs in with the OAuth2 client-credentials grant and reads
/// everything from `/api/v1/surveillance` with its bearer token. Nothing leaves the origin — the
/// page's policy is `default-src 'self'`, and the fonts are the reader's own CJK fonts.
public struct DashboardController: Sendable {
    struct Asset: Sendable {
        let body: ByteBuffer
        let contentType: String
        /// A hash of the content, for the ETag and the `?v=` the page puts on its asset links.
        let version: String
    }

    let page: Asset
    let assets: [String: Asset]

    static let files: [(name: String, contentType: String)] = [
        ("dashboard.js", "text/javascript; charset=utf-8"), ("dashboard.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ]

    /// The page's policy: its own origin for everything, no plug-ins, no framing, no `<base>`.
    static let contentSecurityPolicy =
        "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    /// Reads the files once, at start: a binary whose resource bundle is missing fails here, not
    /// at the first analyst's request.
    public init() {
        func read(_ name: String) -> Data {
            guard let data = DashboardAssets.file(name) else {
                preconditionFailure("the dashboard's \(name) is missing from its resource bundle (qianyun_DashboardAssets.resources)")
            }
            return data
        }
        var assets: [String: Asset] = [:]
        for (name, contentType) in Self.files {
            let data = read(name)
            assets[name] = Asset(body: ByteBuffer(bytes: data), contentType: contentType, version: Self.version(of: data))
        }
        // The page links each asset with its version, so a browser may keep an asset for as long
        // as it likes and still never runs a script older than the page.
        var html = String(decoding: read("index.html"), as: UTF8.self)
        for (name, asset) in assets {
            html = html.replacingOccurrences(of: "{{\(name)}}", with: asset.version)
        }
        let data = Data(html.utf8)
        self.page = Asset(body: ByteBuffer(bytes: data), contentType: "text/html; charset=utf-8", version: Self.version(of: data))
        self.assets = assets
    }

    public func addRoutes(to router: Router<QianyunRequestContext>) {
        router.get("/dashboard") { request, _ in
            var headers = Self.commonHeaders
            headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
            headers[.xFrameOptions] = "DENY"
            // Revalidated every time: a new release's page names its new assets at once.
            headers[.cacheControl] = "no-cache"
            return Self.respond(page, to: request, headers: headers)
        }
        router.get("/dashboard/assets/{file}") { request, context in
            guard let asset = assets[try context.parameters.require("file")] else {
                throw HTTPError(.notFound)
            }
            var headers = Self.commonHeaders
            let current = request.uri.queryParameters["v"].map(String.init) == asset.version
            headers[.cacheControl] = current ? "public, max-age=31536000, immutable" : "no-cache"
            return Self.respond(asset, to: request, headers: headers)
        }
    }

    static let commonHeaders: HTTPFields = [.xContentTypeOptions: "nosniff", .referrerPolicy: "no-referrer"]

    static func respond(_ asset: Asset, to request: Request, headers: HTTPFields) -> Response {
        var headers = headers
        let etag = "\"\(asset.version)\""
        headers[.eTag] = etag
        if let match = request.headers[.ifNoneMatch],
            match.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == etag })
        {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = asset.contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
    }

    /// FNV-1a, 64 bits, in hex: a cache key for content we ship, not a defence against anyone.
    static func version(of data: Data) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
