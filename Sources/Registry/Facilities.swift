import Access
import Foundation
import IdentityNumbers
import Logging
import PostgresNIO
import Storage

/// A hospital or clinic of the province. Every later capability refers to one by its code.
public struct Facility: Sendable, Codable, Equatable {
    public enum Level: String, Sendable, Codable, CaseIterable {
        case tertiary, secondary, primary
    }

    public enum PrimaryKind: String, Sendable, Codable, CaseIterable {
        case township, community, village
    }

    public var code: String
    public var name: String
    public var level: Level
    public var primaryKind: PrimaryKind?
    /// GB/T 2260 six-digit administrative division.
    public var division: String
    public var active: Bool
    /// The lead hospital of the facility's medical consortium (医联体), where a clinic's urgent
    /// chronic-disease alerts escalate.
    public var supervisor: String?
}

/// What an admin sends to register a facility. `level` takes the grade (`tertiary`, `secondary`,
/// `primary`) or, for primary care, the kind itself (`township`, `community`, `village`).
public struct FacilityDraft: Sendable, Decodable {
    public var code: String
    public var name: String
    public var level: String
    public var primaryKind: String?
    public var division: String
    public var active: Bool?
    public var supervisor: String?

    public init(
        code: String, name: String, level: String, primaryKind: String? = nil, division: String, active: Bool? = nil,
        supervisor: String? = nil
    ) {
        self.code = code
        self.name = name
        self.level = level
        self.primaryKind = primaryKind
        self.division = division
        self.active = active
        self.supervisor = supervisor
    }
}

/// A partial update; absent fields stay as they are.
public struct FacilityPatch: Sendable, Decodable {
    public var name: String?
    public var level: String?
    public var primaryKind: String?
    public var division: String?
    public var active: Bool?
    /// A facility code; "" removes the supervisor.
    public var supervisor: String?

    public init(name: String? = nil, level: String? = nil, primaryKind: String? = nil, division: String? = nil, active: Bool? = nil) {
        self.name = name
        self.level = level
        self.primaryKind = primaryKind
        self.division = division
        self.active = active
    }
}

public struct FacilityFilter: Sendable {
    /// A division prefix: `52` the province, `5201` Guiyang, `520102` one district.
    public var division: String?
    public var level: Facility.Level?
    public var active: Bool?

    public init(division: String? = nil, level: Facility.Level? = nil, active: Bool? = nil) {
        self.division = division
        self.level = level
        self.active = active
    }
}

public enum RegistryError: Error, Equatable, CustomStringConvertible {
    case invalid(field: String, reason: String)
    /// A resident identity number that fails GB 11643, with every problem found.
    case identityNumber([ResidentIDNumber.Problem])
    case duplicate(String)
    case notFound(String)
    /// The request is well-formed but the resource's state forbids it (a second active card, a merged resident).
    case conflict(code: String, detail: String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "\(field): \(reason)"
        case .identityNumber(let problems): "document.number: " + problems.map(\.message).joined(separator: "; ")
        case .duplicate(let what): "\(what) already exists"
        case .notFound(let what): "\(what) was not found"
        case .conflict(_, let detail): detail
        }
    }
}

/// The facility directory: `admin` registers and updates, every authenticated caller reads.
public struct FacilityDirectory: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func create(_ draft: FacilityDraft, by principal: Principal, requestID: String? = nil) async throws -> Facility {
        try principal.require(.admin, action: "register facilities")
        let facility = try Self.validate(draft)
        return try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                INSERT INTO registry.facilities (code, name, level, primary_kind, division, active, supervisor)
                VALUES (\(facility.code), \(facility.name), \(facility.level.rawValue), \(facility.primaryKind?.rawValue),
                        \(facility.division), \(facility.active),
                        (SELECT code FROM registry.facilities WHERE code = \(facility.supervisor)))
                ON CONFLICT (code) DO NOTHING RETURNING code, supervisor
                """, logger: logger
            ).collect()
            guard let row = rows.first else { throw RegistryError.duplicate("facility \(facility.code)") }
            let (_, supervisor) = try row.decode((String, String?).self)
            if facility.supervisor != nil, supervisor == nil {
                throw RegistryError.invalid(field: "supervisor", reason: "\(facility.supervisor!.prefix(32)) is not a registered facility")
            }
            try await AuditTrail.append(
                AuditEvent(
                    principal: principal, action: "facility.create", resource: "facility/\(facility.code)", purpose: "administration",
                    requestID: requestID),
                on: connection, logger: logger)
            return facility
        }
    }

    public func update(code: String, with patch: FacilityPatch, by principal: Principal, requestID: String? = nil) async throws -> Facility
    {
        try principal.require(.admin, action: "update facilities")
        return try await client.transaction(logger: logger) { connection in
            let current = try await Self.fetch(code: code, on: connection, logger: logger, forUpdate: true)
            var draft = FacilityDraft(
                code: current.code, name: patch.name ?? current.name,
                level: patch.level ?? current.primaryKind?.rawValue ?? current.level.rawValue,
                primaryKind: patch.primaryKind, division: patch.division ?? current.division,
                active: patch.active ?? current.active,
                supervisor: patch.supervisor.map { $0.isEmpty ? nil : $0 } ?? current.supervisor)
            if patch.level != nil, patch.primaryKind == nil { draft.primaryKind = nil }
            let updated = try Self.validate(draft)
            if let supervisor = updated.supervisor, supervisor != current.supervisor {
                let found = try await connection.query(
                    "SELECT 1 FROM registry.facilities WHERE code = \(supervisor)", logger: logger
                ).collect()
                guard !found.isEmpty else {
                    throw RegistryError.invalid(field: "supervisor", reason: "\(supervisor.prefix(32)) is not a registered facility")
                }
            }
            try await connection.query(
                """
                UPDATE registry.facilities SET name = \(updated.name), level = \(updated.level.rawValue),
                    primary_kind = \(updated.primaryKind?.rawValue), division = \(updated.division),
                    active = \(updated.active), supervisor = \(updated.supervisor), updated_at = now()
                WHERE code = \(code)
                """, logger: logger)
            try await AuditTrail.append(
                AuditEvent(
                    principal: principal, action: "facility.update", resource: "facility/\(code)", purpose: "administration",
                    requestID: requestID),
                on: connection, logger: logger)
            return updated
        }
    }

    public func get(code: String, by principal: Principal) async throws -> Facility {
        try principal.require(scope: "facilities.read")
        return try await client.withConnection { connection in
            try await Self.fetch(code: code, on: connection, logger: logger, forUpdate: false)
        }
    }

    public func list(_ filter: FacilityFilter, page: PageRequest, by principal: Principal) async throws -> Page<Facility> {
        try principal.require(scope: "facilities.read")
        if let prefix = filter.division, !prefix.allSatisfy(\.isASCIIDigit) || prefix.isEmpty || prefix.count > 6 {
            throw RegistryError.invalid(field: "division", reason: "must be a division code prefix of 1 to 6 digits")
        }
        let divisionPattern = filter.division.map { $0 + "%" }
        let rows = try await client.query(
            """
            SELECT code, name, level, primary_kind, division, active, supervisor FROM registry.facilities
            WHERE (\(page.after)::text IS NULL OR code > \(page.after))
              AND (\(divisionPattern)::text IS NULL OR division LIKE \(divisionPattern))
              AND (\(filter.level?.rawValue)::text IS NULL OR level = \(filter.level?.rawValue))
              AND (\(filter.active)::boolean IS NULL OR active = \(filter.active))
            ORDER BY code LIMIT \(page.limit + 1)
            """, logger: logger)
        var facilities: [Facility] = []
        for try await row in rows { facilities.append(try Self.facility(from: row)) }
        return Page(rows: facilities, limit: page.limit, key: \.code)
    }

    static func fetch(code: String, on connection: PostgresConnection, logger: Logger, forUpdate: Bool) async throws -> Facility {
        let lock = forUpdate ? " FOR UPDATE" : ""
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: "SELECT code, name, level, primary_kind, division, active, supervisor FROM registry.facilities WHERE code = $1"
                    + lock,
                binds: {
                    var binds = PostgresBindings()
                    binds.append(code)
                    return binds
                }()),
            logger: logger
        ).collect()
        guard let row = rows.first else { throw RegistryError.notFound("facility \(code)") }
        return try facility(from: row)
    }

    static func facility(from row: PostgresRow) throws -> Facility {
        let (code, name, level, kind, division, active, supervisor) = try row.decode(
            (String, String, String, String?, String, Bool, String?).self)
        return Facility(
            code: code, name: name, level: Facility.Level(rawValue: level) ?? .primary,
            primaryKind: kind.flatMap(Facility.PrimaryKind.init(rawValue:)), division: division, active: active, supervisor: supervisor)
    }

    /// GB/T 2260 province-level prefixes (mainland, Hong Kong, Macao, Taiwan).
    static let provinces: Set<String> = [
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43",
        "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
    ]

    /// Checks a draft field by field; the first problem is named with its field.
    public static func validate(_ draft: FacilityDraft) throws(RegistryError) -> Facility {
        let code = draft.code.trimmingCharacters(in: .whitespaces)
        guard code.count >= 2, code.count <= 32,
            code.unicodeScalars.allSatisfy({ $0.isASCIIAlphanumeric || $0 == "-" || $0 == "_" }),
            code.unicodeScalars.first!.isASCIIAlphanumeric
        else {
            throw .invalid(field: "code", reason: "must be 2 to 32 letters, digits, '-' or '_'")
        }
        let name = draft.name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty, name.count <= 200 else { throw .invalid(field: "name", reason: "must be 1 to 200 characters") }
        var level: Facility.Level
        var kind: Facility.PrimaryKind?
        if let grade = Facility.Level(rawValue: draft.level) {
            level = grade
        } else if let primaryKind = Facility.PrimaryKind(rawValue: draft.level) {
            level = .primary
            kind = primaryKind
        } else {
            throw .invalid(field: "level", reason: "must be tertiary, secondary, primary, township, community or village")
        }
        if let text = draft.primaryKind {
            guard let given = Facility.PrimaryKind(rawValue: text) else {
                throw .invalid(field: "primaryKind", reason: "must be township, community or village")
            }
            guard level == .primary, kind == nil || kind == given else {
                throw .invalid(field: "primaryKind", reason: "applies to primary-level facilities only")
            }
            kind = given
        }
        let division = draft.division
        guard division.count == 6, division.allSatisfy(\.isASCIIDigit) else {
            throw .invalid(field: "division", reason: "must be a six-digit GB/T 2260 code such as 520102")
        }
        guard provinces.contains(String(division.prefix(2))) else {
            throw .invalid(field: "division", reason: "\(division.prefix(2)) is not a GB/T 2260 province code")
        }
        if let supervisor = draft.supervisor, supervisor == code {
            throw .invalid(field: "supervisor", reason: "a facility cannot supervise itself")
        }
        return Facility(
            code: code, name: name, level: level, primaryKind: kind, division: division, active: draft.active ?? true,
            supervisor: draft.supervisor)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension Unicode.Scalar {
    var isASCIIAlphanumeric: Bool { isASCII && (properties.isAlphabetic || ("0"..."9").contains(self)) }
}
