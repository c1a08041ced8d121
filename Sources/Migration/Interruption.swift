import Foundation
import PostgresClient

/// SIGINT / SIGTERM outside the migrator: during validation, the schema dry run and `verify`.
/// That work keeps nothing a rerun needs, so a signal ends it at once, leaving nothing behind:
/// every session's statement is cancelled, the children (pg_dump, pg_restore) are ended and
/// reaped, the dry run's scratch databases are dropped and its temporary folders removed; then
/// one line and the shell's exit code (130 / 143). The migrator has its own handling (it
/// records Interrupted and resumes): stop this guard before starting it.
public final class InterruptGuard: @unchecked Sendable {
    private var watch: SignalWatch?

    /// `during`: what the line names ("validation", "verify").
    public init(during what: String) {
        watch = SignalWatch(SIGINT, SIGTERM) { signal in Interruption.stop(signal, during: what) }
    }

    public func stop() {
        // Stopped work fails fast and its command would end on its own (exit 1) while the
        // handler still cleans up: the handler ends the process.
        while Interruption.requested { sleep(60) }
        watch?.stop()
        watch = nil
    }
}

struct Interrupted: Error, CustomStringConvertible {
    var description: String { "interrupted" }
}

enum Interruption {
    /// Guards the registrations below; the flag has a lock of its own, so that setting it
    /// never waits for a CREATE DATABASE.
    private static let lock = NSLock()
    private static let flag = Flag()
    nonisolated(unsafe) private static var scratchDatabases: [String: ConnectionString] = [:]
    nonisolated(unsafe) private static var temporaryDirectories = Set<URL>()
    /// Work under way that leaves files behind unless it unwinds (the dry run: its archive, the
    /// tool connection's private password file): the handler waits for it after stopping it.
    nonisolated(unsafe) private static var activeRegions = 0

    static func region<T>(_ body: () throws -> T) rethrows -> T {
        lock.withLock { activeRegions += 1 }
        defer { lock.withLock { activeRegions -= 1 } }
        return try body()
    }

    private static func waitForRegions(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while lock.withLock({ activeRegions > 0 }) {
            if Date() >= deadline { return false }
            usleep(20_000)
        }
        return true
    }

    static var requested: Bool { flag.isSet }

    /// Creates a scratch database the handler drops if a signal comes. Under the lock: a signal
    /// either comes first (nothing is created) or finds the name registered.
    static func createScratchDatabase(_ name: String, on admin: Connection, target: ConnectionString) throws {
        try lock.withLock {
            guard !flag.isSet else { throw Interrupted() }
            scratchDatabases[name] = target
            try admin.execute("CREATE DATABASE \(try admin.quoteIdentifier(name)) TEMPLATE template0")
        }
    }

    static func scratchDatabaseDropped(_ name: String) { _ = lock.withLock { scratchDatabases.removeValue(forKey: name) } }
    static func removeOnInterrupt(_ directory: URL) { _ = lock.withLock { temporaryDirectories.insert(directory) } }
    static func removed(_ directory: URL) { _ = lock.withLock { temporaryDirectories.remove(directory) } }

    static func stop(_ signal: Int32, during what: String) -> Never {
        flag.set()
        Connection.abandonAll()
        ChildProcesses.terminateAll()
        // Stopped work fails fast (its sessions are shut, its children ended) and runs its defers.
        if !waitForRegions(seconds: 15) || !ChildProcesses.waitUntilNone(seconds: 1) {
            ChildProcesses.killAll()
            _ = ChildProcesses.waitUntilNone(seconds: 5)
            _ = waitForRegions(seconds: 5)
        }
        let (databases, directories) = lock.withLock { (scratchDatabases, temporaryDirectories) }
        for (name, target) in databases {
            // The session restoring into it was just cancelled; FORCE ends it (PostgreSQL 13+).
            guard let admin = try? Connection.open(target.with(database: "postgres"), connectTimeout: 5,
                                                   applicationName: "pgpreflight cleanup") else { continue }
            if let quoted = try? admin.quoteIdentifier(name) {
                let force = admin.serverVersionNumber >= 130000 ? " WITH (FORCE)" : ""
                try? admin.execute("DROP DATABASE IF EXISTS \(quoted)\(force)")
            }
            admin.close()
        }
        for directory in directories { try? FileManager.default.removeItem(at: directory) }
        let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
        FileHandle.standardError.write(Data("pgpreflight: interrupted (\(name)) during \(what); stopped its queries and child processes, nothing left on the servers\n".utf8))
        fflush(nil)  // every output stream (print buffers stdout)
        // _exit: the other threads are mid-call in libpq; exit handlers must not run under them.
        _exit(128 + signal)
    }
}
