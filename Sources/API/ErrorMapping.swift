import Access
import ChronicCare
import Consultation
import Foundation
import HTTPTypes
import Hummingbird
import Interop
import Records
import Scheduling
import Registry
import Surveillance
import Storage

/// The one place where module errors become HTTP problems.
extension Problem {
    static func from(_ error: any Error) -> Problem {
        switch error {
        case let problem as Problem:
            return problem
        case let error as AccessError:
            return from(error)
        case let error as RegistryError:
            switch error {
            case .invalid(let field, let reason):
                var problem = Problem(.unprocessableContent, code: "validation", title: "Invalid field", detail: "\(field): \(reason)")
                problem.fieldErrors = [FieldError(field: field, reason: reason)]
                return problem
            case .identityNumber(let problems):
                var problem = Problem(
                    .unprocessableContent, code: "invalid-identity-number", title: "Invalid identity number", detail: error.description)
                problem.fieldErrors = problems.map { FieldError(field: "document.number", reason: $0.message) }
                problem.structured["problems"] = .array(
                    problems.map { .object(["code": .string($0.code.rawValue), "message": .string($0.message)]) })
                return problem
            case .conflict(let code, let detail):
                let status: HTTPResponse.Status = code == "card-unknown" ? .notFound : .conflict
                return Problem(status, code: code, title: Self.conflictTitles[code] ?? "Conflict", detail: detail)
            case .duplicate:
                return Problem(.conflict, code: "conflict", title: "Already exists", detail: error.description)
            case .notFound:
                return Problem(.notFound, code: "not-found", title: "Not found", detail: error.description)
            }
        case let error as RecordsError:
            return from(error)
        case let error as ChronicCareError:
            return from(error)
        case let error as SchedulingError:
            return from(error)
        case let error as ConsultationError:
            return from(error)
        case let error as SurveillanceError:
            return from(error)
        case let error as InboxError:
            switch error {
            case .invalid(let field, let reason):
                var problem = Problem(.badRequest, code: "bad-query", title: "Invalid query parameter", detail: error.description)
                problem.fieldErrors = [FieldError(field: field, reason: reason)]
                return problem
            case .notFound:
                return Problem(.notFound, code: "not-found", title: "Not found", detail: error.description)
            }
        case let error as PageError:
            let field = if case .badLimit = error { "limit" } else { "cursor" }
            var problem = Problem(.badRequest, code: "bad-query", title: "Invalid query parameter", detail: error.description)
            problem.fieldErrors = [FieldError(field: field, reason: error.description)]
            return problem
        case let error as HTTPError:
            switch error.status {
            case .notFound:
                return Problem(.notFound, code: "not-found", title: "Not found", detail: "no such resource")
            case .contentTooLarge:
                return Problem(
                    .contentTooLarge, code: "body-too-large", title: "Request body too large",
                    detail: "the request body exceeds the size limit")
            case .methodNotAllowed:
                return Problem(
                    .methodNotAllowed, code: "method-not-allowed", title: "Method not allowed",
                    detail: "this resource does not support the method")
            case .unsupportedMediaType:
                return Problem(
                    .unsupportedMediaType, code: "unsupported-media-type", title: "Unsupported media type",
                    detail: error.body ?? "unsupported content type")
            default:
                return Problem(
                    error.status, code: "http-\(error.status.code)", title: error.status.reasonPhrase, detail: error.status.reasonPhrase)
            }
        default:
            return Problem(
                .internalServerError, code: "internal", title: "Internal error",
                detail: "the server failed; quote the request id when reporting it")
        }
    }

    static let conflictTitles = [
        "card-unknown": "Unknown card", "card-lost": "Card reported lost", "card-revoked": "Card revoked",
        "card-replaced": "Card replaced", "card-not-active": "Card not activated", "resident-deceased": "Resident deceased",
        "card-already-active": "Resident already has an active card", "card-transition": "Card status change not allowed",
        "resident-merged": "Resident merged", "identifier-taken": "Identifier belongs to another resident",
        "not-merged": "Resident not merged", "review-resolved": "Review already resolved",
        "identity-number-conflict": "Identity number registered to another resident",
    ]

    static func from(_ error: AccessError) -> Problem {
        switch error {
        case .unauthenticated(let reason):
            var problem = Problem(.unauthorized, code: "unauthenticated", title: "Authentication required", detail: reason)
            problem.headers[.wwwAuthenticate] = "Bearer realm=\"qianyun\", error=\"invalid_token\""
            return problem
        case .invalidClient:
            var problem = Problem(.unauthorized, code: "invalid-client", title: "Client authentication failed", detail: error.description)
            problem.headers[.wwwAuthenticate] = "Basic realm=\"qianyun\""
            problem.extensions = ["error": "invalid_client", "error_description": error.description]
            return problem
        case .forbidden(let reason):
            return Problem(.forbidden, code: "forbidden", title: "Not allowed", detail: reason)
        case .locked(let seconds):
            var problem = Problem(.tooManyRequests, code: "too-many-failures", title: "Too many failed attempts", detail: error.description)
            problem.headers[.retryAfter] = String(seconds)
            problem.extensions = ["error": "invalid_client", "error_description": error.description]
            return problem
        case .invalidScope:
            var problem = Problem(.badRequest, code: "invalid-scope", title: "Scope not granted", detail: error.description)
            problem.extensions = ["error": "invalid_scope", "error_description": error.description]
            return problem
        case .invalidRegistration(let reason):
            return Problem(.unprocessableContent, code: "invalid-client-registration", title: "Invalid client registration", detail: reason)
        }
    }

    static func invalidBody(_ error: DecodingError) -> Problem {
        let (path, reason): ([any CodingKey], String) =
            switch error {
            case .keyNotFound(let key, let context): (context.codingPath + [key], "is required")
            case .typeMismatch(let type, let context): (context.codingPath, "must be \(Self.jsonTypeName(type))")
            case .valueNotFound(let type, let context): (context.codingPath, "must be \(Self.jsonTypeName(type)), not null")
            case .dataCorrupted(let context):
                (context.codingPath, context.codingPath.isEmpty ? "body is not valid JSON" : "has an invalid value")
            @unknown default: ([], "body could not be read")
            }
        let field = path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        var problem = Problem(
            .badRequest, code: "invalid-body", title: "Malformed request body",
            detail: field.isEmpty ? reason : "\(field) \(reason)")
        if !field.isEmpty { problem.fieldErrors = [FieldError(field: field, reason: reason)] }
        return problem
    }

    private static func jsonTypeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Int.Type, is Double.Type: "a number"
        default: "of another type"
        }
    }
}

extension Problem {
    /// 422 for one field a module refused.
    static func invalidField(_ field: String, _ reason: String, detail: String) -> Problem {
        var problem = Problem(.unprocessableContent, code: "validation", title: "Invalid field", detail: detail)
        problem.fieldErrors = [FieldError(field: field, reason: reason)]
        return problem
    }

    static func from(_ error: ChronicCareError) -> Problem {
        switch error {
        case .invalid(let field, let reason):
            return .invalidField(field, reason, detail: error.description)
        case .notFound:
            return Problem(.notFound, code: "not-found", title: "Not found", detail: error.description)
        case .conflict(let code, _):
            return Problem(.conflict, code: code, title: "Conflicts with the current state", detail: error.description)
        case .ruleSet:
            return Problem(.unprocessableContent, code: "invalid-rule-set", title: "The rule set does not load", detail: error.description)
        }
    }

    static func from(_ error: SchedulingError) -> Problem {
        switch error {
        case .invalid(let field, let reason):
            return .invalidField(field, reason, detail: error.description)
        case .notFound:
            return Problem(.notFound, code: "not-found", title: "Not found", detail: error.description)
        case .refused(let code, _, let retryAt):
            var problem = Problem(.conflict, code: code, title: "Refused by a booking rule", detail: error.description)
            if let retryAt {
                problem.extensions["retryAt"] = retryAt.formatted(.iso8601)
                let seconds = Int(retryAt.timeIntervalSinceNow.rounded(.up))
                if seconds > 0 { problem.headers[.retryAfter] = String(seconds) }
            }
            return problem
        case .rateLimited(let scope, let seconds):
            var problem = Problem(.tooManyRequests, code: "rate-limited", title: "Too many booking attempts", detail: error.description)
            problem.headers[.retryAfter] = String(seconds)
            problem.extensions["limit"] = scope
            return problem
        }
    }

    static func from(_ error: SurveillanceError) -> Problem {
        switch error {
        case .invalid(let field, let reason):
            return .invalidField(field, reason, detail: error.description)
        case .notFound:
            return Problem(.notFound, code: "not-found", title: "Not found", detail: error.description)
        case .restricted(let field, let reason):
            var problem = Problem(.forbidden, code: "restricted-field", title: "Field not exportable", detail: error.description)
            problem.fieldErrors = [FieldError(field: field, reason: reason)]
            return problem
        case .conflict(let code, _):
            return Problem(.conflict, code: code, title: "Conflict", detail: error.description)
        case .definitions:
            return Problem(.internalServerError, code: "configuration", title: "Case definitions unavailable", detail: error.description)
        }
    }

    static func from(_ error: ConsultationError) -> Problem {
        switch error {
        case .invalid(let field, let reason):
            return .invalidField(field, reason, detail: error.description)
        case .notFound:
            return Problem(.notFound, code: "not-found", title: "Not found", detail: error.description)
        case .queueEmpty:
            return Problem(.notFound, code: "queue-empty", title: "No consultation waiting", detail: error.description)
        case .conflict(let code, _):
            return Problem(.conflict, code: code, title: "Conflicts with the current state", detail: error.description)
        case .forbidden(let code, _):
            return Problem(.forbidden, code: code, title: "Not allowed", detail: error.description)
        }
    }

    static func from(_ error: RecordsError) -> Problem {
        switch error {
        case .invalid(let field, let reason):
            return .invalidField(field, reason, detail: error.description)
        case .unreadable(let xml):
            if case .tooLarge = xml {
                return Problem(.contentTooLarge, code: "body-too-large", title: "Document too large", detail: error.description)
            }
            if case .documentTypeDeclaration = xml {
                return Problem(
                    .badRequest, code: "xml-doctype-refused", title: "Document type declaration refused", detail: error.description)
            }
            return Problem(.badRequest, code: "xml-unreadable", title: "Not well-formed XML", detail: error.description)
        case .notCDA:
            return Problem(.unprocessableContent, code: "not-cda", title: "Not a CDA document", detail: error.description)
        case .schema(let findings):
            var problem = Problem(
                .unprocessableContent, code: "schema-invalid", title: "Fails the CDA R2 schema", detail: error.description)
            problem.structured["findings"] = .array(
                findings.prefix(50).map {
                    .object(["line": .int($0.line), "severity": .string($0.severity.rawValue), "message": .string($0.message)])
                })
            return problem
        case .notFound:
            return Problem(.notFound, code: "not-found", title: "Not found", detail: error.description)
        case .conflict:
            return Problem(.conflict, code: "document-id-conflict", title: "Document id already used", detail: error.description)
        }
    }
}
