import ArgumentParser
import Foundation
import Migration
import Validation

/// `pgpreflight baseline`: writes today's findings so that CI fails only on new ones.
struct BaselineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baseline",
        abstract: "Write the current findings as a baseline: with `baseline:` in .pgpreflight.yaml, only new findings fail.")

    @OptionGroup var servers: ServerOptions
    @OptionGroup var rules: RuleOptions
    @OptionGroup var policy: PolicyOptions
    @Option(help: ArgumentHelp("Where to write the baseline (JSON).", valueName: "file"))
    var output: String

    func run() async throws {
        let interrupts = InterruptGuard(during: "validation")
        defer { interrupts.stop() }
        let (run, _) = try await Validate.validate(servers: servers, rules: rules, policy: policy)
        // A run that could not reach a server has no findings for it: as a baseline it would
        // accept everything later runs find there.
        let unreachable = run.results.filter { $0.rule.hasPrefix("connectivity.") && $0.status == .failed }
        guard unreachable.isEmpty else {
            throw ValidationError("no baseline written: \(unreachable.map { "\($0.rule): \($0.message)" }.joined(separator: "; "))")
        }
        let baseline = Baseline(run: run)
        try writeReport(baseline.encoded(), to: output)
        say("baseline: \(baseline.findings.count) findings written to \(output)")
    }
}
