import Foundation
import LocalServers
import PostgresClient
import Testing
import TestSupport

/// A child tool (pg_dump) reaches a password-protected server with no secret on its command
/// line or in its environment, and the private files are gone afterwards.
struct ToolConnectionTests {
    @Test func secretsReachTheToolThroughPrivateFilesOnly() throws {
        let bin = TestServers.pg18.binDirectory
        let server = try LocalServer(major: 18, binDirectory: bin, settings: ["password_encryption = 'scram-sha-256'"],
                                     hbaLines: ["host all guarded 127.0.0.1/32 scram-sha-256"], name: "tool")
        defer { server.stop() }
        let secret = "p:ss\\word with 'quotes'"
        try server.psql("CREATE ROLE guarded LOGIN PASSWORD 'p:ss\\word with ''quotes'''")
        let endpoint = try ConnectionString(server.connectionString(user: "guarded") + " password='p:ss\\\\word with \\'quotes\\'' sslpassword=ssl-secret-123")
        let tool = try endpoint.toolConnection(database: "postgres")
        defer { tool.remove() }
        #expect(!tool.conninfo.contains(secret) && !tool.conninfo.contains("ssl-secret-123"))
        for (key, value) in tool.environment {
            #expect(!value.contains(secret) && !value.contains("ssl-secret-123"), "secret in the child's environment: \(key)")
        }
        #expect(tool.environment["PGPASSWORD"] == nil)
        let passfile = try #require(tool.environment["PGPASSFILE"])
        let mode = try FileManager.default.attributesOfItem(atPath: passfile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // The real tool connects with it.
        let output = try LocalServer.run([bin.appendingPathComponent("psql").path, "-X", "-At", "-c", "SELECT current_user", tool.conninfo],
                                         environment: tool.environment)
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines) == "guarded")
        tool.remove()
        #expect(!FileManager.default.fileExists(atPath: passfile))
    }
}
