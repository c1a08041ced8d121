import Foundation
import LocalServers
import PostgresClient
import Scanning
import Testing
import TestSupport
import Validation

/// Nightly scans over real servers: history across runs, an unreachable server, no password
/// in any file a scan writes.
@Suite struct FleetScanTests {
    let sourcePassword = "scan-source-Secr3t"
    let downPassword = "down-server-Secr3t"

    func scan(_ inventory: Inventory, into directory: URL, metrics: URL? = nil) async throws -> FleetScan.Summary {
        let rules = try RuleLoader.load(directories: try ValidationRequest.ruleDirectories(extra: []))
        return try await FleetScan(inventory: inventory, reportsDirectory: directory, parallel: 2, metricsFile: metrics) { server in
            let request = ValidationRequest(source: try! ConnectionString(server.source), target: try! ConnectionString(server.target),
                                            databases: server.databases, mode: server.mode, rules: rules)
            return try! await ValidationEngine(request: request).run().run
        }.run()
    }

    @Test func secondScanReportsWhatAppearedAndAnUnreachableServerDoesNotStopTheOthers() async throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "scan")
        let source = try TestServers.connect(TestServers.pg15, database: database)
        defer { source.close() }
        try source.execute("CREATE TABLE accounts (id int PRIMARY KEY, owner text)")
        let closedPort = try LocalServer.freePort()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scan-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let inventoryFile = directory.appendingPathComponent("inventory.yaml")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try """
            servers:
              - name: shop-prod
                source: "\(TestServers.pg15.connectionString(database: "postgres")) password=${SHOP_PASSWORD}"
                target: "\(TestServers.pg18.connectionString())"
                databases: [\(database)]
              - name: old-box
                source: "host=127.0.0.1 port=\(closedPort) user=postgres password=\(downPassword) connect_timeout=2"
                target: "\(TestServers.pg18.connectionString())"
            """.write(to: inventoryFile, atomically: true, encoding: .utf8)
        let inventory = try Inventory.load(inventoryFile, environment: ["SHOP_PASSWORD": sourcePassword])
        #expect(inventory.servers[0].source.contains(sourcePassword))  // expanded, and only in memory

        let first = try await scan(inventory, into: directory.appendingPathComponent("reports"))
        let shop1 = try #require(first.servers.first { $0.name == "shop-prod" })
        let down = try #require(first.servers.first { $0.name == "old-box" })
        #expect(down.status == .failed)
        #expect(down.newFailures.contains(ScanHistory.Key(rule: "connectivity.source", database: nil)))
        #expect(!shop1.newFailures.contains { $0.rule == "tables.compression-lz4" })

        // Between the nightly runs someone adds an lz4-compressed column, which the test
        // target (built without lz4) refuses.
        try source.execute("CREATE TABLE packed (body text COMPRESSION lz4)")
        defer { try? source.execute("DROP TABLE packed") }
        let metrics = directory.appendingPathComponent("pgpreflight.prom")
        let second = try await scan(inventory, into: directory.appendingPathComponent("reports"), metrics: metrics)
        let shop2 = try #require(second.servers.first { $0.name == "shop-prod" })
        #expect(shop2.newFailures == [ScanHistory.Key(rule: "tables.compression-lz4", database: database)])
        #expect(second.servers.first { $0.name == "old-box" }?.newFailures.isEmpty == true)  // still down, not new

        // Files of the run: per server json, junit, html; index and summary.
        let runDirectory = URL(fileURLWithPath: second.directory)
        let names = try FileManager.default.contentsOfDirectory(atPath: runDirectory.path).sorted()
        #expect(names == ["index.html", "old-box.html", "old-box.json", "old-box.junit.xml",
                          "shop-prod.html", "shop-prod.json", "shop-prod.junit.xml", "summary.json"])
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: runDirectory.appendingPathComponent("summary.json"))) as? [String: Any]
        let servers = summary?["servers"] as? [[String: Any]]
        let shopEntry = servers?.first { $0["name"] as? String == "shop-prod" }
        #expect((shopEntry?["newFailures"] as? [[String: Any]])?.first?["rule"] as? String == "tables.compression-lz4")
        #expect(summary?["startedAt"] != nil && summary?["finishedAt"] != nil)
        let prom = try String(contentsOf: metrics, encoding: .utf8)
        #expect(prom.contains("pgpreflight_rule_status{server=\"shop-prod\",tags=\"\",database=\"\(database)\",rule=\"tables.compression-lz4\"} 2"))
        #expect(prom.contains("pgpreflight_server_new_failures{server=\"shop-prod\",tags=\"\"} 1"))
        let index = try String(contentsOf: runDirectory.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(index.contains("<svg"))  // the trend chart over the two runs

        // No password in anything the scan wrote, history included.
        let enumerator = FileManager.default.enumerator(atPath: directory.appendingPathComponent("reports").path)!
        var checked = 0
        for case let relative as String in enumerator {
            let file = directory.appendingPathComponent("reports").appendingPathComponent(relative)
            guard let data = try? Data(contentsOf: file) else { continue }
            checked += 1
            for secret in [sourcePassword, downPassword] {
                #expect(data.range(of: Data(secret.utf8)) == nil, "\(relative) contains a password")
            }
        }
        #expect(checked >= 17)  // 2 runs × 8 files + history.sqlite
        for secret in [sourcePassword, downPassword] {
            #expect(!prom.contains(secret))
        }
    }

    @Test func badInventoryNamesFileAndLine() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("inventory-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        // An unset variable fails that server only: the entry carries the cause, the scan reports it.
        try "servers:\n  - name: a\n    source: \"host=x password=${NOT_SET_ANYWHERE}\"\n    target: t\n".write(to: file, atomically: true, encoding: .utf8)
        let loaded = try Inventory.load(file, environment: [:])
        #expect(loaded.servers.map(\.problem) == ["\(file.path):3: environment variable NOT_SET_ANYWHERE is not set"])
        try "servers:\n  - name: a\n    source: s\n    target: t\n    colour: red\n".write(to: file, atomically: true, encoding: .utf8)
        #expect { try Inventory.load(file, environment: [:]) } throws: { "\($0)".hasPrefix("\(file.path):5: unknown key 'colour'") }
        // Nothing to scan is an error, not a green run; the scan's own file names are not server names.
        try "servers: []\n".write(to: file, atomically: true, encoding: .utf8)
        #expect { try Inventory.load(file, environment: [:]) } throws: { "\($0)".contains("lists no server") }
        try "servers:\n  - name: summary\n    source: s\n    target: t\n".write(to: file, atomically: true, encoding: .utf8)
        #expect { try Inventory.load(file, environment: [:]) } throws: { "\($0)".contains("server name 'summary' is reserved") }
    }
}

