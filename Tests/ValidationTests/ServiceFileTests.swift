import Foundation
import LocalServers
import Testing
import TestSupport

/// `service=name` (pg_service.conf): libpq picks host and port from the file, so reports and
/// remedies must name the server libpq reached, not the string's defaults (localhost:5432).
extension CLITests {
    @Test func aServiceFileConnectionNamesTheServerLibpqReached() throws {
        let rules = try connectivityOnlyRules()
        let closed = try LocalServer.freePort()
        let port = TestServers.pg15.port
        let serviceFile = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-services-\(UUID().uuidString).conf")
        defer { try? FileManager.default.removeItem(at: serviceFile) }
        try """
            [pgpf_reachable]
            host=127.0.0.1
            port=\(port)
            user=postgres
            dbname=postgres

            [pgpf_closed]
            host=127.0.0.1
            port=\(closed)
            user=postgres
            connect_timeout=2
            """.write(to: serviceFile, atomically: true, encoding: .utf8)
        let environment = ["PGPREFLIGHT_RULES": rules.path, "PGSERVICEFILE": serviceFile.path, "GITHUB_ACTIONS": "false"]
        let (code, output) = try pgpreflight(["validate", "--source", "service=pgpf_reachable", "--target", "service=pgpf_closed",
                                              "--database", "postgres", "--format", "console", "--color", "never", "--all"], environment: environment)
        #expect(code == 1, "\(output)")
        #expect(output.contains("Connected to postgres@127.0.0.1:\(port)/postgres"), "\(output)")
        // The report's header: both servers as libpq reached them.
        #expect(output.hasPrefix("postgres@127.0.0.1:\(port) (PostgreSQL ") && output.contains("→ postgres@127.0.0.1:\(closed),"), "\(output)")
        // The refused target: message and remedy name the service's host and port.
        #expect(output.contains("127.0.0.1:\(closed) refused the connection"), "\(output)")
        #expect(output.contains("runs on 127.0.0.1 port \(closed)"), "\(output)")
        #expect(!output.contains("5432"), "\(output)")
    }
}
