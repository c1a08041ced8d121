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
        CREATE TABLE IF NOT EXISTS cutover_order (
            migration TEXT PRIMARY KEY, runnerPid INTEGER NOT NULL, runnerHost TEXT NOT NULL, requestedAt TEXT NOT NULL,
            takenAt TEXT);
        CREATE TABLE IF NOT EXISTS cutover_progress (
            migration TEXT NOT NULL, database TEXT NOT NULL, step TEXT NOT NULL, endLSN TEXT, appliedPosition TEXT,
            received INTEGER, applied INTEGER, updatedAt TEXT NOT NULL, PRIMARY KEY (migration, database));
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

    /// From `cutover NAME`: asks the migration's running migrator (the recorded runner) to
    /// finish. The request belongs to that run: another process (a rerun after a kill) never
    /// acts on it, and `withdrawCutover` takes it back while it is not taken. Returns the
    /// migration as it stands, or nil when there is none of that name.
    public func requestCutover(_ name: String) throws -> MigrationRecord? {
        guard let record = try migration(name) else { return nil }
        let runner = try pool.write { db -> GRDB.Row? in
            try db.execute(sql: Self.runnerSchema)
            return try GRDB.Row.fetchOne(db, sql: "SELECT pid, host FROM runner WHERE migration = ?", arguments: [name])
        }
        guard let runner else { return record }
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            // A cutover already under way stays as it is.
            try db.execute(sql: """
                INSERT INTO cutover_order (migration, runnerPid, runnerHost, requestedAt) VALUES (?, ?, ?, ?)
                ON CONFLICT (migration) DO UPDATE SET runnerPid = excluded.runnerPid, runnerHost = excluded.runnerHost,
                    requestedAt = excluded.requestedAt WHERE cutover_order.takenAt IS NULL
                """, arguments: [name, runner["pid"] as Int, runner["host"] as String, Self.now()])
        }
        return record
    }

    /// Whether `cutover NAME` asked this process to cut over.
    func isCutoverRequested(_ name: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            return try Int.fetchOne(db, sql: """
                SELECT count(*) FROM cutover_order WHERE migration = ? AND runnerPid = ? AND runnerHost = ?
                """, arguments: [name, Int(getpid()), Self.hostName]) ?? 0 > 0
        }
    }

    /// The process a pending (not yet taken) cutover request was made to.
    func cutoverRequestedOf(_ name: String) throws -> Int? {
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            return try Int.fetchOne(db, sql: "SELECT runnerPid FROM cutover_order WHERE migration = ? AND takenAt IS NULL", arguments: [name])
        }
    }

    /// The migrator starts the cutover it was asked for: from here on the request cannot be
    /// withdrawn, and a rerun after a kill finishes it. Forgets an earlier cutover's progress.
    func takeCutover(_ name: String) throws {
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            try db.execute(sql: "UPDATE cutover_order SET takenAt = ? WHERE migration = ?", arguments: [Self.now(), name])
            try db.execute(sql: "DELETE FROM cutover_progress WHERE migration = ?", arguments: [name])
        }
    }

    /// Whether a cutover of this migration was started (by this run or one that was killed).
    func isCutoverTaken(_ name: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM cutover_order WHERE migration = ? AND takenAt IS NOT NULL",
                                    arguments: [name]) ?? 0 > 0
        }
    }

    /// Takes back a request no migrator has started on (a `cutover` that gave up waiting).
    /// Returns false when the cutover is already under way.
    public func withdrawCutover(_ name: String) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            try db.execute(sql: "DELETE FROM cutover_order WHERE migration = ? AND takenAt IS NULL", arguments: [name])
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM cutover_order WHERE migration = ?", arguments: [name]) ?? 0 == 0
        }
    }

    /// A cutover that failed (verification, counts): the next one needs a new request.
    func endCutover(_ name: String) throws {
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            try db.execute(sql: "DELETE FROM cutover_order WHERE migration = ?", arguments: [name])
        }
    }

    /// One database's cutover, as far as it went: `step` is applying (writes stopped, end
    /// recorded), applied, sequences or verified.
    public struct CutoverProgress: Codable, Sendable {
        public var step: String
        /// The source's WAL position once writes stopped: everything before it is to be applied.
        public var endLSN: String?
        /// Up to where everything the source committed is applied on the target.
        public var appliedPosition: String?
        /// Source transactions (COMMITs) the stream delivered in this run, and those applied.
        public var receivedTransactions: Int?
        public var appliedTransactions: Int?
    }

    func cutoverStep(_ migration: String, _ database: String, _ step: String, endLSN: String? = nil, appliedPosition: String? = nil,
                     received: Int? = nil, applied: Int? = nil) throws {
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            try db.execute(sql: """
                INSERT INTO cutover_progress (migration, database, step, endLSN, appliedPosition, received, applied, updatedAt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (migration, database) DO UPDATE SET step = excluded.step,
                    endLSN = coalesce(excluded.endLSN, cutover_progress.endLSN),
                    appliedPosition = coalesce(excluded.appliedPosition, cutover_progress.appliedPosition),
                    received = coalesce(excluded.received, cutover_progress.received),
                    applied = coalesce(excluded.applied, cutover_progress.applied), updatedAt = excluded.updatedAt
                """, arguments: [migration, database, step, endLSN, appliedPosition, received, applied, Self.now()])
        }
    }

    public func cutoverProgress(_ migration: String) throws -> [String: CutoverProgress] {
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
            var result: [String: CutoverProgress] = [:]
            for row in try GRDB.Row.fetchAll(db, sql: "SELECT * FROM cutover_progress WHERE migration = ?", arguments: [migration]) {
                result[row["database"]] = CutoverProgress(step: row["step"], endLSN: row["endLSN"], appliedPosition: row["appliedPosition"],
                                                          receivedTransactions: row["received"], appliedTransactions: row["applied"])
            }
            return result
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
