import Foundation
import PostgresClient

/// A read-only session of the verifier on one server. The source one may read in an exported
/// snapshot (then every query runs in its REPEATABLE READ transaction, each behind a savepoint
/// so that one failing check does not end the transaction).
final class Session: @unchecked Sendable {
    let connection: Connection
    let inTransaction: Bool
    private(set) var queries = 0
    var version: Int { connection.serverVersionNumber }

    /// Settings that make deparsed text and row text the same on both servers: every user
    /// object printed schema-qualified (search_path = pg_catalog), UTC, ISO dates, hex bytea.
    static let settings = """
        SET default_transaction_read_only = on; SET search_path = pg_catalog; SET extra_float_digits = 3; SET timezone = 'UTC';
        SET datestyle = 'ISO, YMD'; SET intervalstyle = 'postgres'; SET bytea_output = 'hex'; SET statement_timeout = 0;
        SET lock_timeout = 0
        """

    init(_ endpoint: ConnectionString, snapshot: String?) throws {
        connection = try Connection.open(endpoint, applicationName: "pgpreflight verify")
        do {
            try connection.execute(Self.settings)
            if let snapshot {
                try connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                try connection.execute("SET TRANSACTION SNAPSHOT \(try connection.quoteLiteral(snapshot))")
            }
        } catch { connection.close(); throw error }
        inTransaction = snapshot != nil
    }

    /// Opens the source (in `snapshot` when given) and the target session in parallel.
    static func pair(source: ConnectionString, target: ConnectionString, snapshot: String?) throws -> (Session, Session) {
        let (s, t) = parallel({ Result { try Session(source, snapshot: snapshot) } }, { Result { try Session(target, snapshot: nil) } })
        switch (s, t) {
        case (.success(let s), .success(let t)): return (s, t)
        case (.success(let s), .failure(let error)): s.close(); throw error
        case (.failure(let error), .success(let t)): t.close(); throw error
        case (.failure(let error), .failure): throw error
        }
    }

    func close() {
        if inTransaction { try? connection.execute("COMMIT") }
        connection.close()
    }

    func query(_ sql: String) throws -> QueryResult {
        queries += 1
        guard inTransaction else { return try connection.query(sql) }
        try connection.execute("SAVEPOINT verify_check")
        do {
            let result = try connection.query(sql)
            try connection.execute("RELEASE SAVEPOINT verify_check")
            return result
        } catch {
            try? connection.execute("ROLLBACK TO SAVEPOINT verify_check")
            throw error
        }
    }

    /// The rows of every check, all in one UNION ALL; when that fails, check by check, so
    /// that the one failing check is named and the others still compare.
    func listings(_ checks: [CatalogCheck], _ context: VerifyContext) -> [String: Result<[String: Verifier.Listed], Error>] {
        func wrapped(_ check: CatalogCheck) -> String? {
            guard let sql = check.sql(context) else { return nil }
            let literal = "'" + check.id.replacingOccurrences(of: "'", with: "''") + "'"
            return check.roleScoped
                ? "SELECT \(literal)::text, s.k::text, s.v::text, s.r::text FROM (\n\(sql)\n) AS s(k, v, r)"
                : "SELECT \(literal)::text, s.k::text, s.v::text, NULL::text FROM (\n\(sql)\n) AS s(k, v)"
        }
        func collect(_ rows: [Row], into out: inout [String: [String: Verifier.Listed]]) {
            for row in rows {
                guard let id = row.string(0), let key = row.string(1) else { continue }
                let value = row.string(2) ?? ""
                if let existing = out[id]?[key] {
                    // The same name twice (two objects print alike): compare all their values.
                    let joined = [existing.value, value].sorted().joined(separator: "\n")
                    out[id]![key] = Verifier.Listed(value: joined, role: existing.role)
                } else {
                    out[id, default: [:]][key] = Verifier.Listed(value: value, role: row.string(3))
                }
            }
        }
        let parts = checks.compactMap { check in wrapped(check).map { (check.id, $0) } }
        var results: [String: Result<[String: Verifier.Listed], Error>] = [:]
        do {
            var all: [String: [String: Verifier.Listed]] = [:]
            collect(try query(parts.map { "(\($0.1))" }.joined(separator: "\nUNION ALL\n")).rows, into: &all)
            for (id, _) in parts { results[id] = .success(all[id] ?? [:]) }
        } catch {
            for (id, sql) in parts {
                do {
                    var one: [String: [String: Verifier.Listed]] = [:]
                    collect(try query(sql).rows, into: &one)
                    results[id] = .success(one[id] ?? [:])
                } catch { results[id] = .failure(error) }
            }
        }
        return results
    }
}
