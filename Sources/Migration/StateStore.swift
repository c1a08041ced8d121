import Foundation
import GRDB

/// The migration's persisted state: an SQLite database (WAL mode, so `status` and `cancel`
/// read and write it from another terminal while `migrate` runs) under the state directory.
/// Endpoints are stored redacted (`user@host:port/db`): never a password.
public final class StateStore: Sendable {
    let pool: DatabasePool
    public let path: URL

    /// Opens (creating if needed) the store in `directory`. `readOnly` (for `status`): never
    /// writes, so it never holds a lock a runner waits for.
    public init(directory: URL, readOnly: Bool = false) throws {
        do {
            path = directory.appendingPathComponent("migrations.sqlite")
            if !readOnly {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                if !FileManager.default.fileExists(atPath: path.path) { try Self.create(at: path) }
            }
            var configuration = Configuration()
            configuration.busyMode = .timeout(10)
            configuration.readonly = readOnly
            // WAL without fsync at each commit: a killed process loses nothing (the OS has
            // the pages); thousands of per-table updates stay cheap.
            if !readOnly { configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") } }
            let file = path.path
            pool = try Self.retryingWhileBusy { try DatabasePool(path: file, configuration: configuration) }
            if !readOnly { try Self.retryingWhileBusy { [pool] in try Self.migrator.migrate(pool) } }
        } catch {
            throw MigrationUsageError("cannot open the state store in \(directory.path): \(error)")
        }
    }

    /// A new store is made whole (WAL mode, schema) under a name of its own, then linked into
    /// place: link(2) fails when another process made one meanwhile, and then that one is used.
    /// Nobody ever opens a half-made store: switching a file to WAL mode is the one lock SQLite
    /// does not wait for (its busy timeout does not apply), "database is locked" at start.
    private static func create(at path: URL) throws {
        let temporary = path.deletingLastPathComponent()
            .appendingPathComponent(".migrations-\(getpid())-\(UUID().uuidString.prefix(8)).sqlite")
        defer {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: temporary.path + suffix) }
        }
        let queue = try DatabaseQueue(path: temporary.path)
        try queue.writeWithoutTransaction { db in _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        try migrator.migrate(queue)
        try queue.close()
        if link(temporary.path, path.path) != 0 && errno != EEXIST {
            throw MigrationUsageError("cannot create \(path.path): \(String(cString: strerror(errno)))")
        }
    }

    /// SQLITE_BUSY that the busy timeout does not cover (a WAL switch, a recovery): tried again
    /// for up to 10 s.
    private static func retryingWhileBusy<T>(_ body: () throws -> T) throws -> T {
        let deadline = Date().addingTimeInterval(10)
        while true {
            do { return try body() } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && Date() < deadline {
                usleep(50_000)
            }
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE migration (
                    name TEXT PRIMARY KEY, state TEXT NOT NULL, substate TEXT NOT NULL, mode TEXT NOT NULL,
                    startedAt TEXT NOT NULL, updatedAt TEXT NOT NULL, finishedAt TEXT,
                    source TEXT NOT NULL, target TEXT NOT NULL, message TEXT, pid INTEGER);
                CREATE TABLE database_progress (
                    migration TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
                    PRIMARY KEY (migration, name));
                CREATE TABLE table_progress (
                    migration TEXT NOT NULL, database TEXT NOT NULL, tableName TEXT NOT NULL,
                    status TEXT NOT NULL, rows INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
                    sourceRows INTEGER, durationMs INTEGER, error TEXT,
                    -- 1 once a copy of the table started: the target table may hold rows
                    dirty INTEGER NOT NULL DEFAULT 0,
                    -- count(*) of the target table once copied (verification)
                    targetCount INTEGER,
                    PRIMARY KEY (migration, database, tableName));
                CREATE TABLE step (
                    migration TEXT NOT NULL, database TEXT NOT NULL, step TEXT NOT NULL,
                    durationMs INTEGER NOT NULL, finishedAt TEXT NOT NULL,
                    PRIMARY KEY (migration, database, step));
                CREATE TABLE error_log (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, migration TEXT NOT NULL, at TEXT NOT NULL,
                    database TEXT, message TEXT NOT NULL);
                """)
        }
        // The online and runner tables, made with the store, so that readers (`status`) never
        // have to create them (a write) and never hold the write lock a runner waits for.
        migrator.registerMigration("v2") { db in
            try db.execute(sql: onlineSchema)
            try db.execute(sql: runnerSchema)
        }
        // The source's on-disk size of each table: `status` shows the percent of bytes copied.
        migrator.registerMigration("v3") { db in
            try db.execute(sql: "ALTER TABLE table_progress ADD COLUMN diskBytes INTEGER NOT NULL DEFAULT 0")
        }
        return migrator
    }

    static func now() -> String { ISO8601DateFormatter().string(from: Date()) }

    // MARK: Migration record

    public struct MigrationRecord: Sendable {
        public let name: String
        public let state: MigrationState
        public let substate: MigrationSubstate
        public let mode: String
        public let startedAt: String
        public let source: String
        public let target: String
        public let message: String?
    }

    public func migration(_ name: String) throws -> MigrationRecord? {
        try pool.read { db in
            try GRDB.Row.fetchOne(db, sql: "SELECT * FROM migration WHERE name = ?", arguments: [name]).map(Self.record)
        }
    }

    public func migrations() throws -> [MigrationRecord] {
        try pool.read { db in try GRDB.Row.fetchAll(db, sql: "SELECT * FROM migration ORDER BY startedAt, name").map(Self.record) }
    }

    private static func record(_ row: GRDB.Row) -> MigrationRecord {
        MigrationRecord(name: row["name"], state: MigrationState(rawValue: row["state"]) ?? .failed,
                        substate: MigrationSubstate(rawValue: row["substate"]) ?? .performingPreRequisiteSteps,
                        mode: row["mode"], startedAt: row["startedAt"], source: row["source"], target: row["target"],
                        message: row["message"])
    }

    /// Creates the record, or marks an existing one InProgress again (resume).
    func begin(name: String, mode: String, source: String, target: String) throws {
        try pool.write { db in
            let now = Self.now()
            try db.execute(sql: """
                INSERT INTO migration (name, state, substate, mode, startedAt, updatedAt, source, target, pid)
                VALUES (?, 'InProgress', 'PerformingPreRequisiteSteps', ?, ?, ?, ?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET state = 'InProgress', substate = 'PerformingPreRequisiteSteps',
                    updatedAt = excluded.updatedAt, finishedAt = NULL, message = NULL, pid = excluded.pid
                """, arguments: [name, mode, now, now, source, target, Int(getpid())])
            try Self.recordRunner(db, name)
        }
    }

    func setState(_ name: String, _ state: MigrationState, _ substate: MigrationSubstate, message: String? = nil) throws {
        try pool.write { db in
            let final = state == .inProgress || state == .waitingForUserAction ? nil : Self.now()
            // A run moving on to its next step must not erase a `cancel` it has not seen yet
            // (its monitor polls the store): only an ending overwrites Canceled.
            try db.execute(sql: """
                UPDATE migration SET state = ?, substate = ?, message = ?, updatedAt = ?, finishedAt = ?
                WHERE name = ? AND (? OR state <> 'Canceled')
                """, arguments: [state.rawValue, substate.rawValue, message, Self.now(), final, name, final != nil])
            if let message, state == .failed || state == .waitingForUserAction {
                try db.execute(sql: "INSERT INTO error_log (migration, at, message) VALUES (?, ?, ?)",
                               arguments: [name, Self.now(), message])
            }
        }
    }

    /// Marks a migration Canceled (from `cancel`, in another process). Returns false when it
    /// does not exist; a finished migration stays as it is.
    public func cancel(_ name: String) throws -> MigrationRecord? {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE migration SET state = 'Canceled', message = 'canceled by the user', updatedAt = ?, finishedAt = ?
                WHERE name = ? AND state NOT IN ('Succeeded', 'Canceled')
                """, arguments: [Self.now(), Self.now(), name])
        }
        return try migration(name)
    }

    func isCanceled(_ name: String) throws -> Bool {
        try pool.read { db in
            try String.fetchOne(db, sql: "SELECT state FROM migration WHERE name = ?", arguments: [name]) == "Canceled"
        }
    }

    // MARK: Databases, tables, steps

    func setDatabase(_ migration: String, _ database: String, state: String) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO database_progress (migration, name, state) VALUES (?, ?, ?)
                ON CONFLICT (migration, name) DO UPDATE SET state = excluded.state
                """, arguments: [migration, database, state])
        }
    }

    public func databases(_ migration: String) throws -> [String] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM database_progress WHERE migration = ? ORDER BY rowid", arguments: [migration])
        }
    }

    /// Target databases this migration created (what to drop after a cancel).
    public func createdDatabases(_ migration: String) throws -> [String] {
        try pool.read { db in
            try String.fetchAll(db, sql: """
                SELECT p.name FROM database_progress p JOIN step s ON s.migration = p.migration AND s.database = p.name
                WHERE p.migration = ? AND s.step = 'createDatabase' ORDER BY p.rowid
                """, arguments: [migration])
        }
    }

    /// Registers tables not yet known as queued. Returns the tables already copied (with
    /// their source row counts) and the ones an earlier run started without finishing (their
    /// target tables may hold rows: they are emptied before being copied again).
    func registerTables(_ migration: String, _ database: String, _ tables: [(key: String, diskBytes: Int64)]) throws
        -> (copied: [String: Int], dirty: Set<String>) {
        try pool.write { db in
            for table in tables {
                try db.execute(sql: """
                    INSERT INTO table_progress (migration, database, tableName, status, diskBytes) VALUES (?, ?, ?, 'queued', ?)
                    ON CONFLICT (migration, database, tableName) DO UPDATE SET diskBytes = excluded.diskBytes
                    """, arguments: [migration, database, table.key, table.diskBytes])
            }
            try db.execute(sql: """
                UPDATE table_progress SET status = 'queued', rows = 0, bytes = 0, error = NULL
                WHERE migration = ? AND database = ? AND status <> 'copied'
                """, arguments: [migration, database])
            var copied: [String: Int] = [:]
            var dirty = Set<String>()
            for row in try GRDB.Row.fetchAll(db, sql: """
                SELECT tableName, status, sourceRows, dirty FROM table_progress WHERE migration = ? AND database = ?
                """, arguments: [migration, database]) {
                if row["status"] as String == "copied" { copied[row["tableName"]] = row["sourceRows"] ?? 0 }
                else if row["dirty"] as Int == 1 { dirty.insert(row["tableName"]) }
            }
            return (copied, dirty)
        }
    }

    func tablesStarted(_ migration: String, _ database: String, _ tables: [String]) throws {
        try pool.write { db in
            for table in tables {
                try db.execute(sql: "UPDATE table_progress SET status = 'copying', rows = 0, bytes = 0, dirty = 1, targetCount = NULL WHERE migration = ? AND database = ? AND tableName = ?",
                               arguments: [migration, database, table])
            }
        }
    }

    /// Records a group of small tables copied (and their indexes and ANALYZE, done in the same
    /// target transaction) in one store transaction.
    func groupCopied(_ migration: String, _ database: String, _ tables: [(table: String, rows: Int, sourceRows: Int, bytes: Int)],
                     targetCounts: [Int], steps: [String], durationMs: Int) throws {
        try pool.write { db in
            for (t, count) in zip(tables, targetCounts) {
                try db.execute(sql: """
                    UPDATE table_progress SET status = 'copied', rows = ?, sourceRows = ?, bytes = ?, durationMs = ?, error = NULL,
                        targetCount = ?
                    WHERE migration = ? AND database = ? AND tableName = ?
                    """, arguments: [t.rows, t.sourceRows, t.bytes, durationMs, count, migration, database, t.table])
            }
            let now = Self.now()
            for step in steps {
                try db.execute(sql: "INSERT OR REPLACE INTO step (migration, database, step, durationMs, finishedAt) VALUES (?, ?, ?, 0, ?)",
                               arguments: [migration, database, step, now])
            }
        }
    }

    func tableStarted(_ migration: String, _ database: String, _ table: String) throws {
        try tablesStarted(migration, database, [table])
    }

    func tableProgress(_ migration: String, _ database: String, _ bytes: [String: Int]) throws {
        guard !bytes.isEmpty else { return }
        try pool.write { db in
            for (table, value) in bytes {
                try db.execute(sql: "UPDATE table_progress SET bytes = ? WHERE migration = ? AND database = ? AND tableName = ? AND status = 'copying'",
                               arguments: [value, migration, database, table])
            }
        }
    }

    func tableCopied(_ migration: String, _ database: String, _ table: String, rows: Int, sourceRows: Int, bytes: Int, durationMs: Int) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE table_progress SET status = 'copied', rows = ?, sourceRows = ?, bytes = ?, durationMs = ?, error = NULL
                WHERE migration = ? AND database = ? AND tableName = ?
                """, arguments: [rows, sourceRows, bytes, durationMs, migration, database, table])
        }
    }

    func tableFailed(_ migration: String, _ database: String, _ table: String, error: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE table_progress SET status = 'error', error = ? WHERE migration = ? AND database = ? AND tableName = ?",
                           arguments: [error, migration, database, table])
            try db.execute(sql: "INSERT INTO error_log (migration, at, database, message) VALUES (?, ?, ?, ?)",
                           arguments: [migration, Self.now(), database, "\(table): \(error)"])
        }
    }

    func isStepDone(_ migration: String, _ database: String, _ step: String) throws -> Bool {
        try pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM step WHERE migration = ? AND database = ? AND step = ?",
                              arguments: [migration, database, step]) ?? false
        }
    }

    func doneSteps(_ migration: String, _ database: String, prefix: String) throws -> Set<String> {
        try pool.read { db in
            Set(try String.fetchAll(db, sql: "SELECT step FROM step WHERE migration = ? AND database = ? AND substr(step, 1, ?) = ?",
                                    arguments: [migration, database, prefix.count, prefix]))
        }
    }

    func stepDone(_ migration: String, _ database: String, _ step: String, durationMs: Int) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO step (migration, database, step, durationMs, finishedAt) VALUES (?, ?, ?, ?, ?)",
                           arguments: [migration, database, step, durationMs, Self.now()])
        }
    }

    /// Forgets everything about a migration's databases (used by --overwrite on a fresh start).
    func resetProgress(_ migration: String, database: String) throws {
        try pool.write { db in
            for table in ["table_progress", "step"] {
                try db.execute(sql: "DELETE FROM \(table) WHERE migration = ? AND database = ?", arguments: [migration, database])
            }
        }
    }

    // MARK: Status

    public struct TableCounts: Codable, Sendable { public var total = 0, queued = 0, copying = 0, copied = 0, errors = 0 }
    public struct DatabaseStatus: Codable, Sendable {
        public var name: String
        public var state: String
        public var tables: TableCounts
        public var rowsCopied: Int
        public var bytesCopied: Int
        /// The source's on-disk size of the tables (known before the copy), and the percent of
        /// it copied: copied tables whole, tables in flight by the bytes streamed (at most their
        /// size); nil for a store written before these were recorded.
        public var bytesTotal: Int? = nil
        public var percentCopied: Double? = nil
        /// The tables being copied right now.
        public var tablesInFlight: [String] = []
        public var latencySeconds: Double?
        public var pendingBytes: Int?
        /// Online: the cutover's progress and proof (transactions received and applied), once begun.
        public var cutover: CutoverProgress? = nil

        // Online-mode fields are printed as null in offline mode (the design's JSON shape);
        // `cutover` only once a cutover began.
        public func encode(to encoder: Encoder) throws {
            enum Keys: String, CodingKey {
                case name, state, tables, rowsCopied, bytesCopied, bytesTotal, percentCopied, tablesInFlight, latencySeconds, pendingBytes, cutover
            }
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(name, forKey: .name); try c.encode(state, forKey: .state); try c.encode(tables, forKey: .tables)
            try c.encode(rowsCopied, forKey: .rowsCopied); try c.encode(bytesCopied, forKey: .bytesCopied)
            try c.encode(bytesTotal, forKey: .bytesTotal); try c.encode(percentCopied, forKey: .percentCopied)
            try c.encode(tablesInFlight, forKey: .tablesInFlight)
            try c.encode(latencySeconds, forKey: .latencySeconds); try c.encode(pendingBytes, forKey: .pendingBytes)
            try c.encodeIfPresent(cutover, forKey: .cutover)
        }
    }
    public struct Status: Codable, Sendable {
        public var name: String
        public var state: String
        public var substate: String
        public var mode: String
        public var startedAt: String
        public var finishedAt: String?
        public var message: String?
        public var databases: [DatabaseStatus]
    }

    /// Of the bytes (of the tables when none has any): 100 only once every table is copied.
    static func copiedPercent(diskDone: Int, diskTotal: Int, tables: TableCounts) -> Double? {
        guard tables.total > 0 else { return nil }
        if tables.copied == tables.total { return 100 }
        let fraction = diskTotal > 0 ? Double(diskDone) / Double(diskTotal) : Double(tables.copied) / Double(tables.total)
        return min(99.9, (fraction * 1000).rounded(.down) / 10)
    }

    public func status(_ name: String) throws -> Status? {
        let streaming = try streamFigures(name)
        let cutover = try cutoverProgress(name)
        let current = try migration(name)
        let interrupted = try current.map { try isInterrupted(name, state: $0.state.rawValue) } ?? false
        let runnerPID = interrupted ? try runner(name)?.pid : nil
        return try pool.read { db in
            guard let m = try GRDB.Row.fetchOne(db, sql: "SELECT * FROM migration WHERE name = ?", arguments: [name]) else { return nil }
            var databases: [DatabaseStatus] = []
            for dbRow in try GRDB.Row.fetchAll(db, sql: "SELECT name, state FROM database_progress WHERE migration = ? ORDER BY rowid", arguments: [name]) {
                let database: String = dbRow["name"]
                var counts = TableCounts()
                var rows = 0, bytes = 0
                // A store an older release made (opened read-only, not upgraded) has no sizes.
                let sized = try db.columns(in: "table_progress").contains { $0.name == "diskBytes" }
                var diskTotal = 0, diskDone = 0
                for t in try GRDB.Row.fetchAll(db, sql: """
                    SELECT status, count(*) AS n, sum(rows) AS r, sum(bytes) AS b,
                           \(sized ? "sum(diskBytes)" : "0") AS d, \(sized ? "sum(min(bytes, diskBytes))" : "0") AS f FROM table_progress
                    WHERE migration = ? AND database = ? GROUP BY status
                    """, arguments: [name, database]) {
                    let n: Int = t["n"]
                    counts.total += n
                    switch t["status"] as String {
                    case "queued": counts.queued += n
                    case "copying": counts.copying += n
                    case "copied": counts.copied += n
                    default: counts.errors += n
                    }
                    rows += t["r"] ?? 0
                    bytes += t["b"] ?? 0
                    diskTotal += t["d"] ?? 0
                    switch t["status"] as String {
                    case "copied": diskDone += t["d"] ?? 0
                    case "copying": diskDone += t["f"] ?? 0
                    default: break
                    }
                }
                var status = DatabaseStatus(name: database, state: dbRow["state"], tables: counts, rowsCopied: rows,
                                            bytesCopied: bytes, latencySeconds: streaming[database]?.latency,
                                            pendingBytes: streaming[database]?.pending, cutover: cutover[database])
                if sized {
                    status.bytesTotal = diskTotal
                    status.percentCopied = Self.copiedPercent(diskDone: diskDone, diskTotal: diskTotal, tables: counts)
                }
                status.tablesInFlight = try String.fetchAll(db, sql: """
                    SELECT tableName FROM table_progress WHERE migration = ? AND database = ? AND status = 'copying' ORDER BY tableName
                    """, arguments: [name, database])
                databases.append(status)
            }
            // The recorded process is gone: the migration is not running, whatever the record says.
            if interrupted {
                return Status(name: m["name"], state: "Interrupted", substate: m["substate"], mode: m["mode"], startedAt: m["startedAt"],
                              finishedAt: m["finishedAt"],
                              message: "the migrator (process \(runnerPID ?? 0)) is no longer running: rerun the same `pgpreflight migrate` "
                                + "command to resume", databases: databases)
            }
            return Status(name: m["name"], state: m["state"], substate: m["substate"], mode: m["mode"], startedAt: m["startedAt"],
                          finishedAt: m["finishedAt"], message: m["message"], databases: databases)
        }
    }

    public func errors(_ name: String) throws -> [String] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT message FROM error_log WHERE migration = ? ORDER BY id", arguments: [name])
        }
    }
}

extension StateStore {
    /// Rows each copied table had on the source (its COPY count at the snapshot), and the
    /// target's count(*) once copied, when taken.
    func rowCounts(_ migration: String, _ database: String) throws -> (source: [String: Int], target: [String: Int]) {
        try pool.read { db in
            var source: [String: Int] = [:], target: [String: Int] = [:]
            for row in try GRDB.Row.fetchAll(db, sql: """
                SELECT tableName, sourceRows, targetCount FROM table_progress WHERE migration = ? AND database = ? AND status = 'copied'
                """, arguments: [migration, database]) {
                source[row["tableName"]] = row["sourceRows"] ?? -1
                if let count: Int = row["targetCount"] { target[row["tableName"]] = count }
            }
            return (source, target)
        }
    }

    func setTargetCount(_ migration: String, _ database: String, _ table: String, _ count: Int) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE table_progress SET targetCount = ? WHERE migration = ? AND database = ? AND tableName = ? AND status = 'copied'",
                           arguments: [count, migration, database, table])
        }
    }
}

extension StateStore {
    /// For `validate-and-migrate`: records a migration that stopped before copying (e.g.
    /// `ValidationFailed` / `ValidationInProgress`, with the report's path in `message`), so
    /// `status` shows it. Endpoints are redacted by `ConnectionString.description`.
    public func record(name: String, state: MigrationState, substate: MigrationSubstate, mode: String,
                       source: String, target: String, message: String?) throws {
        try begin(name: name, mode: mode, source: source, target: target)
        try setState(name, state, substate, message: message)
    }
}
