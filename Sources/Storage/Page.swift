import Foundation

/// Keyset pagination shared by every list: the cursor is an opaque token wrapping the sort key of
/// the last item returned, so pages stay stable while rows are added and cost the same deep in.
public struct PageRequest: Sendable, Equatable {
    public static let defaultLimit = 50
    public static let maximumLimit = 200

    public let limit: Int
    /// The sort key after which the page starts, decoded from the caller's cursor.
    public let after: String?

    public init(limit: Int = PageRequest.defaultLimit, after: String? = nil) {
        self.limit = limit
        self.after = after
    }

    /// Validates a caller's `limit` and `cursor` query parameters.
    public init(limit: String?, cursor: String?) throws(PageError) {
        var parsedLimit = Self.defaultLimit
        if let limit {
            guard let value = Int(limit), (1...Self.maximumLimit).contains(value) else {
                throw .badLimit("limit must be a whole number from 1 to \(Self.maximumLimit)")
            }
            parsedLimit = value
        }
        var after: String?
        if let cursor, !cursor.isEmpty {
            guard let key = Cursor.decode(cursor) else { throw .badCursor("cursor is not one this service issued") }
            after = key
        }
        self.init(limit: parsedLimit, after: after)
    }
}

public enum PageError: Error, Equatable, CustomStringConvertible {
    case badLimit(String)
    case badCursor(String)
    public var description: String {
        switch self {
        case .badLimit(let reason), .badCursor(let reason): reason
        }
    }
}

public struct Page<Item: Sendable & Encodable>: Sendable, Encodable {
    public let items: [Item]
    /// Pass back as `cursor` for the next page; absent on the last page.
    public let nextCursor: String?

    /// Builds a page from up to `limit + 1` rows: the extra row only says that more exist.
    public init(rows: [Item], limit: Int, key: (Item) -> String) {
        if rows.count > limit {
            let items = Array(rows.prefix(limit))
            self.items = items
            self.nextCursor = items.last.map { Cursor.encode(key($0)) }
        } else {
            self.items = rows
            self.nextCursor = nil
        }
    }
}

public enum Cursor {
    static let prefix = "c1."

    public static func encode(_ key: String) -> String {
        prefix
            + Data(key.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ cursor: String) -> String? {
        guard cursor.hasPrefix(prefix), cursor.count <= 512 else { return nil }
        var base64 = String(cursor.dropFirst(prefix.count)).replacingOccurrences(of: "-", with: "+")
            .replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64) else { return nil }
        return String(data: data, encoding: .utf8)
    }
}
