import Foundation
import PostgresClient

/// The migrator's open sessions, so that a cancel reaches statements that are waiting on the
/// server (a lock, a frozen backend), not only the workers between two statements.
final class SessionRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var sessions: [ObjectIdentifier: WeakConnection] = [:]
    private struct WeakConnection { weak var connection: Connection? }

    func add(_ connection: Connection) {
        lock.withLock {
            sessions = sessions.filter { $0.value.connection != nil }
            sessions[ObjectIdentifier(connection)] = WeakConnection(connection: connection)
        }
    }

    /// PQcancel on every session still open (a closed or idle one ignores it).
    func cancelAll() {
        for connection in lock.withLock({ sessions.values.compactMap(\.connection) }) { connection.cancelQuery() }
    }
}

/// Sessions of the migration that wait for a lock, with what holds it: printed while it lasts,
/// and named in the failure when the wait ends in `--lock-timeout`.
final class LockWatch: @unchecked Sendable {
    private let applicationPattern: String
    private let endpoints: [(what: String, endpoint: ConnectionString)]
    private var sessions: [String: Connection] = [:]
    private let lastWait = Box<String>()
    private var reported = Set<String>()

    init(migration: String, source: ConnectionString, target: ConnectionString) {
        applicationPattern = "pgpreflight migrate \(migration)%"
        endpoints = [("source", source.with(database: "postgres")), ("target", target.with(database: "postgres"))]
    }

    /// The last wait seen, for the failure message.
    var lastSeen: String? { lastWait.value }

    /// One look at both servers (from the monitor thread); returns new waits to print.
    func poll() -> [String] {
        var fresh: [String] = []
        for (what, endpoint) in endpoints {
            do {
                if sessions[what] == nil {
                    sessions[what] = try Connection.open(endpoint, applicationName: "pgpreflight lock watch")
                }
                let rows = try sessions[what]!.query("""
                    SELECT w.pid, left(regexp_replace(w.query, '\\s+', ' ', 'g'), 160), b.pid, coalesce(b.usename::text, '?'),
                           coalesce(nullif(b.application_name, ''), '?'), left(regexp_replace(b.query, '\\s+', ' ', 'g'), 160)
                    FROM pg_stat_activity w, unnest(pg_blocking_pids(w.pid)) AS blocker(pid)
                    JOIN pg_stat_activity b ON b.pid = blocker.pid
                    WHERE w.application_name LIKE $1 AND w.wait_event_type = 'Lock'
                    """, applicationPattern).rows
                for row in rows {
                    let text = "waiting for a lock on the \(what): `\(row.string(1) ?? "?")` is blocked by pid \(row.int(2) ?? 0) (user \(row.string(3) ?? "?"), application \(row.string(4) ?? "?"): `\(row.string(5) ?? "")`)"
                    lastWait.value = text
                    if reported.insert("\(what)|\(row.int(0) ?? 0)|\(row.int(2) ?? 0)").inserted { fresh.append(text) }
                }
            } catch {
                sessions[what]?.close()
                sessions[what] = nil
            }
        }
        return fresh
    }

    func close() { sessions.values.forEach { $0.close() }; sessions = [:] }
}

/// SIGINT / SIGTERM while a migration runs: `handler` runs once per signal on a queue of its
/// own (the process is not killed); `stop()` restores the default dispositions, so a signal
/// after the run ends the process as usual. Children get default dispositions (Tools.swift).
final class SignalWatch: @unchecked Sendable {
    private let signals: [Int32]
    private let sources: [DispatchSourceSignal]

    init(_ signals: Int32..., handler: @escaping @Sendable (Int32) -> Void) {
        self.signals = signals
        let queue = DispatchQueue(label: "pgpreflight.signals")
        sources = signals.map { number in
            signal(number, SIG_IGN)  // dispatch sources see signals only when not handled by default
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    func stop() {
        sources.forEach { $0.cancel() }
        for number in signals { signal(number, SIG_DFL) }
    }
}
