import Foundation
import LocalServers
import PostgresClient
import Scanning
import Testing
import TestSupport
import Validation

/// Issue 17: object-level "what got worse", isolation of bad and hung servers, shards and their
/// merge, a shared PostgreSQL history. Real servers; the CLI runs as separate processes.
@Suite struct FleetDiffShardTests {
    typealias Finding = ScanHistory.Finding

    // MARK: Object-level diff

    @Test func aNewTableWithoutKeyIsNewThoughTheRuleWasAlreadyWarning() async throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "diff")
        let source = try TestServers.connect(TestServers.pg15, database: database)
        defer { source.close() }
        try source.execute("CREATE TABLE keyless_old (a int); CREATE TABLE keyed (id int PRIMARY KEY)")
        let directory = try temporaryDirectory("scan-diff")
        defer { try? FileManager.default.removeItem(at: directory) }
        let inventory = Inventory(servers: [Inventory.Server(name: "shop", source: TestServers.pg15.connectionString(),
                                                             target: TestServers.pg18.connectionString(), databases: [database])])
        let rules = try RuleLoader.load(directories: [try CLI.rules(in: directory, ["connectivity.source", "connectivity.target", "tables.primary-key"])])
        func scan(metrics: URL? = nil) async throws -> FleetScan.Summary {
            try await FleetScan(inventory: inventory, reportsDirectory: directory.appendingPathComponent("reports"), parallel: 1, metricsFile: metrics) { server in
                try! await ValidationEngine(request: ValidationRequest(source: try! ConnectionString(server.source), target: try! ConnectionString(server.target),
                                                                       databases: server.databases, rules: rules)).run().run
            }.run()
        }
        let pk = "tables.primary-key"
        let first = try await scan()
        #expect(first.servers[0].newFindings.filter { $0.rule == pk } == [Finding(rule: pk, database: database, object: "public.keyless_old", status: .warning)])

        // Overnight: the old keyless table gets a key, two new keyless tables appear. The rule
        // was Warning and stays Warning: only the object-level diff sees what changed.
        try source.execute("ALTER TABLE keyless_old ADD PRIMARY KEY (a); CREATE TABLE keyless_new (a int); CREATE TABLE \"Keyless Mixed\" (a int)")
        let metrics = directory.appendingPathComponent("scan.prom")
        let second = try await scan(metrics: metrics)
        let shop = second.servers[0]
        #expect(shop.newWarnings.isEmpty)  // rule level: nothing changed
        #expect(shop.newFindings.filter { $0.rule == pk } == [
            Finding(rule: pk, database: database, object: "public.\"Keyless Mixed\"", status: .warning),
            Finding(rule: pk, database: database, object: "public.keyless_new", status: .warning),
        ])
        #expect(shop.resolvedFindings.filter { $0.rule == pk } == [Finding(rule: pk, database: database, object: "public.keyless_old", status: .warning)])

        let run = URL(fileURLWithPath: second.directory)
        let summary = try CLI.summary(run)
        #expect(summary["newFindings"] as? Int == shop.newFindings.count)
        #expect(summary["resolvedFindings"] as? Int == shop.resolvedFindings.count)
        let entry = try #require((summary["servers"] as? [[String: Any]])?.first)
        let objects = (entry["newFindings"] as? [[String: Any]])?.compactMap { $0["object"] as? String }
        #expect(objects?.contains("public.keyless_new") == true)
        #expect((entry["resolvedFindings"] as? [[String: Any]])?.contains { $0["object"] as? String == "public.keyless_old" } == true)
        let index = try String(contentsOf: run.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(index.contains("<code>public.keyless_new</code>") && index.contains("<code>public.keyless_old</code>"))
        #expect(index.contains("<code>public.&quot;Keyless Mixed&quot;</code>"))
        // The heat map: servers × rule families, the worst status of each.
        #expect((entry["families"] as? [String: String]) == ["connectivity": "Succeeded", "tables": "Warning"])
        #expect(index.contains("<td class=\"cell Warning\" title=\"shop · tables: Warning\"></td>"))
        let prom = try String(contentsOf: metrics, encoding: .utf8)
        #expect(prom.contains("pgpreflight_findings_new{rule=\"tables.primary-key\"} 2\n"))
        #expect(prom.contains("pgpreflight_findings_resolved{rule=\"tables.primary-key\"} 1\n"))
        #expect(prom.contains("pgpreflight_findings_new{rule=\"connectivity.source\"} 0\n"))  // every rule has a line
    }

    @Test func failOnNewExitsOneOnlyWhenSomethingIsNew() throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "gate")
        let source = try TestServers.connect(TestServers.pg15, database: database)
        defer { source.close() }
        try source.execute("CREATE TABLE keyless (a int)")
        let directory = try temporaryDirectory("scan-gate")
        defer { try? FileManager.default.removeItem(at: directory) }
        let inventory = directory.appendingPathComponent("inventory.yaml")
        try """
            servers:
              - name: shop
                source: "\(TestServers.pg15.connectionString())"
                target: "\(TestServers.pg18.connectionString())"
                databases: [\(database)]
            """.write(to: inventory, atomically: true, encoding: .utf8)
        let env = ["PGPREFLIGHT_RULES": try CLI.rules(in: directory, ["connectivity.source", "connectivity.target", "tables.primary-key"]).path]
        let arguments = ["scan", "--inventory", inventory.path, "--reports", directory.appendingPathComponent("reports").path]
        // First scan: everything is new. The default gate (Failed) passes: the finding is a Warning.
        #expect(try CLI.run(arguments + ["--fail-on", "new"], environment: env).code == 1)
        let unchanged = try CLI.run(arguments + ["--fail-on", "new"], environment: env)
        #expect(unchanged.code == 0, "\(unchanged.output)")
        #expect(unchanged.output.contains("1 server, 0 new findings, 0 resolved"))
        try source.execute("CREATE TABLE keyless_too (a int)")
        let worse = try CLI.run(arguments + ["--fail-on", "new"], environment: env)
        #expect(worse.code == 1)
        #expect(worse.output.contains("shop: Warning, 0 failed, 1 warning (1 new finding)"))
        #expect(try CLI.run(arguments, environment: env).code == 0)  // --fail-on failed
        let bad = try CLI.run(arguments + ["--fail-on", "sometimes"], environment: env)
        #expect(bad.code == 2 && bad.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
    }

    // MARK: Isolation and deadlines

    @Test func badEntryAndHungServerFailAloneAndTheReportsAreWritten() throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "iso")
        let hung = try HungListener()
        defer { hung.stop() }
        let directory = try temporaryDirectory("scan-iso")
        defer { try? FileManager.default.removeItem(at: directory) }
        let inventory = directory.appendingPathComponent("inventory.yaml")
        try """
            servers:
              - name: good
                source: "\(TestServers.pg15.connectionString())"
                target: "\(TestServers.pg18.connectionString())"
                databases: [\(database)]
              - name: no-secret
                source: "host=127.0.0.1 user=x password=${SCAN_TEST_UNSET_VARIABLE}"
                target: "\(TestServers.pg18.connectionString())"
              - name: hung
                source: "host=127.0.0.1 port=\(hung.port) user=postgres"
                target: "\(TestServers.pg18.connectionString())"
              - name: malformed
                source: "host=127.0.0.1 'unterminated"
                target: "\(TestServers.pg18.connectionString())"
            """.write(to: inventory, atomically: true, encoding: .utf8)
        let env = ["PGPREFLIGHT_RULES": try CLI.rules(in: directory, ["connectivity.source", "connectivity.target", "tables.primary-key"]).path]
        let started = Date()
        let result = try CLI.run(["scan", "--inventory", inventory.path, "--reports", directory.appendingPathComponent("reports").path,
                                  "--server-timeout", "2", "--parallel", "4"], environment: env)
        let elapsed = Date().timeIntervalSince(started)
        #expect(result.code == 1, "\(result.output)")
        // The hung server costs its connect timeout (2 s), not the 60 s default nor forever.
        #expect(elapsed < 30, "took \(elapsed) s")
        let run = try CLI.reportsLine(result.output)
        let servers = try #require(try CLI.summary(run)["servers"] as? [[String: Any]])
        func server(_ name: String) -> [String: Any]? { servers.first { $0["name"] as? String == name } }
        #expect(servers.map { $0["name"] as? String } == ["good", "no-secret", "hung", "malformed"])  // inventory order
        #expect(server("good")?["status"] as? String == "Succeeded")
        #expect(server("no-secret")?["status"] as? String == "Failed")
        #expect((server("no-secret")?["problem"] as? String)?.hasSuffix("inventory.yaml:7: environment variable SCAN_TEST_UNSET_VARIABLE is not set") == true)
        #expect(server("hung")?["status"] as? String == "Failed")
        #expect((server("hung")?["problem"] as? String)?.contains("timed out") == true, "\(server("hung") ?? [:])")
        #expect((server("malformed")?["problem"] as? String)?.contains("malformed connection string") == true)
        let files = try FileManager.default.contentsOfDirectory(atPath: run.path)
        for name in ["good", "no-secret", "hung", "malformed"] {
            #expect(files.contains("\(name).html") && files.contains("\(name).json") && files.contains("\(name).junit.xml"))
        }
        #expect(result.output.contains("no-secret: Failed, 1 failed, 0 warnings (1 new finding): "))
    }

    @Test func aStatementSlowerThanTheServerTimeoutIsCancelled() throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "slow")
        let directory = try temporaryDirectory("scan-slow")
        defer { try? FileManager.default.removeItem(at: directory) }
        let rules = try CLI.rules(in: directory, ["connectivity.source", "connectivity.target"])
        try """
            id: test.slow-probe
            title: A probe slower than the timeout
            description: Sleeps 30 s.
            scope: database
            servers: [source]
            modes: [offline, online]
            probe:
              runs_on: source
              sql: SELECT 'x' AS object FROM pg_sleep(30) WHERE random() < 0
            status:
              offline: Failed
              online: Failed
            message:
              Failed: "slow ({count})"
              Succeeded: "fast"
            remedy: none
            """.write(to: rules.appendingPathComponent("test.slow-probe.yaml"), atomically: true, encoding: .utf8)
        let inventory = directory.appendingPathComponent("inventory.yaml")
        try """
            servers:
              - name: slow
                source: "\(TestServers.pg15.connectionString())"
                target: "\(TestServers.pg18.connectionString())"
                databases: [\(database)]
            """.write(to: inventory, atomically: true, encoding: .utf8)
        let started = Date()
        let result = try CLI.run(["scan", "--inventory", inventory.path, "--reports", directory.appendingPathComponent("reports").path,
                                  "--server-timeout", "2"], environment: ["PGPREFLIGHT_RULES": rules.path])
        #expect(Date().timeIntervalSince(started) < 25)  // not the probe's 30 s
        let report = try String(contentsOf: try CLI.reportsLine(result.output).appendingPathComponent("slow.json"), encoding: .utf8)
        #expect(report.contains("statement timeout"), "\(report)")
    }

    @Test func aServerStillRunningAtItsDeadlineIsFailedAndTheOthersFinish() async throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "deadline")
        let hung = try HungListener()
        defer { hung.stop() }
        let directory = try temporaryDirectory("scan-deadline")
        defer { try? FileManager.default.removeItem(at: directory) }
        // connect_timeout far beyond the deadline: only the wall-clock deadline can end it before
        // the test's own bound. (Stopping the listener at the end closes the abandoned session.)
        let inventory = Inventory(servers: [
            Inventory.Server(name: "hung", source: "host=127.0.0.1 port=\(hung.port) user=postgres connect_timeout=900",
                             target: TestServers.pg18.connectionString(), position: 0),
            Inventory.Server(name: "good", source: TestServers.pg15.connectionString(), target: TestServers.pg18.connectionString(),
                             databases: [database], position: 1),
        ])
        let rules = try RuleLoader.load(directories: [try CLI.rules(in: directory, ["connectivity.source", "connectivity.target"])])
        let started = Date()
        let summary = try await FleetScan(inventory: inventory, reportsDirectory: directory, parallel: 2, metricsFile: nil, serverDeadline: 120) { server in
            try! await ValidationEngine(request: ValidationRequest(source: try! ConnectionString(server.source), target: try! ConnectionString(server.target),
                                                                   databases: server.databases, rules: rules)).run().run
        }.run()
        // The scan ended without waiting for the 900 s connection: the deadline failed the server.
        // (Not a speed bound: the margin covers a CI machine whose every thread is busy.)
        #expect(Date().timeIntervalSince(started) < 600)
        #expect(summary.servers.map(\.name) == ["hung", "good"])
        #expect(summary.servers[0].status == .failed)
        #expect(summary.servers[0].problem?.hasPrefix("did not finish within 120 s") == true)
        // The deadline is the same for both: generous, so that a busy machine's slow good server
        // is not failed by it (on this machine under load 20 it once took more than 45 s).
        #expect(summary.servers[1].status == .succeeded, "\(summary.servers[1].problem ?? "")")
        // The deadline cancelled the abandoned attempt: it let go of its connection (and its
        // thread) then, not at its 900 s connect timeout. (A generous bound, not a speed goal.)
        let released = Date().addingTimeInterval(120)
        while hung.openConnections > 0 && Date() < released { try await Task.sleep(nanoseconds: 100_000_000) }
        #expect(hung.acceptedCount >= 1)
        #expect(hung.openConnections == 0, "the abandoned validation still holds its connection to the hung server")
    }

    @Test func aHistoryThatGoesAwayStillLeavesTheReportsAndFailsTheScan() async throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "lost")
        let historyDatabase = try TestServers.freshDatabase(on: TestServers.pg18, prefix: "lost_history")
        let directory = try temporaryDirectory("scan-lost-history")
        defer { try? FileManager.default.removeItem(at: directory) }
        let history = try PostgresHistory(ConnectionString(TestServers.pg18.connectionString(database: historyDatabase)))
        #expect(try history.version() == 2)
        // The history server drops the session before the scan records anything.
        let admin = try TestServers.connect(TestServers.pg18)
        defer { admin.close() }
        _ = try admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", historyDatabase)
        let inventory = Inventory(servers: [Inventory.Server(name: "shop", source: TestServers.pg15.connectionString(),
                                                             target: TestServers.pg18.connectionString(), databases: [database])])
        let rules = try RuleLoader.load(directories: [try CLI.rules(in: directory, ["connectivity.source", "connectivity.target"])])
        await #expect { _ = try await FleetScan(inventory: inventory, reportsDirectory: directory, parallel: 1, metricsFile: nil, history: history) { server in
            try! await ValidationEngine(request: ValidationRequest(source: try! ConnectionString(server.source), target: try! ConnectionString(server.target),
                                                                   databases: server.databases, rules: rules)).run().run
        }.run() } throws: { "\($0)".hasPrefix("the history could not record 1 of 1 servers") }
        // The run's folder (the rules folder of this test sits beside it).
        let run = try #require(try FileManager.default.contentsOfDirectory(atPath: directory.path).first {
            FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).appendingPathComponent("summary.json").path)
        })
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent(run).path).sorted()
                == ["index.html", "shop.html", "shop.json", "shop.junit.xml", "summary.json"])
    }

    // MARK: Shards

    @Test func shardOfANameDependsOnItsNameOnly() {
        let names = (0..<1000).map { "db-\($0).example" }
        let three = names.map { Inventory.shard(of: $0, count: 3) }
        #expect(Set(three) == [0, 1, 2])
        #expect(three.filter { $0 == 0 }.count > 250 && three.filter { $0 == 0 }.count < 420)  // roughly even
        // One more shard moves about 1/4 of the servers, never between old shards.
        let four = names.map { Inventory.shard(of: $0, count: 4) }
        let moved = zip(three, four).filter { $0 != $1 }
        #expect(moved.allSatisfy { $0.1 == 3 })
        #expect(moved.count < 330)
    }

    /// An inventory of servers on both test servers plus two that fail, and the rules that do not
    /// depend on what other tests do at the same time.
    func fleet(in directory: URL, databases: [String]) throws -> (URL, [String: String]) {
        var entries: [String] = []
        for (i, database) in databases.enumerated() {
            for server in [TestServers.pg15, TestServers.pg18] {
                entries.append("""
                      - name: app\(i)-pg\(server.majorVersion)
                        source: "\(server.connectionString())"
                        target: "\(TestServers.pg18.connectionString())"
                        databases: [\(database)]
                    """)
            }
        }
        entries.append("""
              - name: unset-entry
                source: "host=127.0.0.1 password=${SCAN_TEST_UNSET_VARIABLE}"
                target: "\(TestServers.pg18.connectionString())"
              - name: closed-port
                source: "host=127.0.0.1 port=\(try LocalServer.freePort()) user=postgres"
                target: "\(TestServers.pg18.connectionString())"
            """)
        let file = directory.appendingPathComponent("inventory.yaml")
        try ("servers:\n" + entries.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        return (file, ["PGPREFLIGHT_RULES": try CLI.rules(in: directory, ["connectivity.source", "connectivity.target", "tables.primary-key", "objects.event-triggers"]).path])
    }

    /// What a user compares between two fleet reports (times and folders differ by nature).
    func comparable(_ summary: [String: Any]) -> [String] {
        var lines = ["status=\(summary["status"] ?? "") new=\(summary["newFindings"] ?? "") resolved=\(summary["resolvedFindings"] ?? "")"]
        for server in summary["servers"] as? [[String: Any]] ?? [] {
            let findings = { (key: String) in
                (server[key] as? [[String: Any]] ?? []).map { "\($0["rule"] ?? "")/\($0["database"] ?? "-")/\($0["object"] ?? "-")/\($0["status"] ?? "")" }
            }
            lines.append("\(server["name"] ?? "") #\(server["position"] ?? "") \(server["status"] ?? "") f=\(server["failed"] ?? "") w=\(server["warnings"] ?? "")"
                         + " new=\(findings("newFindings")) resolved=\(findings("resolvedFindings")) runs=\((server["trend"] as? [Any])?.count ?? -1)"
                         + " problem=\(server["problem"] != nil)")
        }
        return lines
    }

    func databasesWithKeylessTables(_ count: Int, prefix: String) throws -> [String] {
        try (0..<count).map { i in
            let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: prefix)
            let pg18 = try Connection.open(ConnectionString(TestServers.pg18.connectionString()))
            defer { pg18.close() }
            try pg18.execute("CREATE DATABASE \(try pg18.quoteIdentifier(database))")
            for server in [TestServers.pg15, TestServers.pg18] {
                let c = try TestServers.connect(server, database: database)
                defer { c.close() }
                try c.execute("CREATE TABLE keyless_\(i) (a int)")
            }
            return database
        }
    }

    func runShards(_ count: Int, inventory: URL, reports: (Int) -> URL, extra: [String] = [], environment: [String: String]) throws -> [URL] {
        let running = try (0..<count).map { i in
            try CLI.Running(["scan", "--inventory", inventory.path, "--reports", reports(i).path, "--shard", "\(i)/\(count)", "--fail-on", "never"] + extra,
                            environment: environment)
        }
        let results = running.map { $0.wait() }  // every process waited for, whatever fails
        return try results.map { code, output in
            #expect(code == 0, "\(output)")
            return try CLI.reportsLine(output)
        }
    }

    @Test func threeShardProcessesMergeIntoTheReportOfOneRun() throws {
        let directory = try temporaryDirectory("scan-shards")
        defer { try? FileManager.default.removeItem(at: directory) }
        let databases = try databasesWithKeylessTables(3, prefix: "shard")
        let (inventory, env) = try fleet(in: directory, databases: databases)

        let single = try CLI.run(["scan", "--inventory", inventory.path, "--reports", directory.appendingPathComponent("single").path], environment: env)
        #expect(single.code == 1)  // the unset entry and the closed port are Failed
        let singleRun = try CLI.reportsLine(single.output)

        let shardRuns = try runShards(3, inventory: inventory, reports: { directory.appendingPathComponent("shard\($0)") }, environment: env)
        var names: [String] = []
        for (i, run) in shardRuns.enumerated() {
            let summary = try CLI.summary(run)
            #expect(summary["shard"] as? String == "\(i)/3")
            names += (summary["servers"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        }
        #expect(names.count == 8 && Set(names).count == 8)  // a partition of the inventory

        let metrics = directory.appendingPathComponent("merged.prom")
        // Shard folders in any order; a reports folder stands for its latest run.
        let merged = try CLI.run(["scan", "merge", directory.appendingPathComponent("shard2").path, shardRuns[0].path, shardRuns[1].path,
                                  "--reports", directory.appendingPathComponent("merged").path, "--metrics", metrics.path])
        #expect(merged.code == 1, "\(merged.output)")
        let mergedRun = try CLI.reportsLine(merged.output)
        #expect(comparable(try CLI.summary(mergedRun)) == comparable(try CLI.summary(singleRun)))
        #expect(try CLI.summary(mergedRun)["shard"] == nil)
        let fm = FileManager.default
        #expect(try fm.contentsOfDirectory(atPath: mergedRun.path).sorted() == (try fm.contentsOfDirectory(atPath: singleRun.path).sorted()))
        #expect(try fm.contentsOfDirectory(atPath: mergedRun.path).count == 8 * 3 + 2)
        let prom = try String(contentsOf: metrics, encoding: .utf8)
        #expect(prom.contains("pgpreflight_findings_new{rule=\"tables.primary-key\"} 6\n"))
        #expect(prom.contains("pgpreflight_rule_status{server=\"app0-pg15\",tags=\"\",database=\"\(databases[0])\",rule=\"tables.primary-key\"} 1"))

        // A missing shard is an error, not a smaller report.
        let incomplete = try CLI.run(["scan", "merge", shardRuns[0].path, shardRuns[1].path, "--reports", directory.appendingPathComponent("m2").path])
        #expect(incomplete.code == 2)
        #expect(incomplete.output == "pgpreflight: scan merge: shard 2/3 missing\n")
        let bad = try CLI.run(["scan", "--inventory", inventory.path, "--shard", "3/3"])
        #expect(bad.code == 2 && bad.output.contains("0 <= I < N"))
    }

    // MARK: Shared PostgreSQL history

    @Test func shardsWriteOnePostgreSQLHistoryAndReportAsTheSQLiteOne() throws {
        let directory = try temporaryDirectory("scan-pghistory")
        defer { try? FileManager.default.removeItem(at: directory) }
        let databases = try databasesWithKeylessTables(2, prefix: "hist")
        let (inventory, env) = try fleet(in: directory, databases: databases)
        let historyDatabase = try TestServers.freshDatabase(on: TestServers.pg18, prefix: "history")
        let history = TestServers.pg18.uri(database: historyDatabase)

        func night(_ n: Int) throws -> (single: URL, merged: URL) {
            let single = try CLI.run(["scan", "--inventory", inventory.path, "--reports", directory.appendingPathComponent("single").path,
                                      "--fail-on", "never"], environment: env)
            #expect(single.code == 0, "\(single.output)")
            let shards = try runShards(3, inventory: inventory, reports: { directory.appendingPathComponent("night\(n)-shard\($0)") },
                                       extra: ["--history", history], environment: env)
            let merged = try CLI.run(["scan", "merge"] + shards.map(\.path) + ["--reports", directory.appendingPathComponent("merged").path, "--fail-on", "never"])
            #expect(merged.code == 0, "\(merged.output)")
            return (try CLI.reportsLine(single.output), try CLI.reportsLine(merged.output))
        }
        let first = try night(1)
        #expect(comparable(try CLI.summary(first.merged)) == comparable(try CLI.summary(first.single)))
        // No SQLite file beside the shards' reports: the history is in PostgreSQL.
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("night1-shard0/history.sqlite").path))

        for server in [TestServers.pg15, TestServers.pg18] {
            let c = try TestServers.connect(server, database: databases[1])
            defer { c.close() }
            try c.execute("DROP TABLE keyless_1; CREATE TABLE keyless_later (a int)")
        }
        let second = try night(2)
        let mergedSecond = try CLI.summary(second.merged)
        #expect(comparable(mergedSecond) == comparable(try CLI.summary(second.single)))
        let app1 = try #require((mergedSecond["servers"] as? [[String: Any]])?.first { $0["name"] as? String == "app1-pg15" })
        #expect((app1["newFindings"] as? [[String: Any]])?.compactMap { $0["object"] as? String } == ["public.keyless_later"])
        #expect((app1["resolvedFindings"] as? [[String: Any]])?.compactMap { $0["object"] as? String } == ["public.keyless_1"])

        let c = try TestServers.connect(TestServers.pg18, database: historyDatabase)
        defer { c.close() }
        #expect(try c.query("SELECT string_agg(version::text, ',' ORDER BY version) AS v FROM pgpreflight_history.schema_migrations").first?.string("v") == "1,2")
        let runs = try c.query("SELECT server, count(*) AS n FROM pgpreflight_history.run GROUP BY server ORDER BY server").rows
        #expect(runs.count == 6 && runs.allSatisfy { $0.int("n") == 2 })  // every server, once a night
        #expect(try c.query("SELECT count(*) AS n FROM pgpreflight_history.finding WHERE object = 'public.keyless_later'").first?.int("n") == 2)
    }
}
