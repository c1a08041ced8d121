import Foundation
import PostgresClient
import Testing
import TestSupport

@Suite struct QueryTests {
    @Test(arguments: TestServers.majors)
    func parametersRoundTripNullUnicodeAndBytea(major: Int) throws {
        let connection = try TestServers.connect(TestServers.server(major: major))
        defer { connection.close() }
        let bytes: [UInt8] = [0, 1, 2, 255, 0x5c, 0x78, 39]
        let row = try #require(connection.query(
            "SELECT $1::text AS nothing, $2::text AS unicode, $3::bytea AS blob, $4::int AS number, $5::bool AS flag, $6::float8 AS ratio",
            [Optional<String>.none, "Grüße, 東京 🐘", bytes, 42, true, 2.5]).first)
        #expect(row.isNull(0))
        #expect(row.string("unicode") == "Grüße, 東京 🐘")
        #expect(row.bytes("blob") == bytes)
        #expect(row.int("number") == 42)
        #expect(row.bool("flag") == true)
        #expect(row.double("ratio") == 2.5)
        #expect(connection.serverVersionNumber / 10000 == major)
    }

    @Test(arguments: TestServers.majors)
    func failingStatementCarriesSQLState(major: Int) throws {
        let connection = try TestServers.connect(TestServers.server(major: major))
        defer { connection.close() }
        do {
            try connection.query("SELECT * FROM no_such_table_here")
            Issue.record("expected an error")
        } catch let error as ServerError {
            #expect(error.sqlState == "42P01")
            #expect(error.severity == "ERROR")
            #expect(error.message.contains("no_such_table_here"))
        }
        do {
            try connection.query("SELECT 1/0")
            Issue.record("expected an error")
        } catch let error as ServerError {
            #expect(error.sqlState == "22012")
        }
        // The session is still usable after errors.
        #expect(try connection.query("SELECT 1").first?.int(0) == 1)
    }

    @Test func quotingGoesThroughLibpq() throws {
        let connection = try TestServers.connect(TestServers.pg15)
        defer { connection.close() }
        #expect(try connection.quoteIdentifier("Audit") == "\"Audit\"")
        #expect(try connection.quoteIdentifier("we\"ird") == "\"we\"\"ird\"")
        #expect(try connection.quoteLiteral("it's") == "'it''s'")
        let identifier = try connection.quoteIdentifier("Mixed Case\"x")
        #expect(try connection.query("SELECT 1 AS \(identifier)").columns == ["Mixed Case\"x"])
    }

    /// Twenty connections block inside the server at the same time: a barrier (an exclusive
    /// advisory lock) holds them until all twenty are seen waiting. If blocking libpq calls ran
    /// on the cooperative pool (a thread per core), at most a couple could wait at once and the
    /// barrier would never see twenty.
    @Test func asyncRunHopsOffTheCooperativePool() async throws {
        let server = TestServers.pg15
        let endpoint = try ConnectionString(server.connectionString())
        let key = Int.random(in: 1_000_000...9_000_000)
        let gate = try Connection.open(endpoint)
        defer { gate.close() }
        try gate.query("SELECT pg_advisory_lock($1::bigint)", key)
        let waiters = 20
        async let total: Int = withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<waiters {
                group.addTask {
                    let connection = try await Connection.connect(endpoint)
                    defer { connection.close() }
                    return try await connection.run { try $0.query("SELECT pg_advisory_lock_shared($1::bigint), 7", key).first?.int(1) ?? 0 }
                }
            }
            var sum = 0
            for try await value in group { sum += value }
            return sum
        }
        var waiting = 0
        for _ in 0..<600 where waiting < waiters {  // up to 60 s on a loaded machine
            waiting = try gate.query("""
                SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1::bigint
                """, key).first?.int(0) ?? 0
            if waiting < waiters { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(waiting == waiters)
        try gate.query("SELECT pg_advisory_unlock($1::bigint)", key)
        #expect(try await total == 7 * waiters)
    }
}
