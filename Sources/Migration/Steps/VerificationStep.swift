import Foundation
import PostgresClient
import Validation

/// The last step of a database: every copied table compared with the source (counts, or
/// checksums), then the catalogs (the one verifier `pgpreflight verify` runs).
extension Migrator {
    func verifyTables(_ context: DatabaseContext, _ tables: [SourceTable]) throws {
        let name = options.name, database = context.database
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
            return mismatches + (try TableVerifier.compare(tables: remaining, expectedRows: counts.source, source: context.source, snapshot: context.snapshot,
                                                      target: context.target, mode: options.verify, jobs: options.jobs,
                                                      shouldStop: { [canceled] in canceled.isSet }))
        }
        if !mismatches.isEmpty {
            let shown = mismatches.prefix(10).map(\.description).joined(separator: "; ")
            throw MigrationFailure("verification failed for \(mismatches.count) table(s) of \(database): \(shown)")
        }
        // The catalogs, with `pgpreflight verify`'s own verifier (the source read in the copy's
        // snapshot): definitions, comments, labels, owners, privileges, database properties,
        // large objects, sequences, materialized views; the roles with the first database.
        // Not when the target refused objects: the run ends Failed with their list anyway.
        guard lock.withLock({ refusedObjects.isEmpty }) else { return }
        let differences = try timed("Verification (catalogs)") { () throws -> [VerifyDifference] in
            let found = Verifier.differences(source: context.source, target: context.target, sourceSnapshot: context.snapshot,
                                             data: nil, includeRoles: context.database == firstDatabase && !copiedRoles.isEmpty, onlyRoles: copiedRoles, jobs: options.jobs,
                                             shouldStop: { [canceled] in canceled.isSet })
            try checkCanceled()
            return found
        }
        if !differences.isEmpty {
            let shown = differences.prefix(20).map(\.description).joined(separator: "\n  ")
            throw MigrationFailure("verification found \(differences.count) difference(s) between the source and the target database \(database)\(differences.count > 20 ? " (the first 20)" : ""):\n  \(shown)\n(`pgpreflight verify` lists them all)")
        }
    }

}
