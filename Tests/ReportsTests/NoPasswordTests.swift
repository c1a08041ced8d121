import Foundation
import PostgresClient
import Reports
import TestSupport
import Testing
import Validation

/// Reports are built from what the engine knows about a connection; a user checks that the
/// password they gave never comes out in any format.
@Test func noFormatContainsThePassword() throws {
    let server = TestServers.pg15
    let password = "Pw-\(UUID().uuidString.prefix(12))"
    let role = "report_user_\(ProcessInfo.processInfo.processIdentifier)"
    let admin = try TestServers.connect(server)
    defer { admin.close() }
    try admin.execute("DROP ROLE IF EXISTS \(try admin.quoteIdentifier(role)); "
                      + "CREATE ROLE \(try admin.quoteIdentifier(role)) LOGIN PASSWORD \(try admin.quoteLiteral(password))")
    defer { try? admin.execute("DROP ROLE IF EXISTS \(try admin.quoteIdentifier(role))") }

    let endpoint = try ConnectionString(server.connectionString(user: role, password: password))
    let connection = try Connection.open(endpoint)
    defer { connection.close() }
    let user = try #require(try connection.query("SELECT current_user").rows.first?.string(0))
    let info = ServerInfo(host: endpoint.host, port: endpoint.port, user: endpoint.user, serverVersion: connection.serverVersion)
    let now = Date()
    let run = ValidationRun(
        mode: .online, startedAt: now, finishedAt: Date(), source: info, target: info, databases: ["postgres"],
        results: [
            RuleResult(rule: "connectivity.source", title: "The source server accepts connections", scope: .instance,
                       database: nil, status: .succeeded, message: "Connected to \(endpoint) as \(user)", remedy: "",
                       objects: [], startedAt: now, finishedAt: Date()),
            RuleResult(rule: "privileges.source-replication", title: "The migration user may replicate", scope: .instance,
                       database: nil, status: .failed, message: "\(user) is neither superuser nor REPLICATION",
                       remedy: "ALTER ROLE \(try admin.quoteIdentifier(user)) WITH REPLICATION;", objects: [user],
                       startedAt: now, finishedAt: Date()),
        ])
    for format in ReportFormat.allCases {
        for strict in [false, true] {
            let text = try Reports.render(run, as: format, options: ReportOptions(strict: strict, color: true))
            #expect(text.contains(role), "\(format) names the user")
            #expect(!text.contains(password), "\(format) contains the password")
        }
    }
}
