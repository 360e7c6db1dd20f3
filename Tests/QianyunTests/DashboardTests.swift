import Foundation
import HTTPTypes
import HummingbirdTesting
import Interop
import NIOCore
import Testing

/// The analyst's dashboard at `/dashboard`: its page and assets never point off the origin, and in
/// a real browser — Debian's headless Chromium, against the service listening on loopback — it
/// shows the numbers the API answers, suppressed cells as such, in Chinese.
@Suite(needsDatabase) struct DashboardTests {
    static let assets: [String: String] = [
        "dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml",
    ]

    @Test func thePageAndItsAssetsComeFromTheOriginOnly() async throws {
        try await withTestApp { app in
            let page = try await app.request(.get, "/dashboard")
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            #expect(page.headers[.cacheControl] == "no-cache")
            let policy = try #require(page.headers[HTTPField.Name("Content-Security-Policy")!])
            #expect(policy.hasPrefix("default-src 'self';"))
            #expect(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval") && !policy.contains("http"))
            let html = String(buffer: page.body)
            #expect(html.contains("<html lang=\"zh-CN\">") && html.contains("<meta charset=\"utf-8\">"))

            // Every link of the page names an asset we serve, with the version of its content.
            let links = Self.matches(#"(?:src|href)="([^"]*)""#, in: html).map { $0[1] }
            #expect(links.count == Self.assets.count)
            var texts = ["/dashboard": html]
            for link in links {
                #expect(link.hasPrefix("/dashboard/assets/") && link.contains("?v="), "\(link)")
                let file = String(link.dropFirst("/dashboard/assets/".count).prefix { $0 != "?" })
                let response = try await app.request(.get, link)
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == Self.assets[file], "\(file)")
                #expect(response.headers[.cacheControl] == "public, max-age=31536000, immutable")
                #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
                let etag = try #require(response.headers[.eTag])
                #expect(try await app.request(.get, link, headers: [.ifNoneMatch: etag]).status == .notModified)
                // Without the current version a browser must ask again.
                #expect(try await app.request(.get, "/dashboard/assets/\(file)").headers[.cacheControl] == "no-cache")
                texts[file] = String(buffer: response.body)
            }
            #expect(Set(texts.keys) == Set(Self.assets.keys).union(["/dashboard"]))
            for (name, text) in texts {
                #expect(Self.offOrigin(text).isEmpty, "\(name) points off the origin: \(Self.offOrigin(text))")
            }
            #expect(try await app.request(.get, "/dashboard/assets/index.html").status == .notFound)
            #expect(try await app.request(.get, "/dashboard/assets/Package.swift").status == .notFound)
        }
    }

    /// What in an asset could make a browser leave the origin: absolute and protocol-relative URLs,
    /// CSS imports and `url()`s other than a fragment of the same document. The SVG namespace name
    /// is an identifier that is never fetched.
    static func offOrigin(_ text: String) -> [String] {
        let stripped = text.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
        var found: [String] = []
        for needle in ["http://", "https://", "//cdn", "@import", "fonts.googleapis", "fonts.gstatic"] where stripped.contains(needle) {
            found.append(needle)
        }
        found += matches(#"url\(\s*['"]?([^#'")][^'")]*)"#, in: stripped).map { $0[0] }
        found += matches(#"(?:src|href)="((?!/[^/])[^"]*)""#, in: stripped).map { $0[0] }
        return found
    }

    // MARK: - In the browser

    /// Cases enter the record the way they do in production — HL7 ADT^A01 with a DG1 over MLLP,
    /// one new resident each — and the surveillance trigger makes them cases. Two counties of
    /// Guiyang and one of Zunyi reach the threshold; two stay under it and must show suppressed.
    static let influenza: [(county: String, daysAgo: [Int])] = [
        ("520102", [3, 3, 4, 5, 8, 10, 12, 15, 17, 20, 24, 30]), ("520103", [2, 6, 9, 13, 18, 22, 27]), ("520111", [5, 16, 25]),
        ("520302", [4, 7, 11, 14, 21, 28]), ("520303", [9]),
    ]

    @Test(
        .enabled(
            if: Chromium.executable != nil || Chromium.required,
            "needs Debian's chromium and a CJK font (deploy/test installs them: apt-get install chromium fonts-wqy-microhei)"))
    func theBrowserShowsWhatTheAPIAnswers() async throws {
        let chromium = try #require(Chromium.executable, "QIANYUN_TEST_REQUIRE_CHROMIUM is set but chromium is not installed")
        try await withLiveTestApp { live in
            let app = live.app
            try await app.postgres.query(
                "INSERT INTO registry.facilities (code, name, level, division) VALUES ('5201020001', '贵州省人民医院', 'tertiary', '520102')",
                logger: TestDatabase.logger)
            let today = ChinaCalendar.today()
            var messages: [String] = []
            for (county, days) in Self.influenza {
                for day in days { messages.append(Self.admission(messages.count, county: county, diagnosis: "J11.1^流行性感冒", daysAgo: day)) }
            }
            // One cholera case: the fixed-threshold method raises a signal on a single case.
            messages.append(Self.admission(messages.count, county: "520112", diagnosis: "A00.9^霍乱", daysAgo: 2))
            try await Self.send(messages, port: live.mllpPort)

            let token = try await app.token(role: .analyst)
            let run = try await app.request(
                .post, "/api/v1/surveillance/signals/run", token: token, json: #"{"date":"\#(ChinaCalendar.string(today, minusDays: 2))"}"#)
            #expect(run.status == .ok, "\(String(buffer: run.body))")
            let signals = try await app.request(.get, "/api/v1/surveillance/signals?status=new,investigating", token: token).json
            let open = try #require(signals["signals"] as? [[String: Any]])
            let cholera = try #require(
                open.first { $0["disease"] as? String == "cholera" }?["id"] as? String, "no cholera signal in \(open)")

            // What the page asks, asked of the API by the test.
            let from = ChinaCalendar.string(today, minusDays: 41)
            let to = ChinaCalendar.string(today, minusDays: 0)
            let common = "disease=influenza&division=52&from=\(from)&to=\(to)&dateBasis=onset"
            let counties = try await app.request(
                .get, "/api/v1/surveillance/counts?\(common)&groupBy=division&divisionLevel=county", token: token
            ).json
            let prefectures = try await app.request(
                .get, "/api/v1/surveillance/counts?\(common)&groupBy=division&divisionLevel=prefecture", token: token
            ).json
            let weeks = try await app.request(.get, "/api/v1/surveillance/counts?\(common)&groupBy=week", token: token).json
            let divisions = try await app.request(.get, "/api/v1/surveillance/divisions", token: token).json
            let threshold = try #require(counties["threshold"] as? Int)
            let countyCells = try #require(counties["cells"] as? [[String: Any]])
            // The seed is what the API counts, and the counties under the threshold are suppressed (the
            // API may suppress more, so that no total gives them away).
            let seeded = Dictionary(uniqueKeysWithValues: Self.influenza.map { ($0.county, $0.daysAgo.count) })
            #expect(Set(countyCells.compactMap { $0["division"] as? String }) == Set(seeded.keys))
            for cell in countyCells where cell["suppressed"] as? Bool != true {
                #expect(cell["count"] as? Int == seeded[cell["division"] as? String ?? ""], "\(cell)")
            }
            let suppressedCounties = Set(countyCells.filter { $0["suppressed"] as? Bool == true }.compactMap { $0["division"] as? String })
            #expect(suppressedCounties.isSuperset(of: ["520111", "520303"]))
            #expect(suppressedCounties.count < seeded.count)

            let url = "\(live.origin)/dashboard#token=\(token)&disease=influenza&division=52&from=\(from)&to=\(to)&signal=\(cholera)"
            let dump = try await chromium.dumpDOM(url)
            let dom = dump.dom
            let body = try #require(Self.tags("body", in: dom).first)
            #expect(body.attributes["data-state"] == "ready", "the page did not settle: \(body.attributes)")
            #expect(body.attributes["data-csp-violations"] == nil, "content-security-policy violations: \(body.attributes)")
            #expect(dom.contains("流行性感冒") && dom.contains("贵阳市") && dom.contains("南明区"))

            // The county table: one count cell per county of the province, each equal to the API's.
            let cells = Self.tags("td", in: dom).filter { $0.classes.contains("count") && $0.attributes["data-division"] != nil }
            let shown = Dictionary(cells.map { ($0.attributes["data-division"]!, $0) }, uniquingKeysWith: { first, _ in first })
            let countyCount = ((divisions["prefectures"] as? [[String: Any]]) ?? []).reduce(0) {
                $0 + (($1["counties"] as? [Any])?.count ?? 0)
            }
            #expect(cells.count == countyCount && countyCount == 88)
            for cell in countyCells {
                let code = try #require(cell["division"] as? String)
                let td = try #require(shown[code], "county \(code) is not on the page")
                if cell["suppressed"] as? Bool == true {
                    #expect(td.attributes["data-suppressed"] == "true" && td.attributes["data-count"] == nil, "\(code)")
                    #expect(td.text == "<\(threshold)", "\(code)")
                    #expect(td.attributes["title"]?.contains("小于阈值已抑制") == true)
                } else {
                    #expect(td.attributes["data-count"] == "\(cell["count"] as? Int ?? -1)", "\(code): \(td.attributes)")
                    #expect(td.attributes["data-suppressed"] == nil)
                }
            }
            // Beside each count, the population the rate was worked out from.
            let populations = Dictionary(
                Self.tags("td", in: dom).filter { $0.classes.contains("population") }.compactMap { td in
                    td.attributes["data-division"].map { ($0, td.attributes["data-population"] ?? "") }
                }, uniquingKeysWith: { first, _ in first })
            for cell in countyCells {
                let code = cell["division"] as? String ?? ""
                #expect(populations[code] == "\(cell["population"] as? Int ?? -1)", "population of \(code)")
            }
            let listed = Set(countyCells.compactMap { $0["division"] as? String })
            for (code, td) in shown where !listed.contains(code) {
                #expect(td.attributes["data-count"] == "0", "\(code) has no cases, yet the page shows \(td.attributes)")
            }
            #expect(
                Set(cells.filter { $0.attributes["data-suppressed"] == "true" }.map { $0.attributes["data-division"]! })
                    == suppressedCounties)

            // Each prefecture's total is the API's prefecture cell, suppressed or not.
            let totals = Self.tags("span", in: dom).filter { $0.classes.contains("block-total") }
            #expect(totals.count == 9)
            for cell in (prefectures["cells"] as? [[String: Any]]) ?? [] {
                let total = totals.first { $0.attributes["data-prefecture"] == cell["division"] as? String }
                if cell["suppressed"] as? Bool == true {
                    #expect(total?.attributes["data-suppressed"] == "true")
                } else {
                    #expect(total?.attributes["data-count"] == "\(cell["count"] as? Int ?? -1)")
                }
            }

            // The epidemic curve: a bar per week with cases, suppressed weeks hatched and labelled.
            let weekCells = (weeks["cells"] as? [[String: Any]]) ?? []
            let curve = Self.section(id: "curve", in: dom)
            let bars = Self.tags("rect", in: curve).filter { $0.classes.contains("bar") }
            #expect(
                bars.compactMap { $0.attributes["data-count"].flatMap(Int.init) }.sorted()
                    == weekCells.compactMap { $0["count"] as? Int }.sorted())
            let hatched = bars.filter { $0.attributes["data-suppressed"] == "true" }
            #expect(hatched.count == weekCells.filter { $0["suppressed"] as? Bool == true }.count)
            if !hatched.isEmpty { #expect(curve.contains("已抑制")) }

            // The signal named in the address is open, with its series drawn and its alarm day marked.
            #expect(Self.tags("tr", in: dom).contains { $0.attributes["data-signal"] == cholera })
            let series = Self.section(id: "signal-chart", in: dom)
            #expect(series.contains("<svg") && series.contains("alarm-mark"))

            // Everything the page fetched came from the service itself.
            #expect(dump.requests.contains { $0.hasPrefix("\(live.origin)/api/v1/surveillance/counts?") })
            #expect(dump.requests.contains { $0.hasPrefix("\(live.origin)/dashboard/assets/dashboard.js?v=") })
            let elsewhere = dump.requests.filter { !$0.hasPrefix(live.origin + "/") && !$0.hasPrefix("blob:") }
            #expect(elsewhere.isEmpty, "requests that left the origin: \(elsewhere)")

            // The artefact a person looks at.
            let screenshot = URL(fileURLWithPath: TestDatabase.repositoryRoot + "/.build/artefacts/dashboard.png")
            try await chromium.screenshot(url, to: screenshot, width: 1400, height: 2600)
            let png = try Data(contentsOf: screenshot)
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 50_000)
            print("dashboard screenshot: \(screenshot.path)")
        }
    }

    /// An admission with a final diagnosis of a new resident (no ID number; name, birth date and
    /// phone apart from every other), living in `county`, diagnosed `daysAgo` days ago at 09:00, on
    /// a visit of its own.
    static func admission(_ n: Int, county: String, diagnosis: String, daysAgo: Int) -> String {
        let surnames = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"]
        let given = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋"]
        let name = surnames[n % 10] + "^" + given[n / 10 % 10] + given[(n * 7 + 3) % 10]
        let birth = String(format: "19%02d%02d%02d", 40 + n, n % 12 + 1, n % 28 + 1)
        let at = ChinaCalendar.string(ChinaCalendar.today(), minusDays: daysAgo).replacingOccurrences(of: "-", with: "") + "090000"
        return "MSH|^~\\&|HIS|5201020001|QIANYUN|GZ|\(at)||ADT^A01^ADT_A01|DASH-\(n)|P|2.5|||||CHN|UNICODE UTF-8\r"
            + "EVN|A01|\(at)\r"
            + "PID|1||DASH\(n)^^^5201020001^PI||\(name)||\(birth)|\(n % 2 == 0 ? "M" : "F")|||中华北路^^贵阳^贵州^550001^CHN^H^^\(county)"
            + "||^PRN^CP^^^^1390852\(String(format: "%04d", n))\r"
            // A visit number of its own (PV1-19): the record keys a diagnosis by visit and code.
            + "PV1|1|I\(String(repeating: "|", count: 17))V-DASH-\(n)\r"
            + "DG1|1|ICD10|\(diagnosis)^ICD10||\(at)|F\r"
    }

    static func send(_ messages: [String], port: Int) async throws {
        let client = try await MLLPClient.connect(host: "127.0.0.1", port: port)
        try await client.run { send in
            for message in messages {
                let replies = try await send(Array(message.utf8), 1)
                let ack = String(decoding: replies.first ?? [], as: UTF8.self)
                #expect(ack.contains("MSA|AA|"), "\(ack)")
            }
        }
    }

    // MARK: - Reading the DOM Chromium serialised

    struct Tag {
        let attributes: [String: String]
        let text: String
        var classes: Set<String> { Set((attributes["class"] ?? "").split(separator: " ").map(String.init)) }
    }

    /// Elements named `name` with their attributes and their text (tags stripped, entities decoded);
    /// enough for the DOM the dashboard writes, which nests no element in one of the same name.
    static func tags(_ name: String, in html: String) -> [Tag] {
        matches("<\(name)\\b([^>]*)>(?:(.*?)</\(name)>)?", in: html).map { match in
            var attributes: [String: String] = [:]
            for attribute in matches(#"([A-Za-z_:][-A-Za-z0-9_:.]*)(?:="([^"]*)")?"#, in: match[1]) {
                attributes[attribute[1]] = decode(attribute[2])
            }
            let text = decode(match[2].replacingOccurrences(of: "<[^>]*>", with: "", options: .regularExpression))
            return Tag(attributes: attributes, text: text)
        }
    }

    /// The inner HTML of the element with `id` (up to the next element of a panel's size).
    static func section(id: String, in html: String) -> String {
        guard let start = html.range(of: "id=\"\(id)\"") else { return "" }
        let rest = html[start.upperBound...]
        let end = rest.range(of: "</div>\n") ?? rest.range(of: "</section>")
        return String(rest[..<(end?.lowerBound ?? rest.endIndex)])
    }

    static func decode(_ text: String) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&nbsp;", with: "\u{a0}")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    /// Every match of `pattern`, as its capture groups (group 0 the whole match; "" for a group
    /// that took no part).
    static func matches(_ pattern: String, in text: String) -> [[String]] {
        guard let regex = try? NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators]) else { return [] }
        let ns = text as NSString
        return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { match in
            (0..<match.numberOfRanges).map { index in
                let range = match.range(at: index)
                return range.location == NSNotFound ? "" : ns.substring(with: range)
            }
        }
    }
}

/// Dates as the service counts them: calendar days in China (UTC+8, no daylight saving).
enum ChinaCalendar {
    static var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 8 * 3600)!
        return calendar
    }

    static func today() -> Date { calendar.startOfDay(for: Date()) }

    static func string(_ date: Date, minusDays days: Int) -> String {
        let day = calendar.date(byAdding: .day, value: -days, to: date)!
        let parts = calendar.dateComponents([.year, .month, .day], from: day)
        return String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
    }
}

/// Debian's headless Chromium, run once per page: a fresh profile under /tmp, no background
/// traffic of its own, killed (with its whole process group) after 60 s.
struct Chromium: Sendable {
    let path: String

    /// `QIANYUN_CHROMIUM`, else `chromium` or `chromium-browser` on the PATH.
    static let executable: Chromium? = {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["QIANYUN_CHROMIUM"], FileManager.default.isExecutableFile(atPath: path) { return Chromium(path: path) }
        for directory in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            for name in ["chromium", "chromium-browser"] where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
                return Chromium(path: "\(directory)/\(name)")
            }
        }
        return nil
    }()

    /// Set by deploy/test: there a missing browser fails the test instead of skipping it.
    static let required = ProcessInfo.processInfo.environment["QIANYUN_TEST_REQUIRE_CHROMIUM"] == "1"

    static let flags = [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
        "--disable-default-apps", "--disable-features=AutofillServerCommunication,Translate,MediaRouter", "--hide-scrollbars",
        "--lang=zh-CN", "--run-all-compositor-stages-before-draw",
        // Virtual time runs ahead while nothing is loading, so the page's fetches all settle first.
        "--virtual-time-budget=15000",
    ]

    struct Dump {
        let dom: String
        /// Every URL the page's own frame requested (from Chromium's net log).
        let requests: [String]
    }

    func dumpDOM(_ url: String) async throws -> Dump {
        try await withScratchDirectory { directory in
            let netLog = directory.appendingPathComponent("net-log.json")
            let dom = try await run(["--dump-dom", "--log-net-log=\(netLog.path)", url], in: directory)
            return Dump(dom: dom, requests: try Self.pageRequests(netLog: netLog, page: url))
        }
    }

    func screenshot(_ url: String, to file: URL, width: Int, height: Int) async throws {
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? FileManager.default.removeItem(at: file)
        try await withScratchDirectory { directory in
            _ = try await run(["--screenshot=\(file.path)", "--window-size=\(width),\(height)", url], in: directory)
        }
    }

    /// The URLs the page asked for: its own address, and every request it initiated (assets,
    /// fetches) wherever it went. The browser's own traffic (autofill, updates) is initiated by no
    /// origin and is left out.
    static func pageRequests(netLog: URL, page: String) throws -> [String] {
        let log = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: netLog)) as? [String: Any])
        let types = ((log["constants"] as? [String: Any])?["logEventTypes"] as? [String: Int]) ?? [:]
        let start = try #require(types["URL_REQUEST_START_JOB"])
        let address = try #require(URL(string: page))
        let origin = "\(address.scheme ?? "http")://\(address.host ?? ""):\(address.port ?? 80)"
        return ((log["events"] as? [[String: Any]]) ?? []).compactMap { event in
            guard event["type"] as? Int == start, let params = event["params"] as? [String: Any], let url = params["url"] as? String,
                params["initiator"] as? String == origin || params["request_type"] as? String == "main frame"
            else { return nil }
            return url
        }
    }

    private func withScratchDirectory<Result>(_ body: (URL) async throws -> Result) async throws -> Result {
        let directory = URL(fileURLWithPath: "/tmp/qianyun-chromium-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try await body(directory)
    }

    /// Runs Chromium under coreutils `timeout`, which kills its process group (the browser and
    /// its renderers) after 60 s; returns what it wrote to standard output.
    private func run(_ arguments: [String], in directory: URL) async throws -> String {
        let output = directory.appendingPathComponent("stdout")
        let errors = directory.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        FileManager.default.createFile(atPath: errors.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments =
            ["--kill-after=5", "60", path] + Self.flags + ["--user-data-dir=\(directory.appendingPathComponent("profile").path)"]
            + arguments
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: errors)
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        let stderr = String(decoding: (try? Data(contentsOf: errors)) ?? Data(), as: UTF8.self)
        try #require(status != 124 && status != 137, "chromium was killed after 60 s")
        try #require(status == 0, "chromium exited with \(status): \(stderr.suffix(2000))")
        let stdout = String(decoding: try Data(contentsOf: output), as: UTF8.self)
        // A page that fails to load still exits 0, having printed nothing.
        try #require(!arguments.contains("--dump-dom") || stdout.contains("<body"), "chromium loaded no page: \(stderr.suffix(2000))")
        return stdout
    }
}
