import ArgumentParser
import Foundation
import Migration
import PostgresClient
import Reports
import Validation

/// `pgpreflight validate`: every applicable rule on the source and target, as a report.
struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check whether the source databases can move to the target, without changing either.",
        discussion: "Exit codes: 0 nothing Failed (with --strict, nothing Warning either), 1 something Failed, 2 the tool could not do its job.")

    @OptionGroup var servers: ServerOptions
    @OptionGroup var rules: RuleOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var policy: PolicyOptions
    @Flag(help: "Also restore the source's schema (no data) into a scratch database on the target, list every object the target refuses, and drop the scratch database. Writes that database only; needs CREATEDB on the target.")
    var dryRunSchema = false
    @Option(help: "Directory holding pg_dump and pg_restore for the dry run (default: the newest found).")
    var pgBin: String?
    @Flag(help: .hidden) var printStatistics = false

    func run() async throws {
        let interrupts = InterruptGuard(during: dryRunSchema ? "validation (and its schema dry run)" : "validation")
        defer { interrupts.stop() }
        let (run, statistics) = try await Self.validate(servers: servers, rules: rules, policy: policy,
                                                        dryRunSchema: dryRunSchema, pgBin: pgBin.map { URL(fileURLWithPath: $0) })
        try output.emit(run)
        if printStatistics {
            let perDatabase = run.databases.map { "\($0)=\(statistics.queriesPerDatabase[$0] ?? 0)" }.joined(separator: " ")
            say("queries: source instance \(statistics.instanceQueries[.source] ?? 0), target instance \(statistics.instanceQueries[.target] ?? 0); per database: \(perDatabase)")
        }
        try output.exitIfFailed(run)
    }

    /// Loads the rules and the policy (a bad file is exit 2 before any connection), validates,
    /// and applies the policy. Shared by `validate`, `baseline` and `validate-and-migrate`.
    static func validate(servers: ServerOptions, rules: RuleOptions, policy: PolicyOptions,
                         dryRunSchema: Bool = false, pgBin: URL? = nil) async throws
        -> (ValidationRun, ValidationStatistics) {
        let loaded = try rules.loadRules()
        let teamPolicy = try policy.load(rules: loaded)
        var request = ValidationRequest(
            source: try servers.sourceEndpoint(), target: try servers.targetEndpoint(),
            databases: try servers.givenDatabases(), mode: rules.migrationMode,
            overwrite: rules.overwrite, rules: loaded)
        request.targetNames = try servers.targetNames()
        var outcome = try await ValidationEngine(request: request).run()
        if dryRunSchema { outcome.run = await withSchemaDryRun(outcome.run, source: request.source, target: request.target, pgBin: pgBin) }
        return (teamPolicy.apply(to: outcome.run), outcome.statistics)
    }

    /// Adds the schema dry run's result per database, when both servers could be reached.
    static func withSchemaDryRun(_ run: ValidationRun, source: ConnectionString, target: ConnectionString, pgBin: URL?) async -> ValidationRun {
        guard !run.results.contains(where: { $0.rule.hasPrefix("connectivity.") && $0.status == .failed }) else { return run }
        var run = run
        for database in run.databases {
            say("dry run of \(database)'s schema on the target")
            let result = await withCheckedContinuation { continuation in
                Thread { continuation.resume(returning: SchemaDryRun.run(source: source, target: target, database: database, pgBin: pgBin)) }.start()
            }
            run.results.append(result)
        }
        return run
    }
}
