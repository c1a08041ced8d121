import Foundation
import GRDB
import Validation

/// Every result of every scan, in an embedded SQLite database (`DIR/history.sqlite`), so a
/// run can say what got worse since the previous run of the same server.
public final class ScanHistory: Sendable {
    public struct Key: Codable, Hashable, Sendable, Comparable {
        public var rule: String
        public var database: String?
        public init(rule: String, database: String?) { self.rule = rule; self.database = database }
        public static func < (a: Key, b: Key) -> Bool { (a.rule, a.database ?? "") < (b.rule, b.database ?? "") }
    }

    public struct Comparison: Codable, Sendable, Equatable {
        public var newFailures: [Key]
        public var newWarnings: [Key]
        public var resolved: [Key]
    }

    public struct TrendPoint: Sendable {
        public var startedAt: Date
        public var failed: Int
        public var warnings: Int
    }

    private let queue: DatabaseQueue

    public init(url: URL) throws {
        queue = try DatabaseQueue(path: url.path)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE run (id INTEGER PRIMARY KEY AUTOINCREMENT, server TEXT NOT NULL, startedAt DATETIME NOT NULL,
                                  finishedAt DATETIME NOT NULL, status TEXT NOT NULL, failed INTEGER NOT NULL, warnings INTEGER NOT NULL);
                CREATE INDEX run_server ON run (server, id);
                CREATE TABLE result (runId INTEGER NOT NULL REFERENCES run(id), rule TEXT NOT NULL, database TEXT,
                                     status TEXT NOT NULL, accepted INTEGER NOT NULL, message TEXT NOT NULL, objects TEXT NOT NULL);
                CREATE INDEX result_run ON result (runId);
                """)
        }
        try migrator.migrate(queue)
    }

    /// Stores the run's results and compares them with the server's previous run. Accepted
    /// (suppressed or baselined) findings count as Succeeded for the comparison.
    public func record(server: String, run: ValidationRun) throws -> Comparison {
        try queue.write { db in
            let previousRun = try Int64.fetchOne(db, sql: "SELECT id FROM run WHERE server = ? ORDER BY id DESC LIMIT 1", arguments: [server])
            var before: [Key: Status] = [:]
            if let previousRun {
                for row in try Row.fetchAll(db, sql: "SELECT rule, database, status, accepted FROM result WHERE runId = ?", arguments: [previousRun]) {
                    let status: Status = (row["accepted"] as Int) == 1 ? .succeeded : Status(rawValue: row["status"]) ?? .succeeded
                    before[Key(rule: row["rule"], database: row["database"])] = status
                }
            }
            try db.execute(sql: "INSERT INTO run (server, startedAt, finishedAt, status, failed, warnings) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [server, run.startedAt, run.finishedAt, run.status.rawValue,
                                       run.results.filter { $0.blockingStatus == .failed }.count,
                                       run.results.filter { $0.blockingStatus == .warning }.count])
            let runId = db.lastInsertedRowID
            var now: [Key: Status] = [:]
            for result in run.results {
                let objects = String(decoding: try JSONEncoder().encode(result.objects), as: UTF8.self)
                try db.execute(sql: "INSERT INTO result (runId, rule, database, status, accepted, message, objects) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               arguments: [runId, result.rule, result.database, result.status.rawValue,
                                           result.suppressed == nil ? 0 : 1, result.message, objects])
                now[Key(rule: result.rule, database: result.database)] = result.blockingStatus
            }
            let newFailures = now.filter { $0.value == .failed && before[$0.key] != .failed }.map(\.key).sorted()
            let newWarnings = now.filter { $0.value == .warning && (before[$0.key] ?? .succeeded) == .succeeded }.map(\.key).sorted()
            let resolved = before.filter { $0.value != .succeeded && (now[$0.key] ?? .succeeded) == .succeeded }.map(\.key).sorted()
            return Comparison(newFailures: newFailures, newWarnings: newWarnings, resolved: resolved)
        }
    }

    /// The server's last `limit` runs, oldest first.
    public func trend(server: String, limit: Int = 14) throws -> [TrendPoint] {
        try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT startedAt, failed, warnings FROM run WHERE server = ? ORDER BY id DESC LIMIT ?",
                             arguments: [server, limit])
                .map { TrendPoint(startedAt: $0["startedAt"], failed: $0["failed"], warnings: $0["warnings"]) }
                .reversed()
        }
    }

    public func runCount(server: String) throws -> Int {
        try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM run WHERE server = ?", arguments: [server]) ?? 0 }
    }
}
