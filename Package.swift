// swift-tools-version:6.1
import PackageDescription

// Layers, bottom to top: pure helpers and storage, domain services, adapters (HTTP, MLLP),
// the composition root, the executable. A lower target never imports a higher one.
let package = Package(
    name: "qianyun",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "qianyun", targets: ["qianyun"])
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "4.5.2"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // Pure checks of identity numbers (GB 11643): no I/O, no dependencies.
        .target(name: "IdentityNumbers"),
        // Pure name and date comparison for the master patient index: pinyin, homophones, typed
        // pinyin, Jaro–Winkler, swapped day/month. The pinyin table is generated into the target
        // by schemas/code-tables/make_pinyin_table.py.
        .target(name: "NameMatching"),
        // HL7 v2 as values: ER7 and XML encodings, escapes, GB 18030 and other character sets,
        // terser paths, data types, acknowledgements. No I/O, no dependencies; the GB 18030 table
        // is generated into the target by schemas/code-tables/make_gb18030_table.py.
        .target(name: "HL7v2"),
        // The chronic-disease rules engine: readings, rule sets as data, incremental and sweep
        // evaluation. No I/O, no dependencies.
        .target(name: "ChronicRules", linkerSettings: [.linkedLibrary("m")]),
        // Aberration detection on daily counts, defined as R's surveillance 1.20.3 defines it (EARS
        // C1–C3, CUSUM) plus CIDARS's moving percentile. No I/O, no dependencies.
        .target(name: "Aberration", linkerSettings: [.linkedLibrary("m")]),
        // libxml2 (a system library), seen only by ClinicalXML.
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        // Clinical XML without I/O: libxml2 hardened (no network, no DTD or entity, size and depth
        // limits), XSD validation with line numbers, XPath, and the CDA R2 document model. Never
        // imports Foundation (libxml2's ICU clashes with Foundation's).
        .target(name: "ClinicalXML", dependencies: ["CLibXML2"]),
        // The analyst dashboard's page, script, stylesheet and icon, as files in a resource bundle;
        // served by the API. No dependencies.
        .target(name: "DashboardAssets", resources: [.copy("Dashboard")]),
        // Connection pool helpers, transactions, prepared statements, the SQL migrations runner and
        // the statistics keeper.
        .target(
            name: "Storage",
            dependencies: [
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Principals, roles, API clients and tokens, the hash-chained audit trail, field protection.
        .target(
            name: "Access",
            dependencies: [
                "Storage",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Facilities, residents, health cards and the master patient index (matching, review, merge).
        .target(
            name: "Registry",
            dependencies: [
                "Storage", "Access", "IdentityNumbers", "NameMatching",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        // The shared medical record: clinical documents (CDA) with versions, encounters and items
        // with their sources and history, and who may read them.
        .target(
            name: "Records",
            dependencies: [
                "Access", "ClinicalXML", "HL7v2", "Registry", "Storage",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Chronic-disease monitoring: programmes, enrolments, device readings, alerts with their
        // escalation and outbox, the sweep and the dry run.
        .target(
            name: "ChronicCare",
            dependencies: [
                "Access", "ChronicRules", "Registry", "Storage",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Appointments: departments, clinicians and exam resources, schedules and their slots,
        // bookings with the platforms' rules, waiting lists, referrals, the notification outbox.
        .target(
            name: "Scheduling",
            dependencies: [
                "Access", "Registry", "Storage",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The online-consultation queue: requests, claims with their state machine, messages, duty
        // rosters, the events behind the live streams, escalation and its outbox.
        .target(
            name: "Consultation",
            dependencies: [
                "Access", "Records", "Registry", "Storage",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Notifiable-disease surveillance: case definitions and the detection they drive, counts
        // with small-cell suppression, the de-identified line list and its data classes, case
        // review, early-warning signals and their lifecycle.
        .target(
            name: "Surveillance",
            dependencies: [
                "Aberration", "Access", "Storage",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The HL7 v2 gateway: MLLP listener on SwiftNIO, the durable inbox, routing of messages to
        // the domain services (ADT into the registry).
        .target(
            name: "Interop",
            dependencies: [
                "HL7v2", "Records", "Registry", "Access", "Storage", "IdentityNumbers",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // HTTP edge: routes, problem+json, authentication middleware, request ids, OpenAPI serving, the
        // analyst's dashboard.
        .target(
            name: "API",
            dependencies: [
                "Access", "ChronicCare", "ChronicRules", "Consultation", "IdentityNumbers", "Interop", "Records", "Registry", "Scheduling",
                "Surveillance", "Aberration",
                "Storage",
                "DashboardAssets",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Composition root: configuration, building every service in dependency order, fixtures.
        .target(
            name: "QianyunServer",
            dependencies: [
                "API", "Access", "ChronicCare", "ChronicRules", "ClinicalXML", "Consultation", "Interop", "Records", "Registry",
                "Surveillance",
                "Scheduling", "Storage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The operator's command line: serve, migrate, fixtures, clients, audit.
        .executableTarget(
            name: "qianyun",
            dependencies: [
                "QianyunServer", "Access", "HL7v2", "Interop", "Registry", "Storage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Matching-quality benchmark on a synthetic population (bench/match runs it beside a peer).
        .executableTarget(name: "qianyun-match-bench", dependencies: ["NameMatching", "IdentityNumbers"], path: "Sources/MatchBench"),
        // HL7 v2 parse rate over a folder of messages, for bench/hl7-parse.
        .executableTarget(name: "qianyun-hl7-bench", dependencies: ["HL7v2"], path: "Sources/HL7Bench"),
        // Rule evaluations per second and the year-long backtest, for bench/chronic-rules.
        .executableTarget(name: "qianyun-rules-bench", dependencies: ["ChronicRules"], path: "Sources/RulesBench"),
        .testTarget(
            name: "QianyunTests",
            dependencies: [
                "QianyunServer", "API", "Aberration", "Access", "ChronicCare", "ChronicRules", "ClinicalXML", "Consultation", "HL7v2",
                "Records", "Surveillance",
                "IdentityNumbers",
                "NameMatching", "Registry", "Scheduling",
                "Storage",
                "Interop",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            // R's reference values and the script that makes them, read through #filePath.
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
