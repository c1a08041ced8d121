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
    var publicationName: String { Self.publicationNames(migration: options.name)[0] }

    /// The publications an online migration creates in each source database (the keyed
    /// tables', the insert-only one of tables without a key), for `cancel` too.
    public static func publicationNames(migration: String) -> [String] {
        let base = "pgpreflight_" + String(migration.lowercased().map { $0 == "-" ? "_" : $0 }.prefix(40))
        return [base, base + "_ins"]
    }

    func slotName(_ database: String) throws -> String {
        let oid = try sourceAdmin.query("SELECT oid::text FROM pg_database WHERE datname = $1", database).rows.first?.string(0) ?? "0"
        return "\(publicationName)_\(oid)"
    }

    /// Unlogged tables: their writes are not in the WAL, so no change of theirs streams; they
    /// are copied again at cutover (found by the fidelity suite's online run).
    func unloggedTables(_ conn: Connection) throws -> [String] {
        try conn.query("""
            SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND \(Catalog.userSchemaFilter)
              AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
            ORDER BY 1
            """).rows.compactMap { $0.string(0) }
    }

    /// Whether table `c` has a column an INSERT writes: not dropped, not generated.
    static func hasWritableColumn(_ conn: Connection) -> String {
        "EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
            + (conn.serverVersionNumber >= 120000 ? " AND a.attgenerated = ''" : "") + ")"
    }

    /// Tables without a column an INSERT writes (none, all dropped, or only generated ones):
    /// their changes carry no value the apply could write, so they are in no publication and
    /// are copied whole at cutover with the other tables without a key.
    func withoutColumns(_ conn: Connection) throws -> Set<String> {
        Set(try conn.query("""
            SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND NOT \(Self.hasWritableColumn(conn))
            """).rows.compactMap { $0.string(0) })
    }

    /// Publication of the tables streamed in full (a key, or REPLICA IDENTITY FULL/INDEX).
    var keyedPublicationName: String { publicationName }
    /// Publication of the tables without a key: INSERT and TRUNCATE only, so UPDATE and DELETE
    /// on them keep working on the source (a publication that publishes them would make the
    /// source refuse them). They are copied again at cutover.
    var insertOnlyPublicationName: String { Self.publicationNames(migration: options.name)[1] }

    /// The ordinary tables of a source database (partitions included, each as itself), split
    /// into those whose UPDATEs and DELETEs can be streamed and those without a primary key or
    /// replica identity (with their size). A table without a column the apply could write
    /// counts as one without a key, whatever its replica identity (`withoutColumns`).
    func tablesByKey(_ conn: Connection) throws -> (keyed: [String], keyless: [(name: String, bytes: Int, key: String)]) {
        let rows = try conn.query("""
            SELECT format('%I.%I', n.nspname, c.relname),
                   (c.relreplident = 'n'
                    OR (c.relreplident = 'd' AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
                    OR (c.relreplident = 'i' AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident))
                    OR NOT \(Self.hasWritableColumn(conn))),
                   pg_total_relation_size(c.oid), n.nspname, c.relname
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND c.relpersistence = 'p'
              AND \(Catalog.userSchemaFilter)
              AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
            ORDER BY 1
            """).rows
        var keyed: [String] = [], keyless: [(String, Int, String)] = []
        for row in rows {
            guard let name = row.string(0) else { continue }
            if row.bool(1) == true {
                keyless.append((name, row.int(2) ?? 0, ChangeApplier.tableKey(schema: row.string(3) ?? "", name: row.string(4) ?? "")))
            } else {
                keyed.append(name)
            }
        }
        return (keyed, keyless)
    }

    /// Tables without a primary key or replica identity: their UPDATEs and DELETEs cannot be
    /// streamed. By default they stream their INSERTs and are copied again at cutover (said
    /// here, with what that adds to the cutover); `--strict-keys` refuses them instead.
    func checkReplicaIdentities(_ databases: [String]) throws {
        for database in databases {
            let conn = try open(options.source.with(database: database), what: "source database \(database)")
            defer { conn.close() }
            var keyless = try tablesByKey(conn).keyless
            if !usesWal2JSON, try !conn.query("SELECT 1 FROM pg_publication WHERE pubname = $1", keyedPublicationName).rows.isEmpty {
                // Resumed: one created while streaming is in no publication (watchForNewTables says so).
                let published = Set(try conn.query("SELECT format('%I.%I', schemaname, tablename) FROM pg_publication_tables WHERE pubname = $1",
                                                   insertOnlyPublicationName).rows.compactMap { $0.string(0) })
                keyless = keyless.filter { published.contains($0.name) }
            }
            let unlogged = try unloggedTables(conn)
            if !unlogged.isEmpty {
                printer.say("\(database): \(unlogged.count) unlogged table(s) (\(unlogged.prefix(10).joined(separator: ", "))\(unlogged.count > 10 ? ", …" : "")): "
                            + "their writes are not in the WAL, so none streams; they are copied again at cutover, while writes are stopped")
            }
            guard !keyless.isEmpty else { continue }
            let names = keyless.prefix(10).map(\.name).joined(separator: ", ") + (keyless.count > 10 ? ", …" : "")
            if options.strictKeys {
                throw MigrationFailure("online migration refused (--strict-keys): tables of \(database) without a primary key or replica identity: "
                    + "\(names); add a primary key or run ALTER TABLE … REPLICA IDENTITY FULL on each")
            }
            let bytes = keyless.reduce(0) { $0 + $1.bytes }
            // About 50 MB/s for a COPY from source to target: a rough guide, not a promise.
            printer.say("\(database): \(keyless.count) table(s) without a primary key or replica identity (\(names); "
                        + "\(formatBytes(bytes)) in all): their INSERTs stream, UPDATEs and DELETEs do not; they are copied again "
                        + String(format: "at cutover, while writes are stopped (about %.0f s more)", max(1, Double(bytes) / 50e6)))
        }
    }

    /// What the change apply needs of a target login that is not a superuser: setting
    /// session_replication_role (so triggers and foreign keys do not fire a second time),
    /// checked before anything is written; and EXECUTE on the replication origin functions
    /// (the applied position, kept in the same transaction as the changes), which are granted
    /// per database: `checkTargetDatabaseForOnline` checks them once the database exists.
    func checkTargetPrivilegesForOnline() throws {
        guard try !isSuperuser(targetAdmin) else { return }
        // Tried, not looked up: a managed service may allow it by a hook of its own.
        do { try targetAdmin.execute("BEGIN; SET LOCAL session_replication_role = replica; ROLLBACK") } catch {
            try? targetAdmin.execute("ROLLBACK")
            let user = try targetAdmin.query("SELECT current_user::text").first?.string(0) ?? ""
            let remedy = targetAdmin.serverVersionNumber >= 150000
                ? "run as a superuser on the target: GRANT SET ON PARAMETER session_replication_role TO \(try targetAdmin.quoteIdentifier(user));"
                : "PostgreSQL \(targetAdmin.serverVersionNumber / 10000) lets only a superuser set it: use a superuser login"
            throw MigrationFailure("online migration: the target login \(user) is not a superuser and may not set session_replication_role, "
                + "which the change apply needs; nothing was changed on the target. \(remedy)")
        }
    }

    private func isSuperuser(_ conn: Connection) throws -> Bool {
        try conn.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").first?.bool(0) == true
    }

    /// In the target database, before the slot is created and anything copied: EXECUTE on the
    /// replication origin functions (a database created from template0 grants them to no one).
    func checkTargetDatabaseForOnline(_ database: String) throws {
        let conn = try open(options.target.with(database: database), what: "target database \(database)")
        defer { conn.close() }
        guard try !isSuperuser(conn) else { return }
        let user = try conn.query("SELECT current_user::text").first?.string(0) ?? ""
        let quoted = try conn.quoteIdentifier(user)
        let grants = try conn.query("""
            SELECT p.oid::regprocedure::text FROM pg_proc p
            WHERE p.pronamespace = 'pg_catalog'::regnamespace
              AND p.proname IN ('pg_replication_origin_create', 'pg_replication_origin_drop', 'pg_replication_origin_progress',
                                'pg_replication_origin_session_setup', 'pg_replication_origin_xact_setup')
              AND NOT has_function_privilege(p.oid, 'EXECUTE')
            ORDER BY 1
            """).rows.map { "GRANT EXECUTE ON FUNCTION \($0.string(0) ?? "") TO \(quoted);" }
        guard !grants.isEmpty else { return }
        throw MigrationFailure("online migration: the target login \(user) is not a superuser and may not call the replication origin "
            + "functions in the target database \(database), which the change apply needs; nothing was copied. Run as a superuser "
            + "in \(database) on the target, then rerun the same command:\n  " + grants.joined(separator: "\n  "))
    }

    /// Creates the publication and a logical slot that exports its snapshot; returns the
    /// snapshot. A slot left by an interrupted run is dropped: its snapshot is gone, so the
    /// database's copy starts again from an empty target database.
    func startChangeCapture(_ database: String) throws -> String {
        let sourceDB = options.source.with(database: database)
        let slot = try slotName(database)
        if try !sourceAdmin.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", slot).rows.isEmpty {
            printer.say("\(database): the copy of an interrupted online run starts again (its snapshot is gone)")
            try waitForSlotRelease(slot, database, source: sourceAdmin)
            try sourceAdmin.query("SELECT pg_drop_replication_slot($1)", slot)
            try store.resetProgress(options.name, database: database)
        }
        let conn = try open(sourceDB, what: "source database \(database)")
        defer { conn.close() }
        if !usesWal2JSON, try conn.query("SELECT 1 FROM pg_publication WHERE pubname IN ($1, $2)",
                                          keyedPublicationName, insertOnlyPublicationName).rows.isEmpty {
            let (keyed, all) = try tablesByKey(conn)
            let unwritable = try withoutColumns(conn)
            let keyless = all.filter { !unwritable.contains($0.name) }
            let publication = try conn.quoteIdentifier(keyedPublicationName)
            // The tables by name, never FOR ALL TABLES: a table without a key created later
            // would be published for UPDATE and DELETE too, and the source would refuse them.
            // Tables created while streaming are noticed (watchForNewTables) and copied at cutover.
            try conn.execute("CREATE PUBLICATION \(publication)" + (keyed.isEmpty ? "" : " FOR TABLE \(keyed.joined(separator: ", "))"))
            if !keyless.isEmpty {
                try conn.execute("CREATE PUBLICATION \(try conn.quoteIdentifier(insertOnlyPublicationName)) FOR TABLE "
                                 + keyless.map(\.name).joined(separator: ", ") + " WITH (publish = 'insert, truncate')")
            }
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
    /// once every database has caught up. A cutover an earlier run began (and was killed in)
    /// is finished without a new request: the applications' writes are already stopped.
    func streamUntilCutover(_ databases: [String]) throws {
        let control = StreamControl()
        var cutoverStarted: Date?
        if try store.isCutoverTaken(options.name) {
            let progress = try store.cutoverProgress(options.name)
            try setSubstate(.completingMigration)
            if databases.allSatisfy({ progress[$0]?.step == "verified" }) {
                // Killed while (or after) dropping the slots: only the cleanup is left.
                printer.say("the cutover an earlier run began verified every database; finishing its cleanup (slots, publications, origins)")
                dropChangeCapture(databases)
                for database in databases { try store.setDatabase(options.name, database, state: "Succeeded") }
                return
            }
            for database in databases where try sourceAdmin.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                                                                   slotName(database)).rows.isEmpty {
                try? store.endCutover(options.name)
                throw MigrationFailure("the cutover an earlier run began stopped before \(database) was verified, and its slot "
                    + "\(try slotName(database)) is gone from the source: changes may be missing on the target. Cancel the migration "
                    + "(`pgpreflight cancel \(options.name)`), drop the target databases and start again")
            }
            printer.say("resuming the cutover an earlier run began (the applications' writes must still be stopped): "
                        + "applying the last changes, then sequences, verification and cleanup")
            cutoverStarted = Date()
            control.requestCutover()
        }
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
                    // A divergence is not resumed: the rerun would find the same target.
                    control.finish(database, error: "\(error)" + (error is ApplyDivergence ? "" : "; rerun the same command to resume"))
                }
            }
            thread.stackSize = 4 << 20
            threads.append(thread)
        }
        printer.say("streaming changes of \(databases.count) database(s) from the source")
        threads.forEach { $0.start() }
        var waiting = false
        // A failed cutover needs a new request (`cutover NAME` again); a killed one is finished by the rerun.
        func failCutover(_ failure: MigrationFailure) -> MigrationFailure {
            if cutoverStarted != nil { try? store.endCutover(options.name) }
            return failure
        }
        while control.finishedCount < databases.count {
            if canceled.isSet { control.requestStop() }
            if let (database, message) = control.firstFailure {
                control.requestStop()
                done.wait()
                throw failCutover(MigrationFailure("streaming the changes of \(database) failed: \(message)"))
            }
            if cutoverStarted == nil, (try? store.isCutoverRequested(options.name)) == true {
                cutoverStarted = Date()
                try store.takeCutover(options.name)
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
            throw failCutover(MigrationFailure("streaming the changes of \(database) failed: \(message)"))
        }
        if canceled.isSet {
            if !wasInterrupted { dropChangeCapture(databases) }  // interrupted: the rerun resumes from the slots
            throw MigrationCanceled()
        }
        Self.testKill(at: "cutover-applied")
        do {
            try timed("Cutover (sequences, verification, slots)") { try completeCutover(databases) }
        } catch let failure as MigrationFailure {
            throw failCutover(failure)
        }
        if let cutoverStarted { printer.say(String(format: "cutover took %.1f s", Date().timeIntervalSince(cutoverStarted))) }
    }

    /// Tests: `PGPREFLIGHT_TEST_KILL_AT=<step>` kills the migrator (SIGKILL, nothing cleaned up)
    /// at that step of the cutover: cutover-writes-stopped, cutover-applied, cutover-sequences,
    /// cutover-slot-dropped.
    static func testKill(at step: String) {
        if ProcessInfo.processInfo.environment["PGPREFLIGHT_TEST_KILL_AT"] == step { kill(getpid(), SIGKILL) }
    }

    /// Tests: whether the hook `name` is set to 1 in the environment.
    static func testHook(_ name: String) -> Bool { ProcessInfo.processInfo.environment[name] == "1" }

    /// Right after a kill, the source's walsender of the killed run may still hold the slot
    /// ("replication slot … is active for PID …") until it notices its client is gone: waits
    /// for it (bounded), ending it after 10 s when it is one of this migration's.
    func waitForSlotRelease(_ slot: String, _ database: String, source: Connection) throws {
        let holder = "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active"
        guard let pid = try source.query(holder, slot).first?.int(0) else { return }
        printer.say("\(database): the slot \(slot) is still held by process \(pid) on the source (the walsender of an earlier run?); "
                    + "waiting up to 30 s for it to let go")
        let started = Date()
        var ended = false
        while Date().timeIntervalSince(started) < 30 {
            Thread.sleep(forTimeInterval: 0.2)
            guard let current = try source.query(holder, slot).first?.int(0) else {
                printer.say(String(format: "%@: the slot is free (after %.1f s)", database, Date().timeIntervalSince(started)))
                return
            }
            if !ended && Date().timeIntervalSince(started) > 10,
               try source.query("SELECT application_name FROM pg_stat_activity WHERE pid = $1", current).first?.string(0)
                   == "pgpreflight migrate \(options.name) (replication)" {
                // Another live migrator of this migration is ruled out (one runner per migration).
                ended = true
                _ = try? source.query("SELECT pg_terminate_backend($1)", current)
            }
        }
        throw MigrationFailure("\(database): the slot \(slot) is still in use on the source by process \(pid) after 30 s. If no other "
            + "pgpreflight runs migration \(options.name), end that process (SELECT pg_terminate_backend(\(pid)) on the source), "
            + "then rerun the same command")
    }

    private func stream(_ capture: ChangeCapture, control: StreamControl) throws {
        let database = capture.database
        let sourceDB = options.source.with(database: database)
        let source = try open(sourceDB, what: "source database \(database)")
        defer { source.close() }
        if capture.replication == nil { try waitForSlotRelease(capture.slotName, database, source: source) }
        let replication = try capture.replication
            ?? ReplicationConnection.open(sourceDB, applicationName: "pgpreflight migrate \(options.name) (replication)")
        capture.replication = replication
        let target = try open(options.target.with(database: database), what: "target database \(database)")
        defer { target.close() }
        let applier = try ChangeApplier(target: target, originName: capture.slotName)
        applier.onNotice = { [self] text in note("\(database): \(text)") }
        // PGPREFLIGHT_APPLY_PLAIN=1: the apply as before issue 16 (no coalescing, no batch in
        // flight, no grouping), for Benchmarks/apply-bench.sh's side-by-side figures.
        if ProcessInfo.processInfo.environment["PGPREFLIGHT_APPLY_PLAIN"] == "1" {
            applier.coalesceUpdates = false
            applier.overlapBatches = false
            applier.groupStatements = false
        }
        let format: ChangeStream.Format
        // Tables noticed as created while streaming (wal2json: the keyless tables known so far).
        var newTables: Set<String> = []
        if usesWal2JSON {
            format = .wal2json
            // wal2json streams every table: the UPDATEs and DELETEs of tables without a key
            // cannot be matched, and the cutover copies those tables again anyway.
            applier.insertOnlyTables = Set(try tablesByKey(source).keyless.map(\.key))
            newTables = Set(try tablesByKey(source).keyless.map(\.name))
        } else {
            let names = try source.query("SELECT pubname FROM pg_publication WHERE pubname IN ($1, $2) ORDER BY 1",
                                         keyedPublicationName, insertOnlyPublicationName).rows.compactMap { $0.string(0) }
            format = .pgoutput(publication: try names.map { try source.quoteIdentifier($0) }.joined(separator: ","))
        }
        let changes = ChangeStream(replication: replication, applier: applier, slot: capture.slotName, format: format)
        // What the slot has not confirmed yet, against the source's WAL: the changes still to apply.
        let pendingSQL = source.serverVersionNumber >= 100000
            ? "SELECT greatest(0, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))::int8 FROM pg_replication_slots WHERE slot_name = $1"
            : source.serverVersionNumber >= 90600
            ? "SELECT greatest(0, pg_xlog_location_diff(pg_current_xlog_location(), confirmed_flush_lsn))::int8 FROM pg_replication_slots WHERE slot_name = $1"
            : "SELECT greatest(0, pg_xlog_location_diff(pg_current_xlog_location(), restart_lsn))::int8 FROM pg_replication_slots WHERE slot_name = $1"
        var end: LSN?
        var last: ChangeStream.Progress?
        var lastReport = Date.distantPast, lastTableLook = Date.distantPast
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
        var warnedNumerics = false
        try changes.run(consistentPoint: capture.consistentPoint, onProgress: { [self] progress in
            if !changes.exactNumerics && !warnedNumerics {
                warnedNumerics = true
                lock.withLock { _ = inexactNumericDatabases.insert(database) }
                note("\(database): the source's wal2json is older than 2.6 and sends NaN and ±Infinity of float and numeric columns "
                     + "as NULL (and -0 as 0); such values changed during streaming arrive wrong on the target, so the cutover "
                     + "compares checksums of every table of \(database) (upgrade wal2json to 2.6 or later to avoid both)")
            }
            if catchUp != nil { maxDelay = max(maxDelay, progress.lastBatchDelaySeconds) }
            if catchUp == nil && progress.caughtUp { catchUp = Date().timeIntervalSince(streamStart) }
            applied = (progress.appliedTransactions, progress.appliedChanges)
            if progress.caughtUp || progress.latencySeconds < 1 { control.markCaughtUp(database) }
            if Date().timeIntervalSince(lastTableLook) >= 5 {
                lastTableLook = Date()
                if usesWal2JSON {
                    try watchForNewKeylessTables(source: source, database, applier: applier, known: &newTables)
                } else {
                    try watchForNewTables(source: source, database, noticed: &newTables)
                }
            }
            guard Date().timeIntervalSince(lastReport) >= 1 else { return }
            lastReport = Date()
            let pending = ((try? source.query(pendingSQL, capture.slotName).first?.int(0)) ?? nil) ?? 0
            // Caught up: 0. Otherwise how far the last applied commit is behind the source's clock.
            try? store.streamProgress(options.name, database, latencySeconds: progress.caughtUp ? 0 : progress.latencySeconds,
                                      pendingBytes: pending,
                                      appliedLSN: progress.appliedLSN.description, caughtUp: progress.caughtUp)
        }, shouldStop: { [self] progress in
            last = progress
            if control.stopRequested { return true }
            guard control.cutoverRequested else { return false }
            if end == nil, let position = try? ChangeStream.endOfCommittedWAL(source) {
                end = position
                try? store.cutoverStep(options.name, database, "applying", endLSN: position.description)
                Self.testKill(at: "cutover-writes-stopped")
            }
            guard let end else { return false }
            // Tests: a stream that stops short of the end (here: as soon as it is known), so
            // that the proof below, not the stop condition, is what refuses the cutover.
            if Self.testHook("PGPREFLIGHT_TEST_CUTOVER_STOP_EARLY") { return true }
            return progress.caughtUp && progress.receivedLSN >= end
        })
        if control.cutoverRequested, !control.stopRequested {
            // A table created since the last look (every 5 s) is said before the cutover copies it.
            if usesWal2JSON {
                try watchForNewKeylessTables(source: source, database, applier: applier, known: &newTables)
            } else {
                try watchForNewTables(source: source, database, noticed: &newTables)
            }
        }
        let pending = ((try? source.query(pendingSQL, capture.slotName).first?.int(0)) ?? nil) ?? 0
        try? store.streamProgress(options.name, database, latencySeconds: 0, pendingBytes: pending,
                                  appliedLSN: applier.appliedLSN.description, caughtUp: true)
        // The cutover proves itself: every transaction the stream delivered is applied, and the
        // target has everything up to the source's end position.
        guard control.cutoverRequested, !control.stopRequested, let end, let last else { return }
        try store.cutoverStep(options.name, database, "applied", appliedPosition: last.appliedPosition.description,
                              received: last.receivedTransactions, applied: last.appliedTransactions)
        guard last.appliedTransactions == last.receivedTransactions, last.appliedPosition >= end else {
            throw MigrationFailure("cutover of \(database) incomplete: \(last.receivedTransactions) source transaction(s) received, "
                + "\(last.appliedTransactions) applied, applied up to \(last.appliedPosition) of the source's end \(end). The slot is "
                + "kept: rerun the same migrate command, then `pgpreflight cutover \(options.name)` again")
        }
        printer.say("\(database): \(last.receivedTransactions) source transaction(s) received in this run, \(last.appliedTransactions) "
                    + "applied; applied up to \(last.appliedPosition), the source's end \(end)")
    }

    /// The publications list the tables by name: a table created on the source while
    /// streaming is not streamed. Said once per table; one the target lacks stops the stream
    /// (the cutover could not copy it), one the target has is copied whole at cutover.
    private func watchForNewTables(source: Connection, _ database: String, noticed: inout Set<String>) throws {
        if try !source.query("SELECT 1 FROM pg_publication WHERE pubname = $1 AND puballtables", keyedPublicationName).rows.isEmpty { return }
        // The tables tablesByKey lists that neither publication has.
        let new = try source.query("""
            SELECT n.nspname, c.relname, format('%I.%I', n.nspname, c.relname)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND c.relpersistence = 'p'
              AND \(Catalog.userSchemaFilter)
              AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
              AND NOT EXISTS (SELECT FROM pg_publication_tables p WHERE p.pubname IN ($1, $2)
                                AND p.schemaname = n.nspname AND p.tablename = c.relname)
              AND \(Self.hasWritableColumn(source))
            ORDER BY 3
            """, keyedPublicationName, insertOnlyPublicationName).rows.filter { !noticed.contains($0.string(2) ?? "") }
        guard !new.isEmpty else { return }
        let target = try open(options.target.with(database: database), what: "target database \(database)")
        defer { target.close() }
        for row in new {
            let name = row.string(2) ?? ""
            let table = try target.quoteQualified(row.string(0) ?? "", row.string(1) ?? "")
            if try target.query("SELECT to_regclass($1) IS NOT NULL", name).first?.bool(0) != true {
                throw ChangeStreamError("table \(table) is on the source but not on the target (created on the source during streaming?): "
                    + "create it on the target, e.g. `pg_dump --schema-only --table='\(table)' SOURCE | psql TARGET`, then rerun the "
                    + "same command: streaming resumes where it stopped, and the table's rows are copied whole at cutover")
            }
            noticed.insert(name)
            note("\(database): table \(table) was created on the source during streaming: its changes are not streamed (the "
                 + "publication lists the tables the migration started with); its rows are copied whole at cutover, while writes are stopped")
        }
    }

    /// wal2json decodes every table, those created while streaming too, but sends no UPDATE or
    /// DELETE of a table without a key (it warns on the source and skips them). Such a table
    /// created while streaming is said once, applied as insert-only like those the migration
    /// started with, and copied whole at cutover; one the target lacks stops the stream (its
    /// rows have nowhere to go, and the cutover could not copy it).
    private func watchForNewKeylessTables(source: Connection, _ database: String, applier: ChangeApplier,
                                          known: inout Set<String>) throws {
        let new = try tablesByKey(source).keyless.filter { !known.contains($0.name) }
        guard !new.isEmpty else { return }
        let target = try open(options.target.with(database: database), what: "target database \(database)")
        defer { target.close() }
        for table in new {
            let parts = table.key.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
            let quoted = try target.quoteQualified(parts.first ?? "", parts.last ?? "")
            if try target.query("SELECT to_regclass($1) IS NOT NULL", table.name).first?.bool(0) != true {
                throw ChangeStreamError("table \(quoted) is on the source but not on the target (created on the source during streaming?): "
                    + "create it on the target, e.g. `pg_dump --schema-only --table='\(quoted)' SOURCE | psql TARGET`, then rerun the "
                    + "same command: streaming resumes where it stopped, and the table's rows are copied whole at cutover")
            }
            known.insert(table.name)
            applier.insertOnlyTables.insert(table.key)
            note("\(database): table \(quoted) without a primary key or replica identity was created on the source during streaming: "
                 + "its INSERTs stream, its UPDATEs and DELETEs do not (wal2json sends none); its rows are copied whole at cutover, while writes are stopped")
        }
    }

    /// After the last change is applied: sequences from the source, row counts compared, and
    /// the slot, publication and replication origin removed (a forgotten slot fills the
    /// source's disk). Each step is recorded: a rerun after a kill finishes what is left.
    private func completeCutover(_ databases: [String]) throws {
        for database in databases {
            let source = try open(options.source.with(database: database), what: "source database \(database)")
            defer { source.close() }
            let target = try open(options.target.with(database: database), what: "target database \(database)")
            defer { target.close() }
            try timed("Cutover: tables without a key copied again") { try copyKeylessTablesAgain(source: source, target: target, database) }
            try timed("Cutover: materialized views refreshed") { try refreshMaterializedViews(source: source, target: target) }
            try timed("Cutover: sequences") { try Sequences.reset(from: source, to: target) }
            try store.cutoverStep(options.name, database, "sequences")
            Self.testKill(at: "cutover-sequences")
            let inexact = lock.withLock { inexactNumericDatabases.contains(database) }
            let mismatches = try TableVerifier.verify(source: options.source, target: options.target, database: database,
                                                      mode: inexact ? .checksums : options.verify, jobs: options.jobs)
            if !mismatches.isEmpty {
                let shown = mismatches.prefix(10).map(\.description).joined(separator: "; ")
                throw MigrationFailure("verification after cutover failed for \(mismatches.count) table(s) of \(database): \(shown). "
                    + "The slot is kept. If applications still write to the source (see pg_stat_activity), stop them, rerun the "
                    + "same migrate command and cut over again; otherwise the streamed changes of these tables differ: compare them "
                    + "with `pgpreflight verify --checksums`, and report it (the target cannot be trusted as it is)")
            }
            // The catalogs too, with verify's verifier: DDL on the source during streaming, say.
            let differences = try timed("Cutover: verification (catalogs)") { () throws -> [VerifyDifference] in
                Verifier.differences(source: options.source.with(database: database), target: options.target.with(database: database),
                                     data: nil, includeRoles: database == databases.first && !copiedRoles.isEmpty, onlyRoles: copiedRoles, jobs: options.jobs)
            }
            if !differences.isEmpty {
                let shown = differences.prefix(20).map(\.description).joined(separator: "\n  ")
                throw MigrationFailure("verification after cutover found \(differences.count) difference(s) in \(database); the slot is kept:\n  \(shown)\n"
                    + "Fix them on the target (or the source), then rerun the same migrate command and cut over again")
            }
            try store.cutoverStep(options.name, database, "verified")
        }
        dropChangeCapture(databases)
        Self.testKill(at: "cutover-slot-dropped")
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
                if !usesWal2JSON {
                    for publication in [keyedPublicationName, insertOnlyPublicationName] {
                        if let name = try? conn.quoteIdentifier(publication) { try? conn.execute("DROP PUBLICATION IF EXISTS \(name)") }
                    }
                }
                conn.close()
            }
            if let conn = try? open(options.target.with(database: database), what: "target database \(database)") {
                _ = try? conn.query("SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = $1", slot)
                conn.close()
            }
        }
    }

    /// At cutover, writes stopped and every change applied: the tables without a key (whose
    /// UPDATEs and DELETEs were not streamed) and the unlogged ones (nothing of theirs
    /// streamed) are emptied and copied again on the target.
    /// Also refuses tables the publications missed (created on the source while streaming).
    private func copyKeylessTablesAgain(source: Connection, target: Connection, _ database: String) throws {
        let (keyed, keyless) = try tablesByKey(source)
        var again = keyless.map(\.name) + (try unloggedTables(source))
        if !usesWal2JSON, try source.query("SELECT 1 FROM pg_publication WHERE pubname = $1 AND puballtables", keyedPublicationName).rows.isEmpty {
            let published = Set(try source.query("""
                SELECT format('%I.%I', schemaname, tablename) FROM pg_publication_tables WHERE pubname IN ($1, $2)
                """, keyedPublicationName, insertOnlyPublicationName).rows.compactMap { $0.string(0) })
            // Created on the source while streaming (not published): copied whole too.
            let missed = keyed.filter { !published.contains($0) }
            again += missed
        }
        // Created on the source while streaming and never created on the target (wal2json: one
        // that got no row since, so the stream never stopped on it).
        let absent = try again.filter { try target.query("SELECT to_regclass($1) IS NULL", $0).first?.bool(0) == true }
        if !absent.isEmpty {
            throw MigrationFailure("tables of \(database) were created on the source after the online migration started and are "
                + "not on the target: \(absent.prefix(10).joined(separator: ", ")). Create them on the target (e.g. `pg_dump "
                + "--schema-only --table=…` | psql), then rerun the same migrate command and cut over again: their rows are copied then")
        }
        guard !again.isEmpty else { return }
        // Copied as the base copy copies them (Catalog.tables: its column list, which may be
        // empty, and its COPY format).
        let oids = Set(try source.query("SELECT name::regclass::oid::int8 FROM unnest($1::text[]) name",
                                        ChangeApplier.arrayLiteral(again.map { SQLValue.text($0) })).rows.compactMap { $0.int(0) })
        let tables = try Catalog.tables(source).filter { oids.contains($0.oid) }
        try target.execute("SET session_replication_role = replica")
        // Values as text read the same on both sides whatever either database's settings.
        let reset = "RESET DateStyle; RESET IntervalStyle; RESET extra_float_digits; RESET TimeZone; RESET bytea_output; RESET search_path"
        try source.execute(Migrator.copySessionSettings)
        try target.execute(Migrator.copySessionSettings)
        defer { try? target.execute("RESET session_replication_role; " + reset); try? source.execute(reset) }
        for sourceTable in tables {
            let table = sourceTable.qualified, format = sourceTable.binary ? "binary" : "text"
            try target.execute("BEGIN; SAVEPOINT empty")
            do {
                do { try target.execute("TRUNCATE ONLY \(table)") } catch {
                    // Referenced by a foreign key: TRUNCATE refuses, DELETE (triggers off) does not.
                    try target.execute("ROLLBACK TO SAVEPOINT empty; DELETE FROM ONLY \(table)")
                }
                // A CHECK constraint added NOT VALID over rows that break it (the source keeps
                // them; the base copy loaded them before its constraints): the COPY would refuse
                // them. Dropped for the COPY and added again NOT VALID, in the same transaction,
                // as pg_dump restores it after the data (with its children's copies: both
                // statements recurse). One inherited from a parent cannot be dropped here.
                let invalid = try target.query("""
                    SELECT quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint
                    WHERE conrelid = $1::regclass AND contype = 'c' AND NOT convalidated AND conislocal AND coninhcount = 0
                    ORDER BY conname
                    """, table).rows.compactMap { row in row.string(0).flatMap { name in row.string(1).map { (name, $0) } } }
                for (name, _) in invalid { try target.execute("ALTER TABLE \(table) DROP CONSTRAINT \(name)") }
                let copied = try source.pipeCopy("COPY \(table)\(sourceTable.columnList) TO STDOUT (FORMAT \(format))", into: target,
                                                 "COPY \(table)\(sourceTable.columnList) FROM STDIN (FORMAT \(format))") { _ in true }
                for (name, definition) in invalid { try target.execute("ALTER TABLE \(table) ADD CONSTRAINT \(name) \(definition)") }
                try target.execute("COMMIT")
                printer.say("\(database): \(table) copied again: \(copied.targetRows) rows")
            } catch {
                try? target.execute("ROLLBACK")
                throw MigrationFailure("copying \(table) of \(database) again at cutover failed: \(error); the slot is kept, rerun the command")
            }
        }
    }

    /// Refreshes, on the target, every materialized view that is populated on the source, each
    /// after the ones it reads (through views too): they then hold what the copied and
    /// streamed data gives, not what the snapshot gave.
    private func refreshMaterializedViews(source: Connection, target: Connection) throws {
        let populated = Set(try source.query("""
            SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'm' AND c.relispopulated
            """).rows.compactMap { $0.string(0) })
        guard !populated.isEmpty else { return }
        let views = try target.query("""
            SELECT c.oid::int8, format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'm'
            """).rows
        var names: [Int: String] = [:]
        for row in views { if let oid = row.int(0), let name = row.string(1) { names[oid] = name } }
        // Which materialized views each one reads, directly or through plain views.
        let edges = try target.query("""
            WITH RECURSIVE reads(mv, ref) AS (
                SELECT r.ev_class, d.refobjid FROM pg_rewrite r
                JOIN pg_class m ON m.oid = r.ev_class AND m.relkind = 'm'
                JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                                AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
                UNION
                SELECT reads.mv, d.refobjid FROM reads
                JOIN pg_class v ON v.oid = reads.ref AND v.relkind = 'v'
                JOIN pg_rewrite r ON r.ev_class = v.oid
                JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                                AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid)
            SELECT DISTINCT reads.mv::int8, reads.ref::int8 FROM reads JOIN pg_class c ON c.oid = reads.ref AND c.relkind = 'm'
            """).rows
        var dependsOn: [Int: Set<Int>] = [:]
        for row in edges { if let mv = row.int(0), let ref = row.int(1) { dependsOn[mv, default: []].insert(ref) } }
        var done: Set<Int> = [], visiting: Set<Int> = []
        var order: [Int] = []
        func visit(_ oid: Int) {
            guard !done.contains(oid), !visiting.contains(oid) else { return }
            visiting.insert(oid)
            for ref in dependsOn[oid, default: []].sorted() { visit(ref) }
            visiting.remove(oid)
            done.insert(oid)
            order.append(oid)
        }
        for oid in names.keys.sorted() { visit(oid) }
        for oid in order {
            guard let name = names[oid], populated.contains(name) else { continue }
            do { try target.execute("REFRESH MATERIALIZED VIEW \(name)") } catch {
                throw MigrationFailure("refreshing the materialized view \(name) on the target at cutover failed: \(error)")
            }
        }
    }
}
