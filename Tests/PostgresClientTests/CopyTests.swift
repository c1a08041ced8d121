import Foundation
import PostgresClient
import Testing
import TestSupport

@Suite struct CopyTests {
    @Test(arguments: TestServers.majors, ["text", "binary"])
    func copyRoundTripOfHundredThousandRows(major: Int, format: String) throws {
        let server = TestServers.server(major: major)
        let database = try TestServers.freshDatabase(on: server, prefix: "copy")
        let source = try TestServers.connect(server, database: database)
        let target = try TestServers.connect(server, database: database)
        defer { source.close(); target.close() }
        try source.execute("""
            CREATE TABLE src (id int PRIMARY KEY, label text, payload bytea, note text);
            INSERT INTO src SELECT g, 'row ' || g || ' ✓', decode(md5(g::text), 'hex'),
                   CASE WHEN g % 7 = 0 THEN NULL ELSE E'tab\\there' END FROM generate_series(1, 100000) g;
            CREATE TABLE dst (LIKE src);
            """)
        var chunks = 0
        let writer = try target.copyIn("COPY dst FROM STDIN (FORMAT \(format))")
        let bytes = try source.copyOut("COPY src TO STDOUT (FORMAT \(format))") { chunk in
            chunks += 1
            try writer.write(chunk)
        }
        let stored = try writer.finish()
        #expect(stored == 100_000)
        #expect(bytes > 0)
        #expect(chunks >= 100_000)  // streamed row by row, never as one buffer
        let diff = try source.query("""
            SELECT count(*) FROM ((TABLE src EXCEPT ALL TABLE dst) UNION ALL (TABLE dst EXCEPT ALL TABLE src)) d
            """).first?.int(0)
        #expect(diff == 0)
        #expect(try source.query("SELECT count(*) FROM dst WHERE note IS NULL").first?.int(0) == 100_000 / 7)
    }

    /// The pipe batches rows into bigger messages: rows of every size (empty, tiny, around and
    /// far beyond the 64 kB batch) arrive whole and in order, in both formats.
    @Test(arguments: ["text", "binary"])
    func pipeCopyCarriesRowsOfEverySize(format: String) throws {
        let source = TestServers.pg15, target = TestServers.pg18
        let sourceDB = try TestServers.freshDatabase(on: source, prefix: "pipe")
        let targetDB = try TestServers.freshDatabase(on: target, prefix: "pipe")
        let from = try TestServers.connect(source, database: sourceDB), to = try TestServers.connect(target, database: targetDB)
        defer { from.close(); to.close() }
        let table = "CREATE TABLE t (id int PRIMARY KEY, body text, data bytea)"
        try from.execute(table)
        try to.execute(table)
        try from.execute("""
            INSERT INTO t SELECT g, CASE WHEN g % 97 = 0 THEN repeat(md5(g::text), 2000 + g % 5000)  -- 64 kB to 224 kB
                                        WHEN g % 13 = 0 THEN repeat('x', 65490 + g % 60)              -- around the batch size
                                        WHEN g % 11 = 0 THEN '' ELSE 'r' || g END,
                               CASE WHEN g % 3 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END
            FROM generate_series(1, 3000) g
            """)
        var reported = 0
        let result = try from.pipeCopy("COPY t TO STDOUT (FORMAT \(format))", into: to, "COPY t FROM STDIN (FORMAT \(format))") { bytes in
            reported += bytes
            return true
        }
        #expect(result.sourceRows == 3000 && result.targetRows == 3000)
        #expect(reported == result.bytes)
        let digest = "SELECT md5(string_agg(id || ':' || coalesce(body, '-') || ':' || coalesce(encode(data, 'hex'), '-'), ',' ORDER BY id)) FROM t"
        #expect(try from.query(digest).first?.string(0) == (try to.query(digest).first?.string(0)))
    }

    @Test func abortedCopyStoresNothing() throws {
        let server = TestServers.pg15
        let database = try TestServers.freshDatabase(on: server, prefix: "copyabort")
        let connection = try TestServers.connect(server, database: database)
        defer { connection.close() }
        try connection.execute("CREATE TABLE t (id int)")
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try connection.copyIn("COPY t FROM STDIN") { writer in
                try writer.write("1\n2\n")
                throw Stop()
            }
        }
        #expect(try connection.query("SELECT count(*) FROM t").first?.int(0) == 0)
    }
}
