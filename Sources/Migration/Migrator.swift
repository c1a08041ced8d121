import Foundation
import PostgresClient
import Validation

/// The embedded migrator (offline mode): copies the selected databases from the source to the
/// target from one consistent snapshot per database, records its progress in the state store
/// and resumes from it.
///
/// Entry points: `Migrator(options)` (throws `MigrationUsageError` for bad input: exit 2),
/// then `run()` (async; the work runs on threads of its own) or `runBlocking()`.
public final class Migrator: @unchecked Sendable {
    public let options: MigrationOptions
    public let store: StateStore
    let tracker = ProgressTracker()
    let printer: ProgressPrinter
    private let lock = NSLock()
    private var notes: [String] = []
    /// Schema entries the target refused (`--continue-on-error`), one line each.
    private var refusedObjects: [String] = []
    /// `database|schema|name` of the tables among them: not copied, not verified.
    private var refusedTables: Set<String> = []
    func wasRefused(_ table: SourceTable, in database: String) -> Bool {
        lock.withLock { refusedTables.contains("\(database)|\(table.schema)|\(table.name)") }
    }
    private var substate: MigrationSubstate = .performingPreRequisiteSteps
    private var targetDatabases: [String] = []
    let canceled = Flag()
    private var pgDump: PgDump!
    var sourceAdmin: Connection!
    var targetAdmin: Connection!
    /// Online mode: per database, the replication session that created the slot. It stays idle
    /// until the base copy ends, so the slot's exported snapshot stays importable.
    var captures: [String: ChangeCapture] = [:]

    public init(_ options: MigrationOptions) throws {
        guard MigrationOptions.isValidName(options.name) else {
            throw MigrationUsageError("invalid migration name '\(options.name)': use letters, digits and '-', not starting with '-'")
        }
        self.options = options
        self.store = try StateStore(directory: options.stateDirectory)
        self.printer = ProgressPrinter(enabled: options.showProgress)
    }

    /// Runs the migration on a thread of its own and returns how it ended.
    public func run() async -> MigrationOutcome {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: self.runBlocking()) }
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    public func runBlocking() -> MigrationOutcome {
        let started = Date()
        let name = options.name
        do {
            if let existing = try store.migration(name) {
                if existing.state == .succeeded {
                    return outcome(.succeeded, .completed, "migration \(name) already Succeeded; nothing to do", started)
                }
                if existing.source != options.source.description || existing.target != options.target.description {
                    return MigrationOutcome(name: name, state: .failed, substate: existing.substate,
                                            message: "migration \(name) already exists for \(existing.source) → \(existing.target); choose another name",
                                            targetDatabases: [], summary: "")
                }
                printer.say("resuming migration \(name) (was \(existing.state.rawValue)/\(existing.substate.rawValue))")
            }
            try store.begin(name: name, mode: options.mode.rawValue, source: options.source.description, target: options.target.description)
        } catch {
            return MigrationOutcome(name: name, state: .failed, substate: .performingPreRequisiteSteps,
                                    message: "\(error)", targetDatabases: [], summary: "")
        }
        let monitor = startCancelMonitor()
        defer { monitor.stop() }
        do {
            try perform()
            try store.setState(name, .succeeded, .completed)
            return outcome(.succeeded, .completed, nil, started)
        } catch {
            printer.clear()
            let wasCanceled = canceled.isSet || ((try? store.isCanceled(name)) ?? false)
            if wasCanceled {
                let drop = targetDatabases.isEmpty ? "" : "; to clean up, drop the target databases: \(targetDatabases.joined(separator: ", "))"
                return outcome(.canceled, substate, "migration \(name) was canceled (nothing rolled back)\(drop)", started)
            }
            var state = MigrationState.failed
            var sub = substate
            if let failure = error as? MigrationFailure {
                state = failure.state
                sub = failure.substate ?? substate
            }
            let message = "\(error)"
            try? store.setState(name, state, sub, message: message)
            return outcome(state, sub, message, started)
        }
    }

    private func outcome(_ state: MigrationState, _ substate: MigrationSubstate, _ message: String?, _ started: Date) -> MigrationOutcome {
        let total = Date().timeIntervalSince(started)
        let extra: [(String, String)] = [
            ("Tables copied", "\(tracker.tablesDone)/\(tracker.tablesTotal)"),
            ("Rows copied", "\(tracker.rows)"), ("Bytes streamed", formatBytes(tracker.streamedBytes)),
        ]
        let notesText = lock.withLock { notes }.map { "note: \($0)" }.joined(separator: "\n")
        let table = tracker.nothingTimed && tracker.tablesTotal == 0 ? "" : tracker.summary(total: total, extra: extra)
        return MigrationOutcome(name: options.name, state: state, substate: substate, message: message,
                                targetDatabases: targetDatabases,
                                summary: table + (notesText.isEmpty ? "" : notesText + "\n"))
    }

    func note(_ text: String) {
        lock.withLock { notes.append(text) }
        printer.say("note: \(text)")
    }

    func setSubstate(_ value: MigrationSubstate) throws {
        substate = value
        try store.setState(options.name, .inProgress, value)
    }

    /// Times `body` into the summary line `step`.
    @discardableResult
    func timed<T>(_ step: String, _ body: () throws -> T) rethrows -> T {
        let start = Date()
        defer { tracker.time(step, Date().timeIntervalSince(start)) }
        return try body()
    }

    func checkCanceled() throws { if canceled.isSet { throw MigrationCanceled() } }

    /// Polls the store (another process runs `cancel`), redraws the progress line and saves
    /// the in-flight byte counts.
    private func startCancelMonitor() -> Ticker {
        let ticker = Ticker()
        let thread = Thread { [self] in
            var lastSave = Date.distantPast
            while !ticker.stopped {
                if (try? store.isCanceled(options.name)) == true { canceled.set() }
                if tracker.tablesTotal > 0 { printer.tick(tracker.line()) }
                if Date().timeIntervalSince(lastSave) >= 1, let database = currentDatabase.value {
                    lastSave = Date()
                    try? store.tableProgress(options.name, database, tracker.copyingSnapshot())
                }
                ticker.sleep(0.25)
            }
        }
        thread.start()
        return ticker
    }

    private let currentDatabase = Box<String>()

    // MARK: The run

    func open(_ endpoint: ConnectionString, what: String) throws -> Connection {
        do { return try Connection.open(endpoint, applicationName: "pgpreflight migrate \(options.name)") }
        catch { throw MigrationFailure("cannot connect to the \(what): \(error)") }
    }

    private static func adminDatabase(_ endpoint: ConnectionString) -> String {
        if let db = endpoint.value("dbname"), !db.isEmpty, !db.contains("=") { return db }
        return "postgres"
    }

    private func perform() throws {
        let name = options.name
        try setSubstate(.performingPreRequisiteSteps)
        printer.say("migration \(name): \(options.source) → \(options.target) (\(options.mode.rawValue), \(options.jobs) jobs)")
        let prerequisites = Date()
        sourceAdmin = try open(options.source.with(database: Self.adminDatabase(options.source)), what: "source")
        defer { sourceAdmin.close() }
        targetAdmin = try open(options.target.with(database: Self.adminDatabase(options.target)), what: "target")
        defer { targetAdmin.close() }

        // One active migration per target: a session-level advisory lock, held by this
        // session (in the target's `postgres` database, the same for every migration) until
        // the run ends.
        let lockSession = try open(options.target.with(database: "postgres"), what: "target (postgres database)")
        defer { lockSession.close() }
        var locked = false
        var holder: String?
        for attempt in 0..<20 {
            locked = try lockSession.query("SELECT pg_try_advisory_lock($1::bigint)", Self.lockKey).rows[0].bool(0) ?? false
            if locked { break }
            holder = (try? lockSession.query("""
                SELECT substr(a.application_name, 21) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                  AND l.classid::int8 = ($1::int8 >> 32) AND l.objid::int8 = ($1::int8 & 4294967295)
                  AND a.application_name LIKE 'pgpreflight migrate %' LIMIT 1
                """, Self.lockKey).rows.first?.string(0)) ?? nil
            // The holder may be this migration's previous run, killed a moment ago: its
            // session ends as soon as the server notices. Another migration's does not.
            guard holder == name, attempt < 19 else { break }
            usleep(250_000)
        }
        if !locked {
            throw MigrationFailure("another migration\(holder.map { " (\($0))" } ?? "") is running against the target \(options.target); wait for it to end or cancel it with `pgpreflight cancel NAME`")
        }

        let sourceMajor = sourceAdmin.serverVersionNumber / 10000
        do { pgDump = try PgDump.locate(explicit: options.pgBin, sourceMajor: sourceMajor) }
        catch { throw MigrationFailure("\(error)") }
        let targetMajor = targetAdmin.serverVersionNumber / 10000
        if pgDump.major < targetMajor {
            // pg_dump writes for its own major: what a newer target adds (MAINTAIN for owners
            // on 17+, say) is not in its script, as pg_dump \(targetMajor) and pg_upgrade would keep it.
            note("the schema is dumped with pg_dump \(pgDump.major) (\(pgDump.path)), older than the target (PostgreSQL \(targetMajor)): install PostgreSQL \(targetMajor)'s client programs and pass --pg-bin with their directory for a faithful copy")
        }

        let available = try sourceAdmin.query("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname")
            .rows.compactMap { $0.string(0) }
        // The same default selection as validation, so validate-and-migrate checks what it copies.
        let databases = options.databases.isEmpty ? available.filter { !ValidationEngine.excludedDatabases.contains($0) } : options.databases
        if let missing = databases.first(where: { !available.contains($0) }) {
            throw MigrationFailure("database \(missing) does not exist on the source (or does not allow connections)")
        }
        if databases.isEmpty { throw MigrationFailure("no database to migrate: the source has no user database; name one with --database") }

        for database in databases {
            try checkSourceSessions(database)
            try checkTarget(database)
        }
        tracker.time("Prerequisites", Date().timeIntervalSince(prerequisites))

        if try !store.isStepDone(name, "", "roles") {
            try timed("Roles") {
                for text in try Roles.copy(source: sourceAdmin, target: targetAdmin) { note(text) }
            }
            try store.stepDone(name, "", "roles", durationMs: 0)
        }

        try setSubstate(.migratingData)
        for database in databases { try store.setDatabase(name, database, state: "Queued") }
        if options.mode == .online { try checkReplicaIdentities(databases) }
        for database in databases {
            try checkCanceled()
            currentDatabase.value = database
            // Online: a database whose base copy finished goes straight to streaming on resume.
            if options.mode == .online, try store.isStepDone(name, database, "online.copied") { continue }
            do {
                try migrateDatabase(database)
                try store.setDatabase(name, database, state: options.mode == .online ? "Streaming" : "Succeeded")
                if options.mode == .online { try store.stepDone(name, database, "online.copied", durationMs: 0) }
            } catch {
                try? store.setDatabase(name, database, state: canceled.isSet ? "Canceled" : "Failed")
                if canceled.isSet && options.mode == .online { dropChangeCapture(databases) }
                throw error
            }
        }
        currentDatabase.value = nil
        let refused = lock.withLock { refusedObjects }
        if !refused.isEmpty {
            throw MigrationFailure("the target refused \(refused.count) schema object(s); everything else was restored:\n  " + refused.joined(separator: "\n  "))
        }
        if options.mode == .online { try streamUntilCutover(databases) }
        printer.clear()
        printer.say("migration \(name) Succeeded")
    }

    static let lockKey = 0x7067_7072_6566_6C74  // "pgpreflt"

    /// The output settings of every session that moves rows as text, on both servers: the
    /// text a source session writes must read back as the same value on the target whatever
    /// either server's defaults (dates, intervals, floats to the last digit, `reg*` values as
    /// schema-qualified names). Client encoding: the dump's, on both sides.
    static let copySessionSettings = "SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET bytea_output = 'hex'; SELECT pg_catalog.set_config('search_path', '', false)"

    /// Tables smaller than this are copied in groups, without FREEZE.
    static let smallTableBytes: Int64 = 4 << 20

    /// pg_dump's `ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY …;` with NOT VALID added, or nil
    /// when the entry is not that one statement.
    static func addingNotValid(_ sql: String) -> String? {
        let pieces = SQLScanner.pieces(sql)
        guard pieces.count == 1, case .statement(let statement) = pieces[0],
              statement.hasPrefix("ALTER TABLE "), statement.contains(" FOREIGN KEY "), statement.hasSuffix(";"),
              !statement.hasSuffix(" NOT VALID;") else { return nil }
        return statement.dropLast() + " NOT VALID;"
    }

    /// Schema entries of the migrator's own objects, which are not the user's and never
    /// copied: the publications online mode creates on the source before the snapshot.
    func isOwnObject(_ entry: DumpEntry) -> Bool {
        guard options.mode == .online, entry.type.hasPrefix("PUBLICATION") else { return false }
        return entry.name == publicationName || entry.name.hasPrefix(publicationName + " ") || entry.name.hasPrefix(publicationName + "_")
    }

    /// A directory only this user can read (the schema archive), removed by the caller.
    static func privateTemporaryDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        return directory
    }

    /// "already exists": an object a killed run created but did not record (the target
    /// database is this migration's own, so it can only be ours).
    static func alreadyExists(_ error: ServerError) -> Bool {
        error.sqlState == "42P07" || error.sqlState == "42710"
            || (error.sqlState == "42P16" && error.message.contains("multiple primary keys"))
    }

    /// Offline mode needs a quiet source: other client sessions on a selected database could
    /// write after the snapshot, and their changes would be lost.
    private func checkSourceSessions(_ database: String) throws {
        guard !options.force, options.mode == .offline else { return }
        let row = try sourceAdmin.query("""
            SELECT count(*), coalesce(string_agg(DISTINCT coalesce(usename::text, '?') || '@' || coalesce(client_addr::text, 'local')
                                                 || coalesce(' (' || nullif(application_name, '') || ')', ''), ', '), '')
            FROM pg_stat_activity
            WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
              AND application_name NOT LIKE 'pgpreflight migrate %' AND application_name <> 'pgpreflight verify'  -- ours, or a killed run's
            """, database).rows[0]
        let count = row.int(0) ?? 0
        if count > 0 {
            throw MigrationFailure("offline migration refused: \(count) other session(s) connected to the source database \(database): \(row.string(1) ?? ""); stop the applications first, or pass --force")
        }
    }

    /// A target database that exists with user objects stops the migration unless
    /// `--overwrite` (then it is dropped). One this migration created earlier is resumed.
    private func checkTarget(_ database: String) throws {
        let exists = try !targetAdmin.query("SELECT 1 FROM pg_database WHERE datname = $1", database).rows.isEmpty
        guard exists else {
            try store.resetProgress(options.name, database: database)
            return
        }
        if try store.isStepDone(options.name, database, "createDatabase") { return }
        let conn = try open(options.target.with(database: database), what: "target database \(database)")
        let hasObjects = try Catalog.hasUserObjects(conn)
        conn.close()
        guard hasObjects else { return }
        guard options.overwrite else {
            throw MigrationFailure("the target database \(database) already exists and holds objects: rerun with --overwrite to drop and recreate it",
                                   state: .waitingForUserAction, substate: .waitingForTargetDBOverwriteConfirmation)
        }
        printer.say("dropping the target database \(database) (--overwrite)")
        let force = targetAdmin.serverVersionNumber >= 130000 ? " WITH (FORCE)" : ""
        try targetAdmin.execute("DROP DATABASE \(try targetAdmin.quoteIdentifier(database))\(force)")
        try store.resetProgress(options.name, database: database)
    }

    // MARK: One database

    private func migrateDatabase(_ database: String) throws {
        let name = options.name
        try store.setDatabase(name, database, state: "InProgress")
        printer.say("database \(database)")

        // The snapshot every step reads: held open by this session until verification ends.
        // On resume a new snapshot is taken: fine offline, where the source has no writers
        // (checked at start), and verification compares every table with the source anyway.
        let snapshotSession = try open(options.source.with(database: database), what: "source database \(database)")
        defer { snapshotSession.close() }
        try snapshotSession.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        let snapshot: String
        if options.mode == .online {
            // Online: the whole copy reads the snapshot the logical slot exported, so the copy
            // and the change stream meet exactly (no gap, no duplicate).
            snapshot = try startChangeCapture(database)
            try snapshotSession.execute("SET TRANSACTION SNAPSHOT \(try snapshotSession.quoteLiteral(snapshot))")
        } else {
            snapshot = try snapshotSession.query("SELECT pg_export_snapshot()").rows[0].string(0)!
        }

        if try !store.isStepDone(name, database, "createDatabase") {
            let exists = try !targetAdmin.query("SELECT 1 FROM pg_database WHERE datname = $1", database).rows.isEmpty
            if !exists { try timed("Create databases") { try createDatabase(database) } }
            try store.stepDone(name, database, "createDatabase", durationMs: 0)
        }
        targetDatabases.append(database)
        let targetEndpoint = options.target.with(database: database)
        let sourceEndpoint = options.source.with(database: database)

        // The post-data dump runs while the pre-data is dumped and restored.
        if try !store.isStepDone(name, database, "preData") {
            // A run killed during (or right after) the pre-data restore left part of the
            // schema, and maybe big tables copied meanwhile. The database is this migration's
            // own: it is dropped and created again, and its progress forgotten.
            let conn = try open(targetEndpoint, what: "target database \(database)")
            let partial = try Catalog.hasUserObjects(conn)
            conn.close()
            if partial {
                printer.say("\(database): the schema restore of an interrupted run is redone from an empty database")
                let force = targetAdmin.serverVersionNumber >= 130000 ? " WITH (FORCE)" : ""
                try targetAdmin.execute("DROP DATABASE \(try targetAdmin.quoteIdentifier(database))\(force)")
                try store.resetProgress(name, database: database)
                try timed("Create databases") { try createDatabase(database) }
                try store.stepDone(name, database, "createDatabase", durationMs: 0)
            }
        }
        // One pg_dump of the schema into an archive; pg_restore writes each section's script
        // from it, entry by entry, and the migrator runs those entries unchanged.
        let archiveDirectory = try Self.privateTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: archiveDirectory) }
        let archive = archiveDirectory.appendingPathComponent("schema.dump")
        let preDone = try store.isStepDone(name, database, "preData")
        let (preEntries, postPreamble, postEntries) = try timed("Dump schema (pg_dump \(pgDump.major))") { () throws -> (DumpSection?, String, [DumpEntry]) in
            try pgDump.dumpArchive(options.source, database: database, snapshot: snapshot,
                                   applicationName: "pgpreflight migrate \(options.name) (pg_dump)", to: archive)
            let pre = preDone ? nil : DumpSection(DumpScript.entries(try pgDump.script(of: archive, section: "pre-data")))
            let post = DumpScript.entries(try pgDump.script(of: archive, section: "post-data"))
            return (pre.map { DumpSection(preamble: $0.preamble, entries: $0.entries.filter { !isOwnObject($0) }) },
                    post.preamble, post.entries.filter { !isOwnObject($0) })
        }
        try checkCanceled()

        let tables = try Catalog.tables(snapshotSession)
        let indexes = try Catalog.tableIndexes(snapshotSession)
        let (preamble, entries) = (postPreamble, postEntries)
        let done = try store.doneSteps(name, database, prefix: "post|")
        let analyzed = try store.doneSteps(name, database, prefix: "analyze|")
        var indexByKey: [String: TableIndex] = [:]
        for index in indexes { indexByKey["\(index.dumpType)|\(index.schema)|\(index.dumpName)"] = index }
        let tableByOid = Dictionary(uniqueKeysWithValues: tables.map { ($0.oid, $0) })
        var perTable: [String: [IndexJob]] = [:]
        var later: [DumpEntry] = []
        for entry in entries where !done.contains("post|\(entry.key)") {
            if let index = indexByKey[entry.key], let table = tableByOid[index.tableOid] {
                perTable[table.key, default: []].append(IndexJob(key: entry.key, sql: index.usingIndexSQL ?? entry.sql))
            } else {
                later.append(entry)
            }
        }

        let (copied, dirty) = try store.registerTables(name, database, tables.map(\.key))
        tracker.addTables(count: tables.count, diskBytes: tables.reduce(0) { $0 + $1.bytes })
        let run = DatabaseRun(tables: tables, perTable: perTable)
        let totalBytes = tables.reduce(0) { $0 + $1.bytes }

        // The workers start as soon as the first tables exist: big tables are created first
        // and copied while the rest of the schema (thousands of small tables, say) is restored.
        let copyStart = Date()
        let queue = WorkQueue<Job>([])
        queue.hold()
        let context = WorkerContext(migrator: self, database: database, source: sourceEndpoint, target: targetEndpoint,
                                    snapshot: snapshot, preamble: preamble, run: run, queue: queue)
        let workers = Background { [options] in
            try queue.run(workers: options.jobs, makeState: { WorkerSessions() },
                          perform: { sessions, job in try context.perform(job, &sessions) },
                          finish: { sessions in sessions.close() })
        }
        var scheduled = Set<String>()
        /// Queues the jobs of `candidates` (largest table first, the ranges of a split table
        /// before everything else: measured faster than starting a big whole table beside
        /// them, which three streams on two cores stretch), once each.
        func schedule(_ candidates: [SourceTable], largeObjects: Bool) throws {
            var jobs: [Job] = []
            // Not while the schema is restored: a pg_dump older than 16 creates them (empty) there.
            if largeObjects, try !store.isStepDone(name, database, "largeObjects") { jobs.append(.largeObjects) }
            var group: [SourceTable] = []
            var groupBytes: Int64 = 0
            for table in candidates where scheduled.insert(table.key).inserted && !wasRefused(table, in: database) {
                if copied[table.key] != nil {
                    tracker.tableAlreadyCopied(diskBytes: table.bytes)
                    if let indexJobs = perTable[table.key], !indexJobs.isEmpty { jobs += indexJobs.map { .index(table, $0) } }
                    else if !analyzed.contains("analyze|\(table.key)") { jobs.append(.analyze(table)) }
                } else if let parts = try splitRanges(table, totalBytes: totalBytes, snapshotSession) {
                    // Ranges of one table are copied by several workers: no FREEZE then, and the
                    // table is emptied once here (a resumed table is redone from scratch).
                    let conn = try open(targetEndpoint, what: "target database \(database)")
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
            if let preEntries {
                let early = tables.filter { copied[$0.key] == nil && $0.bytes >= Self.smallTableBytes }
                let earlyByName = Dictionary(early.map { ("\($0.schema)|\($0.name)", $0) }, uniquingKeysWith: { a, _ in a })
                try timed("Restore pre-data") {
                    do {
                        try restorePreData(preEntries, targetEndpoint, database, early: Set(earlyByName.keys)) { created in
                            try schedule(created.compactMap { earlyByName[$0] }, largeObjects: false)
                        }
                    } catch { throw MigrationFailure("restoring the schema (pre-data) of \(database) on the target failed: \(error)") }
                }
                try store.stepDone(name, database, "preData", durationMs: 0)
            }
            try checkCanceled()
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
        try checkCanceled()

        // Foreign keys are added NOT VALID (instant), then validated by all workers at once:
        // VALIDATE takes only SHARE UPDATE EXCLUSIVE on the table and ROW SHARE on the one it
        // references, so validations of different tables neither block nor deadlock each other.
        let foreignKeys = try Catalog.validatedForeignKeys(snapshotSession)
        let validated = try store.doneSteps(name, database, prefix: "validate|")
        let validatedLater = Set(foreignKeys.map(\.dumpKey))
        try timed("Post-data (constraints, triggers, views, …)") {
            guard !later.isEmpty else { return }
            let conn = try open(targetEndpoint, what: "target database \(database)")
            defer { conn.close() }
            try conn.execute(preamble + "\nSET maintenance_work_mem = '256MB'")
            for entry in later {
                try checkCanceled()
                var sql = entry.executable
                if validatedLater.contains(entry.key), let notValid = Self.addingNotValid(entry.sql) {
                    sql = entry.prefix.isEmpty ? notValid : entry.prefix + "\n" + notValid
                }
                do { try conn.execute(sql) }
                catch let error as ServerError where Self.alreadyExists(error) {
                    // Done by a run killed before it could record it.
                } catch let error as ServerError {
                    try refuse(entry, error, database: database)
                    continue
                }
                try store.stepDone(name, database, "post|\(entry.key)", durationMs: 0)
            }
        }
        let validations = foreignKeys.filter { !validated.contains("validate|\($0.dumpKey)") }
        if !validations.isEmpty {
            try timed("Validate foreign keys (wall clock)") {
                let queue = WorkQueue<Catalog.ForeignKey>(validations)
                try queue.run(workers: min(options.jobs, validations.count), makeState: { () -> Connection? in nil }, perform: { [self] conn, key in
                    try checkCanceled()
                    if conn == nil {
                        conn = try open(targetEndpoint, what: "target database \(database)")
                        try conn!.execute(preamble + "\nSET work_mem = '64MB'")
                    }
                    do { try timed("  VALIDATE (cumulative)") { try conn!.execute(key.validateSQL) } }
                    catch { throw MigrationFailure("validating foreign key \(key.quotedName) of \(key.qualifiedTable) on the target failed: \(error)") }
                    try store.stepDone(name, database, "validate|\(key.dumpKey)", durationMs: 0)
                }, finish: { conn in conn?.close() })
            }
        }

        try timed("Reset sequences") {
            let conn = try open(targetEndpoint, what: "target database \(database)")
            defer { conn.close() }
            for sequence in try Catalog.sequences(snapshotSession) {
                try conn.query("SELECT pg_catalog.setval($1::regclass, $2::bigint, $3::boolean)",
                               sequence.qualified, sequence.lastValue, sequence.isCalled)
            }
        }

        try setSubstate(.completingMigration)
        let mismatches = try timed("Verification (\(options.verify.rawValue))") { () throws -> [TableMismatch] in
            let counts = try store.rowCounts(name, database)
            var mismatches: [TableMismatch] = []
            let tables = tables.filter { !wasRefused($0, in: database) }
            var remaining = tables
            if options.verify == .counts {
                // Tables the workers counted on the target right after copying them (while
                // other tables copied) are compared here; the others are counted now.
                remaining = []
                for table in tables {
                    guard let target = counts.target[table.key], let source = counts.source[table.key] else { remaining.append(table); continue }
                    if target != source {
                        mismatches.append(TableMismatch(table: "\(table.schema).\(table.name)", sourceRows: source, targetRows: target,
                                                        sourceChecksum: nil, targetChecksum: nil))
                    }
                }
            }
            return mismatches + (try TableVerifier.compare(tables: remaining, expectedRows: counts.source, source: sourceEndpoint, snapshot: snapshot,
                                                      target: targetEndpoint, mode: options.verify, jobs: options.jobs,
                                                      shouldStop: { [canceled] in canceled.isSet }))
        }
        try? snapshotSession.execute("COMMIT")
        if !mismatches.isEmpty {
            let shown = mismatches.prefix(10).map(\.description).joined(separator: "; ")
            throw MigrationFailure("verification failed for \(mismatches.count) table(s) of \(database): \(shown)")
        }
        try setSubstate(.migratingData)
    }

    /// Restores the pre-data script in pg_dump's order. Runs of many independent tables (plain
    /// `CREATE TABLE`s, not partitions or inheritance children: thousands of small tables)
    /// are created by `jobs` sessions at once, each in its own transaction, committed only
    /// when all succeeded; otherwise (a table using another's row type, say) the run is
    /// created again in order. Everything else runs in order on one session.
    ///
    /// The `early` tables (`schema|name`) of a run are created first, on their own, and
    /// `created` is called with them once committed, so that their data can be copied while
    /// the rest of the schema is restored (a later statement on such a table, a comment say,
    /// waits for its copy: the copy never waits for the restore).
    private func restorePreData(_ section: DumpSection, _ endpoint: ConnectionString, _ database: String,
                                early: Set<String> = [], created: ([String]) throws -> Void = { _ in }) throws {
        let (preamble, entries) = (section.preamble, section.entries)
        func independent(_ entry: DumpEntry) -> Bool {
            guard entry.type == "TABLE", entry.sql.hasPrefix("CREATE TABLE ") || entry.sql.hasPrefix("CREATE UNLOGGED TABLE ") else { return false }
            let firstLine = entry.sql.prefix { $0 != "\n" }
            return !entry.sql.contains(" PARTITION OF ") && !entry.sql.contains("INHERITS (") && !firstLine.contains(" OF ")
        }
        func earlyName(_ entry: DumpEntry) -> String? {
            let name = "\(entry.schema ?? "")|\(entry.name)"
            return early.contains(name) ? name : nil
        }
        enum Step { case ordered([DumpEntry]), parallel([DumpEntry]), early([DumpEntry], names: [String]) }
        var steps: [Step] = []
        var ordered: [DumpEntry] = [], run: [DumpEntry] = []
        func flushRun() {
            let first = run.filter { earlyName($0) != nil }
            if !first.isEmpty {
                if !ordered.isEmpty { steps.append(.ordered(ordered)); ordered = [] }
                steps.append(.early(first, names: first.compactMap(earlyName)))
            }
            let rest = run.filter { earlyName($0) == nil }
            if rest.count >= 64 && options.jobs > 1 {
                if !ordered.isEmpty { steps.append(.ordered(ordered)); ordered = [] }
                steps.append(.parallel(rest))
            } else {
                ordered += rest
            }
            run = []
        }
        for entry in entries {
            if independent(entry) { run.append(entry) } else { flushRun(); ordered.append(entry) }
        }
        flushRun()
        if !ordered.isEmpty { steps.append(.ordered(ordered)) }

        let main = try open(endpoint, what: "target database \(database)")
        defer { main.close() }
        try main.execute(preamble)
        for step in steps {
            try checkCanceled()
            switch step {
            case .ordered(let batch):
                try runEntries(batch, on: main, database: database)
            case .early(let batch, let names):
                let refused = try runEntries(batch, on: main, database: database)
                try created(zip(batch, names).filter { !refused.contains($0.0.id) }.map(\.1))
            case .parallel(let batch):
                let sessions = try (0..<options.jobs).map { _ in try open(endpoint, what: "target database \(database)") }
                defer { sessions.forEach { $0.close() } }
                let work = sessions.enumerated().map { index, session in
                    let part = stride(from: index, to: batch.count, by: sessions.count).map { batch[$0] }
                    return Background { () throws -> Void in
                        try session.execute(preamble)
                        try session.execute("BEGIN")
                        try session.execute(part.map(\.executable).joined(separator: "\n"))
                    }
                }
                let succeeded = work.map { (try? $0.value()) != nil }  // waits for every session
                let failed = succeeded.contains(false)
                for session in sessions { try session.execute(failed ? "ROLLBACK" : "COMMIT") }
                if failed { try runEntries(batch, on: main, database: database) }
            }
        }
    }

    /// Runs schema entries in order on `conn` (`SchemaRestore`); a refused entry stops the run,
    /// or with `--continue-on-error` is recorded and the rest goes on. Returns the ids of the
    /// entries the target refused.
    @discardableResult
    func runEntries(_ entries: [DumpEntry], on conn: Connection, database: String) throws -> Set<Int> {
        try SchemaRestore.run(entries, on: conn, checkCanceled: checkCanceled) { refusal in
            try refuse(refusal.entry, refusal.error, database: database)
        }
    }

    /// The target refused a schema entry: the run stops naming it, or (`--continue-on-error`)
    /// records it for the final list and goes on.
    func refuse(_ entry: DumpEntry, _ error: ServerError, database: String) throws {
        let text = "\(database): the target refused \(entry.label): \(error.message)"
        guard options.continueOnError else {
            throw MigrationFailure("\(text) (rerun with --continue-on-error to restore everything else and list every refused object)")
        }
        lock.withLock {
            refusedObjects.append(text)
            if entry.type == "TABLE" { refusedTables.insert("\(database)|\(entry.schema ?? "")|\(entry.name)") }
        }
        printer.say(text)
    }

    /// Ranges for a table above the split threshold that dwarfs the rest of the data (more
    /// than twice what each other worker has to copy: they would sit idle while it copies);
    /// a table that is merely big keeps COPY FREEZE, and two big tables copied side by side
    /// measured faster whole than one of them in ranges. Ranges are ctid page ranges on a
    /// PostgreSQL 14+ source (a TID range scan reads only its pages), else ranges of an
    /// integer primary key (each range an index or sequential scan of its own).
    private func splitRanges(_ table: SourceTable, totalBytes: Int64, _ session: Connection) throws -> [String]? {
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

    private func createDatabase(_ database: String) throws {
        let version = sourceAdmin.serverVersionNumber
        let provider = version >= 150000 ? "datlocprovider::text" : "'c'"
        let providerLocale = version >= 170000 ? "datlocale" : version >= 150000 ? "daticulocale" : "NULL::text"
        let info = try sourceAdmin.query("""
            SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype, oid::int8,
                   datacl IS NOT NULL, shobj_description(oid, 'pg_database'), datconnlimit::int8, datistemplate,
                   \(provider), \(providerLocale)
            FROM pg_database WHERE datname = $1
            """, database).rows[0]
        let quoted = try targetAdmin.quoteIdentifier(database)
        let targetRoles = Set(try targetAdmin.query("SELECT rolname FROM pg_roles").rows.compactMap { $0.string(0) })
        var owner = ""
        if let name = info.string(0), targetRoles.contains(name) { owner = " OWNER \(try targetAdmin.quoteIdentifier(name))" }
        let encoding = " ENCODING \(try targetAdmin.quoteLiteral(info.string(1)!))"
        let collate = info.string(2)!, ctype = info.string(3)!
        let connectionLimit = (info.int(7) ?? -1) >= 0 ? " CONNECTION LIMIT \(info.int(7)!)" : ""
        // The locale provider (ICU or builtin) where the source database uses one and the
        // target supports it; else libc with a note.
        var localeProvider = ""
        if let kind = info.string(9), kind != "c", let locale = info.string(10), targetAdmin.serverVersionNumber >= 150000 {
            if kind == "i" { localeProvider = " LOCALE_PROVIDER icu ICU_LOCALE \(try targetAdmin.quoteLiteral(locale))" }
            if kind == "b" && targetAdmin.serverVersionNumber >= 170000 { localeProvider = " LOCALE_PROVIDER builtin BUILTIN_LOCALE \(try targetAdmin.quoteLiteral(locale))" }
        }
        var created = false
        for (c, t) in Self.localeCandidates(collate, ctype) {
            do {
                let create = "CREATE DATABASE \(quoted)\(owner)\(encoding) LC_COLLATE \(try targetAdmin.quoteLiteral(c)) LC_CTYPE \(try targetAdmin.quoteLiteral(t))\(connectionLimit) TEMPLATE template0"
                if !localeProvider.isEmpty {
                    do {
                        try targetAdmin.execute(create + localeProvider)
                        if c != collate || t != ctype { note("database \(database): collation \(collate)/\(ctype) mapped to \(c)/\(t) on the target") }
                        created = true
                        break
                    } catch let error as ServerError {
                        note("database \(database): its locale provider (\(info.string(9) == "i" ? "ICU" : "builtin") \(info.string(10) ?? "")) was refused by the target (\(error.message)); created with libc")
                        localeProvider = ""
                    }
                }
                try targetAdmin.execute(create)
                if c != collate || t != ctype { note("database \(database): collation \(collate)/\(ctype) mapped to \(c)/\(t) on the target") }
                created = true
                break
            } catch let error as ServerError where error.sqlState == "22023" || error.sqlState == "42809" || error.sqlState == "XX000" {
                continue
            }
        }
        if !created {
            try targetAdmin.execute("CREATE DATABASE \(quoted)\(owner)\(encoding)\(connectionLimit) TEMPLATE template0")
            note("database \(database): the target has no locale \(collate)/\(ctype); created with the target's default locale")
        }
        // Database privileges and settings (pg_dump carries them only with --create).
        if info.bool(5) == true {
            let acl = try sourceAdmin.query("""
                SELECT a.grantee::int8, pg_get_userbyid(a.grantee), a.privilege_type, a.is_grantable
                FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1 AND a.grantee <> d.datdba
                """, database).rows
            var script = ["REVOKE ALL ON DATABASE \(quoted) FROM PUBLIC"]
            for row in acl {
                let grantee: String
                if row.int(0) == 0 { grantee = "PUBLIC" } else {
                    guard let role = row.string(1), targetRoles.contains(role) else { continue }
                    grantee = try targetAdmin.quoteIdentifier(role)
                }
                script.append("GRANT \(row.string(2)!) ON DATABASE \(quoted) TO \(grantee)\(row.bool(3) == true ? " WITH GRANT OPTION" : "")")
            }
            try targetAdmin.execute(script.joined(separator: ";\n"))
        }
        // Settings of the database (ALTER DATABASE … SET) and of roles in it (ALTER ROLE … IN
        // DATABASE … SET), and its comment.
        for row in try sourceAdmin.query("""
            SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, unnest(s.setconfig)
            FROM pg_db_role_setting s WHERE s.setdatabase = $1::oid
            """, info.int(4)!).rows {
            guard let setting = row.string(1), let clause = try Roles.setClause(setting, targetAdmin) else { continue }
            let role = row.string(0)
            if let role, !targetRoles.contains(role) {
                note("database \(database): setting \(clause.name) of role \(role) not carried: the role does not exist on the target")
                continue
            }
            let statement = try role.map { "ALTER ROLE \(try targetAdmin.quoteIdentifier($0)) IN DATABASE \(quoted) SET \(clause.sql)" }
                ?? "ALTER DATABASE \(quoted) SET \(clause.sql)"
            do { try targetAdmin.execute(statement) }
            catch { note("database \(database): setting \(clause.name)\(role.map { " of role \($0)" } ?? "") not carried: \(error)") }
        }
        if let comment = info.string(6) {
            try targetAdmin.execute("COMMENT ON DATABASE \(quoted) IS \(try targetAdmin.quoteLiteral(comment))")
        }
        if info.bool(8) == true { try targetAdmin.execute("ALTER DATABASE \(quoted) IS_TEMPLATE true") }
        for row in try sourceAdmin.query("""
            SELECT provider, label FROM pg_shseclabel WHERE classoid = 'pg_database'::regclass AND objoid = $1::oid
            """, info.int(4)!).rows {
            let provider = row.string(0)!
            do { try targetAdmin.execute("SECURITY LABEL FOR \(try targetAdmin.quoteIdentifier(provider)) ON DATABASE \(quoted) IS \(try targetAdmin.quoteLiteral(row.string(1)!))") }
            catch let error as ServerError { note("database \(database): security label (\(provider)) not carried: \(error.message)") }
        }
    }

    /// The source's locale, then spellings other platforms use for it (en_US.utf8 ↔
    /// en_US.UTF-8, fr-FR → fr_FR).
    static func localeCandidates(_ collate: String, _ ctype: String) -> [(String, String)] {
        func variants(_ locale: String) -> [String] {
            var result = [locale]
            let parts = locale.split(separator: ".", maxSplits: 1).map(String.init)
            let language = parts[0].replacingOccurrences(of: "-", with: "_")
            for suffix in ["UTF-8", "utf8"] { result.append("\(language).\(suffix)") }
            if parts.count == 1 { result.append(language) }
            var seen = Set<String>()
            return result.filter { seen.insert($0).inserted }
        }
        let c = variants(collate), t = variants(ctype)
        return (0..<max(c.count, t.count)).map { (c[min($0, c.count - 1)], t[min($0, t.count - 1)]) }
    }

    // MARK: Workers

    struct IndexJob: Sendable { let key: String; let sql: String }

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
                try store.stepDone(name, database, "post|\(index.key)", durationMs: 0)
                if run.indexDone(table.key) { queue.push(.analyze(table), front: true) }
            case .analyze(let table):
                let conn = try targetSession(&sessions)
                try migrator.timed("  ANALYZE (cumulative)") { try conn.execute("ANALYZE \(table.qualified)") }
                try store.stepDone(name, database, "analyze|\(table.key)", durationMs: 0)
            case .largeObjects:
                let from = try sourceSession(&sessions), to = try targetSession(&sessions)
                var notes: [String] = []
                let count = try migrator.timed("  Large objects (cumulative)") { try LargeObjects.copy(source: from, target: to, notes: &notes) }
                for text in notes { migrator.note("\(database): \(text)") }
                try store.stepDone(name, database, "largeObjects", durationMs: 0)
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
                        steps.append("post|\(index.key)")
                    }
                    steps.append("analyze|\(table.key)")
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

/// A flag set from one thread and read from others.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T?
    var value: T? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// A value computed on a thread of its own.
final class Background<T>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<T, Error>?

    init(_ body: @escaping @Sendable () throws -> T) {
        let thread = Thread { [self] in
            result = Result { try body() }
            done.signal()
        }
        thread.start()
    }

    func value() throws -> T {
        done.wait()
        done.signal()
        return try result!.get()
    }
}

final class Ticker: @unchecked Sendable {
    private let condition = NSCondition()
    private var done = false
    var stopped: Bool { condition.withLock { done } }
    func stop() { condition.withLock { done = true; condition.broadcast() } }
    func sleep(_ seconds: Double) {
        condition.withLock { if !done { _ = condition.wait(until: Date().addingTimeInterval(seconds)) } }
    }
}
