import Foundation
import PostgresClient
import Validation

/// Compares a source and a target database at any time, with no migration state: catalog
/// listings (schemas, tables, columns, indexes, constraints, sequences, functions, triggers,
/// views, extensions, large objects, owners, privileges) and, per table, row counts and
/// optionally an order-independent checksum computed on both servers in parallel.
/// `pgpreflight verify` and the migrator's verification step both use it.
public struct Verifier: Sendable {
    public struct Check: Sendable {
        public let id: String
        public let title: String
        /// Rows of (object, value): an object missing, extra or with another value differs.
        let sql: @Sendable (_ serverVersion: Int) -> String
    }

    public var source: ConnectionString
    public var target: ConnectionString
    public var checksums: Bool
    /// Tables copied at most this many at a time per server.
    public var parallelTables: Int

    public init(source: ConnectionString, target: ConnectionString, checksums: Bool, parallelTables: Int = 4) {
        self.source = source; self.target = target; self.checksums = checksums; self.parallelTables = max(1, parallelTables)
    }

    /// Verifies one database (same name on both sides unless `targetDatabase` is given).
    public func verify(database: String, targetDatabase: String? = nil) async -> [RuleResult] {
        let sourceDB = source.with(database: database)
        let targetDB = target.with(database: targetDatabase ?? database)
        let started = Date()
        let sourceConnection: Connection, targetConnection: Connection
        do {
            async let s = Self.open(sourceDB)
            async let t = Self.open(targetDB)
            (sourceConnection, targetConnection) = try await (s, t)
        } catch {
            return [RuleResult(rule: "verify.connect", title: "Both databases can be opened", scope: .database, database: database,
                               status: .failed, message: "could not verify: \(error)", remedy: "Check the connection strings and that the database exists on both servers.",
                               objects: [], startedAt: started, finishedAt: Date())]
        }
        defer { sourceConnection.close(); targetConnection.close() }

        var results: [RuleResult] = []
        for check in Self.catalogChecks {
            let checkStart = Date()
            do {
                async let s = Self.listing(sourceConnection, check)
                async let t = Self.listing(targetConnection, check)
                let (sourceRows, targetRows) = try await (s, t)
                let differences = Self.differences(source: sourceRows, target: targetRows)
                results.append(RuleResult(
                    rule: check.id, title: check.title, scope: .database, database: database,
                    status: differences.isEmpty ? .succeeded : .failed,
                    message: differences.isEmpty ? "\(sourceRows.count) identical on both servers"
                        : "\(differences.count) of \(max(sourceRows.count, targetRows.count)) differ",
                    remedy: differences.isEmpty ? "" : "Compare the objects listed; migrate the database again or fix them on the target by hand.",
                    objects: differences, startedAt: checkStart, finishedAt: Date()))
            } catch {
                results.append(RuleResult(rule: check.id, title: check.title, scope: .database, database: database, status: .failed,
                                          message: "could not check: \(error)", remedy: "", objects: [], startedAt: checkStart, finishedAt: Date()))
            }
        }
        results.append(contentsOf: await tableData(database: database))
        return results
    }

    // MARK: Table data

    /// Row counts and, with checksums, an order-independent hash per table, both servers
    /// counted now: the same comparison the migrator's verification step makes.
    private func tableData(database: String) async -> [RuleResult] {
        let started = Date()
        let mode: VerifyMode = checksums ? .checksums : .counts
        let (source, target, jobs) = (self.source, self.target, parallelTables)
        let outcome: Result<[TableMismatch], Error> = await withCheckedContinuation { continuation in
            Thread {
                continuation.resume(returning: Result {
                    try TableVerifier.verify(source: source, target: target, database: database, mode: mode, jobs: jobs)
                })
            }.start()
        }
        let mismatches: [TableMismatch]
        switch outcome {
        case .success(let found): mismatches = found
        case .failure(let error):
            return [RuleResult(rule: "verify.row-counts", title: "Row counts match", scope: .database, database: database, status: .failed,
                               message: "could not check: \(error)", remedy: "", objects: [], startedAt: started, finishedAt: Date())]
        }
        let countDiffs = mismatches.filter { $0.sourceRows != $0.targetRows }
        let sumDiffs = mismatches.filter { $0.sourceRows == $0.targetRows }
        var results = [RuleResult(
            rule: "verify.row-counts", title: "Row counts match", scope: .database, database: database,
            status: countDiffs.isEmpty ? .succeeded : .failed,
            message: countDiffs.isEmpty ? "Every table has the same number of rows on both servers" : "\(countDiffs.count) tables have other row counts",
            remedy: countDiffs.isEmpty ? "" : "Copy these tables again (pgpreflight migrate resumes table by table).",
            objects: countDiffs.map(\.description), startedAt: started, finishedAt: Date())]
        if checksums {
            results.append(RuleResult(
                rule: "verify.checksums", title: "Table contents match", scope: .database, database: database,
                status: sumDiffs.isEmpty ? .succeeded : .failed,
                message: sumDiffs.isEmpty ? "Every table has the same contents on both servers" : "\(sumDiffs.count) tables have the same row count but other contents",
                remedy: sumDiffs.isEmpty ? "" : "Copy these tables again; compare them with EXCEPT queries to find the rows.",
                objects: sumDiffs.map(\.table), startedAt: started, finishedAt: Date()))
        }
        return results
    }

    // MARK: Catalog listings

    static func open(_ endpoint: ConnectionString) async throws -> Connection {
        let connection = try await Connection.connect(endpoint, applicationName: "pgpreflight-verify")
        // The same text form on both servers, whatever their defaults: checksums hash row text.
        try await connection.run { c in
            try c.execute("""
                SET default_transaction_read_only = on; SET extra_float_digits = 3; SET timezone = 'UTC';
                SET datestyle = 'ISO, YMD'; SET intervalstyle = 'postgres'; SET bytea_output = 'hex';
                SET statement_timeout = 0
                """)
        }
        return connection
    }

    static func listing(_ connection: Connection, _ check: Check) async throws -> [String: String] {
        try await connection.run { c in
            var rows: [String: String] = [:]
            for row in try c.query(check.sql(c.serverVersionNumber)).rows {
                if let key = row.string(0) { rows[key] = row.string(1) ?? "" }
            }
            return rows
        }
    }

    static func differences(source: [String: String], target: [String: String]) -> [String] {
        var out: [String] = []
        for key in source.keys.sorted() {
            guard let other = target[key] else { out.append("\(key): missing on the target"); continue }
            if other != source[key] { out.append("\(key): differs (source \(source[key]!.prefix(80)), target \(other.prefix(80)))") }
        }
        for key in target.keys.sorted() where source[key] == nil { out.append("\(key): only on the target") }
        return out
    }

    /// Objects of the user's schemas: not system schemas, not members of an extension.
    static let userSchemas = Catalog.userSchemaFilter
    static func notExtensionMember(_ catalog: String, _ oid: String) -> String {
        "NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = '\(catalog)'::regclass AND d.objid = \(oid) AND d.deptype = 'e')"
    }

    /// An ACL as sorted `grantee:privilege[*]:grantor` items. MAINTAIN (PostgreSQL 17+) is left
    /// out: a newer target adds it to the owner's default privileges, an older source has none.
    static func acl(_ column: String) -> String {
        """
        coalesce((SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END || ':' || a.privilege_type
                                    || CASE WHEN a.is_grantable THEN '*' ELSE '' END || ':' || pg_get_userbyid(a.grantor), ',' ORDER BY 1)
                  FROM aclexplode(\(column)) a WHERE a.privilege_type <> 'MAINTAIN'), 'default')
        """
    }

    public static let catalogChecks: [Check] = [
        Check(id: "verify.schemas", title: "Schemas match") { _ in
            "SELECT quote_ident(nspname), pg_get_userbyid(nspowner) || ' ' || \(acl("nspacl")) FROM pg_namespace n WHERE \(userSchemas)"
        },
        Check(id: "verify.tables", title: "Tables, views and their columns match") { version in
            let generated = version >= 120000 ? "CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END" : "''"
            return """
            SELECT format('%I.%I', n.nspname, c.relname),
                   c.relkind::text || ' ' || coalesce((SELECT string_agg(format('%I %s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                          CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
                          \(generated)), ', ' ORDER BY a.attnum)
                     FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
            """
        },
        Check(id: "verify.indexes", title: "Indexes match") { _ in
            """
            SELECT format('%I.%I', n.nspname, c.relname), pg_get_indexdef(i.indexrelid)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE \(userSchemas) AND \(notExtensionMember("pg_class", "i.indrelid"))
            """
        },
        Check(id: "verify.constraints", title: "Constraints match") { _ in
            """
            SELECT format('%I.%I', n.nspname, coalesce(cl.relname, t.typname)) || ' ' || quote_ident(co.conname), pg_get_constraintdef(co.oid)
            FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
            LEFT JOIN pg_class cl ON cl.oid = co.conrelid LEFT JOIN pg_type t ON t.oid = co.contypid
            WHERE \(userSchemas) AND co.contype <> 'n' AND \(notExtensionMember("pg_class", "co.conrelid"))
            """
        },
        Check(id: "verify.sequences", title: "Sequence values match") { version in
            version >= 100000
                ? "SELECT format('%I.%I', schemaname, sequencename), coalesce(last_value::text, 'not called') FROM pg_sequences s JOIN pg_namespace n ON n.nspname = s.schemaname WHERE \(userSchemas)"
                : "SELECT format('%I.%I', n.nspname, c.relname), 'unknown' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND \(userSchemas)"
        },
        Check(id: "verify.functions", title: "Functions and procedures match") { version in
            let kind = version >= 110000 ? "p.prokind IN ('f', 'p')" : "NOT p.proisagg AND NOT p.proiswindow"
            return """
                SELECT p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)) || ' ' || pg_get_userbyid(p.proowner) || ' ' || \(acl("p.proacl"))
                FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE \(kind) AND \(userSchemas) AND \(notExtensionMember("pg_proc", "p.oid"))
                """
        },
        Check(id: "verify.triggers", title: "Triggers match") { _ in
            """
            SELECT format('%I.%I', n.nspname, c.relname) || ' ' || quote_ident(t.tgname), pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
            FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT t.tgisinternal AND \(userSchemas)
            """
        },
        Check(id: "verify.extensions", title: "Extensions and versions match") { _ in
            "SELECT quote_ident(extname), extversion FROM pg_extension WHERE extname <> 'plpgsql'"
        },
        Check(id: "verify.large-objects", title: "Large objects match") { _ in
            "SELECT oid::text, pg_get_userbyid(lomowner) || ' ' || \(acl("lomacl")) FROM pg_largeobject_metadata"
        },
        Check(id: "verify.owners", title: "Owners match") { _ in
            """
            SELECT format('%I.%I', n.nspname, c.relname), pg_get_userbyid(c.relowner)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
            """
        },
        Check(id: "verify.privileges", title: "Privileges match") { _ in
            """
            SELECT format('%I.%I', n.nspname, c.relname), \(acl("c.relacl")) || ' ' ||
                   coalesce((SELECT string_agg(quote_ident(col.attname) || '=' || \(acl("col.attacl")), ',' ORDER BY col.attnum)
                             FROM pg_attribute col WHERE col.attrelid = c.oid AND col.attacl IS NOT NULL), '')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
            """
        },
    ]
}
