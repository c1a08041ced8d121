import Foundation
import Migration
import PostgresClient
import Testing
import TestSupport

/// Streams real changes from PostgreSQL 15 into 18 and checks the target row by row.
@Suite struct ChangeStreamTests {
    struct Pair {
        let sourceEndpoint: ConnectionString
        let targetEndpoint: ConnectionString
        let source: Connection
        let target: Connection
        let slot: CreatedSlot
        let replication: ReplicationConnection
        let slotName: String
    }

    static let schema = """
        CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, note text, big text);
        ALTER TABLE accounts ALTER big SET STORAGE EXTERNAL;
        CREATE TABLE history (account int, delta int, at timestamptz DEFAULT now());
        ALTER TABLE history REPLICA IDENTITY FULL;
        CREATE TABLE "Odd Name" ("Key" text PRIMARY KEY, vals int[], doc jsonb);
        """

    func makePair(plugin: String = "pgoutput") throws -> Pair {
        let sourceDB = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "online_src")
        let targetDB = try TestServers.freshDatabase(on: TestServers.pg18, prefix: "online_dst")
        let sourceEndpoint = try ConnectionString(TestServers.pg15.connectionString(database: sourceDB))
        let targetEndpoint = try ConnectionString(TestServers.pg18.connectionString(database: targetDB))
        let source = try Connection.open(sourceEndpoint)
        let target = try Connection.open(targetEndpoint)
        try source.execute(Self.schema + """
            INSERT INTO accounts SELECT g, 100, 'n' || g, CASE WHEN g = 1 THEN repeat('toast', 5000) END FROM generate_series(1, 50) g;
            CREATE PUBLICATION pgpreflight_pub FOR ALL TABLES;
            """)
        try target.execute(Self.schema)
        let slotName = "pgpreflight_\(sourceDB)"
        let replication = try ReplicationConnection.open(sourceEndpoint)
        let slot = try replication.createLogicalSlot(slotName, plugin: plugin)
        // Base copy on the slot's snapshot.
        let reader = try Connection.open(sourceEndpoint)
        try reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try reader.query("SET TRANSACTION SNAPSHOT '\(slot.snapshotName!)'")
        for table in ["accounts", "history", "\"Odd Name\""] {
            let writer = try target.copyIn("COPY \(table) FROM STDIN")
            try reader.copyOut("COPY \(table) TO STDOUT") { try writer.write($0) }
            try writer.finish()
        }
        try reader.execute("COMMIT")
        reader.close()
        return Pair(sourceEndpoint: sourceEndpoint, targetEndpoint: targetEndpoint, source: source, target: target,
                    slot: slot, replication: replication, slotName: slotName)
    }

    /// Streams until the target has everything the source flushed up to now.
    func catchUp(_ pair: Pair, replication: ReplicationConnection, stopAfterFirstBatch: Bool = false,
                 format: ChangeStream.Format = .pgoutput(publication: "pgpreflight_pub")) throws -> ChangeStream.Progress {
        let end = try ChangeStream.endOfCommittedWAL(pair.source)
        let applierConnection = try Connection.open(pair.targetEndpoint)
        defer { applierConnection.close() }
        let applier = try ChangeApplier(target: applierConnection, originName: "pgpreflight_\(pair.slotName)")
        applier.batchLimit = 50
        let stream = ChangeStream(replication: replication, applier: applier, slot: pair.slotName, format: format)
        var last: ChangeStream.Progress?
        let deadline = Date().addingTimeInterval(30)
        try stream.run(consistentPoint: pair.slot.consistentPoint, onProgress: { last = $0 }) { progress in
            if stopAfterFirstBatch && progress.appliedTransactions > 0 { return true }
            return (progress.caughtUp && progress.receivedLSN >= end) || Date() > deadline
        }
        return try #require(last)
    }

    func rows(_ connection: Connection, _ sql: String) throws -> [[String?]] {
        try connection.query(sql).rows.map(\.values)
    }

    func assertSame(_ pair: Pair) throws {
        for sql in ["SELECT id, balance, note, md5(big) FROM accounts ORDER BY id",
                    "SELECT account, delta, at FROM history ORDER BY account, delta, at",
                    "SELECT \"Key\", vals::text, doc::text FROM \"Odd Name\" ORDER BY 1"] {
            #expect(try rows(pair.source, sql) == rows(pair.target, sql), "\(sql)")
        }
    }

    /// Every kind of change: updates leaving a TOASTed value alone, inserts with NULLs, deletes,
    /// a key change, REPLICA IDENTITY FULL updates and deletes, TRUNCATE, many small commits.
    func writeEveryKindOfChange(_ pair: Pair) throws {
        try pair.source.execute("""
            UPDATE accounts SET balance = balance + 1 WHERE id = 1;
            INSERT INTO history (account, delta) VALUES (1, 1), (1, 1), (2, NULL);
            """)
        try pair.source.execute("DELETE FROM accounts WHERE id BETWEEN 40 AND 45")
        try pair.source.execute("INSERT INTO \"Odd Name\" VALUES ('a''b', '{1,2}', '{\"k\": [1, \"x\"]}'), ('plain', NULL, NULL)")
        try pair.source.execute("UPDATE \"Odd Name\" SET \"Key\" = 'renamed' WHERE \"Key\" = 'plain'")
        try pair.source.execute("UPDATE history SET delta = 5 WHERE delta IS NULL")
        try pair.source.execute("DELETE FROM history WHERE ctid = (SELECT min(ctid) FROM history WHERE delta = 1)")
        try pair.source.execute("TRUNCATE history; INSERT INTO history (account, delta) VALUES (9, 9)")
        for i in 0..<200 { try pair.source.query("UPDATE accounts SET balance = balance + 1, note = $1 WHERE id = $2", "t\(i)", i % 30 + 2) }
    }

    /// pgoutput, and wal2json (the decoder of sources older than 10) tried on 15.
    @Test(arguments: ["pgoutput", "wal2json"])
    func streamsEveryChangeKindAndKeepsUnchangedToastValues(plugin: String) throws {
        let pair = try makePair(plugin: plugin)
        defer { cleanup(pair) }
        try writeEveryKindOfChange(pair)
        let progress = try catchUp(pair, replication: pair.replication,
                                   format: plugin == "wal2json" ? .wal2json : .pgoutput(publication: "pgpreflight_pub"))
        #expect(progress.caughtUp)
        #expect(progress.latencySeconds == 0)
        try assertSame(pair)
        // The TOASTed value of row 1 was not resent, yet the target still has it.
        #expect(try pair.target.query("SELECT length(big) FROM accounts WHERE id = 1").first?.int(0) == 25000)
    }

    @Test func restartAfterAnInterruptedStreamNeitherSkipsNorRepeats() throws {
        let pair = try makePair()
        defer { cleanup(pair) }
        for i in 0..<300 {
            try pair.source.query("INSERT INTO history (account, delta) VALUES ($1, 1)", i)
        }
        // Stop after the first batch, dropping the replication connection as a crash would.
        _ = try catchUp(pair, replication: pair.replication, stopAfterFirstBatch: true)
        pair.replication.close()
        let partial = try pair.target.query("SELECT count(*) FROM history").first!.int(0)!
        #expect(partial > 0 && partial < 300)
        for i in 300..<350 { try pair.source.query("INSERT INTO history (account, delta) VALUES ($1, 1)", i) }
        let again = try ReplicationConnection.open(pair.sourceEndpoint)
        defer { again.close() }
        _ = try catchUp(pair, replication: again)
        let counts = try pair.target.query("SELECT count(*), count(DISTINCT account) FROM history").first?.values
        #expect(counts == ["350", "350"], "partial \(partial)")
        try assertSame(pair)
    }

    func cleanup(_ pair: Pair) {
        pair.replication.close()
        _ = try? pair.source.query("SELECT pg_drop_replication_slot($1)", pair.slotName)
        _ = try? pair.target.query("SELECT pg_replication_origin_drop($1)", "pgpreflight_\(pair.slotName)")
        pair.source.close()
        pair.target.close()
    }
}
