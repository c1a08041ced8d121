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
    @Option(help: ArgumentHelp("Report format: console, json, junit, markdown or html.", valueName: "format"))
    var format: String = "console"
    @Option(help: ArgumentHelp("Write the report to this file instead of standard output.", valueName: "file"))
    var output: String?
    @Flag(help: "Warnings count as failures (exit code 1).")
    var strict = false
    @Flag(help: .hidden) var printStatistics = false

    func validate() throws {
        guard ReportFormat(rawValue: format) != nil else {
            throw ValidationError("unknown format '\(format)' (use \(ReportFormat.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
    }

    func run() async throws {
        let reportFormat = ReportFormat(rawValue: format)!
        let request = ValidationRequest(
            source: try servers.sourceEndpoint(), target: try servers.targetEndpoint(),
            databases: servers.databases.isEmpty ? nil : servers.databases, mode: rules.migrationMode,
            overwrite: rules.overwrite, rules: try rules.loadRules())
        let outcome = try await ValidationEngine(request: request).run()
        let colour = output == nil && reportFormat == .console && isatty(STDOUT_FILENO) == 1
        let text = try Reports.render(outcome.run, as: reportFormat, options: ReportOptions(strict: strict, color: colour))
        if let output {
            do { try text.write(toFile: output, atomically: true, encoding: .utf8) }
            catch { throw ValidationError("cannot write \(output): \(error.localizedDescription)") }
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        if printStatistics {
            let stats = outcome.statistics
            let perDatabase = outcome.run.databases.map { "\($0)=\(stats.queriesPerDatabase[$0] ?? 0)" }.joined(separator: " ")
            say("queries: source instance \(stats.instanceQueries[.source] ?? 0), target instance \(stats.instanceQueries[.target] ?? 0); per database: \(perDatabase)")
        }
        let status = outcome.run.status
        if status == .failed || (strict && status == .warning) { throw ExitCode(1) }
    }
}
