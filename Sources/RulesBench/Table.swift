import Foundation

/// A plain-text table: the first column left-aligned, the others right-aligned.
struct TextTable {
    var headers: [String]
    var rows: [[String]] = []
    var leftAligned = 1

    init(_ headers: [String], leftAligned: Int = 1) {
        self.headers = headers
        self.leftAligned = leftAligned
    }

    mutating func add(_ row: [String]) { rows.append(row) }

    mutating func rule() { rows.append([]) }

    func render(indent: String = "  ") -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (column, cell) in row.enumerated() where column < widths.count { widths[column] = max(widths[column], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            let padded = cells.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return column < leftAligned ? cell + padding : padding + cell
            }
            return indent + padded.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        let separator = indent + widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        var lines = [line(headers), separator]
        for row in rows { lines.append(row.isEmpty ? separator : line(row)) }
        return lines.joined(separator: "\n")
    }
}

/// 1234567 → "1,234,567".
func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (offset, character) in digits.enumerated() {
        if offset > 0 && (digits.count - offset) % 3 == 0 { out.append(",") }
        out.append(character)
    }
    return value < 0 ? "-" + out : out
}

/// A rate with a sensible number of digits: 1,234 / 12.3 / 1.23 / 0.012.
func rate(_ value: Double) -> String {
    if value >= 1000 { return grouped(Int(value.rounded())) }
    if value >= 100 { return String(format: "%.0f", value) }
    if value >= 10 { return String(format: "%.1f", value) }
    if value >= 1 { return String(format: "%.2f", value) }
    if value == 0 { return "0" }
    return String(format: "%.3f", value)
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
