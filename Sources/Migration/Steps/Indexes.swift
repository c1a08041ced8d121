import Foundation
import PostgresClient
import Validation

/// Indexes and the primary key, unique and exclusion constraints of plain tables: built by the
/// worker that copied the table, right after its copy (the other post-data entries wait for
/// every table, Schema.swift).
extension Migrator {
    struct IndexJob: Sendable { let key: String; let sql: String }

    /// Splits the post-data entries left to do into each table's index jobs and the rest.
    func planPostData(_ context: DatabaseContext, _ entries: [DumpEntry], _ tables: [SourceTable]) throws
        -> (perTable: [String: [IndexJob]], later: [DumpEntry]) {
        let name = options.name, database = context.database
        let indexes = try Catalog.tableIndexes(context.snapshotSession)
        let done = try store.doneSteps(name, database, prefix: MigrationStep.postDataPrefix)
        var indexByKey: [String: TableIndex] = [:]
        for index in indexes { indexByKey["\(index.dumpType)|\(index.schema)|\(index.dumpName)"] = index }
        let tableByOid = Dictionary(uniqueKeysWithValues: tables.map { ($0.oid, $0) })
        var perTable: [String: [IndexJob]] = [:]
        var later: [DumpEntry] = []
        for entry in entries where !done.contains(MigrationStep.postData(entry.key).key) {
            if let index = indexByKey[entry.key], let table = tableByOid[index.tableOid] {
                perTable[table.key, default: []].append(IndexJob(key: entry.key, sql: index.usingIndexSQL ?? entry.sql))
            } else {
                later.append(entry)
            }
        }

        return (perTable, later)
    }
}
