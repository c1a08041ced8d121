import Foundation
import PostgresClient
import Validation

/// Prerequisites: one migration per target, the databases to copy, a quiet source (offline)
/// and target databases that are new, this migration's own, or may be overwritten.
extension Migrator {
    /// A session-level advisory lock on the target (in its `postgres` database, the same for
    /// every migration), held by the returned session until the run ends.
    func acquireTargetLock() throws -> Connection {
        let name = options.name
        let lockSession = try open(options.target.with(database: "postgres"), what: "target (postgres database)")
        var locked = false
        var holder: String?
        let waitUntil = Date().addingTimeInterval(Double(options.targetWaitSeconds))
        var announced = false
        var attempt = 0
        while true {
            locked = try lockSession.query("SELECT pg_try_advisory_lock($1::bigint)", Self.lockKey).rows[0].bool(0) ?? false
            if locked { break }
            holder = (try? lockSession.query("""
                SELECT substr(a.application_name, 21) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                  AND l.classid::int8 = ($1::int8 >> 32) AND l.objid::int8 = ($1::int8 & 4294967295)
                  AND a.application_name LIKE 'pgpreflight migrate %' LIMIT 1
                """, Self.lockKey).rows.first?.string(0)) ?? nil
            attempt += 1
            // The holder may be this migration's previous run, killed a moment ago: its
            // session ends as soon as the server notices. Another migration's does not,
            // unless --wait-for-target queues this run behind it.
            if holder == name, attempt < 20 {
                usleep(250_000)
            } else if holder != name, Date() < waitUntil {
                try checkCanceled()
                if !announced {
                    announced = true
                    printer.say("waiting up to \(options.targetWaitSeconds) s for migration \(holder ?? "(unknown)") to finish on the target \(options.target)")
                }
                usleep(500_000)
            } else {
                break
            }
        }
        if !locked {
            lockSession.close()
            throw MigrationFailure("another migration\(holder.map { " (\($0))" } ?? "") is running against the target \(options.target); wait for it to end or cancel it with `pgpreflight cancel NAME`")
        }
        return lockSession
    }

    /// The selected databases (default: the same selection as validation, so that
    /// validate-and-migrate checks what it copies).
    func selectDatabases() throws -> [String] {
        let selection = try DatabaseSelection.read(from: sourceAdmin, given: options.databases.isEmpty ? nil : options.databases)
        if let missing = selection.missing.first {
            throw MigrationFailure("database \(missing) does not exist on the source")
        }
        if let refused = selection.refused.first {
            throw MigrationFailure("database \(refused.name) cannot be migrated: \(refused.reason)\(refused.remedy.isEmpty ? "" : " (\(refused.remedy))")")
        }
        // Every database the default selection leaves out is named, with the reason.
        for left in selection.leftOut where DatabaseSelection.systemDatabases[left.name] == nil {
            note("database \(left.name) is not migrated: \(left.reason)\(left.remedy.isEmpty ? "" : " (\(left.remedy))")")
        }
        guard !selection.selected.isEmpty else {
            throw MigrationFailure("no database to migrate: the source has no user database; name one with --database")
        }
        return selection.selected
    }

    /// Offline mode needs a quiet source: other client sessions on a selected database could
    /// write after the snapshot, and their changes would be lost.
    func checkSourceSessions(_ database: String) throws {
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
    func checkTarget(_ database: String) throws {
        let exists = try !targetAdmin.query("SELECT 1 FROM pg_database WHERE datname = $1", database).rows.isEmpty
        guard exists else {
            try store.resetProgress(options.name, database: database)
            return
        }
        if try store.isDone(options.name, database, .createDatabase) { return }
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

    /// Each job holds a session on both servers (the run needs a few more: snapshot, admin,
    /// lock, pg_dump): more jobs than free connections would fail midway with a partial copy.
    func boundJobs() throws {
        func free(_ conn: Connection) throws -> Int {
            try conn.query("""
                SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
                       - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int
                """).rows[0].int(0) ?? 0
        }
        let available = min(try free(sourceAdmin), try free(targetAdmin)) - 6
        guard options.jobs > max(1, available) else { return }
        guard available >= 1 else {
            throw MigrationFailure("the servers have no free connections for the migration (\(available + 6) left, it needs at least 7): raise max_connections or end idle sessions")
        }
        note("--jobs \(options.jobs) lowered to \(available): the servers have \(available + 6) free connections (each job holds one on both)")
        options.jobs = available
    }
}
