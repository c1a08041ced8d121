import ArgumentParser
import Foundation
import Migration

/// `pgpreflight cancel NAME`: marks the migration Canceled; the running `migrate` notices and
/// stops its workers. Nothing is rolled back.
struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a migration (nothing is rolled back).")

    @Argument(help: "Migration name.")
    var name: String
    @OptionGroup var state: StateDirectoryOption
    var stateDir: String { state.stateDir }

    func run() async throws {
        guard FileManager.default.fileExists(atPath: URL(fileURLWithPath: stateDir).appendingPathComponent("migrations.sqlite").path) else {
            throw ValidationError("no state store in \(stateDir)")
        }
        let store: StateStore
        do { store = try StateStore(directory: URL(fileURLWithPath: stateDir)) } catch { throw ValidationError("\(error)") }
        guard let record = try store.cancel(name) else { throw ValidationError("no migration named \(name) in \(stateDir)") }
        if record.state != .canceled {
            print("migration \(name) is already \(record.state.rawValue); nothing to cancel")
            return
        }
        // The running migrator notices within a second, cancels its statements on both servers
        // and ends its children: wait for it, so that a Canceled migration has stopped.
        if let runner = try store.runner(name), runner.alive, runner.pid != Int(getpid()) {
            say("waiting for the migrator (pid \(runner.pid)) to stop…")
            let deadline = Date().addingTimeInterval(120)
            while Date() < deadline, (try store.runner(name)?.alive) == true { usleep(200_000) }
            if (try store.runner(name)?.alive) == true {
                print("migration \(name): Canceled, but its migrator (pid \(runner.pid)) is still running after 2 minutes: stop it with `kill \(runner.pid)`")
                throw ExitCode(1)
            }
        }
        print("migration \(name): Canceled (nothing rolled back)")
        if record.mode == "online", case let slots = try store.slots(name), !slots.isEmpty {
            // A running `migrate` drops them itself; after a crash nothing else will.
            let running = try store.runner(name)?.alive ?? false
            print((running ? "the running `pgpreflight migrate \(name)` drops what it made; if it does not, drop"
                           : "no `pgpreflight migrate \(name)` is running: drop")
                  + " its replication slots on the source (they retain WAL): "
                  + slots.map { "SELECT pg_drop_replication_slot('\($0)');" }.joined(separator: " "))
            print("in each source database: DROP PUBLICATION IF EXISTS "
                  + Migrator.publicationNames(migration: name).joined(separator: ", ") + ";")
            print("in each target database: "
                  + slots.map { "SELECT pg_replication_origin_drop('\($0)') FROM pg_replication_origin WHERE roname = '\($0)';" }
                      .joined(separator: " "))
        }
        let databases = try store.createdDatabases(name)
        if !databases.isEmpty {
            print("target databases to drop if you do not resume: \(databases.joined(separator: ", "))")
        }
    }
}
