import Foundation
import PostgresClient
import Validation

/// The scan history in a PostgreSQL schema (`--history postgresql://…`), so every shard of every
/// night writes to one place. The schema is created on first use and upgraded by numbered
/// migrations (`schema_migrations`), under an advisory lock so shards starting together do not
/// race; each server's run is recorded in one transaction holding that server's advisory lock,
/// so shards (which scan disjoint servers) never wait on each other.
public final class PostgresHistory: HistoryStore, @unchecked Sendable {
    public static let defaultSchema = "pgpreflight_history"
    /// Version → DDL. Append, never edit: a schema already at version N runs only the later ones.
    static let migrations: [(Int, String)] = [
        (1, """
            CREATE TABLE run (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, server text NOT NULL,
                              started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL, status text NOT NULL,
                              failed integer NOT NULL, warnings integer NOT NULL);
            CREATE INDEX run_server ON run (server, id);
            CREATE TABLE result (run_id bigint NOT NULL REFERENCES run (id) ON DELETE CASCADE, rule text NOT NULL, database text,
                                 status text NOT NULL, accepted boolean NOT NULL, message text NOT NULL, objects jsonb NOT NULL);
            CREATE INDEX result_run ON result (run_id);
            """),
        (2, """
            -- One row per offending object of a Warning/Failed result: "which servers have X" is a query.
            CREATE TABLE finding (run_id bigint NOT NULL REFERENCES run (id) ON DELETE CASCADE, rule text NOT NULL, database text,
                                  object text, status text NOT NULL);
            CREATE INDEX finding_run ON finding (run_id);
            CREATE INDEX finding_rule_object ON finding (rule, object);
            """),
    ]

    private let connection: Connection
    private let schema: String
    private let lock = NSLock()

    public init(_ endpoint: ConnectionString, schema: String = PostgresHistory.defaultSchema) throws {
        connection = try Connection.open(endpoint, applicationName: "pgpreflight scan history")
        do {
            self.schema = try connection.quoteIdentifier(schema)
            try migrate(name: schema)
        } catch {
            connection.close()
            throw error
        }
    }

    deinit { connection.close() }

    /// The schema's migration version (for tests and `--history` diagnostics).
    public func version() throws -> Int {
        try lock.withLock { try connection.query("SELECT coalesce(max(version), 0) AS v FROM \(schema).schema_migrations").first?.int("v") ?? 0 }
    }

    private func migrate(name: String) throws {
        let key = "pgpreflight_history:" + name
        _ = try connection.query("SELECT pg_advisory_lock(hashtext($1))", key)
        defer { _ = try? connection.query("SELECT pg_advisory_unlock(hashtext($1))", key) }
        try connection.execute("""
            CREATE SCHEMA IF NOT EXISTS \(schema);
            CREATE TABLE IF NOT EXISTS \(schema).schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
            """)
        let applied = Set(try connection.query("SELECT version FROM \(schema).schema_migrations").rows.compactMap { $0.int("version") })
        for (version, sql) in Self.migrations where !applied.contains(version) {
            try transaction {
                try connection.execute("SET LOCAL search_path = \(schema); " + sql)
                _ = try connection.query("INSERT INTO \(schema).schema_migrations (version) VALUES ($1)", version)
            }
        }
    }

    private func transaction<T>(_ body: () throws -> T) throws -> T {
        try connection.execute("BEGIN")
        do {
            let value = try body()
            try connection.execute("COMMIT")
            return value
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }

    nonisolated(unsafe) private static let timestamp: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()

    public func record(server: String, run: ValidationRun) throws -> ScanHistory.Comparison {
        try lock.withLock {
            try transaction {
                _ = try connection.query("SELECT pg_advisory_xact_lock(hashtext($1))", "pgpreflight_history:server:" + server)
                var previous: [ScanHistory.StoredResult] = []
                if let last = try connection.query("SELECT id FROM \(schema).run WHERE server = $1 ORDER BY id DESC LIMIT 1", server).first?.string("id") {
                    for row in try connection.query("SELECT rule, database, status, accepted, objects::text AS objects FROM \(schema).result WHERE run_id = $1", last).rows {
                        let objects = (try? JSONDecoder().decode([String].self, from: Data((row.string("objects") ?? "[]").utf8))) ?? []
                        previous.append(ScanHistory.StoredResult(rule: row.string("rule") ?? "", database: row.string("database"),
                                                                 status: Status(rawValue: row.string("status") ?? "") ?? .succeeded,
                                                                 accepted: row.bool("accepted") ?? false, objects: objects))
                    }
                }
                let id = try connection.query("""
                    INSERT INTO \(schema).run (server, started_at, finished_at, status, failed, warnings)
                    VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
                    """, server, Self.timestamp.string(from: run.startedAt), Self.timestamp.string(from: run.finishedAt), run.status.rawValue,
                    run.results.filter { $0.blockingStatus == .failed }.count,
                    run.results.filter { $0.blockingStatus == .warning }.count).first?.string("id") ?? ""
                // All results in one statement (one round trip per server, whatever the rule count).
                struct Stored: Encodable { let rule: String; let database: String?; let status: String; let accepted: Bool; let message: String; let objects: [String] }
                let rows = run.results.map { Stored(rule: $0.rule, database: $0.database, status: $0.status.rawValue, accepted: $0.suppressed != nil,
                                                    message: $0.message, objects: $0.objects) }
                let json = String(decoding: try JSONEncoder().encode(rows), as: UTF8.self)
                _ = try connection.query("""
                    WITH r AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS x(rule text, database text, status text, accepted boolean, message text, objects jsonb)),
                         inserted AS (INSERT INTO \(schema).result (run_id, rule, database, status, accepted, message, objects)
                                      SELECT $1::bigint, rule, database, status, accepted, message, objects FROM r)
                    INSERT INTO \(schema).finding (run_id, rule, database, object, status)
                    SELECT $1::bigint, r.rule, r.database, o.object, r.status
                    FROM r LEFT JOIN LATERAL jsonb_array_elements_text(r.objects) AS o(object) ON true
                    WHERE NOT r.accepted AND r.status <> 'Succeeded'
                    """, id, json)
                return ScanHistory.compare(previous: previous, current: run.results.map(ScanHistory.StoredResult.init))
            }
        }
    }

    public func trend(server: String, limit: Int) throws -> [ScanHistory.TrendPoint] {
        try lock.withLock {
            try connection.query("""
                SELECT extract(epoch FROM started_at)::float8 AS t, failed, warnings FROM \(schema).run WHERE server = $1 ORDER BY id DESC LIMIT $2
                """, server, limit).rows.map {
                ScanHistory.TrendPoint(startedAt: Date(timeIntervalSince1970: $0.double("t") ?? 0), failed: $0.int("failed") ?? 0, warnings: $0.int("warnings") ?? 0)
            }.reversed()
        }
    }

    public func runCount(server: String) throws -> Int {
        try lock.withLock { try connection.query("SELECT count(*) AS n FROM \(schema).run WHERE server = $1", server).first?.int("n") ?? 0 }
    }
}
