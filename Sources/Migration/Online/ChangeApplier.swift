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
    /// The last applied position whose commit is durable on the target (its WAL flushed):
    /// all that may be confirmed to the source, since the apply commits with
    /// `synchronous_commit = off` (see `durablePosition()`).
    public private(set) var durableLSN: LSN
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
        /// `format_type(type, -1)`, for casting a parameter: the type without a length, as
        /// `bpchar` and `"bit"` (not `character` or `bit`, which mean char(1) and bit(1)).
        let typeName: String
        let typeOID: UInt32
        /// Schema and name, quoted, of the type, or of a domain's base type: what pgoutput's
        /// TYPE message names for a type not built in (see `firstUnstableTypeOID`).
        let baseTypeName: String
        let typeModifier: Int32
        /// With its type modifier, for the statements a schema difference needs.
        let fullTypeName: String
        /// The type (or an array's element) has a default btree operator class: `=` narrows the
        /// rows (their text, rendered on the target on both sides, then decides). Otherwise rows
        /// are compared by their text alone.
        let hasEquality: Bool
        /// The type's array type, for multi-row statements (`unnest` of one array per column);
        /// 0 when the column cannot be sent that way (an array itself, no array type, or a
        /// delimiter other than `,`).
        let arrayTypeOID: UInt32
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
        /// No trigger or rule fires on the target table in replica mode, and it is a plain
        /// table: its changes commute with other tables' inside one target transaction, so a
        /// batch may send them grouped by table (see `plan`). Filled with `target`.
        var independent = false
        /// Besides, no unique index or exclusion constraint but on the key: its UPDATEs of
        /// distinct rows may go in one multi-row statement (the rows' order in it is the
        /// server's). Filled with `target`.
        var uniqueOnlyOnKey = false
        /// A materialized view: wal2json sends the rows a REFRESH … CONCURRENTLY changes
        /// (pgoutput never does). Not applied: the cutover refreshes the view on the target.
        var materializedView = false
        /// No rule fires on the target table in replica mode: an UPDATE's or DELETE's
        /// affected-row count says how many rows it matched, and is checked. Filled with `target`.
        var countsRows = true
    }

    /// A statement waiting to be sent, with what grouping needs to know of it.
    struct Pending {
        var name: String
        var sql: String
        var values: [SQLValue]
        /// The table (its quoted name) when it is `independent`; nil for a statement that
        /// keeps its place (another table's, a TRUNCATE). Not the relation id: wal2json's
        /// decoder makes one relation per column shape.
        var table: String? = nil
        var kind: Kind = .other
        /// For an UPDATE that keeps its key and may go in a multi-row UPDATE: the row's key.
        var rowKey: String? = nil
        /// The table's quoted name, and the commit position of the source transaction the
        /// statement belongs to: for the message when it does not match the row it must.
        var relationName = ""
        var lsn: LSN = .zero
        /// An UPDATE or DELETE whose affected-row count is checked (see `Check`).
        var checked = false
        /// A TRUNCATE: the relations it empties as the decoder listed them, and its options.
        var truncated: [Relation]? = nil
        var truncateOptions = ""
    }
    enum Kind { case other, insert, update, delete }

    private var relations: [UInt32: Relation] = [:]
    /// The source's types not built in (see `firstUnstableTypeOID`), by OID: schema and name,
    /// quoted, from pgoutput's TYPE messages (a domain's is its base type's).
    private var typeNames: [UInt32: String] = [:]
    /// Type OIDs below this (FirstGenbkiObjectId) are hand-assigned in pg_type.dat: the same on
    /// every server and major. Those initdb assigns from there on (information_schema's
    /// domains, the system views' row types, in 12000–16383) differ between servers.
    static let firstUnstableTypeOID: UInt32 = 10000
    private var generation = 0
    private var preparedStatements: Set<String> = []
    /// Statement name → its SQL (built once per relation shape).
    private var sqlByName: [String: String] = [:]
    /// Statement name → the multi-row form of the statement (one array parameter per
    /// parameter of the single-row form), for the shapes that have one.
    private var multiRowByName: [String: (sql: String, types: [UInt32])] = [:]
    private var pending: [Pending] = []
    /// Bytes of the values in `pending` (roughly what the batch weighs).
    private var pendingBytes = 0
    /// When the first statement of the batch being built arrived.
    private var batchStarted: Date?
    /// Statements in `pending` before this index belong to complete source transactions.
    private var completeCount = 0
    private var pendingEnd: LSN?
    private var pendingCommitTime: Date?
    private var pendingTransactions = 0
    private var pendingChanges = 0
    private var skippingTransaction = false
    /// The commit position of the open source transaction (its BEGIN says it).
    private var transactionLSN: LSN = .zero
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
    /// Whether UPDATEs are coalesced (see `openUpdates`).
    public var coalesceUpdates = true
    /// A batch sent to the target whose results were not read yet: the server applies it
    /// while the stream receives and decodes the next one. Until its COMMIT is confirmed it
    /// is not applied (`appliedLSN` stays before it); if it failed, its statements go back
    /// to the front of `pending`, to be sent again with the next batch.
    private struct InFlight {
        let statements: [Pending]
        let checks: [Check]
        let end: LSN
        let commitTime: Date
        let firstCommitTime: Date?
        let transactions: Int
    }
    private var inFlight: InFlight?
    /// A batch was sent and its outcome is not read yet.
    public var hasInFlight: Bool { inFlight != nil }
    /// Whether a batch may stay in flight while the next is built.
    public var overlapBatches = true
    /// Whether a batch is sent grouped by table, runs of one statement shape as one multi-row
    /// statement (see `plan`).
    public var groupStatements = true
    /// Flush once a batch holds this many statements, or this many bytes of values, or its
    /// first change arrived this long ago (at a transaction boundary); inside a larger source
    /// transaction, statements are sent to the target in chunks of that size.
    public var batchLimit = 5000
    public var batchBytes = 8 << 20
    public var batchDelay: TimeInterval = 0.1
    /// Rows in one multi-row statement at most.
    static let multiRowLimit = 1000
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
        durableLSN = appliedLSN
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
            transactionLSN = finalLSN
            // Already committed on the target before a restart: the stream may resend it.
            skippingTransaction = finalLSN < appliedLSN
        case .relation(let description):
            generation += 1
            let name = try target.quoteQualified(description.schema, description.name)
            relations[description.id] = Relation(description: description, qualifiedName: name, generation: generation, target: nil)
        case .type(let oid, let schema, let name):
            // pgoutput sends pg_catalog as an empty schema name.
            typeNames[oid] = try target.quoteQualified(schema.isEmpty ? "pg_catalog" : schema, name)
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
            let matched = try match(relation, old: old ?? new, keyOnly: old == nil || oldIsKeyOnly, firstParameter: setIndices.count + 1)
            let statement = "u\(relation.generation)_\(mask(setIndices))_\(matched.mask)"
            let values = setIndices.map { value(new[$0]) } + matched.values
            // The key unchanged (pgoutput sends no old tuple then; wal2json sends the old key).
            let keyKept = old == nil || (oldIsKeyOnly && relation.mergeKey?.allSatisfy { $0 < old!.count && old![$0] == new[$0] } == true)
            if sqlByName[statement] == nil {
                let assignments = try setIndices.enumerated().map { "\(try target.quoteIdentifier(columns[$0.element].name)) = $\($0.offset + 1)" }
                sqlByName[statement] = "UPDATE ONLY \(relation.qualifiedName) SET \(assignments.joined(separator: ", ")) WHERE \(try matched.clause())"
                if let keys = matched.keyIndices, relation.independent, relation.uniqueOnlyOnKey,
                   keys.allSatisfy({ targetColumns[$0].hasEquality }), (setIndices + keys).allSatisfy({ targetColumns[$0].arrayTypeOID != 0 }) {
                    let set = try setIndices.enumerated().map { "\(try target.quoteIdentifier(columns[$0.element].name)) = u.v\($0.offset + 1)" }
                    let on = try keys.enumerated().map {
                        "pgpreflight_t.\(try target.quoteIdentifier(columns[$0.element].name)) = u.v\(setIndices.count + $0.offset + 1)"
                    }
                    let all = setIndices + keys
                    multiRowByName[statement] = ("UPDATE ONLY \(relation.qualifiedName) AS pgpreflight_t SET \(set.joined(separator: ", ")) "
                        + "FROM \(unnest(all.count)) AS u(\(all.indices.map { "v\($0 + 1)" }.joined(separator: ", "))) "
                        + "WHERE \(on.joined(separator: " AND "))", all.map { targetColumns[$0].arrayTypeOID })
                }
            }
            var change = Pending(name: statement, sql: sqlByName[statement]!, values: values,
                                 table: relation.independent ? relation.qualifiedName : nil, kind: .update,
                                 relationName: relation.qualifiedName, checked: relation.countsRows)
            // A multi-row UPDATE holds each row once: the key says which.
            if keyKept, multiRowByName[statement] != nil { change.rowKey = Self.keyText(matched.values) }
            guard let key = rowKey(relation, new), keyKept else {
                if let old { forget(relation, old) }
                forget(relation, new)
                try enqueue(change)
                return
            }
            if let first = openUpdates[key], pending[first].name == statement {
                transactionMerges.append((first, pending.count))
                try enqueue(change)
            } else {
                openUpdates.removeValue(forKey: key)
                if try enqueue(change) { openUpdates[key] = pending.count - 1 }
            }
        case .delete(let id, let old, let oldIsKeyOnly):
            guard !skippingTransaction, !isInsertOnly(id), let relation = try relation(id) else { return }
            try delete(relation, old: old, keyOnly: oldIsKeyOnly)
        case .truncate(let ids, let cascade, let restartIdentity):
            guard !skippingTransaction else { return }
            let listed = try ids.compactMap { id in try relation(id) }
            guard !listed.isEmpty else { return }
            openUpdates.removeAll()
            let options = (restartIdentity ? " RESTART IDENTITY" : "") + (cascade ? " CASCADE" : "")
            // wal2json sends one message per truncated table: tables truncated one after the
            // other in a transaction go in one statement, so a foreign key between them passes.
            if let last = pending.last, pending.count > completeCount, let truncated = last.truncated, last.truncateOptions == options {
                pending[pending.count - 1].truncated = truncated + listed
                pending[pending.count - 1].sql = try truncateStatement(truncated + listed, options: options)
                return
            }
            try enqueue(Pending(name: "", sql: try truncateStatement(listed, options: options), values: [],
                                truncated: listed, truncateOptions: options))
        case .commit(_, let endLSN, let commitTime):
            inTransaction = false
            if skippingTransaction { skippingTransaction = false; return }
            for (into, from) in transactionMerges {
                pending[into].values = pending[from].values
                pending[from] = Pending(name: Self.folded, sql: "", values: [])
            }
            transactionMerges.removeAll()
            completeCount = pending.count
            pendingEnd = endLSN
            pendingCommitTime = commitTime
            if pendingFirstCommitTime == nil { pendingFirstCommitTime = commitTime }
            pendingTransactions += 1
            if pending.count >= batchLimit || pendingBytes >= batchBytes || targetTransactionOpen
                || Date().timeIntervalSince(batchStarted ?? .distantFuture) >= batchDelay { try flush() }
        case .origin, .message, .streamStart, .streamStop, .streamCommit, .streamAbort:
            break  // stream messages are ChangeStream's: it replays a streamed transaction at its commit
        }
    }

    /// Commits everything received up to the last complete source transaction, with the
    /// origin position, in one target transaction. Statements of a source transaction still
    /// open stay pending (or, already sent, in the open target transaction until its COMMIT).
    /// The COMMIT goes out only once every UPDATE and DELETE of the batch matched the rows it
    /// must (see `Check`): a batch that finds the target different never commits, so the
    /// origin does not move past it.
    public func flush() throws {
        try collect()
        guard let end = pendingEnd else { return }
        if targetTransactionOpen && inTransaction { return }
        let statements = pending[0..<completeCount]
        let commitTime = pendingCommitTime ?? Date()
        if overlapBatches && !targetTransactionOpen {
            let t0 = Date()
            let checks = try send(statements, wait: false)
            // PGPREFLIGHT_TRACE: whether the apply waits for the target, or the target for the apply.
            Migrator.trace?("apply: batch sent, \(statements.count) statements of \(pendingTransactions) transactions, built in \(Int(Date().timeIntervalSince(t0) * 1000)) ms", Date())
            inFlight = InFlight(statements: Array(statements), checks: checks, end: end, commitTime: commitTime,
                                firstCommitTime: pendingFirstCommitTime, transactions: pendingTransactions)
            pendingFirstCommitTime = nil
            forgetSentBatch()
            return
        }
        try send(statements)
        try commit(end, commitTime)
        targetTransactionOpen = false
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
        pendingBytes = pending.reduce(0) { $0 + Self.bytes($1.values) }
        batchStarted = pending.isEmpty ? nil : Date()
        completeCount = 0
        openUpdates.removeAll()
        transactionMerges.removeAll()
        pendingEnd = nil
        pendingCommitTime = nil
        pendingTransactions = 0
    }

    /// Waits for the batch in flight, checks its row counts and commits it: applied once its
    /// COMMIT is confirmed; if it failed, its statements are pending again (before everything
    /// received since) and the error thrown. Needed before anything else is sent on the
    /// target session.
    public func collect() throws {
        guard let batch = inFlight else { return }
        inFlight = nil
        do {
            let t0 = Date()
            try verify(try target.pipelineCollect(), batch.checks)
            let t1 = Date()
            try commit(batch.end, batch.commitTime)
            Migrator.trace?("apply: batch done, waited \(Int(t1.timeIntervalSince(t0) * 1000)) ms for it, commit \(Int(Date().timeIntervalSince(t1) * 1000)) ms", Date())
        } catch {
            pending.insert(contentsOf: batch.statements, at: 0)
            pendingBytes = pending.reduce(0) { $0 + Self.bytes($1.values) }
            batchStarted = batchStarted ?? Date()
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

    /// The origin position and COMMIT of the target transaction the statements were sent in.
    private func commit(_ end: LSN, _ commitTime: Date) throws {
        try target.pipeline { batch in
            batch.statement("SELECT pg_replication_origin_xact_setup($1::text::pg_lsn, $2::timestamptz)",
                            [.text(end.description), .text(Self.timestampFormatter.string(from: commitTime))])
            batch.statement("COMMIT")
        }
    }

    /// An UPDATE or DELETE sent (one row, or a multi-row statement's rows) and how many rows
    /// it must affect: each found its row on the source, so on an identical target each
    /// finds exactly one. Fewer (or more) means the target differs.
    struct Check {
        /// The statement's result among the pipeline's.
        let result: Int
        let expected: Int
        let kind: Kind
        let table: String
        let lsns: ClosedRange<LSN>
    }

    /// Throws `ApplyDivergence` for the first statement whose count is not what it must be.
    private func verify(_ counts: [Int?], _ checks: [Check]) throws {
        for check in checks {
            let matched = check.result < counts.count ? counts[check.result] : nil
            guard matched != check.expected else { continue }
            // Never committed: the origin stays before the batch (a permanent error, no retry).
            _ = try? target.execute("ROLLBACK")
            throw ApplyDivergence(kind: check.kind, table: check.table, matched: matched ?? 0, expected: check.expected, lsns: check.lsns, cause: nil)
        }
    }

    /// Sends statements in one pipeline, BEGIN first unless a chunk of the source transaction
    /// opened the target's already; the transaction stays open (`commit` ends it once the
    /// counts were checked). With `wait`, checks the counts before returning; without, returns
    /// once sent, with what to check (`collect` reads and checks the results).
    @discardableResult
    private func send(_ statements: ArraySlice<Pending>, wait: Bool = true) throws -> [Check] {
        precondition(inFlight == nil)
        var prepared = preparedStatements
        let begin = !targetTransactionOpen
        let planned = plan(statements)
        var checks: [Check] = []
        let build: (PipelineBatch) throws -> Void = { batch in
            if begin { batch.statement("BEGIN") }
            for item in planned {
                switch item {
                case .one(let statement):
                    if statement.name.isEmpty {
                        batch.statement(statement.sql)
                        continue
                    }
                    if prepared.insert(statement.name).inserted { batch.prepare(statement.name, statement.sql) }
                    if statement.checked {
                        checks.append(Check(result: batch.count, expected: 1, kind: statement.kind, table: statement.relationName,
                                            lsns: statement.lsn...statement.lsn))
                    }
                    batch.execute(statement.name, statement.values)
                case .rows(let rows):
                    let name = "m" + rows[0].name, multi = self.multiRowByName[rows[0].name]!
                    if prepared.insert(name).inserted { batch.prepare(name, multi.sql, types: multi.types) }
                    if rows[0].checked {
                        // UPDATE runs hold each row once (see `plan`); a DELETE's are counted alike.
                        let expected = rows[0].kind == .update ? rows.count : Set(rows.map { Self.keyText($0.values) }).count
                        checks.append(Check(result: batch.count, expected: expected, kind: rows[0].kind, table: rows[0].relationName,
                                            lsns: rows.map(\.lsn).min()!...rows.map(\.lsn).max()!))
                    }
                    batch.execute(name, rows[0].values.indices.map { p in .text(Self.arrayLiteral(rows.lazy.map { $0.values[p] })) })
                }
            }
        }
        if wait {
            let counts = try target.pipeline(build)
            preparedStatements = prepared
            try verify(counts, checks)
        } else {
            try target.pipelineSend(build)
            preparedStatements = prepared
        }
        return checks
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

    /// What a batch sends: a statement, or rows of one shape in its multi-row form.
    enum Planned {
        case one(Pending)
        case rows([Pending])
    }

    /// The batch's statements in the order they are sent. A statement of an `independent`
    /// table commutes with every other table's (no trigger, rule or foreign key check runs in
    /// replica mode, and the batch commits as one target transaction): between two statements
    /// that keep their place (TRUNCATE, other tables'), those are gathered table by table,
    /// each table's in their order, and consecutive ones of one shape that has a multi-row
    /// form go as one statement (an UPDATE's run ends where a row comes again).
    func plan(_ statements: ArraySlice<Pending>) -> [Planned] {
        var planned: [Planned] = []
        planned.reserveCapacity(statements.count)
        guard groupStatements else {
            for statement in statements where statement.name != Self.folded { planned.append(.one(statement)) }
            return planned
        }
        var tables: [String: [Int]] = [:]
        var order: [String] = []
        func gathered() {
            for id in order {
                let indices = tables[id]!
                var k = 0
                while k < indices.count {
                    let first = statements[indices[k]]
                    var end = k + 1
                    if multiRowByName[first.name] != nil, first.kind != .update || first.rowKey != nil {
                        var keys: Set<String> = first.rowKey.map { [$0] } ?? []
                        while end < indices.count, end - k < Self.multiRowLimit {
                            let next = statements[indices[end]]
                            guard next.name == first.name else { break }
                            if first.kind == .update { guard let key = next.rowKey, keys.insert(key).inserted else { break } }
                            end += 1
                        }
                    }
                    planned.append(end - k == 1 ? .one(first) : .rows(indices[k..<end].map { statements[$0] }))
                    k = end
                }
            }
            tables.removeAll(keepingCapacity: true)
            order.removeAll(keepingCapacity: true)
        }
        for i in statements.indices {
            let statement = statements[i]
            if statement.name == Self.folded { continue }
            if let table = statement.table {
                if tables[table] == nil { order.append(table) }
                tables[table, default: []].append(i)
            } else {
                gathered()
                planned.append(.one(statement))
            }
        }
        gathered()
        return planned
    }

    /// The target's durable position (see `durableLSN`), asked once something newer was
    /// applied: `pg_replication_origin_progress(…, true)` flushes the target's WAL up to the
    /// origin's last commit before it answers.
    public func durablePosition() throws -> LSN {
        try collect()
        guard appliedLSN > durableLSN, !targetTransactionOpen else { return durableLSN }
        if let text = try target.query("SELECT pg_replication_origin_progress($1, true)::text", originName).first?.string(0),
           let lsn = LSN(text) {
            durableLSN = max(durableLSN, lsn)
        }
        return durableLSN
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
        if relation.materializedView { return nil }
        if relation.target == nil {
            try collect()  // the lookups below use the target session
            if try target.query("""
                SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'm'
                """, relation.description.schema, relation.description.name).rows.isEmpty == false {
                relation.materializedView = true
                relations[id] = relation
                return nil
            }
            relation.target = try targetColumns(relation)
            try traits(&relation)
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
        if sqlByName[statement] == nil {
            let names = try indices.map { try target.quoteIdentifier(columns[$0].name) }.joined(separator: ", ")
            // No column to write (every one generated, or none at all): the row is all defaults.
            sqlByName[statement] = indices.isEmpty ? "INSERT INTO \(relation.qualifiedName) DEFAULT VALUES"
                : "INSERT INTO \(relation.qualifiedName) (\(names))\(overriding) VALUES (\(parameters(indices.count)))"
            if relation.independent, !indices.isEmpty, indices.allSatisfy({ targetColumns[$0].arrayTypeOID != 0 }) {
                // Rows go in the arrays' order, as one after the other.
                multiRowByName[statement] = ("INSERT INTO \(relation.qualifiedName) (\(names))\(overriding) SELECT * FROM \(unnest(indices.count))",
                                             indices.map { targetColumns[$0].arrayTypeOID })
            }
        }
        try enqueue(Pending(name: statement, sql: sqlByName[statement]!, values: indices.map { value(new[$0]) },
                            table: relation.independent ? relation.qualifiedName : nil, kind: .insert, relationName: relation.qualifiedName))
    }

    private func delete(_ relation: Relation, old: [TupleValue], keyOnly: Bool) throws {
        forget(relation, old)
        let matched = try match(relation, old: old, keyOnly: keyOnly, firstParameter: 1)
        let statement = "d\(relation.generation)_\(matched.mask)"
        if sqlByName[statement] == nil {
            sqlByName[statement] = "DELETE FROM ONLY \(relation.qualifiedName) WHERE \(try matched.clause())"
            let targetColumns = relation.target!
            if let keys = matched.keyIndices, relation.independent,
               keys.allSatisfy({ targetColumns[$0].hasEquality && targetColumns[$0].arrayTypeOID != 0 }) {
                let on = try keys.enumerated().map {
                    "pgpreflight_t.\(try target.quoteIdentifier(relation.description.columns[$0.element].name)) = u.v\($0.offset + 1)"
                }
                multiRowByName[statement] = ("DELETE FROM ONLY \(relation.qualifiedName) AS pgpreflight_t USING \(unnest(keys.count)) "
                    + "AS u(\(keys.indices.map { "v\($0 + 1)" }.joined(separator: ", "))) WHERE \(on.joined(separator: " AND "))",
                    keys.map { targetColumns[$0].arrayTypeOID })
            }
        }
        try enqueue(Pending(name: statement, sql: sqlByName[statement]!, values: matched.values,
                            table: relation.independent ? relation.qualifiedName : nil, kind: .delete,
                            relationName: relation.qualifiedName, checked: relation.countsRows))
    }

    /// The target's TRUNCATE of what a source TRUNCATE emptied, listed as the decoder does:
    /// pgoutput lists the tables (inheritance children and cascaded tables included) but never a
    /// partitioned table, only its leaves; wal2json lists the partitioned tables too. A table is
    /// truncated ONLY itself (TRUNCATE ONLY parent leaves the children). A partitioned table is
    /// truncated whole (ONLY is an error there) when it is listed, or when each of its leaves
    /// whose rows are in the WAL is: it then stands for them, since a foreign key of the
    /// partitioned table (one on itself, as the regression database's `parted_self_fk`) refuses
    /// a TRUNCATE of its leaves without it. CASCADE and RESTART IDENTITY stay as sent.
    private func truncateStatement(_ relations: [Relation], options: String) throws -> String {
        try collect()  // the lookup uses the target session
        let rows = try target.query("""
            WITH RECURSIVE listed AS (
                SELECT c.oid, l.position FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS l(nspname, relname, position)
                JOIN pg_namespace n ON n.nspname = l.nspname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = l.relname),
            -- each listed relation and its partitioned ancestors, with the depth above it
            up(oid, position, depth) AS (
                SELECT oid, position, 0 FROM listed
                UNION ALL
                SELECT i.inhparent, u.position, u.depth + 1 FROM up u JOIN pg_inherits i ON i.inhrelid = u.oid
                JOIN pg_class p ON p.oid = i.inhparent WHERE p.relkind = 'p'),
            down(root, oid) AS (
                SELECT DISTINCT u.oid, u.oid FROM up u JOIN pg_class c ON c.oid = u.oid WHERE c.relkind = 'p'
                UNION ALL
                SELECT d.root, i.inhrelid FROM down d JOIN pg_inherits i ON i.inhparent = d.oid),
            -- listed, or each leaf listed but the unlogged ones (not in the WAL, so never listed;
            -- copied again at cutover). A foreign partition is never listed either, and a TRUNCATE
            -- of the partitioned table would empty it too: with one, the leaves stay as listed.
            whole AS (
                SELECT d.root FROM down d JOIN pg_class c ON c.oid = d.oid GROUP BY d.root
                HAVING d.root IN (SELECT oid FROM listed)
                    OR bool_and(c.relkind = 'p' OR (c.relkind = 'r' AND c.relpersistence <> 'p') OR c.oid IN (SELECT oid FROM listed)))
            SELECT l.position, n.nspname, w.relname
            FROM listed l
            JOIN LATERAL (SELECT u.oid FROM up u JOIN whole ON whole.root = u.oid WHERE u.position = l.position
                          ORDER BY u.depth DESC LIMIT 1) top ON true
            JOIN pg_class w ON w.oid = top.oid JOIN pg_namespace n ON n.oid = w.relnamespace
            """, Self.arrayLiteral(relations.map { .text($0.description.schema) }),
            Self.arrayLiteral(relations.map { .text($0.description.name) })).rows
        var whole: [Int: String] = [:]
        for row in rows {
            if let position = row.int(0), let schema = row.string(1), let name = row.string(2) {
                whole[position] = try target.quoteQualified(schema, name)
            }
        }
        var items: [String] = []
        for (i, relation) in relations.enumerated() {
            let item = whole[i + 1] ?? "ONLY \(relation.qualifiedName)"
            if !items.contains(item) { items.append(item) }
        }
        return "TRUNCATE " + items.joined(separator: ", ") + options
    }

    /// The rows of `count` array parameters, element by element (what `unnest($1, $2, …)`
    /// gives, but with the function's schema named, which that form does not allow).
    private func unnest(_ count: Int) -> String {
        "ROWS FROM (" + (1...max(1, count)).map { "pg_catalog.unnest($\($0))" }.joined(separator: ", ") + ")"
    }

    /// `$1, $2, …, $count`.
    private func parameters(_ count: Int) -> String { (1...max(1, count)).map { "$\($0)" }.joined(separator: ", ") }

    private static func bytes(_ values: [SQLValue]) -> Int {
        values.reduce(16) { total, value in
            switch value {
            case .null: return total + 1
            case .text(let text): return total + text.utf8.count
            case .bytes(let bytes): return total + bytes.count
            }
        }
    }

    /// A row's key values as one string (NULL apart from every text).
    static func keyText(_ values: [SQLValue]) -> String {
        var key = ""
        for value in values {
            if case .text(let text) = value { key += "\u{0}" + text } else { key += "\u{1}" }
        }
        return key
    }

    /// An array literal of the values (each quoted, `"` and `\` escaped; NULL unquoted), read
    /// by the array type's input function element by element as a parameter would be.
    static func arrayLiteral<S: Sequence<SQLValue>>(_ values: S) -> String {
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        for value in values {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            guard case .text(let text) = value else { bytes.append(contentsOf: "NULL".utf8); continue }
            bytes.append(UInt8(ascii: "\""))
            for byte in text.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { bytes.append(UInt8(ascii: "\\")) }
                bytes.append(byte)
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends a statement; false when it went out at once (in a chunk of a large transaction).
    @discardableResult
    private func enqueue(_ statement: Pending) throws -> Bool {
        var statement = statement
        statement.lsn = transactionLSN
        let size = Self.bytes(statement.values)
        // A full batch that ends inside a source transaction: the complete transactions before
        // it go out as a batch of their own (in flight, as at a COMMIT), the open one stays
        // pending. Otherwise the chunk below would send them with it and wait for the target,
        // and commit them only with that transaction: during a catch-up nearly every batch
        // fills up mid-transaction.
        func fillsTheBatch() -> Bool { pending.count + 1 >= batchLimit || pendingBytes + size >= batchBytes }
        if inTransaction, completeCount > 0, !targetTransactionOpen, fillsTheBatch() {
            try flush()
        }
        let chunk = inTransaction && fillsTheBatch()
        // A chunk is about to go out on the target session (before this statement is pending:
        // a failure here leaves the message to be handled again).
        if chunk { try collect() }
        pending.append(statement)
        pendingBytes += size
        if batchStarted == nil { batchStarted = Date() }
        // Inside a large source transaction: send what it has so far (memory stays bounded);
        // complete transactions before it go along in the same target transaction.
        if chunk {
            // A failed chunk cannot be sent again on its own: the stream restarts instead.
            do { try send(pending[...]); targetTransactionOpen = true } catch { targetTransactionOpen = true; throw error }
            pendingChanges += pending.count
            pending.removeAll(keepingCapacity: true)
            pendingBytes = 0
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

    /// Fills `independent`, `uniqueOnlyOnKey` and `mergeKey` (the key columns by which
    /// UPDATEs of the relation may be coalesced, or nil: see `openUpdates` for when).
    private func traits(_ relation: inout Relation) throws {
        let d = relation.description
        let keyed = d.replicaIdentity == "d" || d.replicaIdentity == "i"
        let key = keyed ? d.columns.indices.filter { d.columns[$0].isKey } : []
        // The key's names as an array literal, each element quoted.
        let names = Self.arrayLiteral(key.map { SQLValue.text(d.columns[$0].name) })
        let row = try target.query("""
            SELECT c.relkind = 'r' AND NOT c.relhassubclass AND NOT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = c.oid)
                   AND NOT EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgenabled IN ('A', 'R'))
                   AND NOT EXISTS (SELECT FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_enabled IN ('A', 'R')),
                   NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisunique OR i.indisexclusion)
                                   AND (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL
                                        OR ARRAY(SELECT a.attname::text COLLATE "C" FROM unnest(i.indkey) k
                                                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k ORDER BY 1)
                                           <> ARRAY(SELECT kn COLLATE "C" FROM unnest($3::text[]) kn ORDER BY 1))),
                   NOT EXISTS (SELECT FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_enabled IN ('A', 'R'))
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2
            """, d.schema, d.name, names).first
        relation.independent = row?.bool(0) == true
        // A rule rewrites the statement: its count is the rewritten one's, not the rows matched.
        relation.countsRows = row?.bool(2) != false
        relation.uniqueOnlyOnKey = relation.independent && !key.isEmpty && row?.bool(1) == true
        relation.mergeKey = coalesceUpdates && relation.uniqueOnlyOnKey && key.count < d.columns.count ? key : nil
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
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bits.count * 2)
        for byte in bits { text.append(hex[Int(byte >> 4)]); text.append(hex[Int(byte & 15)]) }
        return String(decoding: text, as: UTF8.self)
    }

    /// The WHERE clause that finds the old row: its key columns for REPLICA IDENTITY
    /// DEFAULT/INDEX; for FULL every sent column, compared as typed values (`IS NULL` for
    /// NULLs), or, for a type without a btree equality, as the text the target renders for
    /// both sides; one physical row, since duplicates are possible.
    private struct Match {
        /// The WHERE clause, built only for a statement shape not seen before.
        let clause: () throws -> String
        let values: [SQLValue]
        /// Part of the statement's name: which columns are compared, and how.
        let mask: String
        /// The key's source column indices when the row is found by its key (not FULL).
        let keyIndices: [Int]?
    }

    private func match(_ relation: Relation, old: [TupleValue], keyOnly: Bool, firstParameter: Int) throws -> Match {
        let columns = relation.description.columns, targetColumns = relation.target!
        let full = relation.description.replicaIdentity == "f" && !keyOnly
        let indices = columns.indices.filter { i in
            guard i < old.count, old[i] != .unchangedToast else { return false }
            return full ? !targetColumns[i].generated : columns[i].isKey
        }
        guard !indices.isEmpty else {
            throw ChangeStreamError("table \(relation.qualifiedName) has no replica identity to find rows by")
        }
        let values = indices.filter { !(full && old[$0] == .null) }.map { value(old[$0]) }
        let target = self.target
        let clause = { () throws -> String in
            var conditions: [String] = []
            var parameter = firstParameter
            for i in indices {
                let column = try target.quoteIdentifier(columns[i].name)
                let type = targetColumns[i].typeName
                if full {
                    if old[i] == .null {
                        conditions.append("\(column) IS NULL")
                        continue
                    } else if targetColumns[i].hasEquality {
                        // `=` finds the candidates (an index may serve it); equal is not the
                        // same (-0 = 0, 1.0 = 1.00, '1 day' = '24 hours'): the text decides.
                        conditions.append("\(column) = $\(parameter)::\(type) AND \(column)::text = ($\(parameter)::\(type))::text")
                    } else {
                        conditions.append("\(column)::text = ($\(parameter)::\(type))::text")
                    }
                } else {
                    conditions.append("\(column) = $\(parameter)")
                }
                parameter += 1
            }
            let clause = conditions.joined(separator: " AND ")
            return full ? "ctid = (SELECT ctid FROM ONLY \(relation.qualifiedName) WHERE \(clause) LIMIT 1)" : clause
        }
        // NULLs change the statement's text, so they are part of its name.
        if full { return Match(clause: clause, values: values, mask: "f\(mask(indices))n\(mask(indices.filter { old[$0] == .null }))", keyIndices: nil) }
        return Match(clause: clause, values: values, mask: "k\(mask(indices))", keyIndices: indices)
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
            SELECT a.attname, \(identity), \(generated), format_type(a.atttypid, -1), a.atttypid::int8, a.atttypmod,
                   format_type(a.atttypid, a.atttypmod),
                   CASE WHEN t.typdelim = ',' AND NOT (bt.typelem <> 0 AND bt.typlen = -1) THEN t.typarray::int8 ELSE 0 END,
                   bt.typtype <> 'c' AND et.typtype <> 'c' AND EXISTS (
                       SELECT FROM pg_opclass o JOIN pg_am m ON m.oid = o.opcmethod
                       WHERE m.amname = 'btree' AND o.opcdefault
                         AND (o.opcintype = et.oid
                              OR (et.typtype IN ('e', 'r', 'm') AND o.opcintype::regtype::text
                                  = CASE et.typtype WHEN 'e' THEN 'anyenum' WHEN 'r' THEN 'anyrange' ELSE 'anymultirange' END)
                              OR EXISTS (SELECT FROM pg_cast c WHERE c.castsource = et.oid AND c.casttarget = o.opcintype AND c.castmethod = 'b'))),
                   base.nspname, base.typname
            FROM pg_attribute a
            JOIN pg_type t ON t.oid = a.atttypid
            JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
            JOIN pg_type et ON et.oid = CASE WHEN bt.typelem <> 0 AND bt.typlen = -1 THEN bt.typelem ELSE bt.oid END
            -- below every domain (one may be over another)
            JOIN LATERAL (WITH RECURSIVE under(oid) AS (
                              SELECT t.oid
                              UNION ALL
                              SELECT d.typbasetype FROM under JOIN pg_type d ON d.oid = under.oid WHERE d.typtype = 'd')
                          SELECT n.nspname, b.typname FROM under JOIN pg_type b ON b.oid = under.oid JOIN pg_namespace n ON n.oid = b.typnamespace
                          WHERE b.typtype <> 'd') base ON true
            WHERE a.attrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))
              AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, d.schema, d.name).rows
        let name = relation.qualifiedName
        let hint = "then rerun the same command: streaming resumes where it stopped"
        // No column at all (`CREATE TABLE t ()`, every column dropped) is not a missing table.
        let columnless = try rows.isEmpty && d.columns.isEmpty && !target.query("""
            SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
            """, d.schema, d.name).rows.isEmpty
        guard !rows.isEmpty || columnless else {
            throw ChangeStreamError("table \(name) is on the source but not on the target (created on the source during streaming?): "
                + "create it on the target, e.g. `pg_dump --schema-only --table='\(name)' SOURCE | psql TARGET`, \(hint)")
        }
        var byName: [String: TargetColumn] = [:]
        var order: [String] = []
        for row in rows {
            let column = TargetColumn(name: row.string(0) ?? "", identityAlways: row.string(1) == "a",
                                      generated: !(row.string(2) ?? "").isEmpty, typeName: row.string(3) ?? "text",
                                      typeOID: UInt32(row.int(4) ?? 0),
                                      baseTypeName: try target.quoteQualified(row.string(9) ?? "", row.string(10) ?? ""),
                                      typeModifier: Int32(row.int(5) ?? -1),
                                      fullTypeName: row.string(6) ?? "text", hasEquality: row.bool(8) ?? false,
                                      arrayTypeOID: UInt32(row.int(7) ?? 0))
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
            // Built-in types have the same OID everywhere; others are compared by the name of the
            // type, or of the domain's base type, as pgoutput's TYPE message gives no more.
            let sameType = column.typeOID < Self.firstUnstableTypeOID ? column.typeOID == mine.typeOID
                : typeNames[column.typeOID].map { $0 == mine.baseTypeName } ?? true
            if !partial, !sameType || (column.typeModifier != mine.typeModifier && !mine.generated) {
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
    /// others by the name pgoutput sent in its TYPE message (a domain's base type's).
    private func typeName(_ column: RelationColumn) throws -> String {
        try collect()
        if column.typeOID != 0, column.typeOID < Self.firstUnstableTypeOID,
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

/// An UPDATE or DELETE that did not match on the target the rows it matched on the source:
/// the target differs. Permanent: applying the batch again gives the same, so the stream
/// stops (the batch is rolled back, the origin stays before it).
public struct ApplyDivergence: Error, CustomStringConvertible {
    let kind: ChangeApplier.Kind
    let table: String
    let matched: Int
    let expected: Int
    let lsns: ClosedRange<LSN>
    /// Why the target differs, when the stream knows (else: written outside the migration?).
    var cause: String?

    public var description: String {
        let operation = kind == .update ? "UPDATE" : kind == .delete ? "DELETE" : "a statement"
        let rows = expected == 1 ? "1 row" : "\(expected) rows"
        let transaction = lsns.lowerBound == lsns.upperBound
            ? "in the source transaction committed at \(lsns.lowerBound)"
            : "in the source transactions committed from \(lsns.lowerBound) to \(lsns.upperBound)"
        return "\(operation) on \(table) matched \(matched) row\(matched == 1 ? "" : "s") on the target (expected \(rows)) "
            + "\(transaction): the target differs from the source (\(cause ?? "written outside the migration?")); nothing of that "
            + "batch was committed. Cancel the migration and copy again with `migrate --overwrite`"
    }
}
