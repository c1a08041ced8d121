import Foundation
import GRDB

/// Online-mode state: per-database streaming progress (latency, pending WAL) and the cutover
/// request that `pgpreflight cutover NAME` leaves for the running migration.
extension StateStore {
    static let onlineSchema = """
        CREATE TABLE IF NOT EXISTS stream_progress (
            migration TEXT NOT NULL, database TEXT NOT NULL, latencySeconds REAL, pendingBytes INTEGER,
            appliedLSN TEXT, caughtUp INTEGER NOT NULL DEFAULT 0, updatedAt TEXT NOT NULL,
            PRIMARY KEY (migration, database));
        CREATE TABLE IF NOT EXISTS cutover_request (migration TEXT PRIMARY KEY, requestedAt TEXT NOT NULL);
        """

    func streamProgress(_ migration: String, _ database: String, latencySeconds: Double, pendingBytes: Int,
                        appliedLSN: String, caughtUp: Bool) throws {
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            try db.execute(sql: """
                INSERT INTO stream_progress (migration, database, latencySeconds, pendingBytes, appliedLSN, caughtUp, updatedAt)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (migration, database) DO UPDATE SET latencySeconds = excluded.latencySeconds,
                    pendingBytes = excluded.pendingBytes, appliedLSN = excluded.appliedLSN, caughtUp = excluded.caughtUp,
                    updatedAt = excluded.updatedAt
                """, arguments: [migration, database, latencySeconds, pendingBytes, appliedLSN, caughtUp ? 1 : 0, Self.now()])
        }
    }

    /// Latency and pending bytes per database, for `status`.
    func streamFigures(_ migration: String) throws -> [String: (latency: Double?, pending: Int?)] {
        try pool.read { db in  // a read: `status` never holds the write lock (the tables come with the store)
            guard try db.tableExists("stream_progress") else { return [:] }
            var figures: [String: (Double?, Int?)] = [:]
            for row in try GRDB.Row.fetchAll(db, sql: "SELECT database, latencySeconds, pendingBytes FROM stream_progress WHERE migration = ?",
                                             arguments: [migration]) {
                figures[row["database"]] = (row["latencySeconds"], row["pendingBytes"])
            }
            return figures
        }
    }

    /// From `cutover NAME`: asks the running online migration to finish. Returns the
    /// migration as it stands, or nil when there is none of that name.
    public func requestCutover(_ name: String) throws -> MigrationRecord? {
        guard let record = try migration(name) else { return nil }
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            try db.execute(sql: "INSERT OR IGNORE INTO cutover_request (migration, requestedAt) VALUES (?, ?)", arguments: [name, Self.now()])
        }
        return record
    }

    func isCutoverRequested(_ name: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM cutover_request WHERE migration = ?", arguments: [name]) ?? 0 > 0
        }
    }
}

extension StateStore {
    /// Records a logical slot the migration created, so `cancel` can name it even when no
    /// migrate process is running to drop it.
    func slotCreated(_ migration: String, _ database: String, _ slot: String) throws {
        try stepDone(migration, database, "slot|\(slot)", durationMs: 0)
    }

    /// The logical slots this migration created on the source.
    public func slots(_ migration: String) throws -> [String] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT substr(step, 6) FROM step WHERE migration = ? AND step LIKE 'slot|%' ORDER BY 1",
                                arguments: [migration])
        }
    }
}

/// Liveness: the process that runs a migration is recorded with its start time (a pid alone
/// may be reused), so `status` and `cutover` can tell a running migrator from one that is gone.
extension StateStore {
    static let runnerSchema = """
        CREATE TABLE IF NOT EXISTS runner (migration TEXT PRIMARY KEY, pid INTEGER NOT NULL, startTime TEXT, host TEXT NOT NULL);
        """

    /// The start time of a process as the kernel gives it (Linux: clock ticks since boot, field
    /// 22 of /proc/PID/stat); nil where there is no /proc.
    static func processStartTime(_ pid: Int32) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may hold spaces): state is field 3, starttime 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }

    /// This machine's name (gethostname: no name-service lookup).
    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "" }
        return String(cString: buffer)
    }

    /// Called in the transaction that marks the migration InProgress.
    static func recordRunner(_ db: GRDB.Database, _ migration: String) throws {
        try db.execute(sql: runnerSchema)
        let pid = getpid()
        try db.execute(sql: "INSERT OR REPLACE INTO runner (migration, pid, startTime, host) VALUES (?, ?, ?, ?)",
                       arguments: [migration, Int(pid), processStartTime(pid), hostName])
    }

    /// Forgets this process as the migration's runner (its run ended): `cancel` and a second
    /// start then know nothing runs it, even while this process lives on (tests, an embedder).
    func clearRunner(_ migration: String) throws {
        try pool.write { db in
            try db.execute(sql: Self.runnerSchema)
            try db.execute(sql: "DELETE FROM runner WHERE migration = ? AND pid = ? AND host = ?",
                           arguments: [migration, Int(getpid()), Self.hostName])
        }
    }

    /// The recorded runner: nil when none was recorded; `alive` false when its process is gone
    /// (no such pid, or a different process now has it). On another host it counts as alive.
    public func runner(_ migration: String) throws -> (pid: Int, alive: Bool)? {
        let row = try pool.read { db -> GRDB.Row? in  // a read, as streamFigures
            guard try db.tableExists("runner") else { return nil }
            return try GRDB.Row.fetchOne(db, sql: "SELECT pid, startTime, host FROM runner WHERE migration = ?", arguments: [migration])
        }
        guard let row else { return nil }
        let pid: Int = row["pid"]
        let host: String = row["host"]
        guard host == Self.hostName else { return (pid, true) }
        if pid == Int(getpid()) { return (pid, true) }
        guard kill(pid_t(pid), 0) == 0 || errno == EPERM else { return (pid, false) }
        // A zombie (killed, not yet reaped by its parent) is gone too.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")"),
           stat[stat.index(after: close)...].split(separator: " ").first == "Z" { return (pid, false) }
        let recorded: String? = row["startTime"]
        if let recorded, let now = Self.processStartTime(pid_t(pid)), recorded != now { return (pid, false) }
        return (pid, true)
    }

    /// Whether a migration that says it runs (InProgress / WaitingForUserAction) has lost its
    /// process: then it is Interrupted.
    func isInterrupted(_ migration: String, state: String) throws -> Bool {
        guard state == MigrationState.inProgress.rawValue || state == MigrationState.waitingForUserAction.rawValue else { return false }
        guard let runner = try runner(migration) else { return false }
        return !runner.alive
    }
}
