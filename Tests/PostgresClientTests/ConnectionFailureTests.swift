import Foundation
import LocalServers
import PostgresClient
import Testing
import TestSupport

@Suite struct ConnectionFailureTests {
    private func failure(_ conninfo: String) throws -> ConnectionFailure {
        do {
            let connection = try Connection.open(ConnectionString(conninfo), connectTimeout: 3)
            connection.close()
        } catch let failure as ConnectionFailure {
            return failure
        }
        throw ClientError("connection unexpectedly succeeded")
    }

    @Test func closedPortIsRefused() throws {
        let port = try LocalServer.freePort()
        let f = try failure("host=127.0.0.1 port=\(port) user=postgres dbname=postgres")
        #expect(f.cause == .connectionRefused)
    }

    @Test func unresolvableHost() throws {
        let f = try failure("host=nonexistent.invalid port=5432 user=postgres")
        #expect(f.cause == .hostNotResolved)
    }

    @Test(arguments: TestServers.majors)
    func missingDatabase(major: Int) throws {
        let server = TestServers.server(major: major)
        let f = try failure(server.connectionString(database: "no_such_db_\(major)"))
        #expect(f.cause == .databaseMissing)
    }

    @Test(arguments: TestServers.majors)
    func hbaRejectLineAndWrongPassword(major: Int) async throws {
        // A server of its own, because pg_hba.conf changes would disturb parallel tests.
        guard let bin = LocalServer.binDirectory(major: major, projectRoot: TestServers.projectRoot) else {
            Issue.record("no PostgreSQL \(major)"); return
        }
        let server = try LocalServer(major: major, binDirectory: bin, settings: ["password_encryption = 'scram-sha-256'"],
                                     hbaLines: ["host all blocked 127.0.0.1/32 reject",
                                                "host all secretive 127.0.0.1/32 scram-sha-256"], name: "hba")
        defer { server.stop() }
        try server.psql("CREATE ROLE blocked LOGIN; CREATE ROLE secretive LOGIN PASSWORD 'right-horse-battery'")

        let rejected = try failure(server.connectionString(user: "blocked"))
        #expect(rejected.cause == .rejectedByHBA)

        let secret = "wrong-staple-guess"
        let wrong = try failure(server.connectionString(user: "secretive", password: secret))
        #expect(wrong.cause == .wrongPassword)
        #expect(!wrong.description.contains(secret))
        #expect(!String(describing: wrong).contains(secret))

        let uriFailure = try failure("postgresql://secretive:\(secret)@127.0.0.1:\(server.port)/postgres")
        #expect(uriFailure.cause == .wrongPassword)
        #expect(!uriFailure.description.contains(secret))

        // The async connect (the validation engine's) classifies and redacts the same way.
        do {
            _ = try await Connection.connect(ConnectionString(server.connectionString(user: "secretive", password: secret)))
            Issue.record("a wrong password connected")
        } catch let failure as ConnectionFailure {
            #expect(failure.cause == .wrongPassword)
            #expect(failure.message == wrong.message)
            #expect(!failure.description.contains(secret))
        }
        let asyncOK = try await Connection.connect(ConnectionString(server.connectionString(user: "secretive", password: "right-horse-battery")))
        #expect(try asyncOK.query("SELECT current_user").first?.string(0) == "secretive")
        asyncOK.close()

        let ok = try Connection.open(ConnectionString(server.connectionString(user: "secretive", password: "right-horse-battery")))
        #expect(try ok.query("SELECT current_user").first?.string(0) == "secretive")
        ok.close()
    }

    @Test(arguments: TestServers.majors)
    func tooManyConnections(major: Int) throws {
        guard let bin = LocalServer.binDirectory(major: major, projectRoot: TestServers.projectRoot) else { return }
        let server = try LocalServer(major: major, binDirectory: bin, name: "full")
        defer { server.stop() }
        try server.reconfigure(["max_connections = 3", "superuser_reserved_connections = 0", "reserved_connections = 0"].filter {
            major >= 16 || !$0.hasPrefix("reserved_connections")
        })
        var held: [Connection] = []
        defer { held.forEach { $0.close() } }
        for _ in 0..<3 { held.append(try Connection.open(ConnectionString(server.connectionString()))) }
        let f = try failure(server.connectionString())
        #expect(f.cause == .tooManyConnections)
    }

    @Test func sslRequestedFromServerWithoutSSL() throws {
        let f = try failure(TestServers.pg15.connectionString() + " sslmode=require")
        #expect(f.cause == .sslUnavailable)
    }

    @Test func malformedConnectionStringIsAClientErrorWithoutTheSecret() {
        do {
            _ = try ConnectionString("host=x password=hunter2hunter 'unterminated")
            Issue.record("expected an error")
        } catch {
            #expect(!"\(error)".contains("hunter2hunter"))
            #expect("\(error)".contains("malformed connection string"))
        }
    }

    @Test func endpointDescriptionNeverShowsPassword() throws {
        let endpoint = try ConnectionString("postgresql://alice:s3cr3t-pass@db.example.com:6432/shop?sslmode=require")
        #expect(endpoint.description == "alice@db.example.com:6432/shop")
        #expect(endpoint.with(database: "billing").description == "alice@db.example.com:6432/billing")
    }
}
