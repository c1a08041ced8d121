import ArgumentParser
import Foundation
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
    @Flag(help: .hidden) var printStatistics = false

    func run() async throws {
        let (run, statistics) = try await Self.validate(servers: servers, rules: rules, policy: policy)
        try output.emit(run)
        if printStatistics {
            let perDatabase = run.databases.map { "\($0)=\(statistics.queriesPerDatabase[$0] ?? 0)" }.joined(separator: " ")
            say("queries: source instance \(statistics.instanceQueries[.source] ?? 0), target instance \(statistics.instanceQueries[.target] ?? 0); per database: \(perDatabase)")
        }
        try output.exitIfFailed(run)
    }

    /// Loads the rules and the policy (a bad file is exit 2 before any connection), validates,
    /// and applies the policy. Shared by `validate`, `baseline` and `validate-and-migrate`.
    static func validate(servers: ServerOptions, rules: RuleOptions, policy: PolicyOptions) async throws
        -> (ValidationRun, ValidationStatistics) {
        let loaded = try rules.loadRules()
        let teamPolicy = try policy.load(rules: loaded)
        let request = ValidationRequest(
            source: try servers.sourceEndpoint(), target: try servers.targetEndpoint(),
            databases: servers.databases.isEmpty ? nil : servers.databases, mode: rules.migrationMode,
            overwrite: rules.overwrite, rules: loaded)
        let outcome = try await ValidationEngine(request: request).run()
        return (teamPolicy.apply(to: outcome.run), outcome.statistics)
    }
}
