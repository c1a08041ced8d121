import ArgumentParser
import Foundation
import Migration
import PostgresClient
import Reports
import Validation

/// `pgpreflight verify`: compares a source and a target at any time, with no migration state.
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare a source and a target: definitions, comments, roles, privileges, database properties, contents.",
        discussion: """
            Compares roles (once), then per database the definitions of every object as the catalogs print them, \
            comments and security labels, owners and privileges, database properties, extensions, sequences, \
            large-object contents, and row counts (with --checksums, contents) of tables and materialized views. \
            Differences that are only the version change (PostgreSQL 16+ printing views without table prefixes, \
            MAINTAIN on 17+) are not reported. Read-only on both servers.
            Exit codes: 0 identical, 1 something differs, 2 the tool could not do its job.
            """)

    @OptionGroup var servers: ServerOptions
    @Flag(help: "Also compare an order-independent checksum of every table (reads every row on both servers).")
    var checksums = false
    @OptionGroup var output: OutputOptions

    func validate() throws { try output.check() }

    func run() async throws {
        let interrupts = InterruptGuard(during: "verify")
        defer { interrupts.stop() }
        let source = try servers.sourceEndpoint()
        let target = try servers.targetEndpoint()
        let started = Date()
        let databases = try await servers.selectedDatabases()
        let verifier = Verifier(source: source, target: target, checksums: checksums)
        var results = await verifier.verifyRoles()
        let targetNames = try servers.targetNames()
        for database in databases { results += await verifier.verify(database: database, targetDatabase: targetNames[database]) }
        let run = ValidationRun(mode: .offline, startedAt: started, finishedAt: Date(),
                                source: await ServerInfo.describe(source), target: await ServerInfo.describe(target),
                                databases: databases, results: results)
        try output.emit(run)
        if run.status == .failed || (output.strict && run.status == .warning) { throw ExitCode(1) }
    }
}
