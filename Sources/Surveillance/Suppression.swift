/// Small-cell suppression for a table of counts and its totals, pure.
///
/// A table grouped by k dimensions is published with its one-dimensional totals (row and column
/// totals for two) and its grand total. Every count from 1 to `threshold − 1` is hidden (primary
/// suppression), in the table and in its totals. Then, because each total is the sum of the
/// entries it covers, an equation with exactly one hidden term would give that term away: for
/// every such equation a further term is hidden (complementary suppression), the smallest
/// visible one, preferring table cells over totals, until no equation has exactly one hidden
/// term. The equations are those of the whole lattice of partial totals (for k ≥ 3 the
/// intermediate totals are not published but are protected as if they were, since another query
/// can ask for them). Zero cells are absent and known to be zero; they protect nothing.
public struct SuppressedTable: Sendable {
    public let dimensions: Int
    /// The cells' keys as given, one value per dimension.
    public let keys: [[String]]
    public let counts: [Int]
    public let hidden: [Bool]
    /// Per dimension: each value's total and whether it is hidden.
    public let margins: [[(value: String, count: Int, hidden: Bool)]]
    public let total: Int
    public let totalHidden: Bool
}

public enum Suppression {
    /// At most this many dimensions: the lattice of totals has 2^k tables.
    public static let maximumDimensions = 5

    public static func apply(keys: [[String]], counts: [Int], dimensions k: Int, threshold: Int) -> SuppressedTable {
        precondition(k <= maximumDimensions && keys.count == counts.count)
        // Intern each dimension's values; slot n_d of dimension d stands for "all values".
        var ids = [[String: Int]](repeating: [:], count: k)
        var values = [[String]](repeating: [], count: k)
        var coded = [[Int]](repeating: [], count: keys.count)
        for (row, key) in keys.enumerated() {
            coded[row] = (0..<k).map { d in
                if let id = ids[d][key[d]] { return id }
                let id = values[d].count
                ids[d][key[d]] = id
                values[d].append(key[d])
                return id
            }
        }
        var radix = [Int](repeating: 1, count: k)
        var weight = [Int](repeating: 1, count: k)
        for d in 0..<k {
            radix[d] = values[d].count + 1
            if d > 0 { weight[d] = weight[d - 1] * radix[d - 1] }
        }
        let all = (1 << k) - 1
        // Every entry of every partial total: its code, mask of the dimensions it keeps, count.
        var index: [Int: Int] = [:]
        var entryCode: [Int] = []
        var entryMask: [Int] = []
        var entryCount: [Int] = []
        index.reserveCapacity(keys.count * 2)
        var cellEntry = [Int](repeating: 0, count: keys.count)
        for (row, slots) in coded.enumerated() {
            for mask in stride(from: all, through: 0, by: -1) {
                var code = 0
                for d in 0..<k { code += (mask & (1 << d) != 0 ? slots[d] : radix[d] - 1) * weight[d] }
                if let at = index[code] {
                    entryCount[at] += counts[row]
                    if mask == all { cellEntry[row] = at }
                } else {
                    index[code] = entryCode.count
                    if mask == all { cellEntry[row] = entryCode.count }
                    entryCode.append(code)
                    entryMask.append(mask)
                    entryCount.append(counts[row])
                }
            }
        }
        let n = entryCode.count
        var hidden = entryCount.map { $0 > 0 && $0 < threshold }
        // Equation (parent, d): the parent's total over dimension d's values = the children's sum.
        func slot(_ code: Int, _ d: Int) -> Int { (code / weight[d]) % radix[d] }
        var children: [Int: [Int]] = [:]
        for entry in 0..<n {
            for d in 0..<k where entryMask[entry] & (1 << d) != 0 {
                let code = entryCode[entry]
                let parent = index[code + (radix[d] - 1 - slot(code, d)) * weight[d]]!
                children[parent * k + d, default: []].append(entry)
            }
        }
        var queue = Array(children.keys)
        var queued = Set(queue)
        while let equation = queue.popLast() {
            queued.remove(equation)
            let parent = equation / k
            let members = children[equation]!
            var hiddenTerms = hidden[parent] ? 1 : 0
            for member in members where hidden[member] { hiddenTerms += 1 }
            guard hiddenTerms == 1 else { continue }
            var pick: Int?
            for member in members where !hidden[member] && entryCount[member] > 0 {
                if pick == nil || entryCount[member] < entryCount[pick!] { pick = member }
            }
            if pick == nil, !hidden[parent] { pick = parent }
            guard let chosen = pick else { continue }
            hidden[chosen] = true
            // Every equation the newly hidden term is in may now need another.
            var touched: [Int] = []
            for d in 0..<k {
                if entryMask[chosen] & (1 << d) != 0 {
                    let code = entryCode[chosen]
                    touched.append(index[code + (radix[d] - 1 - slot(code, d)) * weight[d]]! * k + d)
                } else if children[chosen * k + d] != nil {
                    touched.append(chosen * k + d)
                }
            }
            for next in touched where !queued.contains(next) {
                queued.insert(next)
                queue.append(next)
            }
        }
        var margins: [[(value: String, count: Int, hidden: Bool)]] = []
        for d in 0..<k {
            margins.append(
                values[d].indices.map { id in
                    var code = 0
                    for other in 0..<k { code += (other == d ? id : radix[other] - 1) * weight[other] }
                    let at = index[code]!
                    return (values[d][id], entryCount[at], hidden[at])
                })
        }
        let grand = keys.isEmpty ? nil : index[(0..<k).reduce(0) { $0 + (radix[$1] - 1) * weight[$1] }]
        return SuppressedTable(
            dimensions: k, keys: keys, counts: counts, hidden: cellEntry.indices.map { keys.isEmpty ? false : hidden[cellEntry[$0]] },
            margins: margins, total: grand.map { entryCount[$0] } ?? 0, totalHidden: grand.map { hidden[$0] } ?? false)
    }
}
