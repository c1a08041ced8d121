import Foundation
import LocalServers
import PostgresClient
import Testing
import TestSupport

/// `Connection.connect` (async): the non-blocking connect loop, its cancellation, and that it
/// classifies failures and honours connect_timeout as libpq's blocking connect does.
@Suite struct AsyncConnectTests {
    private func failure(_ conninfo: String) async throws -> ConnectionFailure {
        do {
            let connection = try await Connection.connect(ConnectionString(conninfo), connectTimeout: 3)
            connection.close()
        } catch let failure as ConnectionFailure {
            return failure
        }
        throw ClientError("connection unexpectedly succeeded")
    }

    /// Waits (bounded) until `condition` holds.
    private func eventually(_ seconds: Double = 60, _ condition: () -> Bool) async throws -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        return condition()
    }

    @Test func cancellingAConnectToAServerThatNeverAnswersEndsItWithAClearError() async throws {
        let hung = try HungListener()
        defer { hung.stop() }
        let endpoint = try ConnectionString("host=127.0.0.1 port=\(hung.port) user=postgres connect_timeout=900")
        let attempt = Task { try await Connection.connect(endpoint) }
        #expect(try await eventually { hung.acceptedCount == 1 }, "the attempt never reached the listener")
        #expect(hung.openConnections == 1)  // waiting for the server's answer
        attempt.cancel()
        // Not a speed bound: without cancellation this would wait for the 900 s timeout.
        let outcome = try await withThrowingTaskGroup(of: Result<Connection, any Error>?.self) { group in
            group.addTask { await attempt.result }
            group.addTask { try await Task.sleep(nanoseconds: 120_000_000_000); return nil }
            defer { group.cancelAll() }
            return try await group.next()!
        }
        let result = try #require(outcome, "the cancelled connect was still waiting 120 s later")
        guard case .failure(let error) = result else { Issue.record("a hung listener accepted a session"); return }
        let failure = try #require(error as? ConnectionFailure, "\(error)")
        #expect(failure.cause == .other)
        #expect(failure.description == "could not connect to postgres@127.0.0.1:\(hung.port)/postgres: connection to server at \"127.0.0.1\", port \(hung.port) failed: connection attempt cancelled (the caller stopped waiting)")
        // The abandoned attempt let go of its socket (and so of its thread), not at its timeout.
        #expect(try await eventually { hung.openConnections == 0 }, "the cancelled attempt still holds its connection")
    }

    @Test func aConnectAlreadyCancelledDoesNotConnect() async throws {
        let hung = try HungListener()
        defer { hung.stop() }
        let endpoint = try ConnectionString("host=127.0.0.1 port=\(hung.port) user=postgres")
        let attempt = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await Connection.connect(endpoint)
        }
        await #expect(throws: ConnectionFailure.self) { try await attempt.value }
        #expect(hung.acceptedCount == 0)
    }

    @Test func connectTimeoutExpiresWithLibpqsMessageAndItsTwoSecondMinimum() async throws {
        let hung = try HungListener()
        defer { hung.stop() }
        let started = Date()
        let f = try await failure("host=127.0.0.1 port=\(hung.port) user=postgres connect_timeout=1")
        #expect(f.cause == .timeout)
        #expect(f.message == "connection to server at \"127.0.0.1\", port \(hung.port) failed: timeout expired")
        #expect(Date().timeIntervalSince(started) >= 1.9)  // libpq waits at least 2 s, whatever the setting
    }

    @Test func aHungFirstHostTimesOutAndTheNextHostConnects() async throws {
        // libpq's failover: the timeout applies per host, then the next host is tried.
        let hung = try HungListener()
        defer { hung.stop() }
        let connection = try await Connection.connect(
            ConnectionString("host=127.0.0.1,127.0.0.1 port=\(hung.port),\(TestServers.pg15.port) user=postgres dbname=postgres connect_timeout=2"))
        defer { connection.close() }
        #expect(try connection.query("SELECT 1").first?.string(0) == "1")
        #expect(hung.acceptedCount == 1)
    }

    @Test(arguments: TestServers.majors)
    func aNormalConnectOpensASession(major: Int) async throws {
        let server = TestServers.server(major: major)
        let connection = try await Connection.connect(ConnectionString(server.connectionString()), applicationName: "async-connect-test")
        defer { connection.close() }
        #expect(connection.isHealthy)
        #expect(connection.serverVersionNumber / 10_000 == major)
        #expect(try connection.query("SELECT current_setting('application_name')").first?.string(0) == "async-connect-test")
    }

    @Test func closedPortIsRefused() async throws {
        let port = try LocalServer.freePort()
        let f = try await failure("host=127.0.0.1 port=\(port) user=postgres dbname=postgres")
        #expect(f.cause == .connectionRefused)
        #expect(f.message.hasPrefix("connection to server at \"127.0.0.1\", port \(port) failed: Connection refused"))
    }

    @Test func unresolvableHostAndMissingDatabase() async throws {
        #expect(try await failure("host=nonexistent.invalid port=5432 user=postgres").cause == .hostNotResolved)
        #expect(try await failure(TestServers.pg18.connectionString(database: "no_such_db_async")).cause == .databaseMissing)
    }

    @Test func aMalformedTimeoutIsRefusedAsLibpqDoes() async throws {
        let f = try await failure(TestServers.pg15.connectionString() + " connect_timeout=soon")
        #expect(f.message.contains("invalid integer value \"soon\" for connection option \"connect_timeout\""))
    }
}
