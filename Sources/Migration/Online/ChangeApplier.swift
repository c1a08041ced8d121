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

    private var relations: [UInt32: (description: RelationDescription, qualifiedName: String, generation: Int)] = [:]
    private var generation = 0
    private var preparedStatements: Set<String> = []
    private var pending: [(name: String, sql: String, values: [SQLValue])] = []
    private var pendingEnd: LSN?
    private var pendingCommitTime: Date?
    private var pendingTransactions = 0
    private var skippingTransaction = false
    /// Flush once a batch holds this many statements (at a transaction boundary).
    public var batchLimit = 5000

    /// Prepares `target` (a superuser session on the target database): replica role so
    /// triggers and foreign keys do not fire twice, and the replication origin that tracks
    /// progress (created on first use).
    public init(target: Connection, originName: String) throws {
        self.target = target
        self.originName = originName
        try target.execute("SET session_replication_role = replica; SET synchronous_commit = off")
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
    public var hasPending: Bool { !pending.isEmpty || pendingEnd != nil }
    /// Inside a source transaction whose COMMIT has not arrived yet.
    public private(set) var inTransaction = false

    public func handle(_ message: PgOutputMessage) throws {
        switch message {
        case .begin(let finalLSN, _, _):
            inTransaction = true
            // Already committed on the target before a restart: the stream may resend it.
            skippingTransaction = finalLSN < appliedLSN
        case .relation(let description):
            generation += 1
            let name = try target.quoteQualified(description.schema, description.name)
            relations[description.id] = (description, name, generation)
        case .insert(let id, let new):
            guard !skippingTransaction, let relation = relations[id] else { return }
            let columns = relation.description.columns
            let indices = columns.indices.filter { new[$0] != .unchangedToast }
            let names = try indices.map { try target.quoteIdentifier(columns[$0].name) }
            let statement = "i\(relation.generation)_\(mask(indices))"
            let sql = "INSERT INTO \(relation.qualifiedName) (\(names.joined(separator: ", "))) VALUES ("
                + indices.indices.map { "$\($0 + 1)" }.joined(separator: ", ") + ")"
            enqueue(statement, sql, indices.map { value(new[$0]) })
        case .update(let id, let old, let oldIsKeyOnly, let new):
            guard !skippingTransaction, let relation = relations[id] else { return }
            let columns = relation.description.columns
            let setIndices = columns.indices.filter { new[$0] != .unchangedToast }
            let (whereSQL, whereValues, whereMask) = try match(relation, old: old ?? new, keyOnly: old == nil || oldIsKeyOnly,
                                                               firstParameter: setIndices.count + 1)
            let assignments = try setIndices.enumerated().map { "\(try target.quoteIdentifier(columns[$0.element].name)) = $\($0.offset + 1)" }
            let statement = "u\(relation.generation)_\(mask(setIndices))_\(whereMask)"
            let sql = "UPDATE \(relation.qualifiedName) SET \(assignments.joined(separator: ", ")) WHERE \(whereSQL)"
            enqueue(statement, sql, setIndices.map { value(new[$0]) } + whereValues)
        case .delete(let id, let old, let oldIsKeyOnly):
            guard !skippingTransaction, let relation = relations[id] else { return }
            let (whereSQL, whereValues, whereMask) = try match(relation, old: old, keyOnly: oldIsKeyOnly, firstParameter: 1)
            enqueue("d\(relation.generation)_\(whereMask)", "DELETE FROM \(relation.qualifiedName) WHERE \(whereSQL)", whereValues)
        case .truncate(let ids, let cascade, let restartIdentity):
            guard !skippingTransaction else { return }
            let names = ids.compactMap { relations[$0]?.qualifiedName }
            guard !names.isEmpty else { return }
            let sql = "TRUNCATE \(names.joined(separator: ", "))" + (restartIdentity ? " RESTART IDENTITY" : "") + (cascade ? " CASCADE" : "")
            pending.append(("", sql, []))
        case .commit(_, let endLSN, let commitTime):
            inTransaction = false
            if skippingTransaction { skippingTransaction = false; return }
            pendingEnd = endLSN
            pendingCommitTime = commitTime
            if pendingFirstCommitTime == nil { pendingFirstCommitTime = commitTime }
            pendingTransactions += 1
            if pending.count >= batchLimit { try flush() }
        case .origin, .type, .message:
            break
        }
    }

    /// Commits everything received up to the last complete source transaction, with the
    /// origin position, in one target transaction.
    public func flush() throws {
        guard let end = pendingEnd else { return }
        let statements = pending
        let commitTime = pendingCommitTime ?? Date()
        var prepared = preparedStatements
        try target.pipeline { batch in
            batch.statement("BEGIN")
            for statement in statements {
                if statement.name.isEmpty {
                    batch.statement(statement.sql)
                    continue
                }
                if prepared.insert(statement.name).inserted { batch.prepare(statement.name, statement.sql) }
                batch.execute(statement.name, statement.values)
            }
            batch.statement("SELECT pg_replication_origin_xact_setup($1::text::pg_lsn, $2::timestamptz)",
                            [.text(end.description), .text(Self.timestampFormatter.string(from: commitTime))])
            batch.statement("COMMIT")
        }
        preparedStatements = prepared
        appliedLSN = end
        lastAppliedCommitTime = commitTime
        lastBatchDelaySeconds = max(0, Date().timeIntervalSince(pendingFirstCommitTime ?? commitTime))
        pendingFirstCommitTime = nil
        appliedTransactions += pendingTransactions
        appliedChanges += statements.count
        pending.removeAll(keepingCapacity: true)
        pendingEnd = nil
        pendingCommitTime = nil
        pendingTransactions = 0
    }

    /// Rolls back a failed batch so the session can be reused (the statements stay pending).
    public func recover() {
        try? target.execute("ROLLBACK")
        // A failed pipeline may have left some prepares undone; prepare everything again.
        preparedStatements.removeAll()
        try? target.execute("DEALLOCATE ALL")
    }

    // MARK: Building statements

    private func enqueue(_ name: String, _ sql: String, _ values: [SQLValue]) {
        pending.append((name, sql, values))
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
    /// DEFAULT/INDEX; for FULL every sent column, compared as text (so types without an
    /// equality operator work) on one physical row, since duplicates are possible.
    private func match(_ relation: (description: RelationDescription, qualifiedName: String, generation: Int),
                       old: [TupleValue], keyOnly: Bool, firstParameter: Int) throws -> (String, [SQLValue], String) {
        let columns = relation.description.columns
        let full = relation.description.replicaIdentity == "f" && !keyOnly
        let indices = columns.indices.filter { i in
            guard i < old.count, old[i] != .unchangedToast else { return false }
            return full || columns[i].isKey
        }
        guard !indices.isEmpty else {
            throw ChangeStreamError("table \(relation.qualifiedName) has no replica identity to find rows by")
        }
        var conditions: [String] = []
        var values: [SQLValue] = []
        for i in indices {
            let column = try target.quoteIdentifier(columns[i].name)
            let parameter = "$\(firstParameter + values.count)"
            if full {
                conditions.append(old[i] == .null ? "\(column) IS NULL" : "\(column)::text = \(parameter)::text")
            } else {
                conditions.append("\(column) = \(parameter)")
            }
            if !(full && old[i] == .null) { values.append(value(old[i])) }
        }
        // NULLs change the statement's text, so they are part of its name.
        let nullMask = mask(indices.filter { old[$0] == .null })
        let clause = conditions.joined(separator: " AND ")
        if full {
            return ("ctid = (SELECT ctid FROM \(relation.qualifiedName) WHERE \(clause) LIMIT 1)", values, "f\(mask(indices))n\(nullMask)")
        }
        return (clause, values, "k\(mask(indices))")
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
