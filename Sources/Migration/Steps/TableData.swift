import Foundation
import PostgresClient
import Validation

/// The table data step: parallel COPY from the snapshot, big tables first (split into ranges
/// when one dwarfs the rest), small ones in groups; each worker goes on with the indexes of
/// the table it copied (Indexes.swift).
extension Migrator {
    /// Runs the workers while the pre-data schema is restored (when it is not yet), until every
    /// table is copied, indexed and analyzed.
    func copyTables(_ context: DatabaseContext, _ schema: SchemaPlan, _ tables: [SourceTable], perTable: [String: [IndexJob]]) throws {
        let name = options.name, database = context.database
        let preamble = schema.postData.preamble
        let analyzed = try store.doneSteps(name, database, prefix: MigrationStep.analyzePrefix)
        let (copied, dirty) = try store.registerTables(name, database, tables.map { ($0.key, $0.bytes) })
        tracker.addTables(count: tables.count, diskBytes: tables.reduce(0) { $0 + $1.bytes })
        let run = DatabaseRun(tables: tables, perTable: perTable)
        let totalBytes = tables.reduce(0) { $0 + $1.bytes }

        // The workers start as soon as the first tables exist: big tables are created first
        // and copied while the rest of the schema (thousands of small tables, say) is restored.
        let copyStart = Date()
        let queue = WorkQueue<Job>([])
        queue.hold()
        let workerContext = WorkerContext(migrator: self, database: context.database, source: context.source, target: context.target,
                                    snapshot: context.snapshot, preamble: preamble, run: run, queue: queue)
        let workers = Background { [options] in
            try queue.run(workers: options.jobs, makeState: { WorkerSessions() },
                          perform: { sessions, job in try workerContext.perform(job, &sessions) },
                          finish: { sessions in sessions.close() })
        }
        var scheduled = Set<String>()
        /// Queues the jobs of `candidates` (largest table first, the ranges of a split table
        /// before everything else: measured faster than starting a big whole table beside
        /// them, which three streams on two cores stretch), once each.
        func schedule(_ candidates: [SourceTable], largeObjects: Bool) throws {
            var jobs: [Job] = []
            // Not while the schema is restored: a pg_dump older than 16 creates them (empty) there.
            if largeObjects, try !store.isDone(name, database, .largeObjects) { jobs.append(.largeObjects) }
            var group: [SourceTable] = []
            var groupBytes: Int64 = 0
            for table in candidates where scheduled.insert(table.key).inserted && !wasRefused(table, in: database) {
                if copied[table.key] != nil {
                    tracker.tableAlreadyCopied(diskBytes: table.bytes)
                    if let indexJobs = perTable[table.key], !indexJobs.isEmpty { jobs += indexJobs.map { .index(table, $0) } }
                    else if !analyzed.contains(MigrationStep.analyze(table.key).key) { jobs.append(.analyze(table)) }
                } else if let parts = try splitRanges(table, totalBytes: totalBytes, context.snapshotSession) {
                    // Ranges of one table are copied by several workers: no FREEZE then, and the
                    // table is emptied once here (a resumed table is redone from scratch).
                    let conn = try open(context.target, what: "target database \(database)")
                    try conn.execute("TRUNCATE ONLY \(table.qualified)")
                    conn.close()
                    run.setParts(table.key, parts.count)
                    jobs += parts.map { .part(table, $0) }
                } else if table.bytes < Self.smallTableBytes && !dirty.contains(table.key) {
                    // Small tables go in groups: one target transaction copies them, builds their
                    // indexes and analyzes them (thousands of tiny tables cost round trips, not bytes).
                    group.append(table)
                    groupBytes += table.bytes
                    if group.count >= 100 || groupBytes >= 32 << 20 {
                        jobs.append(.group(group))
                        group = []
                        groupBytes = 0
                    }
                } else {
                    jobs.append(.copy(table))
                }
            }
            if !group.isEmpty { jobs.append(.group(group)) }
            for job in jobs { queue.push(job) }
        }
        do {
            if let preEntries = schema.preData {
                let early = tables.filter { copied[$0.key] == nil && $0.bytes >= Self.smallTableBytes }
                let earlyByName = Dictionary(early.map { ("\($0.schema)|\($0.name)", $0) }, uniquingKeysWith: { a, _ in a })
                try timed("Restore pre-data") {
                    do {
                        try restorePreData(preEntries, context.target, database, early: Set(earlyByName.keys)) { created in
                            try schedule(created.compactMap { earlyByName[$0] }, largeObjects: false)
                        }
                    } catch { throw MigrationFailure("restoring the schema (pre-data) of \(database) on the target failed: \(error)") }
                }
                try store.markDone(name, database, .preData)
            }
                try schedule(tables, largeObjects: true)
        } catch {
            queue.stop(error)
            _ = try? workers.value()
            throw error
        }
        queue.release()
        do {
            try workers.value()
        } catch {
            if canceled.isSet { throw MigrationCanceled() }
            throw error
        }
        tracker.time("COPY, INDEX, ANALYZE (wall clock)", Date().timeIntervalSince(copyStart))

    }

    /// Ranges for a table above the split threshold that dwarfs the rest of the data (more
    /// than twice what each other worker has to copy: they would sit idle while it copies);
    /// a table that is merely big keeps COPY FREEZE, and two big tables copied side by side
    /// measured faster whole than one of them in ranges. Ranges are ctid page ranges on a
    /// PostgreSQL 14+ source (a TID range scan reads only its pages), else ranges of an
    /// integer primary key (each range an index or sequential scan of its own).
    func splitRanges(_ table: SourceTable, totalBytes: Int64, _ session: Connection) throws -> [String]? {
        guard options.jobs > 1, table.bytes > options.splitThresholdBytes,
              table.bytes > 2 * (totalBytes - table.bytes) / Int64(options.jobs - 1) else { return nil }
        let bySize = Int((table.bytes + options.splitThresholdBytes - 1) / options.splitThresholdBytes)
        let parts = min(options.jobs * 4, max(options.jobs, bySize))
        if session.serverVersionNumber < 140000 || options.keyRangesOnly, let key = table.integerKey {
            let row = try session.query("SELECT min(\(key))::int8, max(\(key))::int8 FROM ONLY \(table.qualified)").rows[0]
            guard let low = row.int(0), let high = row.int(1), high > low else { return nil }
            let step = max(1, (high - low + parts) / parts)
            return (0..<parts).map { i in
                let from = low + i * step, to = from + step
                if i == 0 { return "\(key) < \(to)" }
                if i == parts - 1 { return "\(key) >= \(from)" }
                return "\(key) >= \(from) AND \(key) < \(to)"
            }
        }
        guard session.serverVersionNumber >= 140000 else { return nil }
        let pages = Int(table.bytes > 0 ? table.bytes / 8192 : table.pages)  // the current size; the last range is open-ended
        let step = max(1, (pages + parts - 1) / parts)
        return (0..<parts).map { i in
            let from = i * step, to = from + step
            if i == 0 { return "ctid < '(\(to),0)'::tid" }
            if i == parts - 1 { return "ctid >= '(\(from),0)'::tid" }
            return "ctid >= '(\(from),0)'::tid AND ctid < '(\(to),0)'::tid"
        }
    }

}

extension Migrator {
    enum Job: @unchecked Sendable {
        case copy(SourceTable)
        case part(SourceTable, String)
        case index(SourceTable, IndexJob)
        case group([SourceTable])
        /// count(*) of a copied table on the target, for verification (runs beside its index builds).
        case count(SourceTable)
        case analyze(SourceTable)
        case largeObjects

        var label: String {
            switch self {
            case .copy(let table): return "copy \(table.qualified)"
            case .part(let table, let range): return "copy \(table.qualified) where \(range)"
            case .index(let table, let index): return "index \(table.qualified) \(index.key)"
            case .group(let tables): return "copy \(tables.count) small tables"
            case .count(let table): return "count \(table.qualified)"
            case .analyze(let table): return "analyze \(table.qualified)"
            case .largeObjects: return "large objects"
            }
        }
    }

    /// `PGPREFLIGHT_TRACE=1`: one stderr line per worker job start and end, with the time since
    /// the run started (to see how the copy, index and verification jobs overlap).
    static let trace: (@Sendable (String, Date) -> Void)? = {
        guard ProcessInfo.processInfo.environment["PGPREFLIGHT_TRACE"] == "1" else { return nil }
        let start = Date()
        return { text, at in
            let line = String(format: "%7.3f ", at.timeIntervalSince(start)) + text + "\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
    }()

    struct WorkerSessions {
        var source: Connection?
        var target: Connection?
        mutating func close() { source?.close(); target?.close(); source = nil; target = nil }
    }

    /// What is left per table: ranges still copying, indexes still building.
    final class DatabaseRun: @unchecked Sendable {
        private let lock = NSLock()
        private var partsLeft: [String: Int] = [:]
        private var partRows: [String: (source: Int, target: Int, bytes: Int)] = [:]
        private var indexesLeft: [String: Int] = [:]
        let perTable: [String: [IndexJob]]

        init(tables: [SourceTable], perTable: [String: [IndexJob]]) {
            self.perTable = perTable
            for (key, jobs) in perTable { indexesLeft[key] = jobs.count }
        }
        func setParts(_ table: String, _ count: Int) { lock.withLock { partsLeft[table] = count } }
        /// Returns the table's totals when this was its last range.
        func partDone(_ table: String, _ result: CopyPipeResult) -> (source: Int, target: Int, bytes: Int)? {
            lock.withLock {
                var sum = partRows[table] ?? (0, 0, 0)
                sum = (sum.source + result.sourceRows, sum.target + result.targetRows, sum.bytes + result.bytes)
                partRows[table] = sum
                partsLeft[table, default: 1] -= 1
                return partsLeft[table] == 0 ? sum : nil
            }
        }
        /// Returns true when this was the table's last index.
        func indexDone(_ table: String) -> Bool {
            lock.withLock { indexesLeft[table, default: 1] -= 1; return indexesLeft[table]! <= 0 }
        }
    }

    final class WorkerContext: @unchecked Sendable {
        let migrator: Migrator
        let database: String
        let source: ConnectionString
        let target: ConnectionString
        let snapshot: String
        let preamble: String
        let run: DatabaseRun
        let queue: WorkQueue<Job>

        init(migrator: Migrator, database: String, source: ConnectionString, target: ConnectionString, snapshot: String,
             preamble: String, run: DatabaseRun, queue: WorkQueue<Job>) {
            self.migrator = migrator; self.database = database; self.source = source; self.target = target
            self.snapshot = snapshot; self.preamble = preamble; self.run = run; self.queue = queue
        }

        var store: StateStore { migrator.store }
        /// False once the migration is canceled or another job (or the schema restore) failed:
        /// a copy in flight stops then rather than run to its end.
        var shouldGoOn: Bool { !migrator.canceled.isSet && !queue.isStopped }
        var name: String { migrator.options.name }
        var tracker: ProgressTracker { migrator.tracker }

        func sourceSession(_ sessions: inout WorkerSessions) throws -> Connection {
            if let conn = sessions.source { return conn }
            let conn = try migrator.open(source, what: "source database \(database)")
            try conn.execute(Migrator.copySessionSettings + "; SELECT pg_catalog.set_config('client_encoding', pg_catalog.getdatabaseencoding(), false)")
            try conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try conn.execute("SET TRANSACTION SNAPSHOT \(try conn.quoteLiteral(snapshot))")
            sessions.source = conn
            return conn
        }

        func targetSession(_ sessions: inout WorkerSessions) throws -> Connection {
            if let conn = sessions.target { return conn }
            let conn = try migrator.open(target, what: "target database \(database)")
            try conn.execute(preamble + "\n" + Migrator.copySessionSettings + "; SET maintenance_work_mem = '256MB'")
            sessions.target = conn
            return conn
        }

        func perform(_ job: Job, _ sessions: inout WorkerSessions) throws {
            try migrator.checkCanceled()
            guard let trace = Migrator.trace else { return try run(job, &sessions) }
            let begin = Date()
            trace("begin \(job.label)", begin)
            defer { trace("end   \(job.label) (\(String(format: "%.3f", Date().timeIntervalSince(begin))) s)", Date()) }
            try run(job, &sessions)
        }

        private func run(_ job: Job, _ sessions: inout WorkerSessions) throws {
            switch job {
            case .copy(let table): try copy(table, range: nil, &sessions)
            case .part(let table, let range): try copy(table, range: range, &sessions)
            case .group(let tables): try copyGroup(tables, &sessions)
            case .count(let table):
                let conn = try targetSession(&sessions)
                // A plain scan: parallel workers only add coordination while the other
                // workers keep the target busy.
                let count = try migrator.timed("  Verification counts (cumulative)") { () throws -> Int in
                    try conn.execute("SET max_parallel_workers_per_gather = 0")
                    defer { try? conn.execute("RESET max_parallel_workers_per_gather") }
                    return try TableVerifier.count(conn, [table])[0]
                }
                try store.setTargetCount(name, database, table.key, count)
            case .index(let table, let index):
                let conn = try targetSession(&sessions)
                try migrator.timed("  CREATE INDEX (cumulative)") {
                    do { try conn.execute(index.sql) }
                    catch let error as ServerError where Migrator.alreadyExists(error) {
                        // Built by a run killed before it could record it.
                    } catch { throw MigrationFailure("building an index of \(table.qualified) on the target failed: \(error)") }
                }
                try store.markDone(name, database, .postData(index.key))
                if run.indexDone(table.key) { queue.push(.analyze(table), front: true) }
            case .analyze(let table):
                let conn = try targetSession(&sessions)
                try migrator.timed("  ANALYZE (cumulative)") { try conn.execute("ANALYZE \(table.qualified)") }
                try store.markDone(name, database, .analyze(table.key))
            case .largeObjects:
                let from = try sourceSession(&sessions), to = try targetSession(&sessions)
                var notes: [String] = []
                let count = try migrator.timed("  Large objects (cumulative)") { try LargeObjects.copy(source: from, target: to, notes: &notes) }
                for text in notes { migrator.note("\(database): \(text)") }
                try store.markDone(name, database, .largeObjects)
                if count > 0 { migrator.printer.say("\(database): \(count) large objects copied") }
            }
        }

        /// Copies small tables in one target transaction, with their indexes and ANALYZE, and
        /// records them in one store transaction. Interrupted, they are all redone (then one by
        /// one, emptied first).
        private func copyGroup(_ tables: [SourceTable], _ sessions: inout WorkerSessions) throws {
            let from = try sourceSession(&sessions), to = try targetSession(&sessions)
            try store.tablesStarted(name, database, tables.map(\.key))
            let start = Date()
            var results: [(table: String, rows: Int, sourceRows: Int, bytes: Int)] = []
            var steps: [String] = []
            var current = tables[0]
            do {
                try to.execute("BEGIN")
                for table in tables {
                    current = table
                    let format = table.binary ? "binary" : "text"
                    let result = try from.pipeCopy("COPY \(table.qualified)\(table.columnList) TO STDOUT (FORMAT \(format))", into: to,
                                                   "COPY \(table.qualified)\(table.columnList) FROM STDIN (FORMAT \(format))") { [tracker] bytes in
                        tracker.streamed(table.key, bytes)
                        return self.shouldGoOn
                    }
                    results.append((table.key, result.targetRows, result.sourceRows, result.bytes))
                }
                tracker.time("  COPY (cumulative)", Date().timeIntervalSince(start))
                var statements: [String] = []
                for table in tables {
                    for index in run.perTable[table.key] ?? [] {
                        statements.append(index.sql)
                        steps.append(MigrationStep.postData(index.key).key)
                    }
                    steps.append(MigrationStep.analyze(table.key).key)
                }
                if !statements.isEmpty {
                    try migrator.timed("  CREATE INDEX (cumulative)") { try to.execute(statements.joined(separator: "\n")) }
                }
                try migrator.timed("  ANALYZE (cumulative)") {
                    try to.execute("ANALYZE " + tables.map(\.qualified).joined(separator: ", "))
                }
                try to.execute("COMMIT")
            } catch {
                sessions.close()
                for table in tables { tracker.forget(table.key) }
                if migrator.canceled.isSet || error is CopyPipeStopped { throw MigrationCanceled() }
                let message = "\(error)"
                try? store.tableFailed(name, database, current.key, error: message)
                throw MigrationFailure("copying \(tables.count) small tables of \(database) (\(current.qualified) among them) failed: \(message)")
            }
            let targetCounts = try migrator.timed("  Verification counts (cumulative)") { try TableVerifier.count(to, tables) }
            try store.groupCopied(name, database, results, targetCounts: targetCounts, steps: steps,
                                  durationMs: Int(Date().timeIntervalSince(start) * 1000))
            for (table, result) in zip(tables, results) { tracker.tableDone(table.key, rows: result.rows, diskBytes: table.bytes) }
        }

        private func copy(_ table: SourceTable, range: String?, _ sessions: inout WorkerSessions) throws {
            let from = try sourceSession(&sessions), to = try targetSession(&sessions)
            try store.tableStarted(name, database, table.key)
            let start = Date()
            let format = table.binary ? "binary" : "text"
            let columns = table.columns.joined(separator: ", ")
            let copyOut: String
            if let range {
                copyOut = "COPY (SELECT \(columns) FROM ONLY \(table.qualified) WHERE \(range)) TO STDOUT (FORMAT \(format))"
            } else {
                copyOut = "COPY \(table.qualified)\(table.columnList) TO STDOUT (FORMAT \(format))"
            }
            let copyIn = "COPY \(table.qualified)\(table.columnList) FROM STDIN (FORMAT \(format)\(range == nil ? ", FREEZE" : ""))"
            let result: CopyPipeResult
            do {
                // FREEZE needs the table emptied in the same transaction.
                try to.execute(range == nil ? "BEGIN; TRUNCATE ONLY \(table.qualified)" : "BEGIN")
                result = try from.pipeCopy(copyOut, into: to, copyIn) { [tracker] bytes in
                    tracker.streamed(table.key, bytes)
                    return self.shouldGoOn
                }
                try to.execute("COMMIT")
            } catch {
                sessions.close()  // a session stopped mid-COPY is not reusable
                tracker.forget(table.key)
                if migrator.canceled.isSet || error is CopyPipeStopped { throw MigrationCanceled() }
                let message = "\(error)"
                try? store.tableFailed(name, database, table.key, error: message)
                throw MigrationFailure("copying \(table.qualified) of \(database) failed: \(message)")
            }
            let seconds = Date().timeIntervalSince(start)
            tracker.time("  COPY (cumulative)", seconds)
            var totals = (source: result.sourceRows, target: result.targetRows, bytes: result.bytes)
            if range != nil {
                guard let sum = run.partDone(table.key, result) else { tracker.partDone(rows: result.targetRows); return }
                tracker.partDone(rows: result.targetRows)
                totals = sum
            }
            try store.tableCopied(name, database, table.key, rows: totals.target, sourceRows: totals.source, bytes: totals.bytes,
                                  durationMs: Int(seconds * 1000))
            tracker.tableDone(table.key, rows: range == nil ? totals.target : 0, diskBytes: table.bytes)
            // This worker goes on with the first index (the long pole); an idle one counts.
            if migrator.options.verify == .counts { queue.push(.count(table), front: true) }
            let indexes = run.perTable[table.key] ?? []
            if indexes.isEmpty { queue.push(.analyze(table), front: true) }
            for index in indexes.reversed() { queue.push(.index(table, index), front: true) }
        }
    }
}
