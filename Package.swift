// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "pgpreflight",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "pgpreflight", targets: ["pgpreflight"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    // Every target lists each module it imports (checked: swift build
    // --explicit-target-dependency-import-check error, as scripts/test.sh builds).
    targets: [
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"]), .brew(["libpq"])]),
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"]), .brew(["libxml2"])]),
        .target(name: "PostgresClient", dependencies: ["CLibPQ"]),
        .target(name: "LocalServers"),
        .target(name: "Validation", dependencies: ["PostgresClient", .product(name: "Yams", package: "Yams")], plugins: ["EmbedRules"]),
        // rules/*.yaml compiled into Validation (the binary carries its rules; rules/ stays the source).
        .executableTarget(name: "EmbedRulesTool"),
        .plugin(name: "EmbedRules", capability: .buildTool(), dependencies: ["EmbedRulesTool"]),
        .target(name: "Reports", dependencies: ["Validation", "CLibXML2"]),
        .target(name: "Scanning", dependencies: ["Reports", "Validation", "PostgresClient", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Yams", package: "Yams")]),
        .target(name: "Migration", dependencies: ["Validation", "PostgresClient", .product(name: "GRDB", package: "GRDB.swift")]),
        .executableTarget(name: "pgpreflight", dependencies: [
            "Migration", "Scanning", "Reports", "Validation", "PostgresClient", "LocalServers",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "TestSupport", dependencies: ["LocalServers", "PostgresClient"], path: "Tests/TestSupport"),
        .testTarget(name: "PostgresClientTests", dependencies: ["PostgresClient", "LocalServers", "TestSupport"]),
        .testTarget(name: "VerifyTests", dependencies: ["Migration", "PostgresClient", "Validation", "LocalServers", "TestSupport"]),
        .testTarget(name: "ScanTests", dependencies: ["Scanning", "Validation", "PostgresClient", "LocalServers", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "PolicyTests", dependencies: ["Validation"]),
        .testTarget(name: "OnlineMigrationTests", dependencies: ["Migration", "PostgresClient", "TestSupport"]),
        .testTarget(name: "ReportsTests", dependencies: ["Reports", "Validation", "PostgresClient", "TestSupport"], exclude: ["Schemas"]),
        .testTarget(name: "ValidationTests", dependencies: ["Validation", "Reports", "PostgresClient", "LocalServers", "TestSupport"]),
        .testTarget(name: "MigrationTests", dependencies: ["Migration", "PostgresClient", "TestSupport", "LocalServers"]),
    ]
)
