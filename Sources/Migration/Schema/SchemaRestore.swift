import Foundation
import PostgresClient
import Validation

/// A schema entry the target refused, with the server's error.
struct Refusal: Sendable {
    let entry: DumpEntry
    let error: ServerError
    var description: String { "\(entry.label): \(error.message)" }
}

/// Runs schema entries in order on one session, many per round trip (thousands of small
/// objects cost round trips, not work). A batch the target refuses is rolled back whole (one
/// implicit transaction) and run again entry by entry, so that each refused entry is named;
/// `refused` decides whether the restore goes on (it throws to stop).
enum SchemaRestore {
    static func run(_ entries: [DumpEntry], on conn: Connection, checkCanceled: () throws -> Void = {},
                    refused: (Refusal) throws -> Void) throws -> Set<Int> {
        var refusedIds = Set<Int>()
        var index = 0
        while index < entries.count {
            try checkCanceled()
            var end = index, bytes = 0
            while end < entries.count && end - index < 500 && bytes < 1 << 20 { bytes += entries[end].executable.utf8.count; end += 1 }
            let batch = entries[index..<end]
            index = end
            do {
                try conn.execute(batch.map(\.executable).joined(separator: "\n"))
                continue
            } catch let error as ServerError where batch.count == 1 {
                try refused(Refusal(entry: batch.first!, error: error))
                refusedIds.insert(batch.first!.id)
                continue
            } catch is ServerError {
                // Found below, entry by entry.
            }
            for entry in batch {
                do { try conn.execute(entry.executable) }
                catch let error as ServerError {
                    try refused(Refusal(entry: entry, error: error))
                    refusedIds.insert(entry.id)
                }
            }
        }
        return refusedIds
    }
}

/// `validate --dry-run-schema`: restores the source database's schema (pre- and post-data, no
/// data) into a scratch database on the target and lists every entry the target refuses,
/// with the object and the server's error; the scratch database is dropped at the end. The
/// only write on either server: that scratch database.
public enum SchemaDryRun {
    public static let ruleId = "schema.dry-run"

    public static func run(source: ConnectionString, target: ConnectionString, database: String, pgBin: URL? = nil) -> RuleResult {
        // A signal (InterruptGuard) waits for this to unwind, then drops the scratch database.
        Interruption.region { dryRun(source: source, target: target, database: database, pgBin: pgBin) }
    }

    private static func dryRun(source: ConnectionString, target: ConnectionString, database: String, pgBin: URL?) -> RuleResult {
        let started = Date()
        func result(_ status: Status, _ message: String, remedy: String = "", objects: [String] = []) -> RuleResult {
            RuleResult(rule: ruleId, title: "The target accepts every schema object of the source (dry run)", scope: .database,
                       database: database, status: status, message: message, remedy: remedy, objects: objects,
                       startedAt: started, finishedAt: Date())
        }
        do {
            let sourceSession = try Connection.open(source.with(database: database), applicationName: "pgpreflight validate (dry run)")
            defer { sourceSession.close() }
            let pgDump = try PgDump.locate(explicit: pgBin, sourceMajor: sourceSession.serverVersionNumber / 10000)
            let sourceRoles = Set(try sourceSession.query("SELECT rolname FROM pg_roles").rows.compactMap { $0.string(0) })
            let directory = try Migrator.privateTemporaryDirectory()
            Interruption.removeOnInterrupt(directory)
            defer { try? FileManager.default.removeItem(at: directory); Interruption.removed(directory) }
            let archive = directory.appendingPathComponent("schema.dump")
            try sourceSession.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            let snapshot = try sourceSession.query("SELECT pg_export_snapshot()").rows[0].string(0)!
            try pgDump.dumpArchive(source, database: database, snapshot: snapshot, applicationName: "pgpreflight validate (pg_dump)", to: archive)
            try? sourceSession.execute("COMMIT")
            let pre = DumpScript.entries(try pgDump.script(of: archive, section: "pre-data"))
            let post = DumpScript.entries(try pgDump.script(of: archive, section: "post-data"))
            // The same entries without owners and privileges: run instead of an entry refused
            // only for a role the migration creates before the schema (it copies the roles).
            var withoutRoles: [Int: DumpEntry] = [:]
            for section in ["pre-data", "post-data"] {
                for entry in DumpScript.entries(try pgDump.script(of: archive, section: section, options: ["--no-owner", "--no-privileges"])).entries {
                    withoutRoles[entry.id] = entry
                }
            }

            let admin = try Connection.open(target.with(database: "postgres"), applicationName: "pgpreflight validate (dry run)")
            defer { admin.close() }
            let scratch = "pgpreflight_dry_run_\(UUID().uuidString.prefix(8).lowercased())"
            let quoted = try admin.quoteIdentifier(scratch)
            try Interruption.createScratchDatabase(scratch, on: admin, target: target)
            defer {
                let force = admin.serverVersionNumber >= 130000 ? " WITH (FORCE)" : ""
                if (try? admin.execute("DROP DATABASE IF EXISTS \(quoted)\(force)")) != nil { Interruption.scratchDatabaseDropped(scratch) }
            }
            let targetRoles = Set(try admin.query("SELECT rolname FROM pg_roles").rows.compactMap { $0.string(0) })
            let conn = try Connection.open(target.with(database: scratch), applicationName: "pgpreflight validate (dry run)")
            defer { conn.close() }
            var refusals: [String] = []
            var rolesToCreate = Set<String>()
            var refusedLabels: [Int: String] = [:]
            func collect(_ refusal: Refusal) {
                defer { refusedLabels[refusal.entry.id] = refusal.entry.label }
                // Said once: an object whose refusal follows from another's.
                if let cause = refusal.entry.dependencies.lazy.compactMap({ refusedLabels[$0] }).first {
                    refusals.append("\(refusal.description) (it depends on \(cause), refused above)")
                    return
                }
                if refusal.error.sqlState == "42704", let role = missingRole(refusal.error.message), sourceRoles.contains(role),
                   !targetRoles.contains(role), !Roles.isReserved(role) {
                    rolesToCreate.insert(role)
                    guard let definition = withoutRoles[refusal.entry.id] else { return }  // an ACL entry: nothing else to check
                    do { try conn.execute(definition.executable) }
                    catch let error as ServerError { refusals.append(Refusal(entry: refusal.entry, error: error).description) }
                    catch { refusals.append("\(refusal.entry.label): \(error)") }
                    return
                }
                refusals.append(refusal.description)
            }
            for section in [pre, post] {
                try conn.execute(section.preamble)
                _ = try SchemaRestore.run(section.entries, on: conn, checkCanceled: { if Interruption.requested { throw Interrupted() } },
                                          refused: collect)
            }
            let rolesNote = rolesToCreate.isEmpty ? "" : "; \(rolesToCreate.count) role(s) the migration creates first were not checked as owners or grantees"
            let count = pre.entries.count + post.entries.count
            if refusals.isEmpty {
                return result(.succeeded, "the target accepted all \(count) schema entries of \(database)\(rolesNote)")
            }
            return result(.failed, "the target refused \(refusals.count) of \(count) schema entries of \(database)\(rolesNote)",
                          remedy: "Change or drop each object listed on the source (or make the target support it: an extension, a build option), then run the dry run again.",
                          objects: refusals)
        } catch {
            return result(.warning, "could not run the schema dry run: \(error)",
                          remedy: "The dry run needs pg_dump \(">=") the source's major and a target user allowed to CREATE DATABASE.")
        }
    }

    /// `role "x" does not exist` → x.
    static func missingRole(_ message: String) -> String? {
        guard message.hasPrefix("role \""), message.hasSuffix("\" does not exist") else { return nil }
        return String(message.dropFirst(6).dropLast(16))
    }
}
