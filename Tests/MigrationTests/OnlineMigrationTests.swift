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
        try Fixtures.waitUntil(seconds: 300) { try store.migration(name)?.substate == .waitingForCutoverTrigger }
    }

    /// Until `pid` has recorded itself as the migration's runner.
    func waitForRunner(_ store: StateStore, _ name: String, _ pid: pid_t) throws -> Bool {
        try Fixtures.waitUntil(seconds: 300) { try store.runner(name)?.pid == Int(pid) }
    }

    /// A log file's text, for an expectation's message.
    func logText(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

    /// Asks for the cutover and waits for it and for the migrator: both must end with 0.
    func cutOver(_ name: String, state: URL, migrator: pid_t, log: URL, sourceLocation: SourceLocation = #_sourceLocation) {
        let cutoverLog = state.appendingPathExtension("cutover.log")
        #expect(LocalServer.wait(Fixtures.spawn(["cutover", name, "--state-dir", state.path], output: cutoverLog)) == 0,
                "\(logText(cutoverLog))", sourceLocation: sourceLocation)
        #expect(LocalServer.wait(migrator) == 0, "\(logText(log))", sourceLocation: sourceLocation)
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
        #expect(try waitForCutoverTrigger(store, name), "\(logText(log))")
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
        #expect(LocalServer.wait(migrate) == 0, "\(logText(log))")
        let done = try #require(try store.migration(name))
        #expect(done.state == .succeeded)
        #expect(done.substate == .completed)
        // The cutover's proof, in its output and in `status --format json`: every source
        // transaction the stream delivered was applied, up to the source's end position.
        let cutoverText = (try? String(contentsOf: cutoverLog, encoding: .utf8)) ?? ""
        #expect(cutoverText.contains("source transaction(s) received"), "\(cutoverText)")
        let json = try LocalServer.run([Fixtures.binary, "status", name, "--state-dir", state.path, "--format", "json"])
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let proof = try #require((decoded["databases"] as? [[String: Any]])?.first?["cutover"] as? [String: Any], "\(json)")
        #expect(proof["step"] as? String == "verified")
        #expect(proof["receivedTransactions"] as? Int == proof["appliedTransactions"] as? Int)
        let position = try #require((proof["appliedPosition"] as? String).flatMap(LSN.init))
        let end = try #require((proof["endLSN"] as? String).flatMap(LSN.init))
        #expect(position >= end)
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
        #expect(try waitForCutoverTrigger(store, name), "\(logText(log))")
        let writers = pgbench(["-c", "2", "-t", "500", "-n"], database: database)
        usleep(1_500_000)
        kill(first, SIGKILL)  // mid-stream, mid-batch perhaps
        _ = LocalServer.wait(first)
        _ = LocalServer.wait(writers)
        try TestServers.pg15.psql("INSERT INTO notes (body) SELECT 'after the crash ' || g FROM generate_series(1, 20) g", database: database)

        let second = Fixtures.spawn(arguments(name, database, state), output: log)
        // The record still says WaitingForCutoverTrigger until the new process has started.
        #expect(try waitForRunner(store, name, second))
        #expect(try waitForCutoverTrigger(store, name), "\(logText(log))")
        cutOver(name, state: state, migrator: second, log: log)
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
        #expect(try waitForCutoverTrigger(store, name), "\(logText(log))")
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
        #expect(try waitForCutoverTrigger(store, name), "\(logText(log))")
        cutOver(name, state: state, migrator: second, log: log)
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

    /// The target login is not a superuser: CREATEDB and CREATEROLE, as a managed service's
    /// admin. Without the grants the apply needs the run refuses before copying, naming them;
    /// objects owned on the source by a role it may not become on the target (the superuser)
    /// are refused before anything is written, each named with its owner; with the grants
    /// (SET on session_replication_role, EXECUTE on the replication origin functions in the
    /// database) and those objects given to another owner, an online migration with changes
    /// succeeds.
    @Test func aTargetAdminThatIsNotASuperuserMigratesOnline() throws {
        let pid = ProcessInfo.processInfo.processIdentifier
        let owner = "onnosu_owner_\(pid)", admin = "onnosu_admin_\(pid)"
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "onnosu")
        try TestServers.pg15.psql("CREATE ROLE \(owner) LOGIN; ALTER DATABASE \(database) OWNER TO \(owner)")
        try TestServers.pg15.psql("""
            SET ROLE \(owner);
            CREATE TABLE items (id int PRIMARY KEY, v text, n numeric);
            INSERT INTO items SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 500) g;
            CREATE TABLE events (at int, what text);
            INSERT INTO events SELECT g, 'seed' FROM generate_series(1, 50) g;
            CREATE SEQUENCE tickets;
            SELECT nextval('tickets') FROM generate_series(1, 7);
            """, database: database)
        // Owned by the source's superuser, which the target login may not become there.
        try TestServers.pg15.psql("""
            CREATE TABLE audit (id int PRIMARY KEY, what text);
            INSERT INTO audit VALUES (1, 'by postgres');
            CREATE FUNCTION audit_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM audit';
            """, database: database)
        // Created by a role that is only CREATEROLE: it may use the roles it creates (16+).
        try Self.target.psql("""
            CREATE ROLE \(admin) LOGIN CREATEDB CREATEROLE;
            ALTER ROLE \(admin) SET createrole_self_grant = 'set, inherit';
            """)
        let name = "onnosu-\(pid)"
        let state = Fixtures.stateDirectory()
        let store = try StateStore(directory: state)
        let arguments = ["migrate", name, "--mode", "online", "--source", TestServers.pg15.connectionString(),
                         "--target", Self.target.connectionString(user: admin), "--database", database, "--state-dir", state.path]
        let refused = state.appendingPathExtension("refused.log")
        #expect(LocalServer.wait(Fixtures.spawn(arguments, output: refused)) != 0)
        #expect(log(refused).contains("GRANT SET ON PARAMETER session_replication_role TO \"\(admin)\""), "\(log(refused))")
        #expect(try Fixtures.listing(Self.target, "postgres", "SELECT count(*) FROM pg_database WHERE datname = '\(database)'") == ["0"])

        // Objects owned by a role the login may not become on the target (its superuser): the
        // run refuses before writing anything, naming each object, its owner and the remedy.
        try Self.target.psql("GRANT SET ON PARAMETER session_replication_role TO \(admin)")
        let owners = state.appendingPathExtension("owners.log")
        #expect(LocalServer.wait(Fixtures.spawn(arguments, output: owners)) == 1)
        for expected in ["\(database): table public.audit (owner postgres)", "\(database): function public.audit_count() (owner postgres)",
                         "\(admin) may not SET ROLE postgres on the target (a superuser there)", "Nothing was changed on the target"] {
            #expect(log(owners).contains(expected), "\(log(owners))")
        }
        #expect(!log(owners).contains("(owner \(owner))"), "\(log(owners))")
        #expect(try Fixtures.listing(Self.target, "postgres", "SELECT count(*) FROM pg_database WHERE datname = '\(database)'") == ["0"])
        #expect(try Fixtures.listing(Self.target, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname = '\(owner)'") == ["0"])
        try TestServers.pg15.psql("ALTER TABLE audit OWNER TO \(owner); ALTER FUNCTION audit_count() OWNER TO \(owner)", database: database)

        // The replication origin functions are granted per database: the run creates the
        // target database, then stops before copying, naming what to grant there.
        let noOrigins = state.appendingPathExtension("origins.log")
        #expect(LocalServer.wait(Fixtures.spawn(arguments, output: noOrigins)) != 0)
        #expect(log(noOrigins).contains("GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text) TO \"\(admin)\""),
                "\(log(noOrigins))")
        #expect(try Fixtures.listing(Self.target, database, "SELECT count(*) FROM pg_class WHERE relname = 'items'") == ["0"])
        #expect(try Fixtures.listing(TestServers.pg15, database, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgpreflight_onnosu_\(pid)%'") == ["0"])

        // What a managed service grants its admin role.
        try Self.target.psql("""
            DO $$ DECLARE f regprocedure; BEGIN
                FOR f IN SELECT oid::regprocedure FROM pg_proc WHERE proname LIKE 'pg_replication_origin%' LOOP
                    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO \(admin)', f);
                END LOOP;
            END $$;
            """, database: database)
        let output = state.appendingPathExtension("log")
        let migrate = Fixtures.spawn(arguments, output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        try TestServers.pg15.psql("""
            UPDATE items SET v = v || ' changed', n = -n WHERE id % 7 = 0;
            DELETE FROM items WHERE id > 490;
            INSERT INTO items VALUES (1000, 'new', 'NaN');
            UPDATE events SET what = 'changed' WHERE at <= 10;
            INSERT INTO events VALUES (99, 'streamed');
            SELECT nextval('tickets');
            """, database: database)
        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(migrate, SIGTERM) }
        #expect(LocalServer.wait(migrate) == 0, "\(log(output))")
        #expect(try contents(TestServers.pg15, database) == contents(Self.target, database))
        let sequence = "SELECT last_value, is_called FROM tickets"
        #expect(try Fixtures.listing(TestServers.pg15, database, sequence) == Fixtures.listing(Self.target, database, sequence))
        try assertCaptureRemoved(database, name: name)
    }

    // MARK: Issue 14 (cutover run control)

    /// kill -9 at each step of the cutover, then the same migrate command again: it finishes
    /// the cutover (without a new request: writes are already stopped) and ends Succeeded with
    /// the target identical and the slot gone.
    @Test(.serialized, arguments: ["cutover-writes-stopped", "cutover-applied", "cutover-sequences", "cutover-slot-dropped"])
    func killedDuringCutoverTheRerunFinishesIt(step: String) throws {
        let database = try prepareSource(prefix: "oncutkill")
        let name = "oncutkill-\(step.dropFirst(8))-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        // The hook in this child's environment only (test cases may run side by side).
        let first = try LocalServer.spawnAttached(["/usr/bin/env", "PGPREFLIGHT_TEST_KILL_AT=\(step)", Fixtures.binary]
                                                  + arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        try TestServers.pg15.psql("""
            UPDATE docs SET small = small + 1 WHERE id <= 5;
            INSERT INTO notes (body) SELECT 'before cutover ' || g FROM generate_series(1, 30) g;
            DELETE FROM scratch WHERE k > 90;
            """, database: database)
        let (code, text) = cutover(name, state)
        #expect(code == 1)
        #expect(LocalServer.wait(first) != 0)  // killed at the step
        #expect(text.contains("rerun the same `pgpreflight migrate` command: it finishes the cutover"), "\(text)")
        #expect(try store.status(name)?.state == "Interrupted")

        let rerun = state.appendingPathExtension("rerun.log")
        let second = Fixtures.spawn(arguments(name, database, state), output: rerun)
        #expect(LocalServer.wait(second) == 0, "\(log(rerun))")
        #expect(log(rerun).contains(step == "cutover-slot-dropped" ? "finishing its cleanup" : "resuming the cutover"), "\(log(rerun))")
        #expect(try store.migration(name)?.state == .succeeded)
        try assertIdentical(database)
        try assertCaptureRemoved(database, name: name)
        let origins = try Fixtures.listing(Self.target, database, "SELECT count(*) FROM pg_replication_origin WHERE roname LIKE 'pgpreflight_oncutkill%'")
        #expect(origins == ["0"])
    }

    /// A `cutover` that gave up waiting (its migrator was stopped, SIGSTOP) withdraws its
    /// request: once the migrator runs again it keeps streaming, and only a new `cutover`
    /// finishes it.
    @Test func aCutoverThatTimedOutDoesNotCutOverLater() throws {
        let database = try prepareSource(prefix: "oncuttimeout")
        let name = "oncuttimeout-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let migrate = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        kill(migrate, SIGSTOP)
        let timedOutLog = state.appendingPathExtension("timeout.log")
        let timedOut = LocalServer.wait(Fixtures.spawn(["cutover", name, "--state-dir", state.path, "--timeout", "2"], output: timedOutLog))
        kill(migrate, SIGCONT)
        #expect(timedOut == 1)
        #expect(log(timedOutLog).contains("withdrawn"), "\(log(timedOutLog))")
        // Still streaming: a change made now reaches the target, and the migration still waits.
        try TestServers.pg15.psql("INSERT INTO notes (body) VALUES ('after the timeout')", database: database)
        #expect(try Fixtures.waitUntil(seconds: 300) {
            try Fixtures.listing(Self.target, database, "SELECT count(*) FROM notes WHERE body = 'after the timeout'") == ["1"]
        }, "\(log(output))")
        usleep(1_000_000)
        #expect(try store.migration(name)?.substate == .waitingForCutoverTrigger)
        #expect(try store.migration(name)?.state == .waitingForUserAction)

        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(migrate, SIGTERM) }
        #expect(LocalServer.wait(migrate) == 0, "\(log(output))")
        try assertIdentical(database)
    }

    /// A request left behind (the `cutover` command and the migrator it asked both killed
    /// before the migrator took it) belongs to that run: the rerun streams and waits for a
    /// new `cutover`.
    @Test func aCutoverRequestLeftByAKilledRunDoesNotArmTheRerun() throws {
        let database = try prepareSource(prefix: "oncutleft")
        let name = "oncutleft-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let first = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        kill(first, SIGSTOP)
        let requestLog = state.appendingPathExtension("request.log")
        let request = Fixtures.spawn(["cutover", name, "--state-dir", state.path, "--timeout", "300"], output: requestLog)
        #expect(try Fixtures.waitUntil(seconds: 300) { try store.cutoverRequestedOf(name) == Int(first) })
        kill(request, SIGKILL)
        _ = LocalServer.wait(request)
        kill(first, SIGKILL)
        kill(first, SIGCONT)
        _ = LocalServer.wait(first)

        let resumed = state.appendingPathExtension("resumed.log")
        let second = Fixtures.spawn(arguments(name, database, state), output: resumed)
        #expect(try waitForRunner(store, name, second))
        #expect(try waitForCutoverTrigger(store, name), "\(log(resumed))")
        try TestServers.pg15.psql("INSERT INTO notes (body) VALUES ('after the rerun')", database: database)
        #expect(try Fixtures.waitUntil(seconds: 300) {
            try Fixtures.listing(Self.target, database, "SELECT count(*) FROM notes WHERE body = 'after the rerun'") == ["1"]
        }, "\(log(resumed))")
        usleep(1_000_000)
        #expect(try store.migration(name)?.substate == .waitingForCutoverTrigger, "\(log(resumed))")
        #expect(!log(resumed).contains("cutover requested"), "\(log(resumed))")
        #expect(try store.cutoverRequestedOf(name) == Int(first))  // still the killed run's, never taken

        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(second, SIGTERM) }
        #expect(LocalServer.wait(second) == 0, "\(log(resumed))")
        try assertIdentical(database)
    }

    /// kill -9 while pgbench writes, and the same command again at once: the source's
    /// walsender of the killed run may still hold the slot; the rerun waits for it and goes on.
    @Test func resumingRightAfterKill9MidStreamWaitsForTheSlot() throws {
        let database = try prepareSource(prefix: "onquick")
        let name = "onquick-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let first = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        let writers = pgbench(["-c", "2", "-t", "1000", "-n"], database: database)
        usleep(1_000_000)
        kill(first, SIGKILL)
        _ = LocalServer.wait(first)
        let second = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForRunner(store, name, second))
        _ = LocalServer.wait(writers)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(second, SIGTERM) }
        #expect(LocalServer.wait(second) == 0, "\(log(output))")
        #expect(!log(output).contains("is active for PID"), "\(log(output))")
        try assertIdentical(database)
        try assertCaptureRemoved(database, name: name)
    }

    /// The killed run's walsender holding the slot when the rerun starts (here another
    /// replication session holds it for 4 s): the rerun says so, waits for it, and goes on.
    @Test func aRerunWaitsWhileTheSlotIsStillHeld() throws {
        let database = try prepareSource(prefix: "onheld")
        let name = "onheld-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let first = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        kill(first, SIGKILL)
        _ = LocalServer.wait(first)
        let slot = try #require(try store.slots(name).first)
        // No feedback is ever sent: the slot's confirmed position stays where the killed run left it.
        let holder = try ReplicationConnection.open(ConnectionString(TestServers.pg15.connectionString(database: database)))
        try holder.startReplication(slot: slot, start: .zero, options: [("proto_version", "1"),
                                                                         ("publication_names", "pgpreflight_" + name.replacingOccurrences(of: "-", with: "_"))])
        try TestServers.pg15.psql("INSERT INTO notes (body) SELECT 'while held ' || g FROM generate_series(1, 20) g", database: database)
        let resumed = state.appendingPathExtension("resumed.log")
        let second = Fixtures.spawn(arguments(name, database, state), output: resumed)
        #expect(Fixtures.waitUntil(seconds: 300) { log(resumed).contains("is still held by process") }, "\(log(resumed))")
        usleep(4_000_000)
        holder.close()
        #expect(try waitForCutoverTrigger(store, name), "\(log(resumed))")
        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(second, SIGTERM) }
        #expect(LocalServer.wait(second) == 0, "\(log(resumed))")
        #expect(log(resumed).contains("the slot is free"), "\(log(resumed))")
        try assertIdentical(database)
    }

    /// Every table has a key, so a publication FOR ALL TABLES would publish a table without a
    /// key created later for UPDATE and DELETE, and the source would refuse them. The
    /// publication lists the tables instead: the source's writes keep working, the stream says
    /// what to do, and the cutover copies the table whole.
    @Test func aKeylessTableCreatedWhileStreamingStaysWritableOnTheSource() throws {
        let database = try prepareSource(prefix: "onlate")
        let name = "onlate-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let first = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        // psql stops at the first error: each statement must pass on the source.
        try TestServers.pg15.psql("""
            CREATE TABLE late (k int, v text);
            INSERT INTO late SELECT g, 'v' || g FROM generate_series(1, 20) g;
            UPDATE late SET v = v || ' changed' WHERE k <= 5;
            DELETE FROM late WHERE k = 20;
            """, database: database)
        #expect(LocalServer.wait(first) != 0)
        #expect(log(output).contains(#"table "public"."late" is on the source but not on the target"#), "\(log(output))")
        try Self.target.psql("CREATE TABLE late (k int, v text)", database: database)

        let resumed = state.appendingPathExtension("resumed.log")
        let second = Fixtures.spawn(arguments(name, database, state), output: resumed)
        #expect(try waitForRunner(store, name, second))
        #expect(try waitForCutoverTrigger(store, name), "\(log(resumed))")
        try TestServers.pg15.psql("UPDATE late SET v = 'again' WHERE k = 6; DELETE FROM late WHERE k = 7; INSERT INTO late VALUES (30, 'new')",
                                  database: database)
        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(second, SIGTERM) }
        #expect(LocalServer.wait(second) == 0, "\(log(resumed))")
        #expect(log(resumed).contains("copied whole at cutover"), "\(log(resumed))")
        #expect(try contents(TestServers.pg15, database) == contents(Self.target, database))
        try assertCaptureRemoved(database, name: name)
    }

    // MARK: Issue 12 (session 3): the cutover's proof, new tables under wal2json

    /// The cutover proves itself: every COMMIT the stream delivered is applied, up to the
    /// source's end position. Here the stream stops short of it (the test hook
    /// PGPREFLIGHT_TEST_CUTOVER_STOP_EARLY: a stop condition gone wrong) on a resumed cutover
    /// that has changes to apply (written after the first run was killed at the cutover): the
    /// migration ends Failed naming what is missing, never Succeeded, and keeps the slot; a
    /// rerun without the hook streams those changes and cuts over to an identical target.
    @Test func aCutoverWhoseProofDisagreesEndsFailedNamingWhy() throws {
        let database = try prepareSource(prefix: "onproof")
        let name = "onproof-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        // The hooks in each child's environment only (test cases may run side by side).
        let first = try LocalServer.spawnAttached(["/usr/bin/env", "PGPREFLIGHT_TEST_KILL_AT=cutover-writes-stopped", Fixtures.binary]
                                                  + arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        let (killed, _) = cutover(name, state)
        #expect(killed == 1)
        #expect(LocalServer.wait(first) != 0)
        try TestServers.pg15.psql("""
            INSERT INTO notes (body) SELECT 'after the kill ' || g FROM generate_series(1, 30) g;
            UPDATE docs SET small = small + 100 WHERE id <= 5;
            """, database: database)

        let early = state.appendingPathExtension("early.log")
        let second = try LocalServer.spawnAttached(["/usr/bin/env", "PGPREFLIGHT_TEST_CUTOVER_STOP_EARLY=1", Fixtures.binary]
                                                   + arguments(name, database, state), output: early)
        #expect(LocalServer.wait(second) == 1, "\(log(early))")
        #expect(log(early).contains("cutover of \(database) incomplete"), "\(log(early))")
        #expect(log(early).contains("of the source's end"), "\(log(early))")
        #expect(!log(early).contains("Succeeded"), "\(log(early))")
        let failed = try #require(try store.migration(name))
        #expect(failed.state == .failed)
        #expect(failed.message?.contains("incomplete") == true, "\(failed.message ?? "")")
        // What the proof recorded: short of the end.
        let json = try LocalServer.run([Fixtures.binary, "status", name, "--state-dir", state.path, "--format", "json"])
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let proof = try #require((decoded["databases"] as? [[String: Any]])?.first?["cutover"] as? [String: Any], "\(json)")
        let position = try #require((proof["appliedPosition"] as? String).flatMap(LSN.init), "\(json)")
        let end = try #require((proof["endLSN"] as? String).flatMap(LSN.init), "\(json)")
        #expect(position < end)
        #expect(try Fixtures.listing(TestServers.pg15, database, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgpreflight_onproof%'") == ["1"])
        let afterKill = "SELECT count(*) FROM notes WHERE body LIKE 'after the kill %'"
        #expect(try Fixtures.listing(Self.target, database, afterKill) == ["0"])

        let rerun = state.appendingPathExtension("rerun.log")
        let third = Fixtures.spawn(arguments(name, database, state), output: rerun)
        #expect(try waitForRunner(store, name, third))
        #expect(try waitForCutoverTrigger(store, name), "\(log(rerun))")
        cutOver(name, state: state, migrator: third, log: rerun)
        #expect(try store.migration(name)?.state == .succeeded)
        #expect(try Fixtures.listing(Self.target, database, afterKill) == ["30"])
        try assertIdentical(database)
        try assertCaptureRemoved(database, name: name)
    }

    /// wal2json (every table decoded, no publication): a table without a key created on the
    /// source while streaming. One the target lacks stops the stream naming it; once created
    /// there the rerun resumes. One the target already has (created there first) streams its
    /// INSERTs at once; wal2json sends no UPDATE or DELETE of a table without a key, so both are
    /// copied whole at cutover, said in the output, and the target equals the source.
    @Test func aKeylessTableCreatedWhileStreamingWithWal2JSONIsCopiedWholeAtCutover() throws {
        let database = try prepareSource(prefix: "onlatewj")
        let name = "onlatewj-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let wal2json = ["/usr/bin/env", "PGPREFLIGHT_OUTPUT_PLUGIN=wal2json", Fixtures.binary]
        let first = try LocalServer.spawnAttached(wal2json + arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        try TestServers.pg15.psql("""
            CREATE TABLE late (k int, v text);
            INSERT INTO late SELECT g, 'v' || g FROM generate_series(1, 20) g;
            UPDATE late SET v = v || ' changed' WHERE k <= 5;
            DELETE FROM late WHERE k = 20;
            """, database: database)
        #expect(LocalServer.wait(first) != 0)
        #expect(log(output).contains(#"table "public"."late" is on the source but not on the target"#), "\(log(output))")
        try Self.target.psql("CREATE TABLE late (k int, v text)", database: database)

        let resumed = state.appendingPathExtension("resumed.log")
        let second = try LocalServer.spawnAttached(wal2json + arguments(name, database, state), output: resumed)
        #expect(try waitForRunner(store, name, second))
        #expect(try waitForCutoverTrigger(store, name), "\(log(resumed))")
        try Self.target.psql("CREATE TABLE later (k int, v text, n numeric)", database: database)
        try TestServers.pg15.psql("""
            UPDATE late SET v = 'again' WHERE k = 6; DELETE FROM late WHERE k = 7; INSERT INTO late VALUES (30, 'new');
            CREATE TABLE later (k int, v text, n numeric);
            INSERT INTO later SELECT g, 'w' || g, g / 7.0 FROM generate_series(1, 50) g;
            UPDATE later SET n = -n WHERE k % 3 = 0;
            DELETE FROM later WHERE k > 45;
            """, database: database)
        // The INSERTs of `later` reach the target while streaming (the rest waits for the cutover).
        #expect(try Fixtures.waitUntil(seconds: 60) {
            try Fixtures.listing(Self.target, database, "SELECT count(*) >= 50 FROM later") == ["t"]
        }, "\(log(resumed))")
        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(second, SIGTERM) }
        #expect(LocalServer.wait(second) == 0, "\(log(resumed))")
        for table in ["late", "later"] {
            #expect(log(resumed).contains(#""public"."\#(table)" copied again"#), "\(log(resumed))")
        }
        #expect(log(resumed).contains(#"table "public"."later" without a primary key or replica identity was created on the source during streaming"#),
                "\(log(resumed))")
        #expect(try contents(TestServers.pg15, database) == contents(Self.target, database))
        try assertCaptureRemoved(database, name: name)
    }

    /// Found by the fidelity suite's online run: what the stream cannot carry is copied again
    /// at cutover, whatever the source holds. A table without columns and one with only a
    /// generated column (no value an INSERT could carry: in no publication, copied whole), one
    /// without a key whose CHECK constraint was added NOT VALID over a row that breaks it (kept
    /// by the source, refused by a plain COPY) with an inheritance child, and an unlogged table
    /// (its writes are not in the WAL): the cutover ends Succeeded, the rows equal the source's
    /// and the constraint is still NOT VALID, on the child too.
    @Test func tablesTheStreamCannotCarryAreCopiedAgainAtCutover() throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "onodd")
        try TestServers.pg15.psql("""
            CREATE TABLE no_columns ();
            INSERT INTO no_columns SELECT FROM generate_series(1, 3);
            CREATE TABLE only_generated (g int GENERATED ALWAYS AS (7) STORED);
            INSERT INTO only_generated DEFAULT VALUES;
            CREATE TABLE checked (v int);
            CREATE TABLE checked_child (w text) INHERITS (checked);
            INSERT INTO checked VALUES (0), (1), (2);
            ALTER TABLE checked ADD CONSTRAINT positive CHECK (v > 0) NOT VALID;
            INSERT INTO checked_child VALUES (3, 'child');
            CREATE TABLE keyed (id int PRIMARY KEY, v text);
            INSERT INTO keyed VALUES (1, 'one');
            CREATE UNLOGGED TABLE scratchpad (id int PRIMARY KEY, v text);
            INSERT INTO scratchpad VALUES (1, 'one'), (2, 'two');
            """, database: database)
        let name = "onodd-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let migrate = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        try TestServers.pg15.psql("""
            INSERT INTO no_columns SELECT FROM generate_series(1, 2);
            INSERT INTO only_generated DEFAULT VALUES;
            INSERT INTO checked VALUES (5);
            DELETE FROM checked WHERE v = 1;
            UPDATE keyed SET v = 'uno';
            UPDATE scratchpad SET v = 'uno' WHERE id = 1; DELETE FROM scratchpad WHERE id = 2; INSERT INTO scratchpad VALUES (3, 'tres');
            """, database: database)
        let (code, text) = cutover(name, state)
        #expect(code == 0, "\(text)")
        if code != 0 { kill(migrate, SIGTERM) }
        #expect(LocalServer.wait(migrate) == 0, "\(log(output))")
        #expect(try store.migration(name)?.state == .succeeded)
        #expect(try contents(TestServers.pg15, database) == contents(Self.target, database))
        #expect(try Fixtures.listing(Self.target, database, "SELECT count(*) FROM no_columns") == ["5"])
        #expect(try Fixtures.listing(Self.target, database, "SELECT v FROM ONLY checked ORDER BY v") == ["0", "2", "5"])
        #expect(try Fixtures.listing(Self.target, database, "SELECT id, v FROM scratchpad ORDER BY id") == ["1 | uno", "3 | tres"])
        #expect(log(output).contains("1 unlogged table(s) (public.scratchpad)"), "\(log(output))")
        let constraints = "SELECT conrelid::regclass::text, convalidated, conislocal, coninhcount FROM pg_constraint WHERE conname = 'positive' ORDER BY 1"
        #expect(try Fixtures.listing(Self.target, database, constraints) == Fixtures.listing(TestServers.pg15, database, constraints))
        try assertCaptureRemoved(database, name: name)
    }

    /// A row deleted on the target behind the migration's back, then changed on the source
    /// (UPDATE, or DELETE): the change matches no row on the target, and the migration ends
    /// Failed naming the operation and the table (never Succeeded, never retried), the
    /// target's origin did not move past that source transaction, `status` says why, and a
    /// rerun stops at the same change instead of skipping it.
    @Test(arguments: ["pgoutput", "wal2json"], ["UPDATE", "DELETE"])
    func aChangeThatFindsTheTargetDifferentEndsTheMigrationFailed(plugin: String, operation: String) throws {
        if plugin == "wal2json" { setenv("PGPREFLIGHT_OUTPUT_PLUGIN", "wal2json", 1) }
        defer { unsetenv("PGPREFLIGHT_OUTPUT_PLUGIN") }
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "ondiverge")
        try TestServers.pg15.psql("CREATE TABLE acct (id int PRIMARY KEY, v text); INSERT INTO acct SELECT g, 'v' || g FROM generate_series(1, 10) g",
                                  database: database)
        let name = "ondiverge-\(plugin)-\(operation.lowercased())-\(ProcessInfo.processInfo.processIdentifier)"
        let state = Fixtures.stateDirectory()
        let output = state.appendingPathExtension("log")
        let store = try StateStore(directory: state)
        let slots = Migrator.publicationNames(migration: name)[0] + "_%"
        defer {
            // Failed keeps the slot and the origin for a rerun: this test drops them (the slot
            // once the walsender of the ended migrator lets go of it).
            _ = Fixtures.waitUntil(seconds: 30) {
                (try? TestServers.pg15.psql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE '\(slots)'",
                                            database: database)) != nil
            }
            try? TestServers.pg15.psql("DROP PUBLICATION IF EXISTS " + Migrator.publicationNames(migration: name).joined(separator: ", "), database: database)
            try? Self.target.psql("SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname LIKE '\(slots)'", database: database)
        }
        func originPosition() throws -> LSN? {
            try Fixtures.listing(Self.target, database, "SELECT pg_replication_origin_progress(roname, false) FROM pg_replication_origin WHERE roname LIKE '\(slots)'")
                .first.flatMap(LSN.init)
        }
        let first = Fixtures.spawn(arguments(name, database, state), output: output)
        #expect(try waitForCutoverTrigger(store, name), "\(log(output))")
        // A change that applies: the origin has a position.
        try TestServers.pg15.psql("INSERT INTO acct VALUES (11, 'v11')", database: database)
        #expect(try Fixtures.waitUntil(seconds: 60) { try Fixtures.listing(Self.target, database, "SELECT v FROM acct WHERE id = 11") == ["v11"] },
                "\(log(output))")
        let applied = try #require(try originPosition())

        try Self.target.psql("DELETE FROM acct WHERE id = 3", database: database)
        let before = try #require(try Fixtures.listing(TestServers.pg15, database, "SELECT pg_current_wal_lsn()").first.flatMap(LSN.init))
        try TestServers.pg15.psql(operation == "UPDATE" ? "UPDATE acct SET v = 'changed' WHERE id = 3" : "DELETE FROM acct WHERE id = 3",
                                  database: database)
        #expect(LocalServer.wait(first) != 0, "\(log(output))")
        let expected = #"\#(operation) on "public"."acct" matched 0 rows on the target (expected 1 row)"#
        for run in 1...2 {
            let record = try #require(try store.status(name))
            #expect(record.state == "Failed", "run \(run): \(log(output))")
            let message = record.message ?? ""
            #expect(message.contains(expected), "run \(run): \(message)")
            #expect(!message.contains("rerun the same command to resume"), "\(message)")
            let named = try #require(message.firstMatch(of: /committed at ([0-9A-F]+\/[0-9A-F]+)/).flatMap { LSN(String($0.1)) }, "\(message)")
            #expect(named > before)
            let position = try #require(try originPosition())
            #expect(position == applied && position <= before, "the origin is at \(position), the change after \(before)")
            let text = try LocalServer.run([Fixtures.binary, "status", name, "--state-dir", state.path])
            #expect(text.contains("Failed") && text.contains(expected), "\(text)")
            if run == 1 {
                let second = Fixtures.spawn(arguments(name, database, state), output: output)
                #expect(LocalServer.wait(second) != 0, "\(log(output))")
            }
        }
        #expect(try Fixtures.listing(Self.target, database, "SELECT id FROM acct WHERE id = 3").isEmpty)
    }
}
