import Foundation
import LocalServers
@testable import Migration
import PostgresClient
import Testing
import TestSupport

/// Ctrl-C (SIGINT) and SIGTERM stop a running `migrate` cleanly: its statements are
/// cancelled, its children (pg_dump, pg_restore) end, its temporary files go, the store says
/// Interrupted, the exit code is the shell's (130 / 143), and the same command resumes.
extension MigrationTests {
    /// The processes whose parent is `pid`: (pid, command name).
    static func children(of pid: pid_t) -> [(pid: Int, name: String)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> (Int, String)? in
            guard let child = Int(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, Int(fields[1]) == Int(pid) else { return nil }
            return (child, String(stat[stat.index(after: open)..<close]))
        }
    }

    /// Processes whose command line mentions `text` (a pg_dump left behind names its database).
    static func processes(mentioning text: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry in
            guard Int(entry) != nil, let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty else { return nil }
            let line = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
            // Server backends name their database in their title ("postgres: user db …"): not ours.
            return line.contains(text) && !line.hasPrefix("postgres: ") ? line : nil
        }
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func aSignalInterruptsTheRunCleanlyAndTheSameCommandResumes(signal: Int32) async throws {
        let database = try Fixtures.makeSource(Self.lockedSource + """
            CREATE TABLE big (id int PRIMARY KEY, v text);
            INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 50000) g;
            """, prefix: "mig_sig\(signal)")
        // pg_dump waits for this lock: the run is mid-way (a child running, sessions open) for
        // as long as the test needs, whatever the machine's speed.
        let holder = try TestServers.connect(Fixtures.source, database: database)
        defer { holder.close() }
        try holder.execute("BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        let state = Fixtures.stateDirectory()
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-sigtmp-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: temporary) }
        let name = "sig\(signal)-\(database.replacingOccurrences(of: "_", with: "-"))"
        let arguments = ["migrate", name, "--source", Fixtures.source.connectionString(password: "secret-not-needed"),
                         "--target", Fixtures.target.connectionString(), "--database", database, "--state-dir", state.path,
                         "--force", "--lock-timeout", "0"] + Fixtures.targetWait
        // TMPDIR: the run's own temporary folder, to see that nothing of it is left.
        func start(_ log: URL) throws -> pid_t {
            try LocalServer.spawnAttached(["/usr/bin/env", "TMPDIR=\(temporary.path)", Fixtures.binary] + arguments, output: log)
        }
        let log = state.appendingPathExtension("log")
        let pid = try start(log)
        let waiting = try Fixtures.waitUntil(seconds: 300) {
            try Fixtures.listing(Fixtures.source, "postgres", """
                SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgpreflight migrate \(name)%' AND wait_event_type = 'Lock'
                """) != ["0"] && !Self.children(of: pid).isEmpty
        }
        #expect(waiting, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        #expect(Self.children(of: pid).contains { $0.name == "pg_dump" }, "\(Self.children(of: pid))")

        kill(pid, signal)
        let code = LocalServer.wait(pid)
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(code == 128 + signal, "\(output)")
        #expect(output.contains("interrupted; rerun the same command to resume"), "\(output)")
        #expect(Self.processes(mentioning: database).isEmpty, "\(Self.processes(mentioning: database))")
        let left = try FileManager.default.contentsOfDirectory(atPath: temporary.path)
        #expect(left.isEmpty, "\(left)")
        for server in [Fixtures.source, Fixtures.target] {
            #expect(try Fixtures.listing(server, "postgres",
                                         "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgpreflight migrate \(name)%'") == ["0"])
        }
        let status = try LocalServer.run([Fixtures.binary, "status", name, "--state-dir", state.path])
        #expect(status.contains("\(name): Interrupted"), "\(status)")

        try holder.execute("ROLLBACK")
        let rerunLog = state.appendingPathExtension("rerun.log")
        let rerun = LocalServer.wait(try start(rerunLog))
        let rerunOutput = (try? String(contentsOf: rerunLog, encoding: .utf8)) ?? ""
        #expect(rerun == 0, "\(rerunOutput)")
        #expect(rerunOutput.contains("migration \(name): Succeeded"), "\(rerunOutput)")
        let rows = "SELECT count(*), md5(string_agg(v, '' ORDER BY id)) FROM big"
        #expect(try Fixtures.listing(Fixtures.target, database, rows) == Fixtures.listing(Fixtures.source, database, rows))
    }
}

/// A signal outside the migrator (validation, its schema dry run, `verify`) ends the process at
/// once and leaves nothing behind: no scratch database, no child, no session, no temporary file.
extension MigrationTests {
    /// Sessions of the tool on `server` in a database named like `databasePattern`, but the test's `holder`.
    static func toolSessions(_ server: LocalServer, _ databasePattern: String, except holder: Int) throws -> [String] {
        try Fixtures.listing(server, "postgres", """
            SELECT datname || ' ' || application_name || ' ' || state FROM pg_stat_activity
            WHERE datname LIKE '\(databasePattern)' AND application_name LIKE 'pgpreflight%' AND pid <> \(holder)
            """)
    }

    /// `while`: "pg_dump" (a child waits for a lock the test holds on the source) or "restore"
    /// (the restore into the scratch database waits for a role the test is dropping on the target).
    @Test(arguments: ["pg_dump", "restore"])
    func sigtermDuringTheSchemaDryRunLeavesNoScratchDatabaseNoChildAndNoSession(while phase: String) throws {
        let role = "sigdry_owner_\(UUID().uuidString.prefix(8).lowercased())"
        for server in [Fixtures.source, Fixtures.target] { try server.psql("CREATE ROLE \(role)") }
        // No rows (no statistics, no size): validation's rules never wait on its lock, pg_dump does.
        let database = try Fixtures.makeSource("CREATE TABLE owned (id int PRIMARY KEY, v text); ALTER TABLE owned OWNER TO \(role);",
                                               prefix: "mig_sigdry_\(phase == "pg_dump" ? "dump" : "restore")")
        defer {
            try? Fixtures.source.psql("DROP DATABASE IF EXISTS \(database) WITH (FORCE)")
            for server in [Fixtures.source, Fixtures.target] { try? server.psql("DROP ROLE IF EXISTS \(role)") }
        }
        let holder = try TestServers.connect(phase == "pg_dump" ? Fixtures.source : Fixtures.target,
                                             database: phase == "pg_dump" ? database : "postgres")
        defer { holder.close() }
        // The restore's `ALTER TABLE owned OWNER TO role` waits for the lock DROP ROLE holds.
        try holder.execute(phase == "pg_dump" ? "BEGIN; LOCK TABLE owned IN ACCESS EXCLUSIVE MODE" : "BEGIN; DROP ROLE \(role)")
        let holderPid = holder.backendPID

        let state = Fixtures.stateDirectory()
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-sigdry-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: temporary) }
        let name = "sigdry-\(database.replacingOccurrences(of: "_", with: "-"))"
        let log = state.appendingPathExtension("log")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        let pid = try LocalServer.spawnAttached(
            ["/usr/bin/env", "TMPDIR=\(temporary.path)", Fixtures.binary, "validate-and-migrate", name,
             "--source", Fixtures.source.connectionString(password: "secret-not-needed"), "--target", Fixtures.target.connectionString(),
             "--database", database, "--state-dir", state.path, "--force"] + Fixtures.targetWait, output: log)
        func output() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        // The waiting session is blocked by the holder: the run is mid-way for as long as needed.
        var scratch: String?
        let waiting = try Fixtures.waitUntil(seconds: 180) {
            if phase == "pg_dump" {
                let blocked = try Fixtures.listing(Fixtures.source, "postgres", """
                    SELECT count(*) FROM pg_stat_activity WHERE datname = '\(database)' AND \(holderPid) = ANY(pg_blocking_pids(pid))
                    """)
                return blocked != ["0"] && Self.children(of: pid).contains { $0.name == "pg_dump" }
            }
            scratch = try Fixtures.listing(Fixtures.target, "postgres", """
                SELECT datname FROM pg_stat_activity WHERE datname LIKE 'pgpreflight\\_dry\\_run\\_%' AND \(holderPid) = ANY(pg_blocking_pids(pid))
                """).first
            return scratch != nil
        }
        #expect(waiting, "\(output())")
        kill(pid, SIGTERM)
        let code = LocalServer.wait(pid)
        #expect(code == 143, "\(output())")
        #expect(output().contains("interrupted (SIGTERM) during validation"), "\(output())")
        #expect(!output().contains("Fatal error"), "\(output())")

        // Still holding the lock: what waited for it was cancelled, not left waiting.
        if let scratch {
            #expect(try Fixtures.listing(Fixtures.target, "postgres", "SELECT count(*) FROM pg_database WHERE datname = '\(scratch)'") == ["0"])
        }
        #expect(Self.processes(mentioning: database).isEmpty, "\(Self.processes(mentioning: database))")
        let gone = try Fixtures.waitUntil(seconds: 30) {
            try Self.toolSessions(Fixtures.source, database, except: holderPid).isEmpty && (try Self.toolSessions(Fixtures.target, "pgpreflight\\_dry\\_run\\_%", except: holderPid).isEmpty)
        }
        let sessions = try Self.toolSessions(Fixtures.source, database, except: holderPid) + Self.toolSessions(Fixtures.target, "pgpreflight\\_dry\\_run\\_%", except: holderPid)
        #expect(gone, "\(sessions)")
        let left = try FileManager.default.contentsOfDirectory(atPath: temporary.path)
        #expect(left.isEmpty, "\(left)")
        try holder.execute("ROLLBACK")
    }

    @Test func sigintDuringVerifyCancelsItsQueriesAndExits130() throws {
        let database = try Fixtures.makeSource(Self.lockedSource, prefix: "mig_sigverify")
        try Fixtures.target.psql("CREATE DATABASE \(database)")
        try Fixtures.target.psql(Self.lockedSource, database: database)
        defer {
            for server in [Fixtures.source, Fixtures.target] { try? server.psql("DROP DATABASE IF EXISTS \(database) WITH (FORCE)") }
        }
        let holder = try TestServers.connect(Fixtures.source, database: database)
        defer { holder.close() }
        try holder.execute("BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        let holderPid = holder.backendPID
        let log = Fixtures.stateDirectory().appendingPathExtension("verify.log")
        let pid = try LocalServer.spawnAttached([Fixtures.binary, "verify", "--source", Fixtures.source.connectionString(),
                                                 "--target", Fixtures.target.connectionString(), "--database", database, "--checksums"],
                                                output: log)
        func output() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        let waiting = try Fixtures.waitUntil(seconds: 120) {
            try Fixtures.listing(Fixtures.source, "postgres", """
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = '\(database)' AND application_name LIKE 'pgpreflight%' AND \(holderPid) = ANY(pg_blocking_pids(pid))
                """) != ["0"]
        }
        #expect(waiting, "\(output())")
        kill(pid, SIGINT)
        let code = LocalServer.wait(pid)
        #expect(code == 130, "\(output())")
        #expect(output().contains("interrupted (SIGINT) during verify"), "\(output())")
        // The lock is still held: a query left waiting for it would stay.
        let gone = try Fixtures.waitUntil(seconds: 30) {
            try Self.toolSessions(Fixtures.source, database, except: holderPid).isEmpty && (try Self.toolSessions(Fixtures.target, database, except: holderPid).isEmpty)
        }
        let sessions = try Self.toolSessions(Fixtures.source, database, except: holderPid) + Self.toolSessions(Fixtures.target, database, except: holderPid)
        #expect(gone, "\(sessions)")
        try holder.execute("ROLLBACK")
    }
}
