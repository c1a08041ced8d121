import Foundation
import LocalServers
@testable import Migration
import Testing
import TestSupport

/// `status` polled in a loop (a dashboard, a user's `watch`) never makes a starting `migrate`
/// fail ("SQLite error 5: database is locked"), nor fails itself: not while the start creates
/// the store, nor while it writes its progress.
extension MigrationTests {
    @Test func statusPollingNeverMakesAStartFail() async throws {
        let databases = try (0..<20).map { _ in
            try Fixtures.makeSource("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);", prefix: "mig_race")
        }
        let root = Fixtures.stateDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        // Each start gets a new state folder, so that each start creates its store while polled.
        let current = Box<URL>()
        let stop = Flag()
        let failures = Failures()
        func poll(_ look: @escaping @Sendable (URL) throws -> Void) -> Thread {
            Thread {
                while !stop.isSet {
                    guard let state = current.value,
                          FileManager.default.fileExists(atPath: state.appendingPathComponent("migrations.sqlite").path) else { continue }
                    do { try look(state) } catch { failures.add("status: \(error)") }
                }
            }
        }
        let pollers = [
            // `status` through the binary, as a user runs it…
            poll { state in _ = try LocalServer.run([Fixtures.binary, "status", "--state-dir", state.path, "--format", "json"]) },
            // …and what it does, in a tight loop: open the store, read every migration.
            poll { state in
                let store = try StateStore(directory: state, readOnly: true)
                for record in try store.migrations() { _ = try store.status(record.name) }
            },
        ]
        pollers.forEach { $0.start() }
        defer { stop.set() }
        for (index, database) in databases.enumerated() {
            let state = root.appendingPathComponent("state-\(index)")
            current.value = state
            let name = "race-\(database.replacingOccurrences(of: "_", with: "-"))"
            do {
                // A process of its own, as a user (or a scheduler) starts it.
                _ = try LocalServer.run([Fixtures.binary, "migrate", name, "--source", Fixtures.source.connectionString(),
                                         "--target", Fixtures.target.connectionString(), "--database", database,
                                         "--state-dir", state.path, "--jobs", "2", "--quiet"] + Fixtures.targetWait)
            } catch {
                failures.add("\(name): \(error)")
            }
        }
        stop.set()
        while pollers.contains(where: { !$0.isFinished }) { usleep(20_000) }
        #expect(failures.all == [], "\(failures.all)")
        let succeeded = try (0..<databases.count).filter { index in
            try StateStore(directory: root.appendingPathComponent("state-\(index)"), readOnly: true).migrations().first?.state == .succeeded
        }
        #expect(succeeded.count == databases.count)
    }
}

final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ text: String) { lock.withLock { items.append(text) } }
    var all: [String] { lock.withLock { items } }
}
