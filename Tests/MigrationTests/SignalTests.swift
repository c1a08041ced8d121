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
