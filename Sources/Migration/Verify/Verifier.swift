import Foundation
import PostgresClient
import Validation

/// One way a target differs from its source: the check that saw it, the object (schema-qualified
/// name and kind, e.g. `app.orders.customer (table column)`) and what differs.
public struct VerifyDifference: Sendable, Equatable, Codable, CustomStringConvertible {
    public let check: String
    public let object: String
    public let detail: String
    public init(check: String, object: String, detail: String) { self.check = check; self.object = object; self.detail = detail }
    public var description: String { "\(object): \(detail)" }
}

/// Compares a source and a target database at any time, read-only on both servers, with no
/// migration state: `pgpreflight verify` and the migrator's last step use the same code.
///
/// Per database, a handful of queries per server whatever the number of objects: every catalog
/// comparison (`CatalogChecks.database`: definitions, comments, security labels, owners,
/// privileges, database properties, …) in one UNION ALL, sequence values, large-object contents
/// (hashed on the server, a chunk at a time), then table and materialized-view row counts and
/// optionally checksums (`TableVerifier`). Roles are cluster-wide: compared once (`verifyRoles`).
public struct Verifier: Sendable {
    public var source: ConnectionString
    public var target: ConnectionString
    public var checksums: Bool
    /// Tables compared at most this many at a time per server.
    public var parallelTables: Int
    /// A snapshot exported by a source session (`pg_export_snapshot()`): the source is read in it.
    public var sourceSnapshot: String?
    /// false: no row counts or checksums of tables and materialized views (the caller compares
    /// data itself); everything else is still compared.
    public var tableData = true
    /// Polled between tables: true ends the comparison of table data with MigrationCanceled.
    public var shouldStop: @Sendable () -> Bool = { false }
    /// The roles compared (nil: every role of the source). The migrator passes the roles it
    /// copied: one created on the source after that is not the copy's difference.
    public var onlyRoles: Set<String>?

    public init(source: ConnectionString, target: ConnectionString, checksums: Bool, parallelTables: Int = 4,
                sourceSnapshot: String? = nil) {
        self.source = source; self.target = target; self.checksums = checksums
        self.parallelTables = max(1, parallelTables); self.sourceSnapshot = sourceSnapshot
    }

    /// The result of one check: what was compared and what differs (or why it could not run).
    struct Outcome: Sendable {
        let id: String
        let title: String
        var compared = 0
        var differences: [VerifyDifference] = []
        var error: String?
        /// The objects of the RuleResult (default: each difference's description).
        var objects: [String]?
        var remedy = "Compare the objects listed; migrate the database again or fix them on the target by hand."
        var started = Date()
        var finished = Date()
    }

    public struct CheckInfo: Sendable, Equatable {
        public let id: String
        public let title: String
    }

    /// Every per-database check but the table row counts and checksums, in the order of the
    /// results (`verify(database:)` returns these plus "verify.row-counts" and, with checksums,
    /// "verify.checksums"; materialized-view checksums only with checksums).
    public static var catalogChecks: [CheckInfo] {
        CatalogChecks.database.map { CheckInfo(id: $0.id, title: $0.title) } + [
            CheckInfo(id: "verify.sequences", title: "Sequence values match"),
            CheckInfo(id: "verify.large-object-contents", title: "Large-object contents match"),
            CheckInfo(id: "verify.materialized-view-row-counts", title: "Materialized views have the same number of rows"),
            CheckInfo(id: "verify.materialized-view-checksums", title: "Materialized-view contents match"),
        ]
    }

    // MARK: API for the migrator

    /// Every difference between the database `source` names and the one `target` names, the
    /// source read in `sourceSnapshot` when given (a source session can
    /// `BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT …`). `data`: row counts,
    /// or counts and checksums, of tables and materialized views (nil: not compared). With
    /// `includeRoles` the cluster's roles are compared too. A check that could not run is a
    /// difference too (object `(check title)`, detail "could not compare: …"), so an empty list
    /// is the proof. Blocking: call it from a thread of its own, or use the async overload.
    public static func differences(source: ConnectionString, target: ConnectionString, sourceSnapshot: String? = nil,
                                   data: VerifyMode? = .checksums, includeRoles: Bool = false, onlyRoles: Set<String>? = nil, jobs: Int = 4,
                                   shouldStop: @escaping @Sendable () -> Bool = { false }) -> [VerifyDifference] {
        var verifier = Verifier(source: source, target: target, checksums: data == .checksums, parallelTables: jobs,
                                sourceSnapshot: sourceSnapshot)
        verifier.onlyRoles = onlyRoles
        verifier.tableData = data != nil
        verifier.shouldStop = shouldStop
        var outcomes = includeRoles ? verifier.roleOutcomes() : []
        outcomes += verifier.databaseOutcomes(source: source, target: target)
        return outcomes.flatMap { outcome in
            outcome.error.map { [VerifyDifference(check: outcome.id, object: "(\(outcome.title))", detail: "could not compare: \($0)")] }
                ?? outcome.differences
        }
    }

    public static func differences(source: ConnectionString, target: ConnectionString, sourceSnapshot: String? = nil,
                                   data: VerifyMode? = .checksums, includeRoles: Bool = false, jobs: Int = 4,
                                   shouldStop: @escaping @Sendable () -> Bool = { false }) async -> [VerifyDifference] {
        await offPool {
            differences(source: source, target: target, sourceSnapshot: sourceSnapshot, data: data, includeRoles: includeRoles,
                        jobs: jobs, shouldStop: shouldStop)
        }
    }

    // MARK: API for `pgpreflight verify`

    /// Verifies one database (same name on both sides unless `targetDatabase` is given).
    public func verify(database: String, targetDatabase: String? = nil) async -> [RuleResult] {
        let sourceDB = source.with(database: database)
        let targetDB = target.with(database: targetDatabase ?? database)
        let outcomes = await Self.offPool { self.databaseOutcomes(source: sourceDB, target: targetDB) }
        return outcomes.map { Self.result($0, database: database) }
    }

    /// Compares the cluster's roles once: attributes, passwords (compared, never printed),
    /// memberships with their options and grantors, settings, comments and security labels of
    /// every role of the source that is neither predefined (pg_*) nor a platform's.
    public func verifyRoles() async -> [RuleResult] {
        await Self.offPool { self.roleOutcomes() }.map { Self.result($0, database: nil) }
    }

    static func result(_ outcome: Outcome, database: String?) -> RuleResult {
        let failed = outcome.error != nil || !outcome.differences.isEmpty
        let message: String
        if let error = outcome.error { message = "could not check: \(error)" }
        else if outcome.differences.isEmpty { message = "\(outcome.compared) identical on both servers" }
        else { message = "\(outcome.differences.count) of \(max(outcome.compared, outcome.differences.count)) differ" }
        return RuleResult(rule: outcome.id, title: outcome.title, scope: database == nil ? .instance : .database, database: database,
                          status: failed ? .failed : .succeeded, message: message,
                          remedy: outcome.error != nil ? "Verify as a role that may read what the error names (a superuser), or remove its cause."
                              : failed ? outcome.remedy : "",
                          objects: outcome.objects ?? outcome.differences.map(\.description),
                          startedAt: outcome.started, finishedAt: outcome.finished)
    }

    static func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    // MARK: One database

    func databaseOutcomes(source sourceDB: ConnectionString, target targetDB: ConnectionString) -> [Outcome] {
        let started = Date()
        let sessions: (Session, Session)
        do { sessions = try Session.pair(source: sourceDB, target: targetDB, snapshot: sourceSnapshot) } catch {
            return [Outcome(id: "verify.connect", title: "Both databases can be opened", error: "\(error)",
                            remedy: "Check the connection strings and that the database exists on both servers.", started: started)]
        }
        let (source, target) = sessions
        defer { source.close(); target.close() }
        // The catalog comparisons (seconds of deparsing on a catalog of 10 000 tables) and the
        // row counts run at the same time, on sessions of their own.
        let (catalog, data) = parallel({
            var outcomes = Self.catalogOutcomes(CatalogChecks.database, source: source, target: target, sourceRoles: nil)
            outcomes.append(Self.sequenceValues(source: source, target: target))
            outcomes.append(Self.largeObjectContents(source: source, target: target))
            return outcomes
        }, {
            guard self.tableData else { return [Outcome]() }
            do {
                let (source, target) = try Session.pair(source: sourceDB, target: targetDB, snapshot: self.sourceSnapshot)
                defer { source.close(); target.close() }
                return self.relationData(source: source, target: target, sourceDB: sourceDB, targetDB: targetDB)
            } catch {
                return [Outcome(id: "verify.row-counts", title: "Row counts match", error: "\(error)", started: started)]
            }
        })
        return catalog + data
    }

    func roleOutcomes() -> [Outcome] {
        let started = Date()
        let sessions: (Session, Session)
        do { sessions = try Session.pair(source: source, target: target, snapshot: nil) } catch {
            return [Outcome(id: "verify.connect", title: "Both servers can be opened", error: "\(error)",
                            remedy: "Check the connection strings.", started: started)]
        }
        let (source, target) = sessions
        defer { source.close(); target.close() }
        return Self.catalogOutcomes(CatalogChecks.cluster, source: source, target: target, sourceRoles: onlyRoles ?? [])
    }

    // MARK: Catalog comparisons

    /// Runs `checks` on both servers (one UNION ALL each, in parallel) and compares them.
    /// `sourceRoles` non-nil: role-scoped rows are kept only for the source's own roles, taken
    /// from the `verify.roles` rows.
    static func catalogOutcomes(_ checks: [CatalogCheck], source: Session, target: Session, sourceRoles: Set<String>?) -> [Outcome] {
        let started = Date()
        func readsPasswords(_ session: Session) -> Bool {
            (try? session.query("SELECT has_table_privilege('pg_authid', 'SELECT')").rows.first?.bool(0)) == true
        }
        let readable = checks.contains { $0.roleScoped } && readsPasswords(source) && readsPasswords(target)
        func context(_ session: Session) -> VerifyContext {
            VerifyContext(version: session.version, sourceVersion: source.version, targetVersion: target.version, passwordsReadable: readable)
        }
        let sourceContext = context(source), targetContext = context(target)
        let applicable = checks.filter { $0.sql(sourceContext) != nil && $0.sql(targetContext) != nil }
        let (sourceRows, targetRows) = parallel({ source.listings(applicable, sourceContext) }, { target.listings(applicable, targetContext) })
        var roles: Set<String>?
        if sourceRoles != nil, case .success(let rows)? = sourceRows["verify.roles"] {
            roles = Set(rows.values.compactMap(\.role).filter { !Roles.isReserved($0) })
            if let only = sourceRoles, !only.isEmpty { roles = roles!.intersection(only) }
        }
        let finished = Date()
        return applicable.map { check in
            var outcome = Outcome(id: check.id, title: check.title, started: started, finished: finished)
            switch (sourceRows[check.id], targetRows[check.id]) {
            case (.success(var s)?, .success(var t)?):
                if check.roleScoped {
                    s = s.filter { $0.value.role.map { !Roles.isReserved($0) && (roles?.contains($0) ?? true) } ?? true }
                    t = t.filter { $0.value.role.map { !Roles.isReserved($0) && (roles?.contains($0) ?? true) } ?? true }
                }
                outcome.compared = Set(s.keys).union(t.keys).count
                outcome.differences = compare(check, source: s, target: t, acrossMajors: sourceContext.acrossMajors)
            case (.failure(let error)?, _), (_, .failure(let error)?):
                outcome.error = "\(error)"
            default:
                outcome.error = "no answer"
            }
            return outcome
        }
    }

    struct Listed: Sendable { var value: String; var role: String? }

    static func compare(_ check: CatalogCheck, source: [String: Listed], target: [String: Listed], acrossMajors: Bool) -> [VerifyDifference] {
        // Across majors, format('%I') and quote_ident quote a name that is a keyword of the
        // server that prints it (json on 16+): the same identifier, quoted or not.
        func unquoted(_ listing: [String: Listed]) -> [String: Listed] {
            guard acrossMajors else { return listing }
            var result: [String: Listed] = [:]
            for (key, listed) in listing {
                result[SQLText.unquotingPlainIdentifiers(key)] = Listed(value: SQLText.unquotingPlainIdentifiers(listed.value), role: listed.role)
            }
            return result
        }
        let source = unquoted(source), target = unquoted(target)
        var out: [VerifyDifference] = []
        let what = check.subject.isEmpty ? "" : "\(check.subject) "
        for key in source.keys.sorted() {
            let s = source[key]!.value
            guard let t = target[key]?.value else {
                let shown = check.comparison == .secret || s.count > 80 || s.contains("\n") ? "" : " (source: \(s))"
                out.append(VerifyDifference(check: check.id, object: key, detail: "missing on the target\(shown)"))
                continue
            }
            let same: Bool
            switch check.comparison {
            case .exact, .secret: same = s == t
            case .definition: same = SQLText.sameDefinition(s, t, acrossMajors: acrossMajors)
            }
            if same { continue }
            // "comment differs", "privileges differ"
            var detail = check.comparison == .secret ? "differs" : describe(source: s, target: t)
            if check.subject.hasSuffix("s") { detail = "differ" + detail.dropFirst("differs".count) }
            out.append(VerifyDifference(check: check.id, object: key, detail: what + detail))
        }
        if check.targetOnly == .reported {
            for key in target.keys.sorted() where source[key] == nil {
                let t = target[key]!.value
                let shown = check.comparison == .secret || t.count > 80 || t.contains("\n") ? "" : " (target: \(t))"
                out.append(VerifyDifference(check: check.id, object: key, detail: "only on the target\(shown)"))
            }
        }
        return out
    }

    /// "differs (source …, target …)", or for multi-line values the first line that differs.
    static func describe(source: String, target: String) -> String {
        if !source.contains("\n") && !target.contains("\n") && source.count <= 80 && target.count <= 80 {
            return "differs (source \(source), target \(target))"
        }
        let s = source.split(separator: "\n", omittingEmptySubsequences: false)
        let t = target.split(separator: "\n", omittingEmptySubsequences: false)
        var index = 0
        while index < s.count && index < t.count && s[index] == t[index] { index += 1 }
        func line(_ lines: [Substring]) -> String {
            guard index < lines.count else { return "(no line \(index + 1))" }
            let text = lines[index].trimmingCharacters(in: .whitespaces)
            return "`" + (text.count > 120 ? String(text.prefix(117)) + "…" : text) + "`"
        }
        // The same lines in another order: a table's columns, when pg_dump recreated an
        // inheritance child with its inherited columns first (it cannot keep their order).
        let order = s.sorted() == t.sorted() ? " in order only" : ""
        return "differs\(order) at line \(index + 1) (source \(line(s)), target \(line(t)))"
    }

    // MARK: Sequence values

    /// last_value of every sequence, "N (not called)" when nextval has not used it yet. The
    /// catalog gives the values of used sequences in one query; unused ones (whose next value
    /// pg_sequence_last_value does not tell) are read 500 per query.
    static func sequenceValues(source: Session, target: Session) -> Outcome {
        var outcome = Outcome(id: "verify.sequences", title: "Sequence values match",
                              remedy: "Set them with setval() on the target (pgpreflight migrate sets them at the end of the copy).")
        @Sendable func values(_ session: Session) -> Result<[String: Listed], Error> {
            Result {
                let c = session.connection
                guard c.serverVersionNumber >= 100000 else { return [:] }
                var out: [String: Listed] = [:]
                var unused: [(key: String, qualified: String)] = []
                for row in try session.query("""
                    SELECT format('%I.%I', n.nspname, c.relname), n.nspname, c.relname, pg_sequence_last_value(c.oid)::text
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind = 'S' AND c.relpersistence <> 't' AND \(CatalogChecks.userSchemas)
                      AND \(CatalogChecks.notExtensionMember("pg_class", "c.oid"))
                    """).rows {
                    guard let key = row.string(0) else { continue }
                    if let value = row.string(3) { out[key] = Listed(value: value) }
                    else { unused.append((key, try c.quoteQualified(row.string(1)!, row.string(2)!))) }
                }
                var index = 0
                while index < unused.count {
                    let batch = unused[index..<min(index + 500, unused.count)]
                    index += batch.count
                    let sql = try batch.map { "SELECT \(try c.quoteLiteral($0.key)), last_value::text, is_called FROM \($0.qualified)" }
                        .joined(separator: " UNION ALL ")
                    for row in try session.query(sql).rows {
                        out[row.string(0)!] = Listed(value: (row.string(1) ?? "") + (row.bool(2) == true ? "" : " (not called)"))
                    }
                }
                return out
            }
        }
        let (s, t) = parallel({ values(source) }, { values(target) })
        switch (s, t) {
        case (.success(let s), .success(let t)):
            let check = CatalogCheck(id: outcome.id, title: outcome.title, subject: "") { _ in nil }
            outcome.compared = Set(s.keys).union(t.keys).count
            outcome.differences = compare(check, source: s, target: t, acrossMajors: false)
        case (.failure(let error), _), (_, .failure(let error)):
            outcome.error = "\(error)"
        }
        outcome.finished = Date()
        return outcome
    }

    // MARK: Large-object contents

    /// Size and a hash of every large object's bytes, computed on the server a megabyte at a
    /// time (md5 of each chunk, then md5 of those): one query per server, no object whole in
    /// memory on either side.
    static let largeObjectHashes = """
        WITH RECURSIVE chunks(oid, n, len, hash) AS (
          SELECT s.oid, 0, length(s.data), md5(s.data)
          FROM (SELECT m.oid, lo_get(m.oid, 0, 1048576) AS data FROM pg_largeobject_metadata m OFFSET 0) s
          UNION ALL
          SELECT c.oid, c.n + 1, length(s.data), md5(s.data)
          FROM chunks c, LATERAL (SELECT lo_get(c.oid, (c.n + 1)::int8 * 1048576, 1048576) AS data OFFSET 0) s
          WHERE c.len = 1048576
        )
        SELECT oid::text, 'size ' || sum(len) || ' hash ' || md5(string_agg(hash, '' ORDER BY n)) FROM chunks GROUP BY oid
        """

    static func largeObjectContents(source: Session, target: Session) -> Outcome {
        var outcome = Outcome(id: "verify.large-object-contents", title: "Large-object contents match",
                              remedy: "Copy these large objects again (lo_get/lo_put, or migrate again).")
        @Sendable func hashes(_ session: Session) -> Result<[String: Listed], Error> {
            Result { Dictionary(try session.query(largeObjectHashes).rows.map { ($0.string(0)!, Listed(value: $0.string(1) ?? "")) },
                                uniquingKeysWith: { a, _ in a }) }
        }
        let (s, t) = parallel({ hashes(source) }, { hashes(target) })
        switch (s, t) {
        case (.success(let s), .success(let t)):
            let check = CatalogCheck(id: outcome.id, title: outcome.title, subject: "contents") { _ in nil }
            outcome.compared = Set(s.keys).union(t.keys).count
            outcome.differences = compare(check, source: s, target: t, acrossMajors: false).map {
                VerifyDifference(check: $0.check, object: "\($0.object) (large object)", detail: $0.detail)
            }
        case (.failure(let error), _), (_, .failure(let error)):
            outcome.error = "\(error)"
        }
        outcome.finished = Date()
        return outcome
    }

    // MARK: Table and materialized-view data

    /// Row counts (and with `checksums`, order-independent checksums) of every table and every
    /// materialized view populated on both servers, both counted now (the source in the
    /// snapshot when given). Relations missing on the target are left to `verify.tables`.
    func relationData(source: Session, target: Session, sourceDB: ConnectionString, targetDB: ConnectionString) -> [Outcome] {
        let started = Date()
        let mode: VerifyMode = checksums ? .checksums : .counts
        var tableOutcome = Outcome(id: "verify.row-counts", title: "Row counts match",
                                   remedy: "Copy these tables again (pgpreflight migrate resumes table by table).", started: started)
        var sumOutcome = Outcome(id: "verify.checksums", title: "Table contents match",
                                 remedy: "Copy these tables again; compare them with EXCEPT queries to find the rows.", started: started)
        var viewCounts = Outcome(id: "verify.materialized-view-row-counts", title: "Materialized views have the same number of rows",
                                 remedy: "REFRESH MATERIALIZED VIEW on the target (or the source, if it is the stale one).", started: started)
        var viewSums = Outcome(id: "verify.materialized-view-checksums", title: "Materialized-view contents match",
                               remedy: "REFRESH MATERIALIZED VIEW on the target (or the source, if it is the stale one).", started: started)
        func finish(_ error: String?) -> [Outcome] {
            var all = [tableOutcome, viewCounts]
            if checksums { all.insert(sumOutcome, at: 1); all.append(viewSums) }
            return all.map { var o = $0; if let error { o.error = error; o.objects = [] }; o.finished = Date(); return o }
        }
        do {
            let tables = try Catalog.tables(source.connection)
            let views = try Self.populatedMaterializedViews(source)
            // Relations on the target, by (schema, name): true when they can be read (populated).
            var onTarget: [String: Bool] = [:]
            for row in try target.query("""
                SELECT n.nspname, c.relname, c.relkind = 'r' OR c.relispopulated
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') AND \(CatalogChecks.userSchemas)
                """).rows {
                onTarget[row.string(0)! + "\u{0}" + row.string(1)!] = row.bool(2) == true
            }
            func present(_ table: SourceTable) -> Bool { onTarget[table.schema + "\u{0}" + table.name] == true }
            let compared = tables.filter(present) + views.filter(present)
            let viewNames = Set(views.map { "\($0.schema).\($0.name)" })
            let mismatches = try TableVerifier.compare(tables: compared, expectedRows: nil, source: sourceDB, snapshot: sourceSnapshot,
                                                       target: targetDB, mode: mode, jobs: parallelTables, shouldStop: shouldStop)
            let tableCount = compared.count - compared.filter { viewNames.contains("\($0.schema).\($0.name)") }.count
            tableOutcome.compared = tableCount; sumOutcome.compared = tableCount
            viewCounts.compared = compared.count - tableCount; viewSums.compared = viewCounts.compared
            for mismatch in mismatches {
                let isView = viewNames.contains(mismatch.table)
                let kind = isView ? "materialized view" : "table"
                if mismatch.sourceRows != mismatch.targetRows {
                    let difference = VerifyDifference(check: isView ? viewCounts.id : tableOutcome.id, object: "\(mismatch.table) (\(kind))",
                                                      detail: "\(mismatch.sourceRows) rows on the source, \(mismatch.targetRows) on the target")
                    if isView { viewCounts.differences.append(difference) } else { tableOutcome.differences.append(difference) }
                } else {
                    let difference = VerifyDifference(check: isView ? viewSums.id : sumOutcome.id, object: "\(mismatch.table) (\(kind))",
                                                      detail: "same row count (\(mismatch.sourceRows)) but different contents (checksum)")
                    if isView { viewSums.differences.append(difference) } else { sumOutcome.differences.append(difference) }
                }
            }
            // The objects as earlier releases printed them: "schema.table: N rows …" and the bare name.
            tableOutcome.objects = mismatches.filter { !viewNames.contains($0.table) && $0.sourceRows != $0.targetRows }.map(\.description)
            sumOutcome.objects = mismatches.filter { !viewNames.contains($0.table) && $0.sourceRows == $0.targetRows }.map(\.table)
            viewCounts.objects = mismatches.filter { viewNames.contains($0.table) && $0.sourceRows != $0.targetRows }.map(\.description)
            viewSums.objects = mismatches.filter { viewNames.contains($0.table) && $0.sourceRows == $0.targetRows }.map(\.table)
            return finish(nil)
        } catch {
            return finish("\(error)")
        }
    }

    /// Materialized views populated on the source, as tables to count and checksum.
    static func populatedMaterializedViews(_ session: Session) throws -> [SourceTable] {
        let c = session.connection
        var columns: [Int: [String]] = [:]
        for row in try session.query("""
            SELECT a.attrelid::int8, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'm' AND c.relispopulated AND a.attnum > 0 AND NOT a.attisdropped AND \(CatalogChecks.userSchemas)
            ORDER BY a.attrelid, a.attnum
            """).rows {
            columns[row.int(0)!, default: []].append(try c.quoteIdentifier(row.string(1)!))
        }
        return try session.query("""
            SELECT c.oid::int8, n.nspname, c.relname, pg_relation_size(c.oid), c.relpages::int8
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'm' AND c.relispopulated AND \(CatalogChecks.userSchemas)
              AND \(CatalogChecks.notExtensionMember("pg_class", "c.oid"))
            """).rows.map { row in
            let oid = row.int(0)!, schema = row.string(1)!, name = row.string(2)!
            return SourceTable(oid: oid, schema: schema, name: name, qualified: try c.quoteQualified(schema, name),
                               bytes: Int64(row.int(3) ?? 0), pages: Int64(row.int(4) ?? 0), columns: columns[oid] ?? [],
                               binary: false, integerKey: nil)
        }
    }
}

/// Runs two closures at once and returns both results.
func parallel<A: Sendable, B: Sendable>(_ a: @escaping @Sendable () -> A, _ b: @escaping @Sendable () -> B) -> (A, B) {
    let boxA = ResultBox<A>(), boxB = ResultBox<B>()
    DispatchQueue.concurrentPerform(iterations: 2) { index in
        if index == 0 { boxA.value = a() } else { boxB.value = b() }
    }
    return (boxA.value!, boxB.value!)
}

private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
    init() {}
}
