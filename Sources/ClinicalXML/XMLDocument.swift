// libxml2 behind a Swift-only API. Foundation is never imported here: Debian's libxml2 headers
// pull in the system ICU, which clashes with Foundation's own (see PLATFORM.md).
internal import CLibXML2

/// How much XML a caller may hand us. A parse never reaches out (no network, no external DTD or
/// entity, no XInclude) and refuses any document type declaration, so these bound the rest.
public struct XMLLimits: Sendable, Equatable {
    /// Bytes of one document, checked before parsing.
    public var maximumBytes: Int
    /// Element nesting. libxml2 itself stops at 256 (without `XML_PARSE_HUGE`, never set here).
    public var maximumDepth: Int
    /// Elements in one document.
    public var maximumElements: Int

    public init(maximumBytes: Int = 32 << 20, maximumDepth: Int = 128, maximumElements: Int = 500_000) {
        self.maximumBytes = maximumBytes
        self.maximumDepth = maximumDepth
        self.maximumElements = maximumElements
    }
}

/// Why a document was refused before anything read it.
public enum XMLProblem: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case tooLarge(bytes: Int, limit: Int)
    /// `<!DOCTYPE …>` or an entity declaration: refused, never read (XXE, entity expansion).
    case documentTypeDeclaration(line: Int)
    case notWellFormed(line: Int, column: Int, message: String)
    case tooDeep(line: Int, limit: Int)
    case tooManyElements(limit: Int)
    case invalidXPath(String)

    public var description: String {
        switch self {
        case .empty: "the document is empty"
        case .tooLarge(let bytes, let limit): "the document has \(bytes) bytes; at most \(limit) are accepted"
        case .documentTypeDeclaration(let line):
            "line \(line): a document type declaration (<!DOCTYPE>) or entity declaration is refused; clinical documents need none"
        case .notWellFormed(let line, let column, let message): "line \(line), column \(column): not well-formed XML: \(message)"
        case .tooDeep(let line, let limit): "line \(line): elements nest deeper than \(limit) levels"
        case .tooManyElements(let limit): "the document has more than \(limit) elements"
        case .invalidXPath(let expression): "invalid XPath expression: \(expression)"
        }
    }
}

private let initialised: Bool = {
    xmlInitParser()
    return true
}()

/// A parsed, read-only XML document. Reading from several tasks at once is safe: nothing here
/// changes the tree after the parse.
public final class XMLDocument: @unchecked Sendable {
    let pointer: xmlDocPtr

    private init(pointer: xmlDocPtr) { self.pointer = pointer }

    deinit { xmlFreeDoc(pointer) }

    /// Parses with libxml2 hardened: no network (`XML_PARSE_NONET`), no DTD loading, no entity
    /// substitution, no XInclude, and any document type or entity declaration refused as it is
    /// read. Then checks depth and element count against `limits`.
    public static func parse(_ bytes: [UInt8], limits: XMLLimits = XMLLimits()) throws(XMLProblem) -> XMLDocument {
        _ = initialised
        qy_silence_generic_errors()
        guard !bytes.isEmpty else { throw .empty }
        guard bytes.count <= limits.maximumBytes else { throw .tooLarge(bytes: bytes.count, limit: limits.maximumBytes) }
        guard let parser = qy_hardened_parser() else { throw .notWellFormed(line: 0, column: 0, message: "out of memory") }
        defer { xmlFreeParserCtxt(parser) }
        let options = Int32(
            XML_PARSE_NONET.rawValue | XML_PARSE_BIG_LINES.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue)
        let document = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) { base in
                xmlCtxtReadMemory(parser, base, Int32(buffer.count), nil, nil, options)
            }
        }
        if qy_parser_refused_document_type(parser) != 0 {
            if let document { xmlFreeDoc(document) }
            throw .documentTypeDeclaration(line: Int(parser.pointee.input?.pointee.line ?? 0))
        }
        guard let document, parser.pointee.wellFormed != 0 else {
            if let document { xmlFreeDoc(document) }
            throw Self.problem(parser)
        }
        let parsed = XMLDocument(pointer: document)
        try parsed.check(limits)
        return parsed
    }

    private static func problem(_ parser: xmlParserCtxtPtr) -> XMLProblem {
        guard let error = xmlCtxtGetLastError(parser) else { return .notWellFormed(line: 0, column: 0, message: "not well-formed") }
        let message = error.pointee.message.map { String(cString: $0) } ?? "not well-formed"
        let line = Int(error.pointee.line)
        if error.pointee.code == XML_ERR_INTERNAL_ERROR.rawValue, message.contains("depth") {
            return .tooDeep(line: line, limit: 256)
        }
        return .notWellFormed(line: line, column: Int(error.pointee.int2), message: trimmed(message))
    }

    /// One pass over the tree, iteratively (a recursive walk is what a deep document attacks).
    private func check(_ limits: XMLLimits) throws(XMLProblem) {
        guard let root = xmlDocGetRootElement(pointer) else { throw .notWellFormed(line: 1, column: 1, message: "no root element") }
        var stack: [(xmlNodePtr, Int)] = [(root, 1)]
        var count = 0
        while let (node, depth) = stack.popLast() {
            count += 1
            if count > limits.maximumElements { throw .tooManyElements(limit: limits.maximumElements) }
            if depth > limits.maximumDepth { throw .tooDeep(line: Int(xmlGetLineNo(node)), limit: limits.maximumDepth) }
            var child = node.pointee.children
            while let current = child {
                if current.pointee.type == XML_ELEMENT_NODE { stack.append((current, depth + 1)) }
                child = current.pointee.next
            }
        }
    }

    public var root: XMLElement? { xmlDocGetRootElement(pointer).map { XMLElement(document: self, node: $0) } }

    /// The elements an XPath 1.0 expression selects, with the given prefixes bound to namespaces.
    public func elements(_ expression: String, namespaces: [String: String] = [:]) throws(XMLProblem) -> [XMLElement] {
        try evaluate(expression, namespaces: namespaces) { object in
            guard let set = object.pointee.nodesetval, set.pointee.nodeNr > 0, let table = set.pointee.nodeTab else { return [] }
            return (0..<Int(set.pointee.nodeNr)).compactMap { index in
                guard let node = table[index], node.pointee.type == XML_ELEMENT_NODE else { return nil }
                return XMLElement(document: self, node: node)
            }
        }
    }

    /// The string value of an XPath 1.0 expression (`string(…)` semantics), nil when empty.
    public func string(_ expression: String, namespaces: [String: String] = [:]) throws(XMLProblem) -> String? {
        try evaluate("string(\(expression))", namespaces: namespaces) { object in
            guard let value = object.pointee.stringval else { return nil }
            let text = String(cString: value)
            return text.isEmpty ? nil : text
        }
    }

    private func evaluate<T>(
        _ expression: String, namespaces: [String: String], _ read: (xmlXPathObjectPtr) -> T
    ) throws(XMLProblem) -> T {
        guard let context = xmlXPathNewContext(pointer) else { throw .invalidXPath(expression) }
        defer { xmlXPathFreeContext(context) }
        // Errors go to this no-op rather than libxml2's default of printing to standard error.
        context.pointee.error = { _, _ in }
        for (prefix, uri) in namespaces { _ = xmlXPathRegisterNs(context, prefix, uri) }
        guard let object = xmlXPathEvalExpression(expression, context) else { throw .invalidXPath(expression) }
        defer { xmlXPathFreeObject(object) }
        return read(object)
    }
}

/// An element of a parsed document; it keeps its document alive.
public struct XMLElement: @unchecked Sendable {
    public let document: XMLDocument
    let node: xmlNodePtr

    /// The local name (`ClinicalDocument`, not `v3:ClinicalDocument`).
    public var name: String { String(cString: node.pointee.name) }
    public var namespace: String? { node.pointee.ns?.pointee.href.map { String(cString: $0) } }
    public var line: Int { Int(xmlGetLineNo(node)) }

    /// An attribute without a namespace (CDA's `code`, `root`, `value`…).
    public func attribute(_ name: String) -> String? { owned(xmlGetNoNsProp(node, name)) }

    /// An attribute in a namespace (`xsi:type`).
    public func attribute(_ name: String, namespace: String) -> String? { owned(xmlGetNsProp(node, name, namespace)) }

    /// The concatenated text of the element and its descendants.
    public var text: String { owned(xmlNodeGetContent(node)) ?? "" }

    /// Child elements, in order; only those with the given local name when one is given, and in
    /// the element's own namespace unless another is named.
    public func children(_ name: String? = nil, namespace: String? = nil) -> [XMLElement] {
        let wantedNamespace = namespace ?? self.namespace
        var result: [XMLElement] = []
        var child = node.pointee.children
        while let current = child {
            defer { child = current.pointee.next }
            guard current.pointee.type == XML_ELEMENT_NODE else { continue }
            let element = XMLElement(document: document, node: current)
            if let name, element.name != name || element.namespace != wantedNamespace { continue }
            result.append(element)
        }
        return result
    }

    /// The first child with this local name.
    public func child(_ name: String) -> XMLElement? {
        var child = node.pointee.children
        while let current = child {
            if current.pointee.type == XML_ELEMENT_NODE, String(cString: current.pointee.name) == name,
                current.pointee.ns?.pointee.href.map({ String(cString: $0) }) == namespace
            {
                return XMLElement(document: document, node: current)
            }
            child = current.pointee.next
        }
        return nil
    }

    /// Follows first children by name: `element.path("patientRole", "patient", "name")`.
    public func path(_ names: String...) -> XMLElement? {
        var current: XMLElement? = self
        for name in names { current = current?.child(name) }
        return current
    }

    /// Descendant elements with this local name, in document order.
    public func descendants(_ name: String) -> [XMLElement] {
        var result: [XMLElement] = []
        var stack: [xmlNodePtr] = []
        var child = node.pointee.children
        while let current = child {
            stack.append(current)
            child = current.pointee.next
        }
        stack.reverse()
        while let current = stack.popLast() {
            guard current.pointee.type == XML_ELEMENT_NODE else { continue }
            if String(cString: current.pointee.name) == name { result.append(XMLElement(document: document, node: current)) }
            var children: [xmlNodePtr] = []
            var next = current.pointee.children
            while let item = next {
                children.append(item)
                next = item.pointee.next
            }
            stack.append(contentsOf: children.reversed())
        }
        return result
    }
}

/// Takes a string libxml2 allocated, and frees it.
private func owned(_ pointer: UnsafeMutablePointer<xmlChar>?) -> String? {
    guard let pointer else { return nil }
    defer { qy_xml_free(pointer) }
    return String(cString: pointer)
}

func trimmed(_ message: String) -> String {
    var text = Substring(message)
    while let last = text.last, last == "\n" || last == " " { text.removeLast() }
    return String(text)
}
