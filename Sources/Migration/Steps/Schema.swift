import Foundation
import PostgresClient
import Validation

/// What one pg_dump of a database's schema gives the other steps: the pre-data entries (nil
/// when a previous run restored them) and the post-data section, without the migrator's own
/// objects.
struct SchemaPlan {
    let preData: DumpSection?
    let postData: DumpSection
}

/// The schema steps: one pg_dump into an archive, pg_restore's script of each section split
/// into entries (`DumpScript`), run unchanged on the target (`SchemaRestore`), pre-data before
/// the data (with big tables created first, so that they copy while the rest is restored),
/// post-data after it (indexes and primary keys are the workers', see Indexes.swift).
extension Migrator {
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

    /// A run killed during (or right after) the pre-data restore left part of the schema, and
    /// maybe big tables copied meanwhile. The database is this migration's own: it is dropped
    /// and created again, and its progress forgotten.
    func redoInterruptedSchemaRestore(_ context: DatabaseContext) throws {
        let name = options.name, database = context.database
        if try !store.isDone(name, database, .preData) {
            // A run killed during (or right after) the pre-data restore left part of the
            // schema, and maybe big tables copied meanwhile. The database is this migration's
            // own: it is dropped and created again, and its progress forgotten.
            let conn = try open(context.target, what: "target database \(database)")
            let partial = try Catalog.hasUserObjects(conn)
            conn.close()
            if partial {
                printer.say("\(database): the schema restore of an interrupted run is redone from an empty database")
                let force = targetAdmin.serverVersionNumber >= 130000 ? " WITH (FORCE)" : ""
                try targetAdmin.execute("DROP DATABASE \(try targetAdmin.quoteIdentifier(database))\(force)")
                try store.resetProgress(name, database: context.database)
                try timed("Create databases") { try createDatabase(database) }
                try store.markDone(name, database, .createDatabase)
            }
        }
    }

    func dumpSchema(_ context: DatabaseContext) throws -> SchemaPlan {
        let name = options.name, database = context.database
        // One pg_dump of the schema into an archive; pg_restore writes each section's script
        // from it, entry by entry, and the migrator runs those entries unchanged.
        let archiveDirectory = try Self.privateTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: archiveDirectory) }
        let archive = archiveDirectory.appendingPathComponent("schema.dump")
        let preDone = try store.isDone(name, database, .preData)
        return try timed("Dump schema (pg_dump \(pgDump.major))") { () throws -> SchemaPlan in
            try pgDump.dumpArchive(options.source, database: context.database, snapshot: context.snapshot,
                                   applicationName: "pgpreflight migrate \(options.name) (pg_dump)", to: archive,
                                   lockTimeoutSeconds: options.lockTimeoutSeconds)
            let pre = preDone ? nil : DumpSection(DumpScript.entries(try pgDump.script(of: archive, section: "pre-data")))
            let post = DumpScript.entries(try pgDump.script(of: archive, section: "post-data"))
            return SchemaPlan(preData: pre.map { DumpSection(preamble: $0.preamble, entries: $0.entries.filter { !isOwnObject($0) }) },
                              postData: DumpSection(preamble: post.preamble, entries: post.entries.filter { !isOwnObject($0) }))
        }

    }

    /// The post-data entries the workers do not build (constraints other than the tables'
    /// primary keys, unique and exclusion constraints, triggers, rules, policies, views'
    /// refreshes, …), in pg_dump's order. Foreign keys validated on the source are added NOT
    /// VALID here and validated later by all workers at once (Constraints.swift).
    func restorePostData(_ context: DatabaseContext, _ later: [DumpEntry], preamble: String, foreignKeys: [Catalog.ForeignKey]) throws {
        let name = options.name, database = context.database
        let validatedLater = Set(foreignKeys.map(\.dumpKey))
        try timed("Post-data (constraints, triggers, views, …)") {
            guard !later.isEmpty else { return }
            let conn = try open(context.target, what: "target database \(database)")
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
                    try refuse(entry, error, database: context.database)
                    continue
                }
                try store.markDone(name, database, .postData(entry.key))
            }
        }
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
    func restorePreData(_ section: DumpSection, _ endpoint: ConnectionString, _ database: String,
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

}
