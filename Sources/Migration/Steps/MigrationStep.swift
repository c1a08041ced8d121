import Foundation
import PostgresClient

/// The steps whose completion the state store records, so that a resumed run skips them.
enum MigrationStep {
    case roles, createDatabase, preData, largeObjects, onlineCopied
    /// A post-data entry (by its dump key) or a table's index job.
    case postData(String)
    /// ANALYZE of a table (by its key).
    case analyze(String)
    /// VALIDATE of a foreign key added NOT VALID (by its dump key).
    case validate(String)

    static let postDataPrefix = "post|", analyzePrefix = "analyze|", validatePrefix = "validate|"

    /// The key the store keeps (unchanged from earlier versions, so that their runs resume).
    var key: String {
        switch self {
        case .roles: return "roles"
        case .createDatabase: return "createDatabase"
        case .preData: return "preData"
        case .largeObjects: return "largeObjects"
        case .onlineCopied: return "online.copied"
        case .postData(let key): return Self.postDataPrefix + key
        case .analyze(let key): return Self.analyzePrefix + key
        case .validate(let key): return Self.validatePrefix + key
        }
    }
}

extension StateStore {
    func isDone(_ migration: String, _ database: String, _ step: MigrationStep) throws -> Bool {
        try isStepDone(migration, database, step.key)
    }

    func markDone(_ migration: String, _ database: String, _ step: MigrationStep) throws {
        try stepDone(migration, database, step.key, durationMs: 0)
    }
}

/// What the steps of one database's migration share.
struct DatabaseContext {
    let database: String
    /// The source session holding the snapshot (REPEATABLE READ, read only) every step reads.
    let snapshotSession: Connection
    let snapshot: String
    /// The source's and the target's endpoints for this database.
    let source: ConnectionString
    let target: ConnectionString
}
