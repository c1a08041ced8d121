import ArgumentParser
import Foundation
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
        let (run, _) = try await Validate.validate(servers: servers, rules: rules, policy: policy)
        let baseline = Baseline(run: run)
        do { try baseline.encoded().write(toFile: output, atomically: true, encoding: .utf8) }
        catch { throw ValidationError("cannot write \(output): \(error.localizedDescription)") }
        say("baseline: \(baseline.findings.count) findings written to \(output)")
    }
}
