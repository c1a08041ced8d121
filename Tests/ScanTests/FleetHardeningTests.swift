import Foundation
import LocalServers
import PostgresClient
import Scanning
import Testing
import TestSupport
import Validation

/// Issue 17, the rest: a statement still running at a server's deadline is cancelled on the
/// server; team tags in the Prometheus textfile; `scan merge` of an older version's shards;
/// failover lists on the cancellable connect. Real servers.
@Suite struct FleetHardeningTests {
    /// Waits (bounded, generously: not a speed goal) until `condition` holds.
    func eventually(_ seconds: Double = 60, _ condition: () throws -> Bool) throws -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return try condition()
    }

    // MARK: Statement cancellation at the deadline

    @Test func aStatementRunningAtTheDeadlineIsCancelledOnTheServerAndLeavesNoSession() throws {
        let stalledDatabase = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "stall")
        let nextDatabase = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "stall_next")
        let directory = try temporaryDirectory("scan-stall")
        defer { try? FileManager.default.removeItem(at: directory) }
        // The stalled server's own rule: a probe that sleeps far past the deadline (and past
        // its statement_timeout of 600 s: only a cancel can end it within the test).
        let stallRules = directory.appendingPathComponent("stall-rules")
        try FileManager.default.createDirectory(at: stallRules, withIntermediateDirectories: true)
        try """
            id: test.stalling-probe
            title: A probe that stalls
            description: Sleeps 900 s.
            scope: database
            servers: [source]
            modes: [offline, online]
            probe:
              runs_on: source
              sql: SELECT 'x' AS object FROM pg_sleep(900) WHERE random() < 0
            status:
              offline: Failed
              online: Failed
            message:
              Failed: "stalled ({count})"
              Succeeded: "done"
            remedy: none
            """.write(to: stallRules.appendingPathComponent("test.stalling-probe.yaml"), atomically: true, encoding: .utf8)
        // Its sessions are told apart from every other test's by their application_name.
        let application = "scan-stall-\(UUID().uuidString.prefix(8).lowercased())"
        let inventory = directory.appendingPathComponent("inventory.yaml")
        try """
            servers:
              - name: stalled
                source: "\(TestServers.pg15.connectionString()) application_name=\(application)"
                target: "\(TestServers.pg18.connectionString())"
                databases: [\(stalledDatabase)]
                rules: [stall-rules]
              - name: next
                source: "\(TestServers.pg15.connectionString())"
                target: "\(TestServers.pg18.connectionString())"
                databases: [\(nextDatabase)]
            """.write(to: inventory, atomically: true, encoding: .utf8)
        let env = ["PGPREFLIGHT_RULES": try CLI.rules(in: directory, ["connectivity.source", "connectivity.target"]).path]
        let admin = try TestServers.connect(TestServers.pg15)
        defer { admin.close() }
        func sessions(sleeping: Bool = false) throws -> Int {
            try admin.query("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1"
                            + (sleeping ? " AND state = 'active' AND query LIKE '%pg_sleep(900)%'" : ""), application).first?.int("n") ?? -1
        }

        // One worker: "next" is scanned only once the stalled server's worker is free again.
        let scan = try CLI.Running(["scan", "--inventory", inventory.path, "--reports", directory.appendingPathComponent("reports").path,
                                    "--parallel", "1", "--server-timeout", "600", "--server-deadline", "20"], environment: env)
        let sawSleep = try eventually(120) { try sessions(sleeping: true) == 1 }
        let (code, output) = scan.wait()
        #expect(sawSleep, "the stalling probe never ran: \(output)")
        #expect(code == 1, "\(output)")
        let servers = try #require(try CLI.summary(try CLI.reportsLine(output))["servers"] as? [[String: Any]])
        let stalled = try #require(servers.first { $0["name"] as? String == "stalled" })
        #expect(stalled["status"] as? String == "Failed")
        #expect((stalled["problem"] as? String)?.hasPrefix("did not finish within 20 s") == true, "\(stalled)")
        #expect(servers.first { $0["name"] as? String == "next" }?["status"] as? String == "Succeeded")
        // The scan cancelled the statement and closed the sessions before it ended: the server
        // keeps none of them (a backend leaves pg_stat_activity a moment after its client's
        // goodbye; without the cancel, it would sleep on until its statement_timeout).
        let gone = try eventually(30) { try sessions() == 0 }
        #expect(gone, "sessions of the abandoned validation are still on the server")
    }

    // MARK: Tags in the Prometheus textfile

    @Test func metricsCarryTheTeamTagsAndParseAsPrometheusTextFormat() async throws {
        // A database name with every character the exposition format escapes.
        let database = "odd \"quoted\" back\\slash\nnewline \(UUID().uuidString.prefix(6).lowercased())"
        let pg15 = try TestServers.connect(TestServers.pg15)
        defer { pg15.close() }
        try pg15.execute("CREATE DATABASE \(try pg15.quoteIdentifier(database))")
        defer { try? pg15.execute("DROP DATABASE \(try pg15.quoteIdentifier(database))") }
        let inside = try Connection.open(ConnectionString(TestServers.pg15.connectionString()).with(database: database))
        try inside.execute("CREATE TABLE keyless (a int)")
        inside.close()
        let directory = try temporaryDirectory("scan-metrics-tags")
        defer { try? FileManager.default.removeItem(at: directory) }
        let inventory = Inventory(servers: [
            Inventory.Server(name: "billing-db", source: TestServers.pg15.connectionString(), target: TestServers.pg18.connectionString(),
                             databases: [database], tags: ["payments", "tier-1"], position: 0),
            Inventory.Server(name: "untagged", source: TestServers.pg15.connectionString(), target: TestServers.pg18.connectionString(),
                             databases: [database], position: 1),
        ])
        let rules = try RuleLoader.load(directories: [try CLI.rules(in: directory, ["connectivity.source", "connectivity.target", "tables.primary-key"])])
        let metrics = directory.appendingPathComponent("pgpreflight.prom")
        _ = try await FleetScan(inventory: inventory, reportsDirectory: directory.appendingPathComponent("reports"), parallel: 2, metricsFile: metrics) { server in
            try! await ValidationEngine(request: ValidationRequest(source: try! ConnectionString(server.source), target: try! ConnectionString(server.target),
                                                                   databases: server.databases, rules: rules)).run().run
        }.run()
        let text = try String(contentsOf: metrics, encoding: .utf8)
        let families = try PrometheusText.parse(text)

        // Every per-server series has the tags label, as Prometheus' service discovery writes
        // tags: comma before, between and after; "" for none.
        for name in ["pgpreflight_rule_status", "pgpreflight_server_failed", "pgpreflight_server_warnings", "pgpreflight_server_new_failures",
                     "pgpreflight_server_findings_new", "pgpreflight_server_findings_resolved"] {
            let samples = try #require(families[name], "no \(name) in \(text)").samples
            #expect(!samples.isEmpty)
            for sample in samples {
                #expect(sample.labels["tags"] == (sample.labels["server"] == "billing-db" ? ",payments,tier-1," : ""), "\(name) \(sample.labels)")
            }
        }
        // The escaped database label reads back as the database's name.
        let keyless = families["pgpreflight_rule_status"]?.samples.filter { $0.labels["rule"] == "tables.primary-key" } ?? []
        #expect(keyless.count == 2 && keyless.allSatisfy { $0.labels["database"] == database && $0.value == 1 }, "\(keyless)")
        #expect(families["pgpreflight_findings_new"]?.samples.first { $0.labels["rule"] == "tables.primary-key" }?.value == 2)

        // promtool, Prometheus' own checker, when it is installed (Debian: apt-get install prometheus).
        if let promtool = PrometheusText.promtool {
            let process = Process()
            process.executableURL = promtool
            process.arguments = ["check", "metrics"]
            let input = Pipe(), output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            process.standardError = output
            try process.run()
            input.fileHandleForWriting.write(Data(text.utf8))
            try input.fileHandleForWriting.close()
            let said = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "promtool check metrics: \(said)")
        }
    }

    @Test func theMetricsFolderIsMadeAndAPathThatCannotBeWrittenIsOneLineBeforeTheScan() throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "metrics_path")
        let directory = try temporaryDirectory("scan-metrics-path")
        defer { try? FileManager.default.removeItem(at: directory) }
        let inventory = directory.appendingPathComponent("inventory.yaml")
        try """
            servers:
              - name: shop
                source: "\(TestServers.pg15.connectionString())"
                target: "\(TestServers.pg18.connectionString())"
                databases: [\(database)]
            """.write(to: inventory, atomically: true, encoding: .utf8)
        let env = ["PGPREFLIGHT_RULES": try CLI.rules(in: directory, ["connectivity.source", "connectivity.target"]).path]
        let arguments = ["scan", "--inventory", inventory.path, "--reports", directory.appendingPathComponent("reports").path, "--fail-on", "never"]
        // The README's `--metrics fleet/pgpreflight.prom` beside a folder not made yet.
        let metrics = directory.appendingPathComponent("textfile/collector/pgpreflight.prom")
        let made = try CLI.run(arguments + ["--metrics", metrics.path], environment: env)
        #expect(made.code == 0, "\(made.output)")
        #expect(try PrometheusText.parse(String(contentsOf: metrics, encoding: .utf8))["pgpreflight_server_failed"]?.samples.count == 1)
        // Under a file: nothing can go there. One line, exit 2, and no server was scanned.
        let blocked = directory.appendingPathComponent("inventory.yaml/pgpreflight.prom")
        let bad = try CLI.run(arguments + ["--metrics", blocked.path], environment: env)
        #expect(bad.code == 2)
        #expect(bad.output == "pgpreflight: --metrics \(blocked.path): cannot create the folder \(inventory.path)\n")
        let folder = try CLI.run(arguments + ["--metrics", directory.path], environment: env)
        #expect(folder.code == 2 && folder.output.hasPrefix("pgpreflight: --metrics \(directory.path): a folder"), "\(folder.output)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("reports").path).filter { $0 != "history.sqlite" }.count == 1)
    }

    // MARK: Merging an older version's shards

    @Test func shardsWrittenByAnOlderVersionWithoutTagsMerge() throws {
        // Two shards as versions before tags wrote them (shard 0 also before the heat map's
        // families): summary.json plus each server's reports (Fixtures/older-shards/README.md).
        let fixture = TestServers.projectRoot.appendingPathComponent("Tests/ScanTests/Fixtures/older-shards")
        let directory = try temporaryDirectory("scan-merge-older")
        defer { try? FileManager.default.removeItem(at: directory) }
        let metrics = directory.appendingPathComponent("merged.prom")
        let merged = try CLI.run(["scan", "merge", fixture.appendingPathComponent("shard0").path, fixture.appendingPathComponent("shard1").path,
                                  "--reports", directory.path, "--metrics", metrics.path, "--fail-on", "never"])
        #expect(merged.code == 0, "\(merged.output)")
        let run = try CLI.reportsLine(merged.output)
        let summary = try CLI.summary(run)
        let servers = try #require(summary["servers"] as? [[String: Any]])
        #expect(servers.map { $0["name"] as? String } == ["orders-db", "crm-eu"])  // inventory order
        #expect(servers.allSatisfy { ($0["tags"] as? [String]) == [] })
        // The summary without families gets them from the server's report.
        #expect(servers[1]["families"] as? [String: String] == ["connectivity": "Succeeded", "tables": "Warning"])
        #expect(servers[0]["families"] as? [String: String] == ["connectivity": "Succeeded", "tables": "Warning"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: run.path).sorted() == [
            "crm-eu.html", "crm-eu.json", "crm-eu.junit.xml", "index.html",
            "orders-db.html", "orders-db.json", "orders-db.junit.xml", "summary.json"])
        let index = try String(contentsOf: run.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(index.contains("crm-eu") && index.contains("orders-db"))
        let prom = try PrometheusText.parse(String(contentsOf: metrics, encoding: .utf8))
        #expect(prom["pgpreflight_server_warnings"]?.samples.map(\.labels["tags"]) == ["", ""])
        #expect(merged.output.contains("2 servers, 3 new findings, 0 resolved"))
    }

    // MARK: Failover lists on the cancellable connect

    @Test func aFailoverListSkipsAHungFirstHostAndAHungListIsLetGoAtTheDeadline() async throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "failover")
        let hungFirst = try HungListener(), hungA = try HungListener(), hungB = try HungListener()
        defer { hungFirst.stop(); hungA.stop(); hungB.stop() }
        let directory = try temporaryDirectory("scan-failover")
        defer { try? FileManager.default.removeItem(at: directory) }
        let pg15 = TestServers.pg15
        let inventory = Inventory(servers: [
            // The first host accepts TCP and never answers: after its connect_timeout the second,
            // a real server, is tried, as libpq's failover does.
            Inventory.Server(name: "failover", source: "host=127.0.0.1,127.0.0.1 port=\(hungFirst.port),\(pg15.port) user=postgres connect_timeout=2",
                             target: TestServers.pg18.connectionString(), databases: [database], position: 0),
            // Both hosts hung, a connect_timeout far beyond the deadline: the deadline cancels the
            // attempt, which lets go of its connection then (a blocking PQconnectdb could not be
            // cancelled and would hold it for 900 s).
            Inventory.Server(name: "hung-pair", source: "host=127.0.0.1,127.0.0.1 port=\(hungA.port),\(hungB.port) user=postgres connect_timeout=900",
                             target: TestServers.pg18.connectionString(), position: 1),
        ])
        let rules = try RuleLoader.load(directories: [try CLI.rules(in: directory, ["connectivity.source", "connectivity.target"])])
        let summary = try await FleetScan(inventory: inventory, reportsDirectory: directory, parallel: 2, metricsFile: nil, serverDeadline: 120) { server in
            try! await ValidationEngine(request: ValidationRequest(source: try! ConnectionString(server.source), target: try! ConnectionString(server.target),
                                                                   databases: server.databases, rules: rules)).run().run
        }.run()
        // The deadline is generous: every session of the failover server's validation first waits
        // out the hung host's 2 s, and a clean-clone CI run here took more than 30 s for it.
        #expect(summary.servers.map(\.name) == ["failover", "hung-pair"])
        #expect(summary.servers[0].status == .succeeded, "\(summary.servers[0])")
        #expect(hungFirst.acceptedCount >= 1)
        #expect(summary.servers[1].status == .failed)
        #expect(summary.servers[1].problem?.hasPrefix("did not finish within 120 s") == true, "\(summary.servers[1])")
        #expect(hungA.acceptedCount >= 1 && hungB.acceptedCount == 0)  // still on the first host at the deadline
        // The scan waited for the abandoned attempt to end: nothing holds the hung hosts now.
        #expect(try eventually(30) { hungA.openConnections == 0 && hungFirst.openConnections == 0 },
                "connections still open: first \(hungFirst.openConnections), pair \(hungA.openConnections)")
    }
}

/// A strict reader of the Prometheus text exposition format (0.0.4), as the textfile collector
/// parses it: what a line may be, names, label escapes, one TYPE before a family's samples,
/// each family's samples together, no series twice.
enum PrometheusText {
    struct Sample { var labels: [String: String]; var value: Double }
    struct Family { var type: String?; var help: String?; var samples: [Sample] = [] }
    struct Invalid: Error, CustomStringConvertible { let description: String }

    static var promtool: URL? {
        let candidates = [ProcessInfo.processInfo.environment["PROMTOOL"]].compactMap { $0 }
            + (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/promtool" }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }.map { URL(fileURLWithPath: $0) }
    }

    static func parse(_ text: String) throws -> [String: Family] {
        guard text.hasSuffix("\n") else { throw Invalid(description: "the file does not end with a line feed") }
        let metricName = /[a-zA-Z_:][a-zA-Z0-9_:]*/
        let labelName = /[a-zA-Z_][a-zA-Z0-9_]*/
        var families: [String: Family] = [:]
        var order: [String] = []
        var seen = Set<String>()
        for (number, line) in text.dropLast().split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            func fail(_ why: String) -> Invalid { Invalid(description: "line \(number + 1): \(why): \(line)") }
            if line.hasPrefix("#") {
                let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
                guard words.count >= 3, words[0] == "#", ["HELP", "TYPE"].contains(words[1]) else { continue }  // a comment
                let name = String(words[2])
                guard (try? metricName.wholeMatch(in: name)) != nil else { throw fail("bad metric name") }
                if families[name]?.samples.isEmpty == false { throw fail("\(words[1]) after the family's samples") }
                if words[1] == "TYPE" {
                    guard words.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(words[3]) else { throw fail("bad type") }
                    guard families[name]?.type == nil else { throw fail("second TYPE") }
                    families[name, default: Family()].type = String(words[3])
                } else {
                    guard families[name]?.help == nil else { throw fail("second HELP") }
                    families[name, default: Family()].help = words.count == 4 ? String(words[3]) : ""
                }
                if !order.contains(name) { order.append(name) }
                continue
            }
            guard !line.isEmpty else { throw fail("empty line") }
            // name{labels} value
            var rest = Substring(line)
            guard let nameMatch = try metricName.prefixMatch(in: rest) else { throw fail("no metric name") }
            let name = String(nameMatch.output)
            rest = rest[nameMatch.range.upperBound...]
            var labels: [String: String] = [:]
            if rest.first == "{" {
                rest = rest.dropFirst()
                while rest.first != "}" {
                    guard let label = try labelName.prefixMatch(in: rest) else { throw fail("bad label name") }
                    let key = String(label.output)
                    rest = rest[label.range.upperBound...]
                    guard rest.hasPrefix("=\"") else { throw fail("expected =\" after \(key)") }
                    rest = rest.dropFirst(2)
                    var value = ""
                    while true {
                        guard let c = rest.first else { throw fail("unterminated label value") }
                        rest = rest.dropFirst()
                        if c == "\"" { break }
                        if c == "\n" { throw fail("raw line feed in a label value") }
                        if c == "\\" {
                            guard let escaped = rest.first else { throw fail("dangling backslash") }
                            rest = rest.dropFirst()
                            switch escaped {
                            case "\\": value.append("\\")
                            case "\"": value.append("\"")
                            case "n": value.append("\n")
                            default: throw fail("bad escape \\\(escaped)")
                            }
                        } else {
                            value.append(c)
                        }
                    }
                    guard labels.updateValue(value, forKey: key) == nil else { throw fail("label \(key) twice") }
                    if rest.first == "," { rest = rest.dropFirst() } else if rest.first != "}" { throw fail("expected , or }") }
                }
                rest = rest.dropFirst()
            }
            guard rest.first == " " else { throw fail("expected a space before the value") }
            let fields = rest.dropFirst().split(separator: " ", omittingEmptySubsequences: false)
            guard (1...2).contains(fields.count), let value = Double(fields[0]), fields.count == 1 || Int64(fields[1]) != nil else {
                throw fail("bad value")
            }
            guard families[name]?.type != nil else { throw fail("sample before its TYPE") }
            if order.last != name { throw fail("samples of \(name) not together") }
            let series = name + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{0}")
            guard seen.insert(series).inserted else { throw fail("series twice") }
            families[name]!.samples.append(Sample(labels: labels, value: value))
        }
        return families
    }
}
