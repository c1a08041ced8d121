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
        try pool.write { db in
            try db.execute(sql: Self.onlineSchema)
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
