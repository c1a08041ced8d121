import Foundation
import PostgresClient
import Validation

/// Foreign keys: added NOT VALID with the post-data (instant), then validated by all workers at
/// once: VALIDATE takes only SHARE UPDATE EXCLUSIVE on the table and ROW SHARE on the one it
/// references, so validations of different tables neither block nor deadlock each other.
/// Keys NOT VALID on the source stay so.
extension Migrator {
    func validateForeignKeys(_ context: DatabaseContext, _ foreignKeys: [Catalog.ForeignKey], preamble: String) throws {
        let name = options.name, database = context.database
        let validated = try store.doneSteps(name, database, prefix: MigrationStep.validatePrefix)
        let validations = foreignKeys.filter { !validated.contains(MigrationStep.validate($0.dumpKey).key) }
        if !validations.isEmpty {
            try timed("Validate foreign keys (wall clock)") {
                let queue = WorkQueue<Catalog.ForeignKey>(validations)
                try queue.run(workers: min(options.jobs, validations.count), makeState: { () -> Connection? in nil }, perform: { [self] conn, key in
                    try checkCanceled()
                    if conn == nil {
                        conn = try open(context.target, what: "target database \(database)")
                        try conn!.execute(preamble + "\nSET work_mem = '64MB'")
                    }
                    do { try timed("  VALIDATE (cumulative)") { try conn!.execute(key.validateSQL) } }
                    catch { throw MigrationFailure("validating foreign key \(key.quotedName) of \(key.qualifiedTable) on the target failed: \(error)") }
                    try store.markDone(name, database, .validate(key.dumpKey))
                }, finish: { conn in conn?.close() })
            }
        }

    }
}
