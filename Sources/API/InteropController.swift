import Access
import Foundation
import Hummingbird
import Interop
import Storage

/// `/api/v1/interop/messages`: the HL7 inbox for operators, newest first, with the dead letters
/// (`status=failed,unsupported,rejected`) a replay would pick up. Headers and outcomes only.
public struct InteropController: Sendable {
    let log: MessageLog

    public init(log: MessageLog) {
        self.log = log
    }

    public func addRoutes(to group: RouterGroup<QianyunRequestContext>) {
        group.get("interop/messages", use: list)
        group.get("interop/messages/{id}", use: get)
    }

    @Sendable func list(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<Page<InboxMessage>> {
        let query = request.uri.queryParameters
        let page = try PageRequest(limit: query["limit"].map(String.init), cursor: query["cursor"].map(String.init))
        func time(_ name: String) throws -> Date? {
            guard let text = query[name[...]].map(String.init) else { return nil }
            guard let date = ISO8601DateFormatter().date(from: text) else {
                throw InboxError.invalid(field: name, reason: "must be an ISO 8601 time such as 2026-11-25T08:00:00+08:00")
            }
            return date
        }
        let filter = InboxFilter(
            facility: query["facility"].map(String.init),
            statuses: query["status"].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } },
            messageType: query["type"].map { String($0).uppercased() }, triggerEvent: query["trigger"].map { String($0).uppercased() },
            since: try time("since"), until: try time("until"))
        return JSONBody(try await log.list(filter, page: page, by: try context.requirePrincipal()))
    }

    @Sendable func get(_ request: Request, context: QianyunRequestContext) async throws -> JSONBody<InboxMessage> {
        JSONBody(try await log.get(id: try context.parameters.require("id"), by: try context.requirePrincipal()))
    }
}
