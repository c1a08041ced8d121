import Foundation
import PostgresClient
import TestSupport
import Validation

/// Validation runs for the report tests. Reports are pure functions of a run, so the runs are
/// built here; their facts (versions, users, settings, offending tables) are read from the
/// real test servers so that they look exactly like what the engine produces.
enum Fixtures {
    /// A run with every status, instance and database results, objects and remedies.
    static func realRun() throws -> ValidationRun { try cachedRealRun.get() }

    private static let cachedRealRun = Result(catching: { try buildRealRun() })

    private static func buildRealRun() throws -> ValidationRun {
        let startedAt = Date()
        var results: [RuleResult] = []
        /// Times the body and records its result.
        func check(_ rule: String, _ title: String, database: String? = nil,
                   _ body: () throws -> (Status, String, String, [String])) rethrows {
            let start = Date()
            let (status, message, remedy, objects) = try body()
            results.append(RuleResult(rule: rule, title: title, scope: database == nil ? .instance : .database,
                                      database: database, status: status, message: message,
                                      remedy: status == .succeeded ? "" : remedy, objects: objects,
                                      documentation: "https://www.postgresql.org/docs/current/", startedAt: start, finishedAt: Date()))
        }

        let sourceServer = TestServers.pg15, targetServer = TestServers.pg18
        let source = try TestServers.connect(sourceServer)
        defer { source.close() }
        let target = try TestServers.connect(targetServer)
        defer { target.close() }

        // A database with the problems a real application database has.
        let shop = try TestServers.freshDatabase(on: sourceServer, prefix: "shop")
        let shopConnection = try TestServers.connect(sourceServer, database: shop)
        defer { shopConnection.close() }
        try shopConnection.execute("""
            CREATE TABLE customers (id int PRIMARY KEY, name text);
            CREATE TABLE events (id bigint, payload jsonb);
            CREATE TABLE "Audit" (at timestamptz, what text);
            CREATE TABLE "Order" (id int PRIMARY KEY);
            CREATE TABLE "order" (id int PRIMARY KEY);
            """)
        let billing = try TestServers.freshDatabase(on: sourceServer, prefix: "billing")

        func setting(_ connection: Connection, _ name: String) throws -> String {
            try connection.query("SELECT current_setting($1)", name).rows[0].string(0) ?? ""
        }

        try check("connectivity.source", "The source server accepts connections") {
            (.succeeded, "Connected to 127.0.0.1:\(sourceServer.port) as \(try setting(source, "session_authorization"))", "", [])
        }
        try check("connectivity.target", "The target server accepts connections") {
            (.succeeded, "Connected to 127.0.0.1:\(targetServer.port) as \(try setting(target, "session_authorization"))", "", [])
        }
        check("connectivity.tls", "Connections are encrypted") {
            source.isEncrypted ? (.succeeded, "The connection to the source is encrypted", "", [])
                : (.warning, "The connection to the source is not encrypted",
                   "Enable SSL on the source (ssl = on) and connect with sslmode=require or stricter.", [])
        }
        check("version.no-downgrade", "The target major version is not older than the source's") {
            (.succeeded, "Target \(target.serverVersion) is newer than source \(source.serverVersion)", "",
             ["Release notes of PostgreSQL 16", "Release notes of PostgreSQL 17", "Release notes of PostgreSQL 18"])
        }
        try check("extensions.preload", "Preloaded libraries are preloaded on the target") {
            let sourceLibraries = try setting(source, "shared_preload_libraries").split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }
            let targetLibraries = Set(try setting(target, "shared_preload_libraries").split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) })
            let missing = sourceLibraries.filter { !targetLibraries.contains($0) }
            let newValue = (targetLibraries.sorted() + missing).joined(separator: ",")
            return missing.isEmpty ? (.succeeded, "Every preloaded library is preloaded on the target", "", [])
                : (.failed, "\(missing.count) libraries the source preloads are not preloaded on the target: \(missing.joined(separator: ", "))",
                   "On the target, set:\n  shared_preload_libraries = '\(newValue)'\nthen restart the target server.", missing)
        }
        try check("replication.wal-level", "wal_level is logical") {
            let level = try setting(source, "wal_level")
            return level == "logical" ? (.succeeded, "wal_level is logical", "", [])
                : (.failed, "wal_level is \(level)", "ALTER SYSTEM SET wal_level = logical; then restart", [])
        }

        try check("tables.primary-key", "Tables have a primary key", database: shop) {
            let objects = try shopConnection.query("""
                SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind = 'r' AND n.nspname = 'public'
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')
                ORDER BY 1
                """).rows.compactMap { $0.string(0) }
            return (.warning, "\(objects.count) tables have no primary key",
                    objects.map { "ALTER TABLE \($0) REPLICA IDENTITY FULL;  -- or add a primary key" }.joined(separator: "\n"), objects)
        }
        try check("tables.case-collisions", "Table names do not differ only by case", database: shop) {
            let objects = try shopConnection.query("""
                SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind = 'r' AND lower(c.relname) IN (SELECT lower(relname) FROM pg_class WHERE relkind = 'r'
                      GROUP BY 1 HAVING count(*) > 1) ORDER BY 1
                """).rows.compactMap { $0.string(0) }
            return (.failed, "Tables differ only by case: \(objects.joined(separator: " <-> ")) & tools that fold case will mix them up",
                    "Rename one of them, e.g.:\nALTER TABLE public.\"Order\" RENAME TO \"order_archive\";", objects)
        }
        check("privileges.source-read", "The migration user can read everything", database: shop) {
            (.succeeded, "The migration user can read every schema, table and sequence", "", [])
        }
        check("tables.primary-key", "Tables have a primary key", database: billing) {
            (.succeeded, "Every table has a primary key", "", [])
        }
        check("privileges.source-read", "The migration user can read everything", database: billing) {
            (.succeeded, "The migration user can read every schema, table and sequence", "", [])
        }

        return ValidationRun(
            mode: .offline, startedAt: startedAt, finishedAt: Date(),
            source: ServerInfo(host: "127.0.0.1", port: sourceServer.port, user: "postgres", serverVersion: source.serverVersion),
            target: ServerInfo(host: "127.0.0.1", port: targetServer.port, user: "postgres", serverVersion: target.serverVersion),
            databases: [shop, billing], results: results)
    }

    static let suppressionReason = "\"Order\" is renamed to order_archive during cutover"
    static let expiredNotice = "the suppression of connectivity.tls expired on 2020-01-31 and no longer applies"

    /// `realRun` through a real policy file: the Failed case collision is suppressed (with a
    /// reason), the Warning about primary keys is in a baseline written from an earlier run, a
    /// suppression of connectivity.tls has expired (a notice), and the source is Azure.
    /// The Failed preload check and the TLS warning still count.
    static func acceptedRun() throws -> ValidationRun {
        let run = try realRun()
        let shop = run.databases[0]
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("reports-policy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var earlier = run
        earlier.results = run.results.filter { $0.rule == "tables.primary-key" && $0.status == .warning }
        try Baseline(run: earlier).encoded().write(to: directory.appendingPathComponent("baseline.json"), atomically: true, encoding: .utf8)
        let file = directory.appendingPathComponent(".pgpreflight.yaml")
        try """
            suppressions:
              - rule: tables.case-collisions
                database: \(shop)
                reason: '\(suppressionReason)'
              - rule: connectivity.tls
                reason: "development servers have no TLS"
                expires: 2020-01-31
            baseline: baseline.json
            """.write(to: file, atomically: true, encoding: .utf8)
        let policy = try Policy.load(file: file, knownRules: Set(run.results.map(\.rule)))
        var applied = policy.apply(to: run)
        applied.platform = "azure"
        return applied
    }

    /// A small run whose texts hold everything that must be escaped.
    static func hostileRun() -> ValidationRun {
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        func result(_ rule: String, _ database: String?, _ status: Status, _ message: String, remedy: String = "",
                    objects: [String] = []) -> RuleResult {
            RuleResult(rule: rule, title: "Title of \(rule) <b>", scope: database == nil ? .instance : .database,
                       database: database, status: status, message: message, remedy: remedy, objects: objects,
                       startedAt: now, finishedAt: now.addingTimeInterval(0.0123))
        }
        return ValidationRun(
            mode: .online, startedAt: now, finishedAt: now.addingTimeInterval(1.5),
            source: ServerInfo(host: "db.example.com", port: 5432, user: "migr<ator>", serverVersion: "15.8"),
            target: ServerInfo(host: "target.example.com", port: 5432, user: "azure_admin", serverVersion: "17.2"),
            databases: ["café € <shop>"],
            results: [
                result("connectivity.source", nil, .succeeded, "Connected"),
                result("tables.primary-key", "café € <shop>", .failed,
                       "Bad <script>alert(\"x\")</script> & 'quotes' ünïcødé ✓ \u{1}bell",
                       remedy: "ALTER TABLE public.\"Ü<&>\" REPLICA IDENTITY FULL; -- it's \"fine\"",
                       objects: ["public.\"Ü<&>\"", "public.`tick`"]),
                result("extensions.available", "café € <shop>", .warning, "pg_cron 1.6 < 1.4 & \"older\"",
                       remedy: "CREATE EXTENSION pg_cron VERSION '1.4';"),
            ])
    }

    /// `succeeded` Succeeded results over many databases, plus a few long Failed ones: a run
    /// too large for a pull-request comment.
    static func largeRun(succeeded: Int, failed: Int, objectsPerFailure: Int) -> ValidationRun {
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        let databases = (0..<max(1, succeeded / 20)).map { "tenant_\($0)" }
        var results: [RuleResult] = []
        for i in 0..<succeeded {
            results.append(RuleResult(rule: "rule.number-\(i % 20)", title: "Rule number \(i % 20)", scope: .database,
                                      database: databases[i / 20 % databases.count], status: .succeeded,
                                      message: "Nothing to report for check \(i)", remedy: "", objects: [],
                                      startedAt: now, finishedAt: now.addingTimeInterval(0.001)))
        }
        for i in 0..<failed {
            let objects = (0..<objectsPerFailure).map { "public.table_with_a_rather_long_name_\($0)" }
            results.append(RuleResult(rule: "tables.primary-key", title: "Tables have a primary key", scope: .database,
                                      database: databases[i % databases.count], status: .failed,
                                      message: "\(objectsPerFailure) tables have no primary key", 
                                      remedy: objects.map { "ALTER TABLE \($0) REPLICA IDENTITY FULL;" }.joined(separator: "\n"),
                                      objects: objects, startedAt: now, finishedAt: now.addingTimeInterval(0.002)))
        }
        return ValidationRun(mode: .online, startedAt: now, finishedAt: now.addingTimeInterval(12),
                             source: ServerInfo(host: "src", port: 5432, user: "u", serverVersion: "15.8"),
                             target: ServerInfo(host: "tgt", port: 5432, user: "u", serverVersion: "17.2"),
                             databases: databases, results: results)
    }
}
