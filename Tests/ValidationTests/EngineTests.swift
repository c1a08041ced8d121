import Foundation
import LocalServers
import PostgresClient
import Reports
import Testing
import TestSupport
import Validation

/// The engine end to end against real servers: unreachable servers, missing databases,
/// secrets, read-only sessions, privilege errors and query cost.
@Suite(.serialized) struct EngineTests: EngineServerScaffolding {
    static let rules = RuleExamplesTests.rules

    let databasePrefix = "engine"

    @Test func unreachableTargetFailsConnectivityAndSkipsTargetRules() async throws {
        let (source, _) = try servers()
        let database = try createDatabase(source, "CREATE EXTENSION pgcrypto; CREATE TABLE t (id int)")
        defer { dropDatabase(source, database) }
        let closedPort = try LocalServer.freePort()
        let run = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString()),
            target: ConnectionString("host=127.0.0.1 port=\(closedPort) user=postgres"),
            databases: [database], mode: .online, rules: Self.rules))

        let connectivity = try #require(run.results.first { $0.rule == "connectivity.target" })
        #expect(connectivity.status == .failed)
        #expect(connectivity.message.contains("refused the connection"))
        #expect(connectivity.remedy.contains("listen_addresses"))
        let needingTarget = Self.rules.filter { $0.applies(to: .online) && $0.builtin == nil && $0.servers.contains(.target) }
        #expect(!needingTarget.isEmpty)
        #expect(connectivity.message.contains("\(needingTarget.count) rules that need the target were skipped"))
        for rule in needingTarget { #expect(!run.results.contains { $0.rule == rule.id }, "\(rule.id) should be left out") }
        // Rules that need only the source still run.
        #expect(run.results.contains { $0.rule == "extensions.not-migratable" && $0.database == database })
        #expect(run.results.first { $0.rule == "connectivity.source" }?.status == .succeeded)
        #expect(run.status == .failed)
        #expect(run.target.serverVersion == nil)
    }

    @Test func missingDatabaseIsAConnectivityFailureForIt() async throws {
        let (source, target) = try servers()
        let existing = try createDatabase(source)
        defer { dropDatabase(source, existing) }
        let run = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString()), target: ConnectionString(target.connectionString()),
            databases: [existing, "no_such_database"], rules: Self.rules))
        let failure = try #require(run.results.first { $0.rule == "connectivity.source" && $0.database == "no_such_database" })
        #expect(failure.status == .failed)
        #expect(failure.message.contains("does not exist on the source"))
        #expect(failure.remedy.contains(existing))
        #expect(!run.results.contains { $0.database == "no_such_database" && $0.rule != "connectivity.source" })
        #expect(run.results.contains { $0.database == existing && $0.rule == "extensions.available" })
        #expect(run.databases == [existing, "no_such_database"])
    }

    @Test func defaultSelectionSkipsSystemDatabases() async throws {
        let (source, target) = try servers()
        let database = try createDatabase(source)
        let closed = try createDatabase(source)
        try source.psql("ALTER DATABASE \(closed) WITH ALLOW_CONNECTIONS false")
        defer { dropDatabase(source, database); dropDatabase(source, closed) }
        let run = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString()), target: ConnectionString(target.connectionString()),
            rules: Self.rules))
        #expect(run.databases.contains(database))
        #expect(!run.databases.contains(closed))
        for system in ["postgres", "template0", "template1"] { #expect(!run.databases.contains(system)) }
        // Every applicable rule once per scope unit.
        for rule in Self.rules where rule.applies(to: .offline) {
            let count = run.results.filter { $0.rule == rule.id && ($0.database == nil || $0.database == database) }.count
            #expect(count == 1, "\(rule.id): \(count) results for one database")
        }
    }

    @Test func wrongPasswordAndMissingHBAEntry() async throws {
        let bin = try #require(LocalServer.binDirectory(major: 15, projectRoot: TestServers.projectRoot))
        let server = try LocalServer(major: 15, binDirectory: bin, settings: ["password_encryption = 'scram-sha-256'"],
                                     hbaLines: ["host all secretive 127.0.0.1/32 scram-sha-256",
                                                "host all blocked 127.0.0.1/32 reject"], name: "engine-auth")
        defer { server.stop() }
        try server.psql("CREATE ROLE secretive LOGIN PASSWORD 'right-horse-battery'; CREATE ROLE blocked LOGIN")
        let (_, target) = try servers()
        let secret = "wrong-staple-guess-42"
        let run = try await validate(ValidationRequest(
            source: ConnectionString("postgresql://secretive:\(secret)@127.0.0.1:\(server.port)/postgres"),
            target: ConnectionString(target.connectionString()), rules: Self.rules))
        let connectivity = try #require(run.results.first { $0.rule == "connectivity.source" })
        #expect(connectivity.status == .failed)
        #expect(connectivity.message.contains("password authentication failed for user secretive"))
        let json = try Reports.render(run, as: .json)
        let console = try Reports.render(run, as: .console)
        #expect(!json.contains(secret))
        #expect(!console.contains(secret))
        #expect(json.contains("\"connectivity.source\""))

        let rejected = try await validate(ValidationRequest(
            source: ConnectionString(server.connectionString(user: "blocked")),
            target: ConnectionString(target.connectionString()), rules: Self.rules))
        let hba = try #require(rejected.results.first { $0.rule == "connectivity.source" })
        #expect(hba.status == .failed)
        #expect(hba.message.contains("reject line of pg_hba.conf"))
        #expect(hba.remedy.contains("host    postgres    blocked    127.0.0.1/32    scram-sha-256"))
    }

    /// A rule folder of its own, for rules that only the tests need.
    func customRules(_ files: [String: String]) throws -> [Rule] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (name, text) in files { try text.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        return try RuleLoader.load(directories: [directory])
    }

    @Test func sessionsAreReadOnlyAndProbeErrorsAreResults() async throws {
        let (source, target) = try servers()
        let database = try createDatabase(source)
        defer { dropDatabase(source, database) }
        try source.psql("DROP ROLE IF EXISTS catalog_reader; CREATE ROLE catalog_reader LOGIN")
        defer { try? source.psql("DROP ROLE IF EXISTS catalog_reader") }
        let rules = try customRules([
            "test.writes.yaml": """
                id: test.writes
                title: A probe that tries to write
                description: Validation sessions are read-only.
                scope: database
                probe:
                  sql: CREATE TABLE written_by_validation (id int)
                message: {Succeeded: "wrote"}
                """,
            "test.authid.yaml": """
                id: test.authid
                title: A probe that reads pg_authid
                description: Needs a superuser.
                scope: instance
                requires: "GRANT pg_read_all_data TO {source.user}"
                probe:
                  sql: SELECT rolname AS object FROM pg_authid WHERE rolpassword LIKE 'md5%'
                message: {Succeeded: "no md5"}
                """,
        ])
        let run = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString(user: "catalog_reader")),
            target: ConnectionString(target.connectionString()), databases: [database], rules: rules))
        let writes = try #require(run.results.first { $0.rule == "test.writes" })
        #expect(writes.status == .failed)
        #expect(writes.message.contains("could not check: cannot execute CREATE TABLE in a read-only transaction"))
        let authid = try #require(run.results.first { $0.rule == "test.authid" })
        #expect(authid.status == .warning)
        #expect(authid.message.contains("could not check: permission denied"))
        #expect(authid.remedy == "GRANT pg_read_all_data TO catalog_reader")
        let check = try TestServers.connect(source, database: database)
        defer { check.close() }
        #expect(try check.query("SELECT to_regclass('written_by_validation') IS NULL").first?.bool(0) == true)
    }

    /// A rule of the user's own without `requires:` that meets a permission error still says
    /// "could not check" with the grant the error names, not a generic sentence.
    @Test func aPermissionErrorOfARuleWithoutRequiresNamesTheGrant() async throws {
        let (source, target) = try servers()
        let database = try createDatabase(source, "CREATE TABLE secret_ledger (id int); CREATE TABLE \"Payroll 2026\" (id int)")
        defer { dropDatabase(source, database) }
        try source.psql("DROP ROLE IF EXISTS engine_grant_reader; CREATE ROLE engine_grant_reader LOGIN")
        defer { try? source.psql("DROP ROLE IF EXISTS engine_grant_reader") }
        let rules = try customRules([
            "test.ledger.yaml": """
                id: test.ledger
                title: A probe that reads a table the user may not read
                description: No requires.
                scope: database
                probe:
                  sql: SELECT id::text AS object FROM secret_ledger
                message: {Succeeded: "read"}
                """,
            "test.payroll.yaml": """
                id: test.payroll
                title: A probe that reads a table with a quoted name
                description: No requires.
                scope: database
                probe:
                  sql: SELECT id::text AS object FROM "Payroll 2026"
                message: {Succeeded: "read"}
                """,
            "test.preload.yaml": """
                id: test.preload
                title: A probe that reads a superuser-only setting
                description: No requires.
                scope: instance
                probe:
                  sql: SELECT current_setting('shared_preload_libraries') AS object
                message: {Succeeded: "read"}
                """,
        ])
        let run = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString(user: "engine_grant_reader")),
            target: ConnectionString(target.connectionString()), databases: [database], rules: rules))
        let ledger = try #require(run.results.first { $0.rule == "test.ledger" })
        #expect(ledger.status == .warning)
        #expect(ledger.message == "could not check: permission denied for table secret_ledger")
        #expect(ledger.remedy == "GRANT SELECT ON TABLE secret_ledger TO engine_grant_reader;")
        let payroll = try #require(run.results.first { $0.rule == "test.payroll" })
        #expect(payroll.remedy == "GRANT SELECT ON TABLE \"Payroll 2026\" TO engine_grant_reader;")
        let preload = try #require(run.results.first { $0.rule == "test.preload" })
        #expect(preload.status == .warning)
        #expect(preload.message.hasPrefix("could not check: "))
        #expect(preload.remedy == "GRANT pg_read_all_settings TO engine_grant_reader;")
    }

    @Test func queriesPerDatabaseDoNotGrowWithTables() async throws {
        let (source, target) = try servers()
        let small = try createDatabase(source, "CREATE TABLE t1 (id int)")
        let large = try createDatabase(source, "DO $$ BEGIN FOR i IN 1..300 LOOP EXECUTE format('CREATE TABLE t%s (id int, v text)', i); END LOOP; END $$")
        defer { dropDatabase(source, small); dropDatabase(source, large) }
        let outcome = try await ValidationEngine(request: ValidationRequest(
            source: ConnectionString(source.connectionString()), target: ConnectionString(target.connectionString()),
            databases: [small, large], mode: .online, rules: Self.rules)).run()
        let stats = outcome.statistics
        #expect((stats.queriesPerDatabase[small] ?? 0) > 0)
        #expect(stats.queriesPerDatabase[small] == stats.queriesPerDatabase[large])
        let databaseRules = Self.rules.filter { $0.scope == .database && $0.applies(to: .online) }.count
        // Session setup (a second source session's too: two databases leave free database slots),
        // the extension list, and one probe per rule (the target session too when needed).
        #expect((stats.queriesPerDatabase[small] ?? 0) <= databaseRules + 4)
    }

    @Test func latencyAboveTheThresholdWarnsWithTheFigure() async throws {
        let (source, target) = try servers()
        let rules = Self.rules.filter { $0.id.hasPrefix("connectivity.") }
        let run = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString()), target: ConnectionString(target.connectionString()),
            databases: [], rules: rules, latencyThresholdMs: 0))
        let latency = try #require(run.results.first { $0.rule == "connectivity.latency" })
        #expect(latency.status == .warning)
        #expect(latency.message.contains("source ") && latency.message.contains(" ms"))
        #expect(latency.objects.count == 2)
        #expect(latency.remedy.contains("close to the servers"))
    }

    /// Two PostgreSQL 15 servers with SSL (a self-signed certificate): encrypted connections
    /// pass connectivity.tls; a server that only accepts SSL names the cause when the client
    /// does not use it.
    @Test func tlsConnectionsAndSSLRequired() async throws {
        let bin = try #require(LocalServer.binDirectory(major: 15, projectRoot: TestServers.projectRoot))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("server.crt").path, key = directory.appendingPathComponent("server.key").path
        try LocalServer.run(["/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                             "-days", "1", "-subj", "/CN=127.0.0.1"])
        try LocalServer.run(["/bin/chmod", "600", key])
        if LocalServer.isRoot { try LocalServer.run(["/bin/chown", "-R", "postgres:postgres", directory.path]) }
        let ssl = ["ssl = on", "ssl_cert_file = '\(cert)'", "ssl_key_file = '\(key)'"]
        let source = try LocalServer(major: 15, binDirectory: bin, settings: ssl,
                                     hbaLines: ["hostnossl all plain_client 127.0.0.1/32 reject", "hostssl all plain_client 127.0.0.1/32 trust"],
                                     name: "tls-source")
        let target = try LocalServer(major: 15, binDirectory: bin, settings: ssl, name: "tls-target")
        defer { source.stop(); target.stop() }
        try source.psql("CREATE ROLE plain_client LOGIN")
        let rules = Self.rules.filter { $0.id.hasPrefix("connectivity.") }

        let encrypted = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString() + " sslmode=require"),
            target: ConnectionString(target.connectionString() + " sslmode=require"), databases: [], rules: rules))
        let tls = try #require(encrypted.results.first { $0.rule == "connectivity.tls" })
        #expect(tls.status == .succeeded)
        #expect(tls.message == "Both connections are encrypted (TLS)")

        let mixed = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString() + " sslmode=require"),
            target: ConnectionString(target.connectionString() + " sslmode=disable"), databases: [], rules: rules))
        let warning = try #require(mixed.results.first { $0.rule == "connectivity.tls" })
        #expect(warning.status == .warning)
        #expect(warning.message == "The connection to the target is not encrypted")
        #expect(warning.objects == ["target postgres@127.0.0.1:\(target.port)/postgres"])

        let refused = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString(user: "plain_client") + " sslmode=disable"),
            target: ConnectionString(target.connectionString()), databases: [], rules: rules))
        let connectivity = try #require(refused.results.first { $0.rule == "connectivity.source" })
        #expect(connectivity.status == .failed)
        #expect(connectivity.message.contains("reject line of pg_hba.conf"))
        #expect(connectivity.remedy.contains("sslmode=require"))
    }
}
