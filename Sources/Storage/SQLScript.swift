/// Splits a SQL script into single statements.
///
/// PostgresNIO speaks only the extended protocol, which runs one statement per query, so a
/// migration file is cut at top-level semicolons. The scanner knows the PostgreSQL lexemes that
/// may contain a semicolon: quoted strings (with `''`), quoted identifiers, dollar-quoted bodies
/// (`$$ … $$`, `$fn$ … $fn$`), line comments and nested block comments.
public enum SQLScript {
    public static func statements(in script: String) -> [String] {
        let chars = Array(script.unicodeScalars)
        var statements: [String] = []
        var current = String.UnicodeScalarView()
        var index = 0
        var hasContent = false

        func flush() {
            let text = String(current).trimmingWhitespace()
            if hasContent, !text.isEmpty { statements.append(text) }
            current = String.UnicodeScalarView()
            hasContent = false
        }

        while index < chars.count {
            let c = chars[index]
            let next: Unicode.Scalar? = index + 1 < chars.count ? chars[index + 1] : nil
            switch c {
            case "-" where next == "-":
                // Line comment: dropped so a comment-only tail is not sent as a statement.
                while index < chars.count, chars[index] != "\n" { index += 1 }
                continue
            case "/" where next == "*":
                var depth = 0
                while index < chars.count {
                    if chars[index] == "/", index + 1 < chars.count, chars[index + 1] == "*" {
                        depth += 1
                        index += 2
                    } else if chars[index] == "*", index + 1 < chars.count, chars[index + 1] == "/" {
                        depth -= 1
                        index += 2
                        if depth == 0 { break }
                    } else {
                        index += 1
                    }
                }
                current.append(" ")
                continue
            case "'", "\"":
                let quote = c
                current.append(c)
                index += 1
                while index < chars.count {
                    current.append(chars[index])
                    if chars[index] == quote {
                        if index + 1 < chars.count, chars[index + 1] == quote {
                            current.append(chars[index + 1])
                            index += 2
                            continue
                        }
                        index += 1
                        break
                    }
                    index += 1
                }
                hasContent = true
                continue
            case "$":
                if let tagEnd = dollarTagEnd(chars, from: index) {
                    let tag = Array(chars[index...tagEnd])
                    current.unicodeScalars(append: tag)
                    index = tagEnd + 1
                    while index < chars.count {
                        if chars[index] == "$", index + tag.count <= chars.count,
                            Array(chars[index..<index + tag.count]) == tag
                        {
                            current.unicodeScalars(append: tag)
                            index += tag.count
                            break
                        }
                        current.append(chars[index])
                        index += 1
                    }
                    hasContent = true
                    continue
                }
            case ";":
                flush()
                index += 1
                continue
            default:
                break
            }
            current.append(c)
            if !c.properties.isWhitespace { hasContent = true }
            index += 1
        }
        flush()
        return statements
    }

    /// `$tag$` starts a dollar quote when the tag is empty or an identifier; `$1` is a parameter.
    private static func dollarTagEnd(_ chars: [Unicode.Scalar], from start: Int) -> Int? {
        var index = start + 1
        while index < chars.count {
            let c = chars[index]
            if c == "$" { return index }
            let isIdentifier = c == "_" || c.properties.isAlphabetic || (index > start + 1 && ("0"..."9").contains(c))
            if !isIdentifier { return nil }
            index += 1
        }
        return nil
    }
}

extension String.UnicodeScalarView {
    fileprivate mutating func unicodeScalars(append scalars: [Unicode.Scalar]) {
        for scalar in scalars { append(scalar) }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self).unicodeScalars
        while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
