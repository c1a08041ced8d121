import Foundation
import GRDB
import Validation

/// Where scans keep every result of every run, so a run can say what got worse since the
/// previous run of the same server: an embedded SQLite file (`DIR/history.sqlite`, the default)
/// or a PostgreSQL schema shared by every shard (`--history postgresql://…`).
public protocol HistoryStore: Sendable {
    /// Stores the run's results and compares them with the server's previous run.
    func record(server: String, run: ValidationRun) throws -> ScanHistory.Comparison
    /// The server's last `limit` runs, oldest first.
    func trend(server: String, limit: Int) throws -> [ScanHistory.TrendPoint]
    func runCount(server: String) throws -> Int
}

/// The embedded SQLite history.
public final class ScanHistory: HistoryStore {
    /// A rule's result on a database (nil: the instance).
    public struct Key: Codable, Hashable, Sendable, Comparable {
        public var rule: String
        public var database: String?
        public init(rule: String, database: String?) { self.rule = rule; self.database = database }
        public static func < (a: Key, b: Key) -> Bool { (a.rule, a.database ?? "") < (b.rule, b.database ?? "") }
    }

    /// One offending object of a Warning or Failed (not accepted) result; `object` is nil for a
    /// result that names no object (the server cannot be reached). Identity is (rule, database,
    /// object); `status` is the result's status in the run it comes from.
    public struct Finding: Codable, Hashable, Sendable, Comparable {
        public var rule: String
        public var database: String?
        public var object: String?
        public var status: Status
        public init(rule: String, database: String?, object: String?, status: Status) {
            self.rule = rule; self.database = database; self.object = object; self.status = status
        }
        struct Identity: Hashable { let rule: String; let database: String?; let object: String? }
        var identity: Identity { Identity(rule: rule, database: database, object: object) }
        public static func < (a: Finding, b: Finding) -> Bool {
            (a.rule, a.database ?? "", a.object ?? "") < (b.rule, b.database ?? "", b.object ?? "")
        }
    }

    public struct Comparison: Codable, Sendable, Equatable {
        /// Rule level: results that became Failed / became Warning from Succeeded / became Succeeded.
        public var newFailures: [Key]
        public var newWarnings: [Key]
        public var resolved: [Key]
        /// Object level: findings that were not in the previous run / are no longer there.
        public var newFindings: [Finding]
        public var resolvedFindings: [Finding]
    }

    public struct TrendPoint: Codable, Sendable, Equatable {
        public var startedAt: Date
        public var failed: Int
        public var warnings: Int
        public init(startedAt: Date, failed: Int, warnings: Int) { self.startedAt = startedAt; self.failed = failed; self.warnings = warnings }
    }

    /// A stored result, as both histories read it back.
    public struct StoredResult: Sendable {
        public var rule: String
        public var database: String?
        public var status: Status
        public var accepted: Bool
        public var objects: [String]
        public init(rule: String, database: String?, status: Status, accepted: Bool, objects: [String]) {
            self.rule = rule; self.database = database; self.status = status; self.accepted = accepted; self.objects = objects
        }
        init(_ result: RuleResult) {
            self.init(rule: result.rule, database: result.database, status: result.status, accepted: result.suppressed != nil, objects: result.objects)
        }
        var blockingStatus: Status { accepted ? .succeeded : status }
        var findings: [Finding] {
            guard blockingStatus != .succeeded else { return [] }
            if objects.isEmpty { return [Finding(rule: rule, database: database, object: nil, status: blockingStatus)] }
            return objects.map { Finding(rule: rule, database: database, object: $0, status: blockingStatus) }
        }
    }

    /// Compares a server's run with its previous one. Accepted (suppressed or baselined)
    /// findings count as Succeeded. Without a previous run everything found is new.
    public static func compare(previous: [StoredResult], current: [StoredResult]) -> Comparison {
        var before: [Key: Status] = [:]
        for result in previous { before[Key(rule: result.rule, database: result.database)] = result.blockingStatus }
        var now: [Key: Status] = [:]
        for result in current { now[Key(rule: result.rule, database: result.database)] = result.blockingStatus }
        let newFailures = now.filter { $0.value == .failed && before[$0.key] != .failed }.map(\.key).sorted()
        let newWarnings = now.filter { $0.value == .warning && (before[$0.key] ?? .succeeded) == .succeeded }.map(\.key).sorted()
        let resolved = before.filter { $0.value != .succeeded && (now[$0.key] ?? .succeeded) == .succeeded }.map(\.key).sorted()

        let oldFindings = previous.flatMap(\.findings), newFindingsList = current.flatMap(\.findings)
        let oldIds = Set(oldFindings.map(\.identity)), newIds = Set(newFindingsList.map(\.identity))
        func unique(_ list: [Finding]) -> [Finding] {
            var seen: Set<Finding.Identity> = []
            return list.filter { seen.insert($0.identity).inserted }.sorted()
        }
        return Comparison(newFailures: newFailures, newWarnings: newWarnings, resolved: resolved,
                          newFindings: unique(newFindingsList.filter { !oldIds.contains($0.identity) }),
                          resolvedFindings: unique(oldFindings.filter { !newIds.contains($0.identity) }))
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

    public func record(server: String, run: ValidationRun) throws -> Comparison {
        try queue.write { db in
            let previousRun = try Int64.fetchOne(db, sql: "SELECT id FROM run WHERE server = ? ORDER BY id DESC LIMIT 1", arguments: [server])
            var previous: [StoredResult] = []
            if let previousRun {
                for row in try Row.fetchAll(db, sql: "SELECT rule, database, status, accepted, objects FROM result WHERE runId = ?", arguments: [previousRun]) {
                    let objects = (try? JSONDecoder().decode([String].self, from: Data((row["objects"] as String).utf8))) ?? []
                    previous.append(StoredResult(rule: row["rule"], database: row["database"], status: Status(rawValue: row["status"]) ?? .succeeded,
                                                 accepted: (row["accepted"] as Int) == 1, objects: objects))
                }
            }
            try db.execute(sql: "INSERT INTO run (server, startedAt, finishedAt, status, failed, warnings) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [server, run.startedAt, run.finishedAt, run.status.rawValue,
                                       run.results.filter { $0.blockingStatus == .failed }.count,
                                       run.results.filter { $0.blockingStatus == .warning }.count])
            let runId = db.lastInsertedRowID
            for result in run.results {
                let objects = String(decoding: try JSONEncoder().encode(result.objects), as: UTF8.self)
                try db.execute(sql: "INSERT INTO result (runId, rule, database, status, accepted, message, objects) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               arguments: [runId, result.rule, result.database, result.status.rawValue,
                                           result.suppressed == nil ? 0 : 1, result.message, objects])
            }
            return Self.compare(previous: previous, current: run.results.map(StoredResult.init))
        }
    }

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
