import Foundation
import LocalServers
import PostgresClient
import Reports
import Testing
import TestSupport
import Validation

/// The shared database selection, the target's profile and policy exclusions, against real
/// servers (issue 13).
@Suite(.serialized) struct SelectionAndProfileTests: EngineServerScaffolding {
    static let rules = RuleExamplesTests.rules

    let databasePrefix = "selection"
    let clusterName = "selection-tests"

    @Test func selectionFromTheCatalogNamesEveryDatabaseLeftOut() {
        let catalog = [
            CatalogDatabase(name: "postgres", allowsConnections: true, isTemplate: false, connectionLimit: -1, quotedName: "postgres"),
            CatalogDatabase(name: "template0", allowsConnections: false, isTemplate: true, connectionLimit: -1, quotedName: "template0"),
            CatalogDatabase(name: "template1", allowsConnections: true, isTemplate: true, connectionLimit: -1, quotedName: "template1"),
            CatalogDatabase(name: "shop", allowsConnections: true, isTemplate: false, connectionLimit: -1, quotedName: "shop"),
            CatalogDatabase(name: "Archive", allowsConnections: false, isTemplate: false, connectionLimit: -1, quotedName: "\"Archive\""),
            CatalogDatabase(name: "half_dropped", allowsConnections: true, isTemplate: false, connectionLimit: -2, quotedName: "half_dropped"),
            CatalogDatabase(name: "skeleton", allowsConnections: true, isTemplate: true, connectionLimit: -1, quotedName: "skeleton"),
        ]
        let selection = DatabaseSelection(catalog: catalog, given: nil)
        #expect(selection.selected == ["shop"])
        #expect(Set(selection.leftOut.map(\.name)) == ["postgres", "template0", "template1", "Archive", "half_dropped", "skeleton"])
        let notices = selection.notices
        #expect(notices.contains { $0.hasPrefix("Databases left out as always: ") && $0.contains("postgres") && $0.contains("template0") })
        #expect(notices.contains { $0.contains("Database Archive is left out: it does not allow connections") && $0.contains("ALTER DATABASE \"Archive\" ALLOW_CONNECTIONS true;") })
        #expect(notices.contains { $0.contains("Database half_dropped is left out: it is invalid") && $0.contains("DROP DATABASE half_dropped;") })
        #expect(notices.contains { $0.contains("Database skeleton is left out: a template database") })

        let named = DatabaseSelection(catalog: catalog, given: ["shop", "half_dropped", "nowhere", "skeleton", "shop"])
        #expect(named.selected == ["shop", "skeleton"])
        #expect(named.missing == ["nowhere"])
        #expect(named.refused.map(\.name) == ["half_dropped"])
        #expect(named.refused.first?.remedy.hasPrefix("DROP DATABASE half_dropped;") == true)
    }

    @Test func defaultSelectionLeavesOutTemplatesAndClosedDatabasesWithNotices() async throws {
        let (source, target) = try servers()
        let open = try createDatabase(source, "CREATE TABLE t (id int PRIMARY KEY)")
        let closed = try createDatabase(source, "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1)")
        let template = try createDatabase(source)
        defer { dropDatabase(source, open); dropDatabase(source, closed); dropDatabase(source, template) }
        try source.psql("ALTER DATABASE \(closed) WITH ALLOW_CONNECTIONS false; ALTER DATABASE \(template) WITH IS_TEMPLATE true")

        let rules = Self.rules.filter { $0.id.hasPrefix("connectivity.source") || $0.id == "databases.not-migrated" }
        let run = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString()), target: ConnectionString(target.connectionString()), rules: rules))
        #expect(run.databases.contains(open))
        #expect(!run.databases.contains(closed) && !run.databases.contains(template))
        #expect(run.notices.contains { $0.hasPrefix("Database \(closed) is left out: it does not allow connections") })
        #expect(run.notices.contains { $0.hasPrefix("Database \(template) is left out: a template database") })
        let rule = try #require(run.results.first { $0.rule == "databases.not-migrated" })
        #expect(rule.status == .warning)
        #expect(Set(rule.objects) == [closed, template])

        // The same selection through the API the migrator and verify are to use.
        let connection = try TestServers.connect(source)
        defer { connection.close() }
        let selection = try DatabaseSelection.read(from: connection, given: nil)
        #expect(selection.selected == run.databases)
        #expect(selection.notices == run.notices)
    }

    @Test func aNamedInvalidDatabaseFailsWithDropDatabaseNotAConnectionProblem() async throws {
        let (source, target) = try servers()
        let invalid = try createDatabase(source)
        defer { dropDatabase(source, invalid) }
        try source.psql("UPDATE pg_database SET datconnlimit = -2 WHERE datname = '\(invalid)'")
        let run = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString()), target: ConnectionString(target.connectionString()),
            databases: [invalid], rules: Self.rules.filter { $0.id.hasPrefix("connectivity.") || $0.id == "tables.primary-key" }))
        let failure = try #require(run.results.first { $0.rule == "connectivity.source" && $0.database == invalid })
        #expect(failure.status == .failed)
        #expect(failure.message.contains("is invalid"))
        #expect(failure.remedy.hasPrefix("DROP DATABASE \(invalid);"))
        #expect(!failure.remedy.contains("host"))
        #expect(!run.results.contains { $0.rule == "tables.primary-key" && $0.database == invalid })
    }

    /// The same source against a self-managed target with a superuser, and against a target
    /// made to look like Azure (azure.extensions set, a non-superuser admin): statuses differ,
    /// and each report header names the profile.
    @Test func sameSourceDifferentStatusesPerTargetProfile() async throws {
        let (source, selfManaged) = try servers()
        let azureLike = try ExampleServers.server(major: 18, settings: ["cluster_name = 'engine-tests'", "azure.extensions = 'pg_stat_statements'"])
        try azureLike.psql("DROP ROLE IF EXISTS azure_admin_login; CREATE ROLE azure_admin_login LOGIN CREATEDB CREATEROLE")
        defer { try? azureLike.psql("DROP ROLE IF EXISTS azure_admin_login") }
        let database = try createDatabase(source, """
            CREATE FUNCTION note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'ddl'; END $$;
            CREATE EVENT TRIGGER note_ddl ON ddl_command_end EXECUTE FUNCTION note_ddl();
            CREATE TYPE pair AS (a int, b int);
            CREATE CAST (text AS pair) WITH INOUT;
            """)
        defer { dropDatabase(source, database) }
        try source.psql("DROP ROLE IF EXISTS azure_pg_admin; CREATE ROLE azure_pg_admin")
        defer { try? source.psql("DROP ROLE IF EXISTS azure_pg_admin") }
        let ids: Set<String> = ["objects.event-triggers", "objects.superuser-only", "roles.reserved-names", "connectivity.source", "connectivity.target"]
        let rules = Self.rules.filter { ids.contains($0.id) }

        let onSelfManaged = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString()), target: ConnectionString(selfManaged.connectionString()),
            databases: [database], rules: rules))
        let onAzure = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString()),
            target: ConnectionString(azureLike.connectionString(user: "azure_admin_login")), databases: [database], rules: rules))

        #expect(onSelfManaged.targetProfile == "self-managed-superuser")
        #expect(onAzure.targetProfile == "azure")
        for id in ["objects.event-triggers", "objects.superuser-only", "roles.reserved-names"] {
            #expect(onSelfManaged.results.first { $0.rule == id }?.status == .succeeded, "\(id) on the superuser target")
            #expect(onAzure.results.first { $0.rule == id }?.status == .failed, "\(id) on the Azure-like target")
        }
        let console = try Reports.render(onSelfManaged, as: .console)
        #expect(console.contains("Target profile: self-managed PostgreSQL, the migration user is a superuser"))
        let markdown = try Reports.render(onAzure, as: .markdown)
        #expect(markdown.contains("| **Target profile** | Azure Database for PostgreSQL |"))
        let json = try Reports.render(onAzure, as: .json)
        #expect(json.contains("\"targetProfile\" : \"azure\""))
    }

    /// A policy `exclude` renders the message and the remedy again: the count, the list and the
    /// statements leave the excluded objects out.
    @Test func policyExcludeDropsTheObjectFromCountAndRemedy() async throws {
        let (source, target) = try servers()
        let database = try createDatabase(source, "CREATE TABLE audit_2024 (at timestamptz); CREATE TABLE events (id int); CREATE TABLE notes (body text)")
        defer { dropDatabase(source, database) }
        let run = try await validate(ValidationRequest(
            source: ConnectionString(source.connectionString()), target: ConnectionString(target.connectionString()),
            databases: [database], rules: Self.rules.filter { $0.id == "tables.primary-key" }))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-policy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent(".pgpreflight.yaml")
        try "rules:\n  tables.primary-key:\n    exclude: [\"public.audit_*\"]\n".write(to: file, atomically: true, encoding: .utf8)
        let policy = try Policy.load(file: file, knownRules: Set(Self.rules.map(\.id)))
        let before = try #require(run.results.first { $0.rule == "tables.primary-key" })
        #expect(before.message.contains("(3)"))
        let applied = try #require(policy.apply(to: run).results.first { $0.rule == "tables.primary-key" })
        #expect(applied.objects == ["public.events", "public.notes"])
        #expect(applied.message.contains("(2): public.events, public.notes"))
        #expect(applied.message.hasSuffix("(1 excluded by policy)"))
        #expect(!applied.message.contains("audit_2024"))
        #expect(!applied.remedy.contains("audit_2024"))
        #expect(applied.remedy.contains("public.events"))
    }
}
