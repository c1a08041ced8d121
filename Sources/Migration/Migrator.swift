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
    /// As given, but `jobs` bounded by the servers' free connections once they are reached.
    public internal(set) var options: MigrationOptions
    public let store: StateStore
    let tracker = ProgressTracker()
    let printer: ProgressPrinter
    let lock = NSLock()
    var notes: [String] = []
    /// Schema entries the target refused (`--continue-on-error`), one line each.
    var refusedObjects: [String] = []
    /// `database|schema|name` of the tables among them: not copied, not verified.
    var refusedTables: Set<String> = []
    func wasRefused(_ table: SourceTable, in database: String) -> Bool {
        lock.withLock { refusedTables.contains("\(database)|\(table.schema)|\(table.name)") }
    }
    private var substate: MigrationSubstate = .performingPreRequisiteSteps
    var targetDatabases: [String] = []
    /// Set to stop the run: by `cancel` (the store) or by a signal (then `interruptedBy` too).
    let canceled = Flag()
    /// SIGINT or SIGTERM received while running: stop like a cancel, but keep everything a
    /// resume needs (online: the slots) and end Interrupted.
    let interruptedBy = Box<Int32>()
    var wasInterrupted: Bool { interruptedBy.value != nil }
    let sessions = SessionRegistry()
    /// The roles (cluster-wide) are verified with this database's catalogs.
    var firstDatabase: String?
    /// The roles this run created on the target: those the catalog verification compares
    /// (a role the target had already was not copied; after a resume, none are compared).
    var copiedRoles: Set<String> = []
    private(set) var lockWatch: LockWatch?
    var pgDump: PgDump!
    var sourceAdmin: Connection!
    var targetAdmin: Connection!
    /// Online mode: per database, the replication session that created the slot. It stays idle
    /// until the base copy ends, so the slot's exported snapshot stays importable.
    var captures: [String: ChangeCapture] = [:]
    /// Online mode, wal2json older than 2.6: databases whose stream may have turned NaN,
    /// ±Infinity and -0 of float and numeric columns into NULL or 0. Their cutover
    /// verification compares checksums, whatever `--verify` says.
    var inexactNumericDatabases: Set<String> = []

    public init(_ options: MigrationOptions) throws {
        guard MigrationOptions.isValidName(options.name) else {
            throw MigrationUsageError("invalid migration name '\(options.name)': use letters, digits and '-', not starting with '-'")
        }
        self.options = options
        self.store = try StateStore(directory: options.stateDirectory)
        self.printer = ProgressPrinter(enabled: options.showProgress)
        tracker.printer = printer  // a line at each tenth of the bytes copied (Progress.swift)
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
                // One runner per migration: a second start would fight the first over the target.
                if !existing.state.isFinal, let runner = try store.runner(name), runner.alive, runner.pid != Int(getpid()) {
                    return MigrationOutcome(name: name, state: existing.state, substate: existing.substate,
                                            message: "migration \(name) is running (pid \(runner.pid)): follow it with `pgpreflight status \(name)`, or stop it with `pgpreflight cancel \(name)`",
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
        let signals = SignalWatch(SIGINT, SIGTERM) { [self] signal in
            guard interruptedBy.value == nil else { return }
            interruptedBy.value = signal
            // Statements waiting on the servers and the children (pg_dump, pg_restore) end now;
            // workers stop at their next check, their defers remove the temporary files.
            canceled.set()
            sessions.cancelAll()
            ChildProcesses.terminateAll()
        }
        defer { signals.stop(); monitor.stop(); try? store.clearRunner(name) }
        do {
            try perform()
            try store.setState(name, .succeeded, .completed)
            return outcome(.succeeded, .completed, nil, started)
        } catch {
            printer.clear()
            if let signal = interruptedBy.value {
                let message = "interrupted (\(signal == SIGINT ? "SIGINT" : "SIGTERM")); rerun the same command to resume"
                try? store.setState(name, .interrupted, substate, message: message)
                var result = outcome(.interrupted, substate, "interrupted; rerun the same command to resume", started)
                result.signal = signal
                return result
            }
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
            var message = "\(error)"
            if (error as? ServerError)?.sqlState == "55P03" || message.contains("lock timeout") || (lockWatch?.lastSeen != nil && message.contains("timeout")) {
                message += " — \(lockWatch?.lastSeen ?? "a lock was not granted within --lock-timeout"); end that session or wait for it, then rerun the same command to resume (or raise --lock-timeout)"
            }
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
        let watch = LockWatch(migration: options.name, source: options.source, target: options.target)
        lockWatch = watch
        let thread = Thread { [self] in
            var lastSave = Date.distantPast, lastLockLook = Date()
            defer { watch.close() }
            while !ticker.stopped {
                if !canceled.isSet, (try? store.isCanceled(options.name)) == true {
                    // Stop what waits on the servers too: statements (PQcancel) and pg_dump.
                    canceled.set()
                    sessions.cancelAll()
                    ChildProcesses.terminateAll()
                }
                if Date().timeIntervalSince(lastLockLook) >= 2 {
                    lastLockLook = Date()
                    for text in watch.poll() { printer.say(text) }
                }
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

    /// A session of this migration: registered for cancel, with the lock timeout set.
    func open(_ endpoint: ConnectionString, what: String) throws -> Connection {
        let conn: Connection
        do { conn = try Connection.open(endpoint, applicationName: "pgpreflight migrate \(options.name)") }
        catch { throw MigrationFailure("cannot connect to the \(what): \(error)") }
        sessions.add(conn)
        if options.lockTimeoutSeconds > 0 { try conn.execute("SET lock_timeout = '\(options.lockTimeoutSeconds)s'") }
        return conn
    }

    private static func adminDatabase(_ endpoint: ConnectionString) -> String {
        // A string naming a user database names what to migrate, not where to connect (on the
        // target it may not exist yet).
        if DatabaseSelection.named(in: endpoint) != nil { return "postgres" }
        if let db = endpoint.value("dbname"), !db.isEmpty, !db.contains("=") { return db }
        return "postgres"
    }

    private func perform() throws {
        let name = options.name
        try setSubstate(.performingPreRequisiteSteps)
        let prerequisites = Date()
        sourceAdmin = try open(options.source.with(database: Self.adminDatabase(options.source)), what: "source")
        defer { sourceAdmin.close() }
        targetAdmin = try open(options.target.with(database: Self.adminDatabase(options.target)), what: "target")
        defer { targetAdmin.close() }
        // The servers libpq reached (a service file may name another host than the strings say).
        printer.say("migration \(name): \(sourceAdmin.reached) → \(targetAdmin.reached) (\(options.mode.rawValue), \(options.jobs) jobs)")

        // One active migration per target, held until the run ends.
        let lockSession = try acquireTargetLock()
        defer { lockSession.close() }

        let sourceMajor = sourceAdmin.serverVersionNumber / 10000
        // Before anything is written on the target: a dump restores only on its own or a newer major.
        guard targetAdmin.serverVersionNumber / 10000 >= sourceMajor else {
            throw MigrationFailure("the target (PostgreSQL \(targetAdmin.serverVersionNumber / 10000)) is older than the source (PostgreSQL \(sourceMajor)): migrate to PostgreSQL \(sourceMajor) or newer; nothing was changed on the target")
        }
        do { pgDump = try PgDump.locate(explicit: options.pgBin, sourceMajor: sourceMajor) }
        catch { throw MigrationFailure("\(error)") }
        let targetMajor = targetAdmin.serverVersionNumber / 10000
        if pgDump.major < targetMajor {
            // pg_dump writes for its own major: what a newer target adds (MAINTAIN for owners
            // on 17+, say) is not in its script, as pg_dump \(targetMajor) and pg_upgrade would keep it.
            note("the schema is dumped with pg_dump \(pgDump.major) (\(pgDump.path)), older than the target (PostgreSQL \(targetMajor)): install PostgreSQL \(targetMajor)'s client programs and pass --pg-bin with their directory for a faithful copy")
        }

        let databases = try selectDatabases()
        firstDatabase = databases.first
        try boundJobs()
        for database in databases {
            try checkSourceSessions(database)
            try checkTarget(database)
        }
        if options.mode == .online { try checkTargetPrivilegesForOnline() }
        try checkTargetOwners(databases)
        tracker.time("Prerequisites", Date().timeIntervalSince(prerequisites))

        if try !store.isDone(name, "", .roles) {
            try timed("Roles") {
                var created = Set<String>()
                for text in try Roles.copy(source: sourceAdmin, target: targetAdmin, created: &created) { note(text) }
                copiedRoles = created
            }
            try store.markDone(name, "", .roles)
        }

        try setSubstate(.migratingData)
        for database in databases { try store.setDatabase(name, database, state: "Queued") }
        if options.mode == .online { try checkReplicaIdentities(databases) }
        for database in databases {
            try checkCanceled()
            currentDatabase.value = database
            // Online: a database whose base copy finished goes straight to streaming on resume.
            if options.mode == .online, try store.isDone(name, database, .onlineCopied) { continue }
            do {
                try migrateDatabase(database)
                try store.setDatabase(name, database, state: options.mode == .online ? "Streaming" : "Succeeded")
                if options.mode == .online { try store.markDone(name, database, .onlineCopied) }
            } catch {
                try? store.setDatabase(name, database, state: wasInterrupted ? "Interrupted" : canceled.isSet ? "Canceled" : "Failed")
                // Interrupted: the slots stay, the rerun resumes from them.
                if canceled.isSet && !wasInterrupted && options.mode == .online { dropChangeCapture(databases) }
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

    // MARK: One database (each step in a file of its own under Steps/)

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
            // Before the slot, while nothing is copied: what the apply needs in this database.
            try createTargetDatabase(database)
            try checkTargetDatabaseForOnline(database)
            // Online: the whole copy reads the snapshot the logical slot exported, so the copy
            // and the change stream meet exactly (no gap, no duplicate).
            snapshot = try startChangeCapture(database)
            try snapshotSession.execute("SET TRANSACTION SNAPSHOT \(try snapshotSession.quoteLiteral(snapshot))")
        } else {
            snapshot = try snapshotSession.query("SELECT pg_export_snapshot()").rows[0].string(0)!
        }
        let context = DatabaseContext(database: database, snapshotSession: snapshotSession, snapshot: snapshot,
                                      source: options.source.with(database: database), target: options.target.with(database: database))

        try createTargetDatabase(database)
        targetDatabases.append(database)
        try redoInterruptedSchemaRestore(context)
        let schema = try dumpSchema(context)
        try checkCanceled()
        let tables = try Catalog.tables(snapshotSession)
        let (perTable, later) = try planPostData(context, schema.postData.entries, tables)
        try copyTables(context, schema, tables, perTable: perTable)
        try checkCanceled()
        let foreignKeys = try Catalog.validatedForeignKeys(snapshotSession)
        try restorePostData(context, later, preamble: schema.postData.preamble, foreignKeys: foreignKeys)
        try validateForeignKeys(context, foreignKeys, preamble: schema.postData.preamble)
        try timed("Reset sequences") {
            let conn = try open(context.target, what: "target database \(database)")
            defer { conn.close() }
            try Sequences.reset(from: snapshotSession, to: conn)
        }
        try setSubstate(.completingMigration)
        try verifyTables(context, tables)
        try? snapshotSession.execute("COMMIT")
        try setSubstate(.migratingData)
    }

}

/// A flag set from one thread and read from others.
final class Flag: @unchecked Sendable {
    let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

final class Box<T>: @unchecked Sendable {
    let lock = NSLock()
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
