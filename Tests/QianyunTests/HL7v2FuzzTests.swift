import Testing

@testable import HL7v2

@Suite("HL7v2 fuzzing")
struct HL7v2FuzzTests {
    @Test("mutated corpus messages never crash, and what parses round-trips", .enabled(if: Corpus.er7Available, "corpus folder absent"))
    func mutations() {
        let seeds = Corpus.messages.filter { $0.count < 4000 }
        #expect(!seeds.isEmpty)
        var generator = HL7Fuzzing.SeededGenerator(seed: 0x5EED_0417)
        var parsed = 0
        var rejected = 0
        for iteration in 0..<5000 {
            var bytes = seeds[iteration % seeds.count]
            for _ in 0...Int.random(in: 0..<4, using: &generator) {
                bytes = HL7Fuzzing.mutate(bytes, using: &generator)
            }
            switch HL7Fuzzing.check(bytes) {
            case .parsed(let roundTrips):
                #expect(roundTrips)
                parsed += 1
            case .rejected:
                rejected += 1
            }
        }
        #expect(parsed > 1000)
        #expect(rejected > 100)
    }

    @Test("mutated GB18030 and XML inputs never crash")
    func otherInputs() throws {
        var generator = HL7Fuzzing.SeededGenerator(seed: 18030)
        let gb = GB18030.encode(chineseMessage(msh18: "GB18030"))
        let xml = Array(HL7XML.encode(try HL7Message.parse(sampleADT)).utf8)
        for _ in 0..<2000 {
            _ = HL7Fuzzing.check(HL7Fuzzing.mutate(gb, using: &generator), options: HL7ParseOptions(defaultCharset: .gb18030))
            let mutated = HL7Fuzzing.mutate(xml, using: &generator)
            if let message = try? HL7XML.decode(mutated) {
                _ = HL7XML.encode(message)
            }
        }
    }
}
