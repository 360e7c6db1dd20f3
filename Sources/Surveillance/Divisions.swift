import Foundation

/// Guizhou's administrative divisions (GB/T 2260): the province, its 9 prefectures and 88
/// counties, for names and for the level a count is grouped at. Codes outside the table (a
/// resident registered in another province) are still counted, under their own code.
public struct Divisions: Sendable {
    public struct County: Codable, Sendable, Equatable {
        public let code: String
        public let name: String
    }

    public struct Prefecture: Codable, Sendable, Equatable {
        public let code: String
        public let name: String
        public let counties: [County]
    }

    public struct Province: Codable, Sendable, Equatable {
        public let code: String
        public let name: String
    }

    struct File: Codable {
        let province: Province
        let prefectures: [Prefecture]
    }

    public enum Level: String, Sendable, CaseIterable {
        case province, prefecture, county

        /// Characters of the six-digit code that name a division at this level.
        public var width: Int {
            switch self {
            case .province: 2
            case .prefecture: 4
            case .county: 6
            }
        }
    }

    public let province: Province
    public let prefectures: [Prefecture]
    let names: [String: String]

    public init(data: Data) throws(SurveillanceError) {
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch { throw .definitions("divisions: \(error)") }
        var names = [file.province.code: file.province.name]
        for prefecture in file.prefectures {
            names[prefecture.code] = prefecture.name
            for county in prefecture.counties { names[county.code] = county.name }
        }
        self.province = file.province
        self.prefectures = file.prefectures
        self.names = names
    }

    public static func load(path: String) throws(SurveillanceError) -> Divisions {
        guard let data = FileManager.default.contents(atPath: path) else { throw .definitions("cannot read \(path)") }
        return try Divisions(data: data)
    }

    public var counties: [County] { prefectures.flatMap(\.counties) }

    public func name(_ code: String) -> String? { names[code] }

    /// A filter prefix: `52`, `5201` or `520102`.
    public static func isPrefix(_ text: String) -> Bool {
        [2, 4, 6].contains(text.utf8.count) && text.utf8.allSatisfy { (0x30...0x39).contains($0) }
    }
}
