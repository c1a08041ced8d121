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

    @Test func asyncRunHopsOffTheCooperativePool() async throws {
        let server = TestServers.pg15
        let endpoint = try ConnectionString(server.connectionString())
        // Twenty connections sleeping at once finish in about one sleep, not twenty.
        let start = Date()
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    let connection = try await Connection.connect(endpoint)
                    defer { connection.close() }
                    return try await connection.run { try $0.query("SELECT pg_sleep(0.3), 7").first?.int(1) ?? 0 }
                }
            }
            var total = 0
            for try await value in group { total += value }
            #expect(total == 140)
        }
        #expect(Date().timeIntervalSince(start) < 5)
    }
}
