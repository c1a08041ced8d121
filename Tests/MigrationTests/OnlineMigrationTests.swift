import Foundation
import LocalServers
@testable import Migration
import PostgresClient
import Testing
import TestSupport

/// `migrate --mode online` end to end, 15 → 18, with pgbench writing on two connections
/// through the copy and the streaming phase, then `cutover` from another process.
@Suite(.serialized) struct OnlineMigrationTests {
    /// A target of its own: one active migration per target, and other suites migrate into pg18.
    static let target: LocalServer = {
        let bin = LocalServer.binDirectory(major: 18, projectRoot: TestServers.projectRoot)!
        return try! LocalServer(major: 18, binDirectory: bin, settings: ["max_connections = 100"], name: "online-target")
    }()

    static let schema = """
        CREATE TABLE docs (id int PRIMARY KEY, small int NOT NULL, big text);
        ALTER TABLE docs ALTER big SET STORAGE EXTERNAL;
        INSERT INTO docs SELECT g, 0, repeat(md5(g::text), 2000) FROM generate_series(1, 20) g;
        CREATE TABLE notes (id serial PRIMARY KEY, body text);
        CREATE TABLE scratch (k int, v text);
        ALTER TABLE scratch REPLICA IDENTITY FULL;
        INSERT INTO scratch SELECT g, 'v' || g FROM generate_series(1, 100) g;
        """

    func pgbench(_ arguments: [String], database: String) -> pid_t {
        let bin = TestServers.pg15.binDirectory.appendingPathComponent("pgbench").path
        return try! LocalServer.spawnAttached([bin, "-h", "127.0.0.1", "-p", "\(TestServers.pg15.port)", "-U", "postgres"]
                                              + arguments + [database], quiet: true)
    }

    func prepareSource(prefix: String) throws -> String {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: prefix)
        #expect(LocalServer.wait(pgbench(["-i", "-s", "2", "-q"], database: database)) == 0)
        try TestServers.pg15.psql("ALTER TABLE pgbench_history REPLICA IDENTITY FULL;" + Self.schema, database: database)
        return database
    }

    func arguments(_ name: String, _ database: String, _ state: URL) -> [String] {
        ["migrate", name, "--mode", "online", "--source", TestServers.pg15.connectionString(), "--target", Self.target.connectionString(),
         "--database", database, "--state-dir", state.path, "--jobs", "2"]
    }

    func waitForCutoverTrigger(_ store: StateStore, _ name: String) throws -> Bool {
        try Fixtures.waitUntil(seconds: 120) { try store.migration(name)?.substate == .waitingForCutoverTrigger }
    }

    /// Until `pid` has recorded itself as the migration's runner.
    func waitForRunner(_ store: StateStore, _ name: String, _ pid: pid_t) throws -> Bool {
        try Fixtures.waitUntil(seconds: 60) { try store.runner(name)?.pid == Int(pid) }
    }

    func assertIdentical(_ database: String) throws {
        for sql in ["SELECT aid, bid, abalance FROM pgbench_accounts ORDER BY aid",
                    "SELECT tid, bid, tbalance FROM pgbench_tellers ORDER BY tid",
                    "SELECT bid, bbalance FROM pgbench_branches ORDER BY bid",
                    "SELECT tid, bid, aid, delta, mtime FROM pgbench_history ORDER BY mtime, tid, aid, delta",
                    "SELECT id, small, md5(big) FROM docs ORDER BY id",
                    "SELECT id, body FROM notes ORDER BY id",
                    "SELECT k, v FROM scratch ORDER BY k, v",
                    "SELECT last_value, is_called FROM notes_id_seq"] {
            let source = try Fixtures.listing(TestServers.pg15, database, sql)
            let target = try Fixtures.listing(Self.target, database, sql)
            #expect(source == target, "\(sql): \(source.count) rows on the source, \(target.count) on the target")
        }
    }

    func assertCaptureRemoved(_ database: String, name: String) throws {
        let source = try TestServers.connect(TestServers.pg15, database: database)
        defer { source.close() }
        let slot = "pgpreflight_" + name.replacingOccurrences(of: "-", with: "_")
        #expect(try source.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1 || '%'", slot).first?.int(0) == 0)
        #expect(try source.query("SELECT count(*) FROM pg_publication").first?.int(0) == 0)
    }

    /// pgoutput, and wal2json (what a 9.5/9.6 source gets) forced on 15.
    @Test(arguments: ["pgoutput", "wal2json"])
    func pgbenchDuringCopyAndStreamingThenCutover(plugin: String) throws {
        if plugin == "wal2json" { setenv("PGPREFLIGHT_OUTPUT_PLUGIN", "wal2json", 1) }
        defer { unsetenv("PGPREFLIGHT_OUTPUT_PLUGIN") }
        let database = try prepareSource(prefix: "online")
        let name = "online-\(plugin)-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let log = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)

        let writers = pgbench(["-c", "2", "-t", "1500", "-n"], database: database)  // through the copy and the streaming
        let migrate = Fixtures.spawn(arguments(name, database, state), output: log)
        #expect(try waitForCutoverTrigger(store, name), "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        let status = try #require(try store.status(name))
        #expect(status.databases.first?.latencySeconds != nil)

        // While streaming: a non-TOAST update on rows with large TOASTed values, a TRUNCATE,
        // inserts through a sequence.
        try TestServers.pg15.psql("""
            UPDATE docs SET small = small + 1 WHERE id <= 10;
            TRUNCATE scratch;
            INSERT INTO scratch VALUES (1, 'after truncate');
            INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 50) g;
            """, database: database)
        _ = LocalServer.wait(writers)

        let cutoverLog = state.appendingPathExtension("cutover.log")
        let cutover = Fixtures.spawn(["cutover", name, "--state-dir", state.path], output: cutoverLog)
        #expect(LocalServer.wait(cutover) == 0, "\((try? String(contentsOf: cutoverLog, encoding: .utf8)) ?? "")")
        #expect(LocalServer.wait(migrate) == 0, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        let done = try #require(try store.migration(name))
        #expect(done.state == .succeeded)
        #expect(done.substate == .completed)
        try assertIdentical(database)
        #expect(try Fixtures.listing(Self.target, database, "SELECT length(big) FROM docs WHERE id = 1") == ["64000"])
        try assertCaptureRemoved(database, name: name)
    }

    @Test func killedDuringStreamingResumesWithoutLossOrDuplicates() throws {
        let database = try prepareSource(prefix: "onlinekill")
        let name = "onkill-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let log = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)

        let first = Fixtures.spawn(arguments(name, database, state), output: log)
        #expect(try waitForCutoverTrigger(store, name), "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        let writers = pgbench(["-c", "2", "-t", "500", "-n"], database: database)
        usleep(1_500_000)
        kill(first, SIGKILL)  // mid-stream, mid-batch perhaps
        _ = LocalServer.wait(first)
        _ = LocalServer.wait(writers)
        try TestServers.pg15.psql("INSERT INTO notes (body) SELECT 'after the crash ' || g FROM generate_series(1, 20) g", database: database)

        let second = Fixtures.spawn(arguments(name, database, state), output: log)
        // The record still says WaitingForCutoverTrigger until the new process has started.
        #expect(try waitForRunner(store, name, second))
        #expect(try waitForCutoverTrigger(store, name), "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        let cutoverLog = state.appendingPathExtension("cutover.log")
        #expect(LocalServer.wait(Fixtures.spawn(["cutover", name, "--state-dir", state.path], output: cutoverLog)) == 0,
                "\((try? String(contentsOf: cutoverLog, encoding: .utf8)) ?? "")")
        #expect(LocalServer.wait(second) == 0, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        try assertIdentical(database)
        try assertCaptureRemoved(database, name: name)
    }

    /// kill -9 while a backlog is applied (issue 16: many source transactions per target
    /// transaction, sent grouped by table as multi-row statements, one batch in flight): the
    /// rerun resumes at the replication origin's position and the target equals the source
    /// row for row. pgbench_history has no key, so a transaction applied twice or skipped
    /// shows as a row too many or too few.
    @Test func killedDuringGroupedApplyOfABacklogResumesWithoutLossOrDuplicates() throws {
        let database = try prepareSource(prefix: "onlinegroup")
        let name = "ongroup-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let log = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)

        let first = Fixtures.spawn(arguments(name, database, state), output: log)
        #expect(try waitForCutoverTrigger(store, name), "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        // A backlog written while the apply is stopped, then applied batch after batch.
        kill(first, SIGSTOP)
        #expect(LocalServer.wait(pgbench(["-c", "2", "-t", "4000", "-n"], database: database)) == 0)
        let target = try TestServers.connect(Self.target, database: database)
        defer { target.close() }
        let source = try TestServers.connect(TestServers.pg15, database: database)
        defer { source.close() }
        let count = "SELECT count(*) FROM pgbench_history"
        let total = try source.query(count).first?.int(0) ?? 0
        let before = try target.query(count).first?.int(0) ?? 0
        kill(first, SIGCONT)
        var seen = before
        let deadline = Date().addingTimeInterval(120)
        while seen == before, Date() < deadline { seen = try target.query(count).first?.int(0) ?? 0 }
        kill(first, SIGKILL)  // once the first batches of the backlog are in
        _ = LocalServer.wait(first)
        let atKill = try target.query(count).first?.int(0) ?? 0
        #expect(atKill > before && atKill < total, "killed with \(atKill) of \(total) history rows on the target (\(before) before)")

        let second = Fixtures.spawn(arguments(name, database, state), output: log)
        #expect(try waitForRunner(store, name, second))
        #expect(try waitForCutoverTrigger(store, name), "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        let cutoverLog = state.appendingPathExtension("cutover.log")
        #expect(LocalServer.wait(Fixtures.spawn(["cutover", name, "--state-dir", state.path], output: cutoverLog)) == 0,
                "\((try? String(contentsOf: cutoverLog, encoding: .utf8)) ?? "")")
        #expect(LocalServer.wait(second) == 0, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        try assertIdentical(database)
        try assertCaptureRemoved(database, name: name)
    }

    // MARK: Issue 12

    /// Every table and materialized view of a database, each as the md5 of its rows' text in
    /// order, with its row count: equal listings mean equal contents, row for row.
    func contents(_ server: LocalServer, _ database: String) throws -> [String] {
        let conn = try TestServers.connect(server, database: database)
        defer { conn.close() }
        try conn.execute("SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'")
        let relations = try conn.query("""
            SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
              AND (c.relkind <> 'm' OR c.relispopulated)
            ORDER BY 1
            """).rows.compactMap { $0.string(0) }
        return try relations.map { relation in
            let row = try conn.query("SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM ONLY \(relation) t").first!
            return "\(relation) \(row.string(0)!) \(row.string(1)!)"
        }
    }

    func log(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

    func cutover(_ name: String, _ state: URL) -> (Int32, String) {
        let cutoverLog = state.appendingPathExtension("cutover-\(UUID().uuidString.prefix(6)).log")
        let code = LocalServer.wait(Fixtures.spawn(["cutover", name, "--state-dir", state.path, "--timeout", "300"], output: cutoverLog))
        return (code, log(cutoverLog))
    }

    /// pgbench's own tables: pgbench_history has no key (and no REPLICA IDENTITY FULL). Its
    /// INSERTs stream, UPDATE/DELETE on it keep working on the source, and the cutover copies it
    /// again; `--strict-keys` refuses it instead.
    @Test(arguments: ["pgoutput", "wal2json"])
    func tablesWithoutKeyStreamTheirInsertsAndAreCopiedAgainAtCutover(plugin: String) throws {
        if plugin == "wal2json" { setenv("PGPREFLIGHT_OUTPUT_PLUGIN", "wal2json", 1) }
        defer { unsetenv("PGPREFLIGHT_OUTPUT_PLUGIN") }
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "onlinekeyless")
        #expect(LocalServer.wait(pgbench(["-i", "-s", "2", "-q"], database: database)) == 0)
        try TestServers.pg15.psql("CREATE TABLE log_lines (at timestamptz DEFAULT now(), line text); "
                                  + "INSERT INTO log_lines (line) SELECT 'seed ' || g FROM generate_series(1, 100) g", database: database)
        let name = "onkeyless-\(plugin)-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)

        let strictLog = state.appendingPathExtension("strict.log")
        let strict = Fixtures.spawn(arguments(name + "-strict", database, state) + ["--strict-keys"], output: strictLog)
        #expect(LocalServer.wait(strict) != 0)
        #expect(log(strictLog).contains("pgbench_history"), "\(log(strictLog))")

        let writers = pgbench(["-c", "2", "-t", "1500", "-n"], database: database)  // through the copy and the streaming
        let migrate = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        // UPDATE and DELETE on a table without a key still work on the source while it is published.
        try TestServers.pg15.psql("""
            UPDATE pgbench_history SET delta = delta + 1000 WHERE ctid IN (SELECT ctid FROM pgbench_history LIMIT 20);
            DELETE FROM pgbench_history WHERE ctid IN (SELECT ctid FROM pgbench_history LIMIT 10);
            UPDATE log_lines SET line = line || ' changed' WHERE line LIKE 'seed 1%';
            DELETE FROM log_lines WHERE line = 'seed 2';
            INSERT INTO log_lines (line) VALUES ('streamed');
            """, database: database)
        _ = LocalServer.wait(writers)

        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(migrate, SIGTERM) }
        #expect(LocalServer.wait(migrate) == 0, "\(log(output))")
        #expect(try store.migration(name)?.state == .succeeded)
        let source = try contents(TestServers.pg15, database), target = try contents(Self.target, database)
        #expect(source == target)
        #expect(source.count == 5)
        try assertCaptureRemoved(database, name: name)
    }

    /// Materialized views (one reading another through a view) hold, after cutover, what the
    /// streamed data gives; one never populated stays so.
    @Test func materializedViewsAreRefreshedAtCutover() throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "onlinemv")
        try TestServers.pg15.psql("""
            CREATE TABLE sales (id int PRIMARY KEY, region text, amount numeric);
            INSERT INTO sales SELECT g, 'r' || (g % 3), g FROM generate_series(1, 30) g;
            CREATE MATERIALIZED VIEW totals AS SELECT region, sum(amount) AS total, count(*) AS n FROM sales GROUP BY region;
            CREATE VIEW big_totals AS SELECT * FROM totals WHERE total > 100;
            CREATE MATERIALIZED VIEW big_regions AS SELECT region FROM big_totals;
            CREATE MATERIALIZED VIEW never_filled AS SELECT count(*) FROM sales WITH NO DATA;
            """, database: database)
        let name = "onmv-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let migrate = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        try TestServers.pg15.psql("INSERT INTO sales SELECT g, 'new', 1000 FROM generate_series(31, 40) g; DELETE FROM sales WHERE id <= 5",
                                  database: database)
        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(migrate, SIGTERM) }
        #expect(LocalServer.wait(migrate) == 0, "\(log(output))")
        // What the views give on the source once refreshed there.
        try TestServers.pg15.psql("REFRESH MATERIALIZED VIEW totals; REFRESH MATERIALIZED VIEW big_regions", database: database)
        for sql in ["SELECT region, total, n FROM totals ORDER BY 1", "SELECT region FROM big_regions ORDER BY 1"] {
            #expect(try Fixtures.listing(TestServers.pg15, database, sql) == Fixtures.listing(Self.target, database, sql), "\(sql)")
        }
        #expect(try Fixtures.listing(Self.target, database, "SELECT relispopulated FROM pg_class WHERE relname = 'never_filled'") == ["f"])
        #expect(try Fixtures.listing(Self.target, database, "SELECT region FROM big_regions WHERE region = 'new'") == ["new"])
    }

    /// The migrator's peak memory while it applies one 300 000-row transaction (about 120 MB
    /// of row data) stays far below the transaction's size; status shows the pending bytes.
    @Test func aTransactionOf300000RowsIsAppliedWithBoundedMemory() throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "onlinebig")
        try TestServers.pg15.psql("CREATE TABLE wide (id int PRIMARY KEY, payload text)", database: database)
        let name = "onbig-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let migrate = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        func peakKB() -> Int {
            let status = (try? String(contentsOfFile: "/proc/\(migrate)/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        let before = peakKB()
        try TestServers.pg15.psql("INSERT INTO wide SELECT g, repeat(md5(g::text), 12) || g FROM generate_series(1, 300000) g",
                                  database: database)
        var pendingSeen = 0
        let applied = try Fixtures.waitUntil(seconds: 300) {
            pendingSeen = max(pendingSeen, (try store.status(name)?.databases.first?.pendingBytes) ?? 0)
            return try Fixtures.listing(Self.target, database, "SELECT count(*) FROM wide") == ["300000"]
        }
        #expect(applied, "\(log(output))")
        let after = peakKB()
        #expect(before > 0 && after - before < 80_000, "peak memory grew from \(before) kB to \(after) kB")
        #expect(pendingSeen > 1_000_000, "pending bytes seen: \(pendingSeen)")
        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(migrate, SIGTERM) }
        #expect(LocalServer.wait(migrate) == 0, "\(log(output))")
        #expect(try contents(TestServers.pg15, database) == contents(Self.target, database))
    }

    /// After kill -9: status says Interrupted, cutover refuses at once and says what to do; the
    /// rerun resumes and cuts over.
    @Test func statusSaysInterruptedAndCutoverRefusesWhenTheMigratorIsGone() throws {
        let database = try prepareSource(prefix: "onlinegone")
        let name = "ongone-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let first = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        #expect(try store.status(name)?.state == "WaitingForUserAction")
        kill(first, SIGKILL)
        _ = LocalServer.wait(first)
        try TestServers.pg15.psql("INSERT INTO notes (body) SELECT 'while gone ' || g FROM generate_series(1, 20) g", database: database)
        let status = try #require(try store.status(name))
        #expect(status.state == "Interrupted")
        #expect(status.message?.contains("rerun") == true)
        let started = Date()
        let (code, text) = cutover(name, state)
        #expect(code == 1)
        #expect(Date().timeIntervalSince(started) < 30)
        #expect(text.contains("not running"), "\(text)")

        let second = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForRunner(store, name, second))
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        #expect(try store.status(name)?.state == "WaitingForUserAction")
        let (again, againText) = cutover(name, state)
        #expect(again == 0, "\(againText)")
        if again != 0 { kill(second, SIGTERM) }
        #expect(LocalServer.wait(second) == 0, "\(log(output))")
        try assertIdentical(database)
        try assertCaptureRemoved(database, name: name)
    }

    /// DDL on the source while streaming: the stream stops naming the table and the statement
    /// to run on the target; once it is run there, the rerun resumes and cuts over.
    @Test func ddlOnTheSourceStopsStreamingWithTheStatementToRunThenResumes() throws {
        let database = try prepareSource(prefix: "onlineddl")
        let name = "onddl-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let first = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        try TestServers.pg15.psql("""
            INSERT INTO notes (body) VALUES ('before the change');
            ALTER TABLE notes ADD COLUMN tag text;
            INSERT INTO notes (body, tag) VALUES ('tagged', 'a tag');
            """, database: database)
        #expect(LocalServer.wait(first) != 0)
        // A column dropped on the source does not stop the stream (noticed; verified at cutover).
        let statement = #"ALTER TABLE "public"."notes" ADD COLUMN "tag" text;"#
        #expect(log(output).contains(statement), "\(log(output))")
        try Self.target.psql(statement, database: database)

        let second = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForRunner(store, name, second))
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        // A table created on the source: the stream stops until the target has it too.
        try TestServers.pg15.psql("CREATE TABLE added (id int PRIMARY KEY, v text); INSERT INTO added VALUES (1, 'one'), (2, 'two')",
                                  database: database)
        #expect(LocalServer.wait(second) != 0)
        #expect(log(output).contains(#"table "public"."added" is on the source but not on the target"#), "\(log(output))")
        try Self.target.psql("CREATE TABLE added (id int PRIMARY KEY, v text)", database: database)

        let third = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForRunner(store, name, third))
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(third, SIGTERM) }
        #expect(LocalServer.wait(third) == 0, "\(log(output))")
        #expect(try Fixtures.listing(Self.target, database, "SELECT id, v FROM added ORDER BY id") == ["1 | one", "2 | two"])
        let sql = "SELECT id, body, tag FROM notes ORDER BY id"
        #expect(try Fixtures.listing(TestServers.pg15, database, sql) == Fixtures.listing(Self.target, database, sql))
        #expect(try contents(TestServers.pg15, database) == contents(Self.target, database))
    }
}
