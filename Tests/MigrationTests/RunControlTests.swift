import Foundation
import LocalServers
@testable import Migration
import PostgresClient
import Testing
import TestSupport

/// Runs blocked on the servers: a held lock fails the run naming the blocker (and a rerun
/// resumes), and a cancel stops statements that wait on a server.
extension MigrationTests {
    static let lockedSource = """
        CREATE TABLE free (id int PRIMARY KEY);
        INSERT INTO free SELECT generate_series(1, 100);
        CREATE TABLE locked (id int PRIMARY KEY, v text);
        INSERT INTO locked SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
        """

    @Test func aHeldLockFailsTheRunNamingTheBlockerAndARerunResumes() async throws {
        let database = try Fixtures.makeSource(Self.lockedSource, prefix: "mig_lock")
        let holder = try TestServers.connect(Fixtures.source, database: database)
        defer { holder.close() }
        try holder.execute("SET application_name = 'nightly batch'; BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        var options = try Fixtures.options("lock-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                           stateDirectory: Fixtures.stateDirectory(), force: true)  // the holder is a session on the source
        options.lockTimeoutSeconds = 5
        let started = Date()
        let outcome = await (try Migrator(options)).run()
        #expect(outcome.state == .failed)
        #expect(Date().timeIntervalSince(started) < 60)
        let message = outcome.message ?? ""
        #expect(message.contains("blocked by pid \(holder.backendPID)") && message.contains("nightly batch"), "\(message)")
        #expect(message.contains("rerun the same command"), "\(message)")

        try holder.execute("ROLLBACK")
        let resumed = await (try Migrator(options)).run()
        #expect(resumed.state == .succeeded, "\(resumed.message ?? "")")
        let rows = "SELECT count(*), md5(string_agg(v, '' ORDER BY id)) FROM locked"
        #expect(try Fixtures.listing(Fixtures.target, database, rows) == Fixtures.listing(Fixtures.source, database, rows))
    }

    @Test func cancelStopsARunThatWaitsOnTheServer() async throws {
        let database = try Fixtures.makeSource(Self.lockedSource, prefix: "mig_cancel")
        let holder = try TestServers.connect(Fixtures.source, database: database)
        defer { holder.close() }
        try holder.execute("BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        var options = try Fixtures.options("cancel-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                           stateDirectory: Fixtures.stateDirectory(), force: true)
        options.lockTimeoutSeconds = 0  // would wait forever
        let migrator = try Migrator(options)
        let run = Task { await migrator.run() }
        let waiting = try Fixtures.waitUntil(seconds: 300) {
            try Fixtures.listing(Fixtures.source, "postgres", """
                SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgpreflight migrate \(options.name)%' AND wait_event_type = 'Lock'
                """) != ["0"]
        }
        #expect(waiting)
        _ = try migrator.store.cancel(options.name)
        let outcome = await run.value
        #expect(outcome.state == .canceled, "\(outcome.message ?? "")")
        // Nothing of the run is left on the source: no session, no pg_dump.
        #expect(try Fixtures.listing(Fixtures.source, "postgres",
                                     "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgpreflight migrate \(options.name)%'") == ["0"])
    }

    /// More jobs than the servers have free connections: lowered (with a note), never a
    /// migration that runs out of connections midway.
    @Test func jobsAreBoundedByTheServersFreeConnections() async throws {
        let database = try Fixtures.makeSource(Self.lockedSource, prefix: "mig_jobs")
        var options = try Fixtures.options("jobs-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                           stateDirectory: Fixtures.stateDirectory())
        options.jobs = 10_000
        let outcome = await (try Migrator(options)).run()
        #expect(outcome.state == .succeeded, "\(outcome.message ?? "")")
        #expect(outcome.summary.contains("--jobs 10000 lowered to"), "\(outcome.summary)")
        #expect(try Fixtures.listing(Fixtures.target, database, "SELECT count(*) FROM locked") == ["1000"])
    }

    /// A second start of a running migration is refused (the first goes on and succeeds), and
    /// `cancel` returns once the migrator has stopped.
    @Test func aSecondStartIsRefusedAndCancelWaitsForTheMigrator() async throws {
        let database = try Fixtures.makeSource(Self.lockedSource, prefix: "mig_twice")
        let holder = try TestServers.connect(Fixtures.source, database: database)
        defer { holder.close() }
        try holder.execute("BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")  // keeps the first run busy
        let state = Fixtures.stateDirectory()
        let name = "twice-\(database.replacingOccurrences(of: "_", with: "-"))"
        let log = state.appendingPathExtension("log")
        let pid = Fixtures.spawn(["migrate", name, "--source", Fixtures.source.connectionString(), "--target", Fixtures.target.connectionString(),
                                  "--database", database, "--state-dir", state.path, "--force", "--lock-timeout", "0"] + Fixtures.targetWait, output: log)
        let waiting = try Fixtures.waitUntil(seconds: 300) {
            try Fixtures.listing(Fixtures.source, "postgres", """
                SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgpreflight migrate \(name)%' AND wait_event_type = 'Lock'
                """) != ["0"]
        }
        #expect(waiting)
        var options = try Fixtures.options(name, database: database, stateDirectory: state, force: true)
        options.lockTimeoutSeconds = 0
        let second = await (try Migrator(options)).run()
        #expect(second.message?.contains("is running (pid \(pid))") == true, "\(second.message ?? "")")
        #expect(try Migrator(options).store.migration(name)?.state == .inProgress)  // the first run's record is untouched

        let cancel = try LocalServer.run([Fixtures.binary, "cancel", name, "--state-dir", state.path])
        #expect(cancel.contains("Canceled"), "\(cancel)")
        #expect(kill(pid, 0) != 0 || LocalServer.wait(pid) >= 0)  // gone (or exiting: reaped here)
        #expect(try Fixtures.listing(Fixtures.source, "postgres",
                                     "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgpreflight migrate \(name)%'") == ["0"])
    }
}
