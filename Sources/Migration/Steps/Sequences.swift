import Foundation
import PostgresClient

/// Sequences: set on the target to the source's values, once after the copy (offline) and at
/// cutover (online), by the same routine.
enum Sequences {
    static func reset(from source: Connection, to target: Connection) throws {
        for sequence in try Catalog.sequences(source) {
            try target.query("SELECT pg_catalog.setval($1::regclass, $2::bigint, $3::boolean)",
                             sequence.qualified, sequence.lastValue, sequence.isCalled)
        }
    }
}
