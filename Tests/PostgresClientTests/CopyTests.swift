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
