internal import CLibXML2

/// One thing schema validation found, where it found it.
public struct XMLFinding: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable { case warning, error }
    public var severity: Severity
    public var line: Int
    public var message: String

    public init(severity: Severity, line: Int, message: String) {
        self.severity = severity
        self.line = line
        self.message = message
    }

    public var description: String { "line \(line): \(message)" }
}

public struct XMLSchemaLoadError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var findings: [XMLFinding]
    public var description: String {
        "cannot load the XML schema \(path): " + (findings.prefix(3).map(\.description).joined(separator: "; "))
    }
}

/// A compiled W3C XML schema (the CDA R2 schema, say). Compiled once; validating from several
/// tasks at once is safe, each validation having its own libxml2 context.
public final class XMLSchema: @unchecked Sendable {
    private let pointer: xmlSchemaPtr
    /// Findings kept per document: a document wrong everywhere must not make an unbounded list.
    public static let findingLimit = 200

    /// Compiles the schema at `path`; its `xs:include`/`xs:import` files are read from beside it
    /// (local files only).
    public init(path: String) throws(XMLSchemaLoadError) {
        xmlInitParser()
        qy_silence_generic_errors()
        let collector = FindingCollector()
        guard let parser = xmlSchemaNewParserCtxt(path) else { throw XMLSchemaLoadError(path: path, findings: []) }
        defer { xmlSchemaFreeParserCtxt(parser) }
        xmlSchemaSetParserStructuredErrors(parser, collectFinding, Unmanaged.passUnretained(collector).toOpaque())
        guard let schema = withExtendedLifetime(collector, { xmlSchemaParse(parser) }) else {
            throw XMLSchemaLoadError(path: path, findings: collector.findings)
        }
        pointer = schema
    }

    deinit { xmlSchemaFree(pointer) }

    /// Every finding (up to `findingLimit`), errors and warnings, with line numbers; empty when valid.
    public func validate(_ document: XMLDocument) -> [XMLFinding] {
        guard let context = xmlSchemaNewValidCtxt(pointer) else {
            return [XMLFinding(severity: .error, line: 0, message: "out of memory")]
        }
        defer { xmlSchemaFreeValidCtxt(context) }
        qy_silence_generic_errors()
        let collector = FindingCollector()
        xmlSchemaSetValidStructuredErrors(context, collectFinding, Unmanaged.passUnretained(collector).toOpaque())
        let result = withExtendedLifetime(collector) { xmlSchemaValidateDoc(context, document.pointer) }
        if result != 0, collector.findings.isEmpty {
            collector.findings.append(XMLFinding(severity: .error, line: 0, message: "the document is not valid (code \(result))"))
        }
        return collector.findings
    }
}

private final class FindingCollector {
    var findings: [XMLFinding] = []
    var dropped = 0
}

private let collectFinding: xmlStructuredErrorFunc = { context, error in
    guard let context, let error else { return }
    let collector = Unmanaged<FindingCollector>.fromOpaque(context).takeUnretainedValue()
    guard collector.findings.count < XMLSchema.findingLimit else {
        collector.dropped += 1
        return
    }
    let message = error.pointee.message.map { trimmed(String(cString: $0)) } ?? "invalid"
    let severity: XMLFinding.Severity = error.pointee.level == XML_ERR_WARNING ? .warning : .error
    collector.findings.append(XMLFinding(severity: severity, line: Int(error.pointee.line), message: message))
}
