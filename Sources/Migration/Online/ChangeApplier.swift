import Foundation
import PostgresClient

/// Applies decoded pgoutput changes to one target database, in commit order.
///
/// Source transactions are grouped into target transactions (a batch), each sent as one
/// libpq pipeline of prepared statements. The applied position is recorded with a
/// replication origin in the same target transaction (`pg_replication_origin_xact_setup`),
/// so after a crash the origin's progress says exactly which source transactions are in:
/// a restart neither skips nor repeats one.
public final class ChangeApplier {
    private let target: Connection
    public let originName: String
    /// End LSN of the last source transaction committed on the target.
    public private(set) var appliedLSN: LSN
    /// Source commit time of the last applied transaction.
    public private(set) var lastAppliedCommitTime: Date?
    public private(set) var appliedTransactions = 0
    public private(set) var appliedChanges = 0
    /// For the last batch: how long its oldest transaction waited between its commit on the
    /// source and its commit on the target (the apply delay, as both clocks tell it).
    public private(set) var lastBatchDelaySeconds: Double = 0
    private var pendingFirstCommitTime: Date?

    /// A column as the target has it.
    struct TargetColumn {
        let name: String
        /// GENERATED ALWAYS AS IDENTITY: written only with OVERRIDING SYSTEM VALUE.
        let identityAlways: Bool
        /// A stored generated column: never written (wal2json sends its values).
        let generated: Bool
        /// `format_type` without the modifier, for casting a parameter.
        let typeName: String
        let typeOID: UInt32
        let typeModifier: Int32
        /// With its type modifier, for the statements a schema difference needs.
        let fullTypeName: String
        /// The type (or an array's element) has a default btree operator class: `=` is exact.
        /// Otherwise rows are compared by their text, rendered on the target on both sides.
        let hasEquality: Bool
    }

    struct Relation {
        let description: RelationDescription
        let qualifiedName: String
        let generation: Int
        /// Per source column, the target's; filled on the first change that uses the relation.
        var target: [TargetColumn]?
        /// Source column indices of the key, when UPDATEs of one row in a batch may be merged
        /// into one (see `openUpdates`); nil otherwise. Filled with `target`.
        var mergeKey: [Int]?
    }

    private var relations: [UInt32: Relation] = [:]
    private var typeNames: [UInt32: String] = [:]
    private var generation = 0
    private var preparedStatements: Set<String> = []
    private var pending: [(name: String, sql: String, values: [SQLValue])] = []
    /// Statements in `pending` before this index belong to complete source transactions.
    private var completeCount = 0
    private var pendingEnd: LSN?
    private var pendingCommitTime: Date?
    private var pendingTransactions = 0
    private var pendingChanges = 0
    private var skippingTransaction = false
    /// A target transaction holds statements sent before their source transaction's COMMIT
    /// arrived (a large transaction, written through so memory stays bounded). It commits
    /// with that source transaction, never before.
    private var targetTransactionOpen = false
    /// Coalescing: a batch commits on the target as one transaction, so only its end state is
    /// ever seen there, and the second and later UPDATEs of one row (same key, key unchanged,
    /// same columns set) in it can be folded into its first, leaving one UPDATE per row per
    /// batch (a hot row updated by every source transaction otherwise grows a version chain
    /// that each further UPDATE in the batch walks). Only where no statement in between can
    /// tell: the target table has no unique index or exclusion constraint but on the key
    /// columns, no trigger or rule that fires in replica mode (foreign keys do not), no
    /// inheritance. Key (relation and key values) → index in `pending` of the first UPDATE.
    private var openUpdates: [String: Int] = [:]
    /// UPDATEs of the open source transaction folded into an earlier one (indices in
    /// `pending`): done at its COMMIT, so a flush of the complete transactions before it
    /// never carries its changes.
    private var transactionMerges: [(into: Int, from: Int)] = []
    /// A statement folded into another: not sent.
    private static let folded = "-"
    /// Whether UPDATEs are coalesced (off by default until its tests have run in CI; see
    /// PGPREFLIGHT_APPLY_FAST in Migrator+Online.swift).
    public var coalesceUpdates = false
    /// A batch sent to the target whose results were not read yet: the server applies it
    /// while the stream receives and decodes the next one. Until its COMMIT is confirmed it
    /// is not applied (`appliedLSN` stays before it); if it failed, its statements go back
    /// to the front of `pending`, to be sent again with the next batch.
    private struct InFlight {
        let statements: [(name: String, sql: String, values: [SQLValue])]
        let end: LSN
        let commitTime: Date
        let firstCommitTime: Date?
        let transactions: Int
    }
    private var inFlight: InFlight?
    /// A batch was sent and its outcome is not read yet.
    public var hasInFlight: Bool { inFlight != nil }
    /// Whether a batch may stay in flight while the next is built (off by default, as
    /// `coalesceUpdates`).
    public var overlapBatches = false
    /// Flush once a batch holds this many statements (at a transaction boundary); inside a
    /// larger source transaction, statements are sent to the target in chunks of this size.
    public var batchLimit = 5000
    /// Tables (`tableKey(schema:name:)`) whose UPDATEs and DELETEs are not applied: without a
    /// key they cannot be matched; the cutover copies them again.
    public var insertOnlyTables: Set<String> = []
    public static func tableKey(schema: String, name: String) -> String { schema + "\u{0}" + name }
    /// Told about schema differences that do not stop the stream (each once).
    public var onNotice: (String) -> Void = { _ in }
    private var noticed: Set<String> = []
    private func notice(_ text: String) {
        if noticed.insert(text).inserted { onNotice(text) }
    }

    /// Output settings every apply session pins, so values are read and compared the same
    /// way whatever the target's (or its database's, or its role's) defaults are.
    public static let sessionSettings = """
        SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; \
        SET extra_float_digits = 3; SET bytea_output = 'hex'
        """

    /// Prepares `target` (a superuser session on the target database): replica role so
    /// triggers and foreign keys do not fire twice, pinned output settings, and the
    /// replication origin that tracks progress (created on first use).
    public init(target: Connection, originName: String) throws {
        self.target = target
        self.originName = originName
        try target.execute("SET session_replication_role = replica; SET synchronous_commit = off; " + Self.sessionSettings)
        try target.query("""
            SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT FROM pg_replication_origin WHERE roname = $1)
            """, originName)
        let progress = try target.query("SELECT pg_replication_origin_progress($1, true)::text", originName).first?.string(0)
        appliedLSN = progress.flatMap(LSN.init) ?? .zero
        try target.query("SELECT pg_replication_origin_session_setup($1)", originName)
    }

    /// Where streaming must start: after the last transaction already on the target, or at the
    /// slot's consistent point for a fresh start.
    public func startPosition(consistentPoint: LSN) -> LSN { max(appliedLSN, consistentPoint) }

    /// Whether statements are waiting for `flush()`.
    public var hasPending: Bool { !pending.isEmpty || pendingEnd != nil || targetTransactionOpen || inFlight != nil }
    /// Inside a source transaction whose COMMIT has not arrived yet.
    public private(set) var inTransaction = false
    /// A failed batch can be sent again only while nothing of it was sent in an earlier chunk.
    public var canRetry: Bool { !targetTransactionOpen }

    public func handle(_ message: PgOutputMessage) throws {
        switch message {
        case .begin(let finalLSN, _, _):
            inTransaction = true
            // Already committed on the target before a restart: the stream may resend it.
            skippingTransaction = finalLSN < appliedLSN
        case .relation(let description):
            generation += 1
            let name = try target.quoteQualified(description.schema, description.name)
            relations[description.id] = Relation(description: description, qualifiedName: name, generation: generation, target: nil)
        case .type(let oid, let schema, let name):
            typeNames[oid] = try target.quoteQualified(schema, name)
        case .insert(let id, let new):
            guard !skippingTransaction, let relation = try relation(id) else { return }
            try insert(relation, new)
        case .update(let id, let old, let oldIsKeyOnly, let new):
            guard !skippingTransaction, !isInsertOnly(id), let relation = try relation(id) else { return }
            let columns = relation.description.columns, targetColumns = relation.target!
            func knownChanged(_ i: Int) -> Bool {
                guard let old, i < old.count, !oldIsKeyOnly || columns[i].isKey, old[i] != .unchangedToast else { return false }
                return old[i] != new[i]
            }
            // An identity column that is always generated can only be set to DEFAULT: left out
            // unless it changed (then the row is deleted and inserted again).
            if columns.indices.contains(where: { targetColumns[$0].identityAlways && knownChanged($0) }) {
                guard !new.contains(.unchangedToast) else {
                    throw ChangeStreamError("an UPDATE on \(relation.qualifiedName) changed an identity column (GENERATED ALWAYS) and "
                        + "left TOASTed values unchanged: it cannot be applied; make the column GENERATED BY DEFAULT on the target, then rerun")
                }
                try delete(relation, old: old!, keyOnly: oldIsKeyOnly)
                try insert(relation, new)
                return
            }
            let setIndices = columns.indices.filter {
                new[$0] != .unchangedToast && !targetColumns[$0].generated && !targetColumns[$0].identityAlways
            }
            // Only unchanged TOAST values (or columns never written): the row stays as it is.
            guard !setIndices.isEmpty else { return }
            let (whereSQL, whereValues, whereMask) = try match(relation, old: old ?? new, keyOnly: old == nil || oldIsKeyOnly,
                                                               firstParameter: setIndices.count + 1)
            let assignments = try setIndices.enumerated().map { "\(try target.quoteIdentifier(columns[$0.element].name)) = $\($0.offset + 1)" }
            let statement = "u\(relation.generation)_\(mask(setIndices))_\(whereMask)"
            let sql = "UPDATE ONLY \(relation.qualifiedName) SET \(assignments.joined(separator: ", ")) WHERE \(whereSQL)"
            let values = setIndices.map { value(new[$0]) } + whereValues
            // The key unchanged (pgoutput sends no old tuple then; wal2json sends the old key).
            let keyKept = old == nil || (oldIsKeyOnly && relation.mergeKey?.allSatisfy { $0 < old!.count && old![$0] == new[$0] } == true)
            guard let key = rowKey(relation, new), keyKept else {
                if let old { forget(relation, old) }
                forget(relation, new)
                try enqueue(statement, sql, values)
                return
            }
            if let first = openUpdates[key], pending[first].name == statement {
                transactionMerges.append((first, pending.count))
                try enqueue(statement, sql, values)
            } else {
                openUpdates.removeValue(forKey: key)
                if try enqueue(statement, sql, values) { openUpdates[key] = pending.count - 1 }
            }
        case .delete(let id, let old, let oldIsKeyOnly):
            guard !skippingTransaction, !isInsertOnly(id), let relation = try relation(id) else { return }
            try delete(relation, old: old, keyOnly: oldIsKeyOnly)
        case .truncate(let ids, let cascade, let restartIdentity):
            guard !skippingTransaction else { return }
            // pgoutput lists every relation the source truncated (inheritance children and
            // cascaded tables included): each is truncated alone, as the source did.
            let names = try ids.compactMap { id in try relation(id)?.qualifiedName }
            guard !names.isEmpty else { return }
            openUpdates.removeAll()
            let options = (restartIdentity ? " RESTART IDENTITY" : "") + (cascade ? " CASCADE" : "")
            // wal2json sends one message per truncated table: tables truncated one after the
            // other in a transaction go in one statement, so a foreign key between them passes.
            // (Quoted names end with `"`: what follows the last one is the options.)
            if let last = pending.last, last.name.isEmpty, pending.count > completeCount, last.sql.hasPrefix("TRUNCATE "),
               last.sql.split(separator: "\"", omittingEmptySubsequences: false).last.map(String.init) == options {
                let head = last.sql.dropLast(options.count)
                pending[pending.count - 1].sql = head + ", " + names.map { "ONLY \($0)" }.joined(separator: ", ") + options
                return
            }
            try enqueue("", "TRUNCATE " + names.map { "ONLY \($0)" }.joined(separator: ", ") + options, [])
        case .commit(_, let endLSN, let commitTime):
            inTransaction = false
            if skippingTransaction { skippingTransaction = false; return }
            for (into, from) in transactionMerges {
                pending[into].values = pending[from].values
                pending[from] = (Self.folded, "", [])
            }
            transactionMerges.removeAll()
            completeCount = pending.count
            pendingEnd = endLSN
            pendingCommitTime = commitTime
            if pendingFirstCommitTime == nil { pendingFirstCommitTime = commitTime }
            pendingTransactions += 1
            if pending.count >= batchLimit || targetTransactionOpen { try flush() }
        case .origin, .message, .streamStart, .streamStop, .streamCommit, .streamAbort:
            break  // stream messages are ChangeStream's: it replays a streamed transaction at its commit
        }
    }

    /// Commits everything received up to the last complete source transaction, with the
    /// origin position, in one target transaction. Statements of a source transaction still
    /// open stay pending (or, already sent, in the open target transaction until its COMMIT).
    public func flush() throws {
        try collect()
        guard let end = pendingEnd else { return }
        if targetTransactionOpen && inTransaction { return }
        let statements = pending[0..<completeCount]
        let commitTime = pendingCommitTime ?? Date()
        if overlapBatches && !targetTransactionOpen {
            try send(statements, commit: (end, commitTime), wait: false)
            inFlight = InFlight(statements: Array(statements), end: end, commitTime: commitTime,
                                firstCommitTime: pendingFirstCommitTime, transactions: pendingTransactions)
            pendingFirstCommitTime = nil
            forgetSentBatch()
            return
        }
        try send(statements, commit: (end, commitTime))
        appliedLSN = end
        lastAppliedCommitTime = commitTime
        lastBatchDelaySeconds = max(0, Date().timeIntervalSince(pendingFirstCommitTime ?? commitTime))
        pendingFirstCommitTime = nil
        appliedTransactions += pendingTransactions
        appliedChanges += pendingChanges + statements.count
        pendingChanges = 0
        forgetSentBatch()
    }

    /// The complete transactions just sent leave `pending`, with what tracked them.
    private func forgetSentBatch() {
        pending.removeFirst(completeCount)
        completeCount = 0
        openUpdates.removeAll()
        transactionMerges.removeAll()
        pendingEnd = nil
        pendingCommitTime = nil
        pendingTransactions = 0
    }

    /// Waits for the batch in flight: applied once its COMMIT is confirmed; if it failed, its
    /// statements are pending again (before everything received since) and the error thrown.
    /// Needed before anything else is sent on the target session.
    public func collect() throws {
        guard let batch = inFlight else { return }
        inFlight = nil
        do {
            try target.pipelineCollect()
        } catch {
            pending.insert(contentsOf: batch.statements, at: 0)
            completeCount += batch.statements.count
            if pendingEnd == nil { pendingEnd = batch.end; pendingCommitTime = batch.commitTime }
            pendingFirstCommitTime = batch.firstCommitTime ?? pendingFirstCommitTime
            pendingTransactions += batch.transactions
            // Indices in `pending` moved.
            openUpdates.removeAll()
            transactionMerges.removeAll()
            throw error
        }
        appliedLSN = batch.end
        lastAppliedCommitTime = batch.commitTime
        lastBatchDelaySeconds = max(0, Date().timeIntervalSince(batch.firstCommitTime ?? batch.commitTime))
        appliedTransactions += batch.transactions
        appliedChanges += batch.statements.count
    }

    /// Sends statements in one pipeline: BEGIN first unless a target transaction is open,
    /// the origin position and COMMIT last when `commit` is given. Without `wait`, returns
    /// once sent (`collect` reads the results).
    private func send(_ statements: ArraySlice<(name: String, sql: String, values: [SQLValue])>, commit: (LSN, Date)?,
                      wait: Bool = true) throws {
        precondition(inFlight == nil)
        var prepared = preparedStatements
        let begin = !targetTransactionOpen
        let build: (PipelineBatch) throws -> Void = { batch in
            if begin { batch.statement("BEGIN") }
            for statement in statements {
                if statement.name == Self.folded { continue }
                if statement.name.isEmpty {
                    batch.statement(statement.sql)
                    continue
                }
                if prepared.insert(statement.name).inserted { batch.prepare(statement.name, statement.sql) }
                batch.execute(statement.name, statement.values)
            }
            if let (end, commitTime) = commit {
                batch.statement("SELECT pg_replication_origin_xact_setup($1::text::pg_lsn, $2::timestamptz)",
                                [.text(end.description), .text(Self.timestampFormatter.string(from: commitTime))])
                batch.statement("COMMIT")
            }
        }
        if wait { try target.pipeline(build) } else { try target.pipelineSend(build) }
        preparedStatements = prepared
        targetTransactionOpen = commit == nil
    }

    /// Rolls back a failed batch so the session can be reused (the statements stay pending).
    /// Throws when part of the batch was sent in earlier chunks: those are gone with the
    /// rollback, so the stream must start again from the last committed position.
    public func recover() throws {
        try? collect()
        let lost = targetTransactionOpen
        targetTransactionOpen = false
        try? target.execute("ROLLBACK")
        // A failed pipeline may have left some prepares undone; prepare everything again.
        preparedStatements.removeAll()
        try? target.execute("DEALLOCATE ALL")
        if lost { throw ChangeStreamError("a large transaction failed on the target after part of it was sent") }
    }

    // MARK: Building statements

    /// The relation descriptions as they stand, to restore after a streamed transaction is
    /// replayed: its RELATION messages describe the tables for that transaction only.
    public struct RelationCache { fileprivate let relations: [UInt32: Relation] }
    public func relationCache() -> RelationCache { RelationCache(relations: relations) }
    public func restore(_ cache: RelationCache) { relations = cache.relations }

    private func isInsertOnly(_ id: UInt32) -> Bool {
        guard !insertOnlyTables.isEmpty, let relation = relations[id] else { return false }
        return insertOnlyTables.contains(Self.tableKey(schema: relation.description.schema, name: relation.description.name))
    }

    /// The relation of a change, its target columns looked up (and compared) on first use.
    private func relation(_ id: UInt32) throws -> Relation? {
        guard var relation = relations[id] else { return nil }
        if relation.target == nil {
            try collect()  // the lookups below use the target session
            relation.target = try targetColumns(relation)
            relation.mergeKey = try mergeKey(relation)
            relations[id] = relation
        }
        return relation
    }

    private func insert(_ relation: Relation, _ new: [TupleValue]) throws {
        forget(relation, new)
        let columns = relation.description.columns, targetColumns = relation.target!
        let indices = columns.indices.filter { new[$0] != .unchangedToast && !targetColumns[$0].generated }
        let names = try indices.map { try target.quoteIdentifier(columns[$0].name) }
        let overriding = indices.contains { targetColumns[$0].identityAlways } ? " OVERRIDING SYSTEM VALUE" : ""
        let statement = "i\(relation.generation)_\(mask(indices))"
        let sql = "INSERT INTO \(relation.qualifiedName) (\(names.joined(separator: ", ")))\(overriding) VALUES ("
            + indices.indices.map { "$\($0 + 1)" }.joined(separator: ", ") + ")"
        try enqueue(statement, sql, indices.map { value(new[$0]) })
    }

    private func delete(_ relation: Relation, old: [TupleValue], keyOnly: Bool) throws {
        forget(relation, old)
        let (whereSQL, whereValues, whereMask) = try match(relation, old: old, keyOnly: keyOnly, firstParameter: 1)
        try enqueue("d\(relation.generation)_\(whereMask)", "DELETE FROM ONLY \(relation.qualifiedName) WHERE \(whereSQL)", whereValues)
    }

    /// Appends a statement; false when it went out at once (in a chunk of a large transaction).
    @discardableResult
    private func enqueue(_ name: String, _ sql: String, _ values: [SQLValue]) throws -> Bool {
        // A chunk is about to go out on the target session (before this statement is pending:
        // a failure here leaves the message to be handled again).
        if inTransaction && pending.count + 1 >= batchLimit { try collect() }
        pending.append((name, sql, values))
        // Inside a large source transaction: send what it has so far (memory stays bounded);
        // complete transactions before it go along in the same target transaction.
        if inTransaction && pending.count >= batchLimit {
            // A failed chunk cannot be sent again on its own: the stream restarts instead.
            do { try send(pending[...], commit: nil) } catch { targetTransactionOpen = true; throw error }
            pendingChanges += pending.count
            pending.removeAll(keepingCapacity: true)
            completeCount = 0
            openUpdates.removeAll()
            transactionMerges.removeAll()
            return false
        }
        return true
    }

    /// The row's key in `openUpdates`, or nil when the relation's UPDATEs are not coalesced
    /// (or a key value is missing).
    private func rowKey(_ relation: Relation, _ tuple: [TupleValue]) -> String? {
        guard coalesceUpdates, let columns = relation.mergeKey else { return nil }
        var key = String(relation.description.id)
        for i in columns {
            guard i < tuple.count else { return nil }
            switch tuple[i] {
            case .null: key += "\u{1}"
            case .unchangedToast: return nil
            case .text(let text): key += "\u{0}" + text
            }
        }
        return key
    }

    /// A change other than a coalesced UPDATE touched the row: later UPDATEs of it are not
    /// folded into earlier ones.
    private func forget(_ relation: Relation, _ tuple: [TupleValue]) {
        guard relation.mergeKey != nil, !openUpdates.isEmpty else { return }
        if let key = rowKey(relation, tuple) { openUpdates.removeValue(forKey: key) } else { openUpdates.removeAll() }
    }

    /// The key columns by which UPDATEs of the relation may be coalesced, or nil: see
    /// `openUpdates` for when.
    private func mergeKey(_ relation: Relation) throws -> [Int]? {
        let d = relation.description
        guard coalesceUpdates, d.replicaIdentity == "d" || d.replicaIdentity == "i" else { return nil }
        let key = d.columns.indices.filter { d.columns[$0].isKey }
        guard !key.isEmpty, key.count < d.columns.count else { return nil }
        // The key's names as an array literal, each element quoted.
        let names = "{" + key.map { "\"" + d.columns[$0].name.replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "\"", with: "\\\"") + "\"" }.joined(separator: ",") + "}"
        let safe = try target.query("""
            SELECT c.relkind = 'r' AND NOT c.relhassubclass AND NOT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = c.oid)
                   AND NOT EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgenabled IN ('A', 'R'))
                   AND NOT EXISTS (SELECT FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_enabled IN ('A', 'R'))
                   AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisunique OR i.indisexclusion)
                                   AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL
                                        OR ARRAY(SELECT a.attname::text COLLATE "C" FROM unnest(i.indkey) k
                                                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k ORDER BY 1)
                                           <> ARRAY(SELECT kn COLLATE "C" FROM unnest($3::text[]) kn ORDER BY 1)))
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2
            """, d.schema, d.name, names).first?.bool(0)
        guard safe == true else { return nil }
        return key
    }

    private func value(_ tuple: TupleValue) -> SQLValue {
        switch tuple {
        case .null, .unchangedToast: return .null
        case .text(let text): return .text(text)
        }
    }

    private func mask(_ indices: [Int]) -> String {
        var bits = [UInt8](repeating: 0, count: (indices.max() ?? 0) / 8 + 1)
        for i in indices { bits[i / 8] |= 1 << (i % 8) }
        return bits.map { String(format: "%02x", $0) }.joined()
    }

    /// The WHERE clause that finds the old row: its key columns for REPLICA IDENTITY
    /// DEFAULT/INDEX; for FULL every sent column, compared as typed values (`IS NULL` for
    /// NULLs), or, for a type without a btree equality, as the text the target renders for
    /// both sides; one physical row, since duplicates are possible.
    private func match(_ relation: Relation, old: [TupleValue], keyOnly: Bool, firstParameter: Int) throws -> (String, [SQLValue], String) {
        let columns = relation.description.columns, targetColumns = relation.target!
        let full = relation.description.replicaIdentity == "f" && !keyOnly
        let indices = columns.indices.filter { i in
            guard i < old.count, old[i] != .unchangedToast else { return false }
            return full ? !targetColumns[i].generated : columns[i].isKey
        }
        guard !indices.isEmpty else {
            throw ChangeStreamError("table \(relation.qualifiedName) has no replica identity to find rows by")
        }
        var conditions: [String] = []
        var values: [SQLValue] = []
        for i in indices {
            let column = try target.quoteIdentifier(columns[i].name)
            let parameter = "$\(firstParameter + values.count)"
            let type = targetColumns[i].typeName
            if full {
                if old[i] == .null {
                    conditions.append("\(column) IS NULL")
                } else if targetColumns[i].hasEquality {
                    conditions.append("\(column) = \(parameter)::\(type)")
                } else {
                    conditions.append("\(column)::text = (\(parameter)::\(type))::text")
                }
            } else {
                conditions.append("\(column) = \(parameter)")
            }
            if !(full && old[i] == .null) { values.append(value(old[i])) }
        }
        // NULLs change the statement's text, so they are part of its name.
        let nullMask = mask(indices.filter { old[$0] == .null })
        let clause = conditions.joined(separator: " AND ")
        if full {
            return ("ctid = (SELECT ctid FROM ONLY \(relation.qualifiedName) WHERE \(clause) LIMIT 1)", values, "f\(mask(indices))n\(nullMask)")
        }
        return (clause, values, "k\(mask(indices))")
    }

    // MARK: The target's table

    /// The target's columns for each of the relation's, or an error that says what differs
    /// and what to run on the target (DDL on the source during streaming).
    private func targetColumns(_ relation: Relation) throws -> [TargetColumn] {
        let d = relation.description
        let v = target.serverVersionNumber
        let generated = v >= 120000 ? "a.attgenerated::text" : "''"
        let identity = v >= 100000 ? "a.attidentity::text" : "''"
        let rows = try target.query("""
            SELECT a.attname, \(identity), \(generated), format_type(a.atttypid, NULL), a.atttypid::int8, a.atttypmod,
                   format_type(a.atttypid, a.atttypmod),
                   bt.typtype <> 'c' AND et.typtype <> 'c' AND EXISTS (
                       SELECT FROM pg_opclass o JOIN pg_am m ON m.oid = o.opcmethod
                       WHERE m.amname = 'btree' AND o.opcdefault
                         AND (o.opcintype = et.oid
                              OR (et.typtype IN ('e', 'r', 'm') AND o.opcintype::regtype::text
                                  = CASE et.typtype WHEN 'e' THEN 'anyenum' WHEN 'r' THEN 'anyrange' ELSE 'anymultirange' END)
                              OR EXISTS (SELECT FROM pg_cast c WHERE c.castsource = et.oid AND c.casttarget = o.opcintype AND c.castmethod = 'b')))
            FROM pg_attribute a
            JOIN pg_type t ON t.oid = a.atttypid
            JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
            JOIN pg_type et ON et.oid = CASE WHEN bt.typelem <> 0 AND bt.typlen = -1 THEN bt.typelem ELSE bt.oid END
            WHERE a.attrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))
              AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, d.schema, d.name).rows
        let name = relation.qualifiedName
        let hint = "then rerun the same command: streaming resumes where it stopped"
        guard !rows.isEmpty else {
            throw ChangeStreamError("table \(name) is on the source but not on the target (created on the source during streaming?): "
                + "create it on the target, e.g. `pg_dump --schema-only --table='\(name)' SOURCE | psql TARGET`, \(hint)")
        }
        var byName: [String: TargetColumn] = [:]
        var order: [String] = []
        for row in rows {
            let column = TargetColumn(name: row.string(0) ?? "", identityAlways: row.string(1) == "a",
                                      generated: !(row.string(2) ?? "").isEmpty, typeName: row.string(3) ?? "text",
                                      typeOID: UInt32(row.int(4) ?? 0), typeModifier: Int32(row.int(5) ?? -1),
                                      fullTypeName: row.string(6) ?? "text", hasEquality: row.bool(7) ?? false)
            byName[column.name] = column
            order.append(column.name)
        }
        // wal2json sends names only (type 0), and an UPDATE leaves unchanged TOAST columns out.
        let partial = d.columns.allSatisfy { $0.typeOID == 0 }
        // A column the target lacks stops the stream: its values have nowhere to go. The other
        // differences do not: changes made before the DDL still come with the old shape once the
        // target is fixed (a resumed stream replays them), so insisting on either shape would
        // stop the stream for good. They are noticed instead.
        var statements: [String] = []
        for column in d.columns {
            let quoted = try target.quoteIdentifier(column.name)
            guard let mine = byName[column.name] else {
                statements.append("ALTER TABLE \(name) ADD COLUMN \(quoted) \(try typeName(column));")
                continue
            }
            // Built-in types have the same OID everywhere; others are compared by name elsewhere.
            if !partial, column.typeOID < 16384, column.typeOID != mine.typeOID || (column.typeModifier != mine.typeModifier && !mine.generated) {
                notice("column \(quoted) of \(name) is \(try typeName(column)) on the source but \(mine.fullTypeName) on the target "
                       + "(ALTER TABLE on the source during streaming?): its values are applied as text; if the target refuses them, "
                       + "run `ALTER TABLE \(name) ALTER COLUMN \(quoted) TYPE \(try typeName(column));` on the target, then rerun")
            }
        }
        if !partial {
            let sent = Set(d.columns.map(\.name))
            // pgoutput before 18 does not send generated columns.
            for extra in order where !sent.contains(extra) && !byName[extra]!.generated {
                notice("column \(try target.quoteIdentifier(extra)) of \(name) is not on the source (dropped during streaming?): "
                       + "rows streamed from now on leave it NULL (or its default); drop it on the target after the cutover, not before")
            }
        }
        if !statements.isEmpty {
            throw ChangeStreamError("the source's table \(name) has a column the target's lacks (DDL on the source during streaming?); "
                + "run on the target: \(statements.joined(separator: " ")) — \(hint)")
        }
        return d.columns.map { byName[$0.name]! }
    }

    /// The source column's type as SQL: built-in types by OID (the same on both servers),
    /// others by the name pgoutput sent in its TYPE message.
    private func typeName(_ column: RelationColumn) throws -> String {
        try collect()
        if column.typeOID != 0, column.typeOID < 16384,
           let text = try target.query("SELECT format_type($1::int8::oid, $2::int4)", Int(column.typeOID), Int(column.typeModifier)).first?.string(0) {
            return text
        }
        return typeNames[column.typeOID] ?? "<the column's type on the source>"
    }

    nonisolated(unsafe) static let timestampFormatter: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()
}

public struct ChangeStreamError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
