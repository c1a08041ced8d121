import Foundation
import PostgresClient

/// One database's change capture: the publication, the logical slot and the replication
/// session that created it.
final class ChangeCapture: @unchecked Sendable {
    let database: String
    let slotName: String
    let publication: String
    var replication: ReplicationConnection?
    var consistentPoint: LSN

    init(database: String, slotName: String, publication: String, replication: ReplicationConnection?, consistentPoint: LSN) {
        self.database = database; self.slotName = slotName; self.publication = publication
        self.replication = replication; self.consistentPoint = consistentPoint
    }
}

/// What the streams and the coordinating thread share.
final class StreamControl: @unchecked Sendable {
    private let lock = NSLock()
    private var cutover = false
    private var stop = false
    private var caughtUp: Set<String> = []
    private var finished: Set<String> = []
    private var failures: [String: String] = [:]

    var cutoverRequested: Bool { lock.withLock { cutover } }
    var stopRequested: Bool { lock.withLock { stop } }
    func requestCutover() { lock.withLock { cutover = true } }
    func requestStop() { lock.withLock { stop = true } }
    func markCaughtUp(_ database: String) { _ = lock.withLock { caughtUp.insert(database) } }
    func finish(_ database: String, error: String?) {
        lock.withLock {
            finished.insert(database)
            if let error { failures[database] = error }
        }
    }
    var caughtUpCount: Int { lock.withLock { caughtUp.count } }
    var finishedCount: Int { lock.withLock { finished.count } }
    var firstFailure: (String, String)? { lock.withLock { failures.first.map { ($0.key, $0.value) } } }
}

extension Migrator {
    /// pgoutput from PostgreSQL 10; wal2json before it (the only decoder 9.5/9.6 offer).
    /// `PGPREFLIGHT_OUTPUT_PLUGIN=wal2json` forces wal2json on newer sources too.
    var usesWal2JSON: Bool {
        ProcessInfo.processInfo.environment["PGPREFLIGHT_OUTPUT_PLUGIN"] == "wal2json" || sourceAdmin.serverVersionNumber < 100000
    }

    var changeFormat: ChangeStream.Format { usesWal2JSON ? .wal2json : .pgoutput(publication: publicationName) }

    /// Publication and slot names: lower-case letters, digits and `_` (slots allow nothing else).
    var publicationName: String {
        "pgpreflight_" + String(options.name.lowercased().map { $0 == "-" ? "_" : $0 }.prefix(40))
    }

    func slotName(_ database: String) throws -> String {
        let oid = try sourceAdmin.query("SELECT oid::text FROM pg_database WHERE datname = $1", database).rows.first?.string(0) ?? "0"
        return "\(publicationName)_\(oid)"
    }

    /// Online mode refuses tables whose UPDATEs and DELETEs cannot be streamed: once a
    /// publication covers them, the source itself would reject those statements.
    func checkReplicaIdentities(_ databases: [String]) throws {
        for database in databases {
            let conn = try open(options.source.with(database: database), what: "source database \(database)")
            defer { conn.close() }
            // relispartition exists from 10; older sources have no declarative partitions.
            let partitionFilter = conn.serverVersionNumber >= 100000 ? "AND NOT c.relispartition" : ""
            let missing = try conn.query("""
                SELECT format('%I.%I', n.nspname, c.relname)
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind = 'r' AND c.relpersistence = 'p' \(partitionFilter)
                  AND \(Catalog.userSchemaFilter)
                  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
                  AND (c.relreplident = 'n'
                       OR (c.relreplident = 'd' AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
                       OR (c.relreplident = 'i' AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))
                ORDER BY 1
                """).rows.compactMap { $0.string(0) }
            if !missing.isEmpty {
                throw MigrationFailure("online migration refused: tables of \(database) without a primary key or replica identity: "
                    + "\(missing.prefix(10).joined(separator: ", ")); add a primary key or run ALTER TABLE … REPLICA IDENTITY FULL on each")
            }
        }
    }

    /// Creates the publication and a logical slot that exports its snapshot; returns the
    /// snapshot. A slot left by an interrupted run is dropped: its snapshot is gone, so the
    /// database's copy starts again from an empty target database.
    func startChangeCapture(_ database: String) throws -> String {
        let sourceDB = options.source.with(database: database)
        let slot = try slotName(database)
        if try !sourceAdmin.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", slot).rows.isEmpty {
            printer.say("\(database): the copy of an interrupted online run starts again (its snapshot is gone)")
            try sourceAdmin.query("SELECT pg_drop_replication_slot($1)", slot)
            try store.resetProgress(options.name, database: database)
        }
        let conn = try open(sourceDB, what: "source database \(database)")
        defer { conn.close() }
        let publication = try conn.quoteIdentifier(publicationName)
        if !usesWal2JSON, try conn.query("SELECT 1 FROM pg_publication WHERE pubname = $1", publicationName).rows.isEmpty {
            try conn.execute("CREATE PUBLICATION \(publication) FOR ALL TABLES")
        }
        let replication: ReplicationConnection
        do { replication = try ReplicationConnection.open(sourceDB, applicationName: "pgpreflight migrate \(options.name) (replication)") }
        catch { throw MigrationFailure("cannot open a replication connection to the source database \(database): \(error)") }
        let created = try replication.createLogicalSlot(slot, plugin: usesWal2JSON ? "wal2json" : "pgoutput")
        try store.slotCreated(options.name, "", slot)
        guard let snapshot = created.snapshotName else { throw MigrationFailure("the source did not export a snapshot for slot \(slot)") }
        captures[database] = ChangeCapture(database: database, slotName: slot, publication: publicationName,
                                           replication: replication, consistentPoint: created.consistentPoint)
        printer.say("\(database): logical slot \(slot) (\(created.plugin)) created at \(created.consistentPoint); copying from its snapshot")
        return snapshot
    }

    /// Streams every database's changes until `cutover NAME` (or cancel). Reports latency and
    /// pending WAL to the state store; moves to WaitingForUserAction/WaitingForCutoverTrigger
    /// once every database has caught up.
    func streamUntilCutover(_ databases: [String]) throws {
        let control = StreamControl()
        var threads: [Thread] = []
        let done = DispatchGroup()
        for database in databases {
            let capture = try captures[database] ?? ChangeCapture(database: database, slotName: slotName(database),
                                                                   publication: publicationName, replication: nil, consistentPoint: .zero)
            done.enter()
            let thread = Thread { [self] in
                defer { done.leave() }
                do {
                    try stream(capture, control: control)
                    control.finish(database, error: nil)
                } catch {
                    control.finish(database, error: "\(error)")
                }
            }
            thread.stackSize = 4 << 20
            threads.append(thread)
        }
        printer.say("streaming changes of \(databases.count) database(s) from the source")
        threads.forEach { $0.start() }
        var waiting = false
        var cutoverStarted: Date?
        while control.finishedCount < databases.count {
            if canceled.isSet { control.requestStop() }
            if let (database, message) = control.firstFailure {
                control.requestStop()
                done.wait()
                throw MigrationFailure("streaming the changes of \(database) failed: \(message); rerun the same command to resume")
            }
            if cutoverStarted == nil, (try? store.isCutoverRequested(options.name)) == true {
                cutoverStarted = Date()
                try setSubstate(.completingMigration)
                printer.say("cutover requested: applying everything the source committed, then finishing")
                control.requestCutover()
            }
            if !waiting && cutoverStarted == nil && control.caughtUpCount == databases.count {
                waiting = true
                try store.setState(options.name, .waitingForUserAction, .waitingForCutoverTrigger)
                printer.say("caught up: WaitingForUserAction / WaitingForCutoverTrigger. Stop the applications' writes, then run "
                            + "`pgpreflight cutover \(options.name)`")
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        done.wait()
        if let (database, message) = control.firstFailure {
            throw MigrationFailure("streaming the changes of \(database) failed: \(message); rerun the same command to resume")
        }
        if canceled.isSet {
            dropChangeCapture(databases)
            throw MigrationCanceled()
        }
        try timed("Cutover (sequences, verification, slots)") { try completeCutover(databases) }
        if let cutoverStarted { printer.say(String(format: "cutover took %.1f s", Date().timeIntervalSince(cutoverStarted))) }
    }

    private func stream(_ capture: ChangeCapture, control: StreamControl) throws {
        let database = capture.database
        let sourceDB = options.source.with(database: database)
        let replication = try capture.replication
            ?? ReplicationConnection.open(sourceDB, applicationName: "pgpreflight migrate \(options.name) (replication)")
        capture.replication = replication
        let target = try open(options.target.with(database: database), what: "target database \(database)")
        defer { target.close() }
        let source = try open(sourceDB, what: "source database \(database)")
        defer { source.close() }
        let applier = try ChangeApplier(target: target, originName: capture.slotName)
        let changes = ChangeStream(replication: replication, applier: applier, slot: capture.slotName, format: changeFormat)
        var end: LSN?
        var lastReport = Date.distantPast
        // The first catch-up applies what was written during the base copy; the steady-state
        // apply delay is what follows it.
        var maxDelay = 0.0
        var catchUp: Double?
        let streamStart = Date()
        var applied = (transactions: 0, changes: 0)
        defer {
            printer.say(String(format: "%@: %d transactions (%d changes) streamed; caught up %.1f s after the copy; "
                               + "longest apply delay since then %.2f s", database, applied.transactions, applied.changes,
                               catchUp ?? -1, maxDelay))
        }
        try changes.run(consistentPoint: capture.consistentPoint, onProgress: { [self] progress in
            if catchUp != nil { maxDelay = max(maxDelay, progress.lastBatchDelaySeconds) }
            if catchUp == nil && progress.caughtUp { catchUp = Date().timeIntervalSince(streamStart) }
            applied = (progress.appliedTransactions, progress.appliedChanges)
            if progress.caughtUp || progress.latencySeconds < 1 { control.markCaughtUp(database) }
            guard Date().timeIntervalSince(lastReport) >= 1 else { return }
            lastReport = Date()
            let current = (try? source.query("SELECT pg_current_wal_lsn()::text").first?.string(0)).flatMap { $0.flatMap(LSN.init) }
            let pending = current.map { $0.value > progress.appliedLSN.value ? Int($0.value - progress.appliedLSN.value) : 0 } ?? 0
            // Caught up: 0. Otherwise how far the last applied commit is behind the source's clock.
            try? store.streamProgress(options.name, database, latencySeconds: progress.caughtUp ? 0 : progress.latencySeconds,
                                      pendingBytes: progress.caughtUp ? 0 : pending,
                                      appliedLSN: progress.appliedLSN.description, caughtUp: progress.caughtUp)
        }, shouldStop: { progress in
            if control.stopRequested { return true }
            guard control.cutoverRequested else { return false }
            if end == nil { end = try? ChangeStream.endOfCommittedWAL(source) }
            guard let end else { return false }
            return progress.caughtUp && progress.receivedLSN >= end
        })
        try? store.streamProgress(options.name, database, latencySeconds: 0, pendingBytes: 0,
                                  appliedLSN: applier.appliedLSN.description, caughtUp: true)
    }

    /// After the last change is applied: sequences from the source, row counts compared, and
    /// the slot, publication and replication origin removed (a forgotten slot fills the
    /// source's disk).
    private func completeCutover(_ databases: [String]) throws {
        for database in databases {
            let source = try open(options.source.with(database: database), what: "source database \(database)")
            defer { source.close() }
            let target = try open(options.target.with(database: database), what: "target database \(database)")
            defer { target.close() }
            for sequence in try Catalog.sequences(source) {
                try target.query("SELECT pg_catalog.setval($1::regclass, $2::bigint, $3::boolean)",
                                 sequence.qualified, sequence.lastValue, sequence.isCalled)
            }
            let mismatches = try TableVerifier.verify(source: options.source, target: options.target, database: database,
                                                      mode: options.verify, jobs: options.jobs)
            if !mismatches.isEmpty {
                let shown = mismatches.prefix(10).map(\.description).joined(separator: "; ")
                throw MigrationFailure("verification after cutover failed for \(mismatches.count) table(s) of \(database): \(shown). "
                    + "Were applications still writing to the source? The slot is kept: rerun the command to stream again, then cut over.")
            }
        }
        dropChangeCapture(databases)
        for database in databases { try store.setDatabase(options.name, database, state: "Succeeded") }
    }

    /// Drops slots, publications and replication origins (cutover and cancel).
    func dropChangeCapture(_ databases: [String]) {
        for database in databases {
            captures[database]?.replication?.close()
            captures[database]?.replication = nil
            guard let slot = try? slotName(database) else { continue }
            // The walsender of a just-closed stream may still hold the slot for a moment.
            for _ in 0..<50 {
                let active = (try? sourceAdmin.query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).rows.first?.bool(0)) ?? nil
                if active == nil { break }
                if active == false, (try? sourceAdmin.query("SELECT pg_drop_replication_slot($1)", slot)) != nil { break }
                Thread.sleep(forTimeInterval: 0.1)
            }
            if let conn = try? open(options.source.with(database: database), what: "source database \(database)") {
                if !usesWal2JSON, let name = try? conn.quoteIdentifier(publicationName) { try? conn.execute("DROP PUBLICATION IF EXISTS \(name)") }
                conn.close()
            }
            if let conn = try? open(options.target.with(database: database), what: "target database \(database)") {
                _ = try? conn.query("SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = $1", slot)
                conn.close()
            }
        }
    }
}
