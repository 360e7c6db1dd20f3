import Surveillance
import Testing

/// Small-cell suppression: every small count hidden, and no hidden count recoverable from the
/// visible cells and the published totals by an attacker who solves the totals' equations.
@Suite struct SuppressionTests {
    /// What an attacker learns from a published table: repeatedly, an equation (a total = the sum
    /// of what it covers) with exactly one unknown term gives that term. `values` and the totals
    /// are nil where hidden. Returns the positions of hidden cells recovered.
    static func attack(keys: [[String]], values: [Int?], margins: [[String: Int?]], total: Int?) -> Set<Int> {
        let k = margins.count
        var known: [Int: Int] = [:]
        for (index, value) in values.enumerated() { if let value { known[index] = value } }
        var marginKnown: [[String: Int]] = margins.map { $0.compactMapValues { $0 } }
        var totalKnown = total
        var recovered = Set<Int>()
        var progress = true
        while progress {
            progress = false
            for d in 0..<k {
                // A value's total covers the cells with that value in dimension d (a row or a column).
                var groups: [String: [Int]] = [:]
                for (index, key) in keys.enumerated() { groups[key[d], default: []].append(index) }
                for (value, members) in groups {
                    let unknown = members.filter { known[$0] == nil }
                    if let sum = marginKnown[d][value], unknown.count == 1 {
                        known[unknown[0]] = sum - members.filter { known[$0] != nil }.reduce(0) { $0 + known[$1]! }
                        recovered.insert(unknown[0])
                        progress = true
                    } else if unknown.isEmpty, marginKnown[d][value] == nil {
                        marginKnown[d][value] = members.reduce(0) { $0 + known[$1]! }
                        progress = true
                    }
                }
                // The grand total covers this dimension's totals.
                let names = Array(margins[d].keys)
                let unknownNames = names.filter { marginKnown[d][$0] == nil }
                if let sum = totalKnown, unknownNames.count == 1 {
                    marginKnown[d][unknownNames[0]] = sum - names.compactMap { marginKnown[d][$0] }.reduce(0, +)
                    progress = true
                } else if unknownNames.isEmpty, totalKnown == nil {
                    totalKnown = names.compactMap { marginKnown[d][$0] }.reduce(0, +)
                    progress = true
                }
            }
        }
        return recovered.filter { values[$0] == nil }
    }

    static func attack(_ table: SuppressedTable) -> Set<Int> {
        attack(
            keys: table.keys, values: table.counts.indices.map { table.hidden[$0] ? nil : table.counts[$0] },
            margins: table.margins.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.value, $0.hidden ? nil : $0.count) }) },
            total: table.totalHidden ? nil : table.total)
    }

    @Test func aTwoWayTableHidesSmallCellsAndEnoughOthers() {
        // Rows: diseases; columns: counties. B×Y = 3 alone in its row would follow from the row total.
        let keys = [["A", "X"], ["A", "Y"], ["A", "Z"], ["B", "X"], ["B", "Y"], ["C", "X"], ["C", "Z"]]
        let counts = [20, 12, 30, 40, 3, 9, 8]
        let table = Suppression.apply(keys: keys, counts: counts, dimensions: 2, threshold: 5)
        #expect(table.hidden[4])
        #expect(table.hidden.filter { $0 }.count >= 2)
        for (index, count) in counts.enumerated() where count < 5 { #expect(table.hidden[index]) }
        #expect(Self.attack(table).isEmpty)
        #expect(table.total == counts.reduce(0, +))
        #expect(table.margins[0].first { $0.value == "B" }?.count == 43)
    }

    @Test func aOneWayTableHidesASecondCellWhenTheTotalIsShown() {
        let table = Suppression.apply(keys: [["M"], ["F"], ["U"]], counts: [30, 2, 14], dimensions: 1, threshold: 5)
        #expect(table.hidden == [false, true, true])
        #expect(Self.attack(table).isEmpty)
        #expect(!table.totalHidden)
    }

    @Test func aSmallTotalIsHiddenToo() {
        let table = Suppression.apply(keys: [["X", "a"], ["Y", "a"]], counts: [1, 2], dimensions: 2, threshold: 5)
        #expect(table.hidden == [true, true] && table.totalHidden)
        #expect(table.margins[1][0].hidden)
    }

    @Test func nothingSmallNothingHidden() {
        let table = Suppression.apply(keys: [["X", "a"], ["Y", "b"]], counts: [10, 5], dimensions: 2, threshold: 5)
        #expect(table.hidden == [false, false] && !table.totalHidden)
        let empty = Suppression.apply(keys: [], counts: [], dimensions: 2, threshold: 5)
        #expect(empty.hidden.isEmpty && empty.total == 0)
    }

    /// Random sparse tables of two and three dimensions, small counts common: every small count
    /// hidden, and the attacker recovers nothing.
    @Test(arguments: 0..<40) func randomTablesLeakNothing(seed: Int) {
        var generator = SplitMix(seed: UInt64(seed))
        let k = seed % 2 == 0 ? 2 : 3
        var keys: [[String]] = []
        var counts: [Int] = []
        let sizes = (0..<k).map { _ in Int.random(in: 2...7, using: &generator) }
        func visit(_ prefix: [String]) {
            if prefix.count == k {
                guard Int.random(in: 0..<10, using: &generator) < 7 else { return }
                keys.append(prefix)
                counts.append(
                    Int.random(in: 0..<3, using: &generator) == 0
                        ? Int.random(in: 1...4, using: &generator) : Int.random(in: 1...40, using: &generator))
                return
            }
            for value in 0..<sizes[prefix.count] { visit(prefix + ["v\(value)"]) }
        }
        visit([])
        let table = Suppression.apply(keys: keys, counts: counts, dimensions: k, threshold: 5)
        for (index, count) in counts.enumerated() where count < 5 { #expect(table.hidden[index]) }
        for margin in table.margins.joined() where margin.count < 5 { #expect(margin.hidden) }
        #expect(Self.attack(table).isEmpty, "seed \(seed)")
    }
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
