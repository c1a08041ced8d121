import Foundation
import PostgresClient
import Testing
import TestSupport

@Suite struct ReplicationTests {
    /// A slot's exported snapshot and its change stream meet exactly: rows committed before
    /// the slot are in the snapshot, rows after it arrive as pgoutput changes, none twice.
    @Test(arguments: TestServers.majors)
    func exportedSnapshotAndPgoutputStreamMeetExactly(major: Int) throws {
        let server = TestServers.server(major: major)
        let database = try TestServers.freshDatabase(on: server, prefix: "repl")
        let endpoint = try ConnectionString(server.connectionString(database: database))
        let admin = try Connection.open(endpoint)
        defer { admin.close() }
        try admin.execute("""
            CREATE TABLE items (id int PRIMARY KEY, label text, big text);
            ALTER TABLE items ALTER big SET STORAGE EXTERNAL;
            CREATE TABLE loose (a int, b text);
            ALTER TABLE loose REPLICA IDENTITY FULL;
            INSERT INTO items VALUES (1, 'before', repeat('x', 10000));
            CREATE PUBLICATION pub FOR TABLE items, loose;
            """)
        let slotName = "test_slot_\(major)_\(UUID().uuidString.prefix(6).lowercased())"
        let replication = try ReplicationConnection.open(endpoint)
        defer { replication.close(); _ = try? admin.query("SELECT pg_drop_replication_slot($1)", slotName) }
        let slot = try replication.createLogicalSlot(slotName)
        let snapshot = try #require(slot.snapshotName)

        // Written after the slot exists: must come through the stream, not the snapshot.
        try admin.execute("""
            INSERT INTO items VALUES (2, 'after', NULL);
            UPDATE items SET label = 'changed' WHERE id = 1;
            DELETE FROM items WHERE id = 2;
            INSERT INTO loose VALUES (1, 'x');
            UPDATE loose SET b = 'y';
            TRUNCATE loose;
            """)

        let reader = try Connection.open(endpoint)
        defer { reader.close() }
        try reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try reader.query("SET TRANSACTION SNAPSHOT '\(snapshot)'")
        let seen = try reader.query("SELECT id, label FROM items ORDER BY id").rows.map { "\($0.int(0)!):\($0.string(1)!)" }
        try reader.execute("COMMIT")
        #expect(seen == ["1:before"])

        try replication.startReplication(slot: slotName, start: slot.consistentPoint,
                                         options: [("proto_version", "1"), ("publication_names", "pub")])
        var relations: [UInt32: RelationDescription] = [:]
        var changes: [String] = []
        var commits = 0
        var lastEnd = slot.consistentPoint
        let deadline = Date().addingTimeInterval(15)
        while (changes.count < 6 || commits == 0) && Date() < deadline {
            guard let message = try replication.next(timeout: 1) else { continue }
            switch message {
            case .keepalive(let end, _, let reply):
                if reply { try replication.sendStatus(written: end, flushed: lastEnd, applied: lastEnd) }
            case .data(_, let end, _, let payload):
                lastEnd = max(lastEnd, end)
                switch try PgOutputMessage.decode(payload) {
                case .relation(let r): relations[r.id] = r
                case .insert(let id, let new): changes.append("I \(relations[id]!.name) \(describe(new))")
                case .update(let id, let old, let keyOnly, let new):
                    changes.append("U \(relations[id]!.name) \(old.map(describe) ?? "-") \(keyOnly) \(describe(new))")
                case .delete(let id, let old, _): changes.append("D \(relations[id]!.name) \(describe(old))")
                case .truncate(let ids, _, _): changes.append("T \(ids.compactMap { relations[$0]?.name })")
                case .commit: commits += 1
                default: break
                }
            }
        }
        try replication.sendStatus(written: lastEnd, flushed: lastEnd, applied: lastEnd)
        #expect(changes == [
            "I items 2,after,NULL",
            "U items - false 1,changed,TOAST",      // the untouched TOASTed value is not resent
            "D items 2,NULL,NULL",
            "I loose 1,x",
            "U loose 1,x false 1,y",                  // REPLICA IDENTITY FULL sends the whole old row
            "T [\"loose\"]",
        ])
        #expect(relations.values.first { $0.name == "loose" }?.replicaIdentity == "f")
        #expect(relations.values.first { $0.name == "items" }?.columns.first?.isKey == true)
    }

    private func describe(_ values: [TupleValue]) -> String {
        values.map { value -> String in
            switch value {
            case .null: return "NULL"
            case .unchangedToast: return "TOAST"
            case .text(let t): return t
            }
        }.joined(separator: ",")
    }

    @Test func lsnParsesAndPrints() {
        #expect(LSN("16/B374D848")?.description == "16/B374D848")
        #expect(LSN("0/0") == .zero)
        #expect(LSN("1/0")! > LSN("0/FFFFFFFF")!)
        #expect(LSN("nonsense") == nil)
    }
}
