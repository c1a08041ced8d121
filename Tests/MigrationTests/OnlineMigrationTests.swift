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
        #expect(try waitForCutoverTrigger(store, name), "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        let cutoverLog = state.appendingPathExtension("cutover.log")
        #expect(LocalServer.wait(Fixtures.spawn(["cutover", name, "--state-dir", state.path], output: cutoverLog)) == 0,
                "\((try? String(contentsOf: cutoverLog, encoding: .utf8)) ?? "")")
        #expect(LocalServer.wait(second) == 0, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        try assertIdentical(database)
        try assertCaptureRemoved(database, name: name)
    }
}
