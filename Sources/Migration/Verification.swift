import Foundation
import PostgresClient

/// A table whose copy does not match its source.
public struct TableMismatch: Sendable, CustomStringConvertible {
    public let table: String
    public let sourceRows: Int
    public let targetRows: Int
    public let sourceChecksum: String?
    public let targetChecksum: String?

    public var description: String {
        if sourceRows != targetRows { return "\(table): \(sourceRows) rows on the source, \(targetRows) on the target" }
        return "\(table): same row count (\(sourceRows)) but different contents (checksum)"
    }
}

/// Row counts, and on request an order-independent checksum, of every table on both servers.
public enum TableVerifier {
    /// Session settings that make row text identical on both servers, whatever their defaults.
    static let textSettings = """
        SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC';
        SET extra_float_digits = 1; SET bytea_output = 'hex'
        """

    /// Count and checksum of one table. The checksum is the sum of hashtext() of each row's
    /// text (source column order, generated columns left out): independent of row order.
    static func measure(_ conn: Connection, _ table: SourceTable, checksum: Bool) throws -> (rows: Int, checksum: String?) {
        if checksum && !table.columns.isEmpty {
            let row = try conn.query("""
                SELECT count(*), coalesce(sum(hashtext(ROW(\(table.columns.joined(separator: ", ")))::text)), 0)::text
                FROM ONLY \(table.qualified)
                """).rows[0]
            return (row.int(0) ?? -1, row.string(1))
        }
        return (try conn.query("SELECT count(*) FROM ONLY \(table.qualified)").rows[0].int(0) ?? -1, nil)
    }

    /// Compares every table of `database` on both servers now (both sides counted fresh; the
    /// source must have no writers, as in offline mode). Returns the tables that differ.
    public static func verify(source: ConnectionString, target: ConnectionString, database: String,
                              mode: VerifyMode, jobs: Int = 2) throws -> [TableMismatch] {
        let catalog = try Connection.open(source.with(database: database))
        defer { catalog.close() }
        let tables = try Catalog.tables(catalog)
        return try compare(tables: tables, expectedRows: nil, source: source.with(database: database), snapshot: nil,
                           target: target.with(database: database), mode: mode, jobs: jobs)
    }

    /// Compares `tables`. With `expectedRows` (the COPY row counts the source sent at the
    /// snapshot), counts are checked against them; checksums are computed on both servers in
    /// parallel, the source inside `snapshot` when given.
    static func compare(tables: [SourceTable], expectedRows: [String: Int]?, source: ConnectionString, snapshot: String?,
                        target: ConnectionString, mode: VerifyMode, jobs: Int,
                        shouldStop: @escaping @Sendable () -> Bool = { false }) throws -> [TableMismatch] {
        let needSource = mode == .checksums || expectedRows == nil
        let results = Results()
        // Counting small tables one query each costs round trips: they are counted 200 per query.
        var chunks: [[SourceTable]] = []
        var small: [SourceTable] = []
        for table in tables {
            if mode == .checksums || table.bytes >= Migrator.smallTableBytes { chunks.append([table]); continue }
            small.append(table)
            if small.count == 200 { chunks.append(small); small = [] }
        }
        if !small.isEmpty { chunks.append(small) }
        let queue = WorkQueue<[SourceTable]>(chunks)
        struct Sessions { var source: Connection?; var target: Connection? }
        try queue.run(workers: jobs, makeState: { Sessions() }, perform: { sessions, chunk in
            if shouldStop() { throw MigrationCanceled() }
            if sessions.target == nil {
                let conn = try Connection.open(target, applicationName: "pgpreflight verify")
                try conn.execute(textSettings)
                sessions.target = conn
            }
            if needSource && sessions.source == nil {
                let conn = try Connection.open(source, applicationName: "pgpreflight verify")
                try conn.execute(textSettings)
                if let snapshot {
                    try conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    try conn.execute("SET TRANSACTION SNAPSHOT \(try conn.quoteLiteral(snapshot))")
                }
                sessions.source = conn
            }
            let checksum = mode == .checksums
            if chunk.count > 1 {
                let targetCounts = try count(sessions.target!, chunk)
                let sourceCounts = needSource ? try count(sessions.source!, chunk) : chunk.map { expectedRows?[$0.key] ?? -1 }
                for (index, table) in chunk.enumerated() where targetCounts[index] != sourceCounts[index] {
                    results.add(TableMismatch(table: "\(table.schema).\(table.name)", sourceRows: sourceCounts[index],
                                              targetRows: targetCounts[index], sourceChecksum: nil, targetChecksum: nil))
                }
                return
            }
            let table = chunk[0]
            let targetSide = try measure(sessions.target!, table, checksum: checksum)
            var sourceSide: (rows: Int, checksum: String?) = (expectedRows?[table.key] ?? -1, nil)
            if needSource {
                let measured = try measure(sessions.source!, table, checksum: checksum)
                sourceSide = (expectedRows?[table.key] ?? measured.rows, measured.checksum)
                if expectedRows != nil && measured.rows != sourceSide.rows { sourceSide.rows = measured.rows }
            }
            if sourceSide.rows != targetSide.rows || sourceSide.checksum != targetSide.checksum {
                results.add(TableMismatch(table: "\(table.schema).\(table.name)", sourceRows: sourceSide.rows, targetRows: targetSide.rows,
                                          sourceChecksum: sourceSide.checksum, targetChecksum: targetSide.checksum))
            }
        }, finish: { sessions in
            sessions.source?.close()
            sessions.target?.close()
        })
        return results.all.sorted { $0.table < $1.table }
    }

    /// Row counts of several tables in one query.
    static func count(_ conn: Connection, _ tables: [SourceTable]) throws -> [Int] {
        let row = try conn.query("SELECT " + tables.map { "(SELECT count(*) FROM ONLY \($0.qualified))" }.joined(separator: ", ")).rows[0]
        return tables.indices.map { row.int($0) ?? -1 }
    }

    final class Results: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [TableMismatch] = []
        func add(_ item: TableMismatch) { lock.withLock { items.append(item) } }
        var all: [TableMismatch] { lock.withLock { items } }
    }
}
