/// Helpers for fuzzing the parser from tests or a command-line fuzzer.
public enum HL7Fuzzing {
    /// What one input did.
    public enum Outcome: Sendable, Hashable {
        /// Parsed; `roundTrips` says whether serialising and parsing again gave the same bytes.
        case parsed(roundTrips: Bool)
        case rejected(HL7Error.Code)
    }

    /// A small deterministic generator (SplitMix64) so a seed reproduces a run.
    public struct SeededGenerator: RandomNumberGenerator, Sendable {
        var state: UInt64
        public init(seed: UInt64) { state = seed }
        public mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var value = state
            value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
            value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
            return value ^ (value >> 31)
        }
    }

    static let interesting: [UInt8] = Array("|^~\\&\r\n#MSH0 ".utf8) + [0x00, 0x0B, 0x1C, 0x80, 0xC3, 0xE4, 0xFE, 0xFF, 0x81, 0x30]

    /// One random mutation: byte flip, insertion, deletion, delimiter swap, duplication of a run,
    /// or truncation. The result is at most 64 bytes longer than the input.
    public static func mutate(_ bytes: [UInt8], using generator: inout some RandomNumberGenerator) -> [UInt8] {
        var out = bytes
        let choice = Int.random(in: 0..<6, using: &generator)
        func position(inclusiveEnd: Bool = false) -> Int {
            let upper = out.count + (inclusiveEnd ? 1 : 0)
            return upper == 0 ? 0 : Int.random(in: 0..<upper, using: &generator)
        }
        func pick() -> UInt8 {
            Bool.random(using: &generator) ? interesting.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator)
        }
        switch choice {
        case 0 where !out.isEmpty:
            out[position()] = pick()
        case 1:
            out.insert(pick(), at: position(inclusiveEnd: true))
        case 2 where !out.isEmpty:
            let start = position()
            let length = Int.random(in: 1...min(16, out.count - start), using: &generator)
            out.removeSubrange(start..<(start + length))
        case 3:
            // Swap one delimiter for another everywhere after a point.
            let delimiters = Array("|^~\\&".utf8)
            let from = delimiters.randomElement(using: &generator)!
            let to = delimiters.randomElement(using: &generator)!
            for index in position()..<out.count where out[index] == from { out[index] = to }
        case 4 where !out.isEmpty:
            let start = position()
            let length = Int.random(in: 1...min(64, out.count - start), using: &generator)
            out.insert(contentsOf: out[start..<(start + length)], at: position(inclusiveEnd: true))
        default:
            out.removeSubrange(position(inclusiveEnd: true)..<out.count)
        }
        return out
    }

    /// Parses `bytes`, reads every field, component and decoded value, builds an ACK (or the
    /// reject for unparseable input) and checks that a successful parse round-trips.
    public static func check(_ bytes: [UInt8], options: HL7ParseOptions = HL7ParseOptions()) -> Outcome {
        let message: HL7Message
        do {
            message = try HL7Message.parse(bytes, options: options)
        } catch {
            _ = HL7Acknowledgement.reject(unparseable: bytes, error: error, controlID: "FUZZ")
            return .rejected(error.code)
        }
        for segment in message.segments {
            for number in 1...max(1, segment.fieldCount) {
                guard let field = segment.field(number) else { continue }
                for repetition in field.repetitions { _ = repetition.values.count }
            }
        }
        _ = message.header
        _ = HL7Acknowledgement.build(for: message, code: .applicationAccept, controlID: "FUZZ")
        let again = try? HL7Message.parse(decodedUTF8: message.utf8Bytes, charset: message.charset, options: options)
        return .parsed(roundTrips: again?.utf8Bytes == message.utf8Bytes && again?.segmentCount == message.segmentCount)
    }
}
