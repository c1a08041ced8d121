import ArgumentParser
import Foundation
import Migration
import PostgresClient
import Reports
import Validation

/// `pgpreflight validate-and-migrate NAME …`: validation for the chosen mode first; any Failed
/// rule stops the migration as `ValidationFailed`, with the report written next to the state.
struct ValidateAndMigrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate-and-migrate",
        abstract: "Validate for the chosen mode, then migrate only if nothing Failed.",
        discussion: "Exit codes: 0 Succeeded, 1 ValidationFailed, Failed or Canceled, 2 bad input.")

    @OptionGroup var migration: MigrationArguments
    @Option(name: .customLong("rules"), help: ArgumentHelp("A folder of extra rule files (repeatable).", valueName: "dir"))
    var ruleDirectories: [String] = []
    @OptionGroup var policy: PolicyOptions
    @Flag(inversion: .prefixedNo, help: "Restore the schema into a scratch database on the target first and stop if the target refuses any object (the scratch database is dropped).")
    var dryRunSchema = true

    func run() async throws {
        let options: MigrationOptions
        do { options = try migration.makeOptions() } catch let error as MigrationUsageError { throw ValidationError(error.description) }
        guard MigrationOptions.isValidName(options.name) else {
            throw ValidationError("invalid migration name '\(options.name)': use letters, digits and '-', not starting with '-'")
        }
        let rules = try RuleLoader.load(directories: try ValidationRequest.ruleDirectories(extra: ruleDirectories.map { URL(fileURLWithPath: $0) }))
        let teamPolicy = try policy.load(rules: rules)
        let store: StateStore
        do { store = try StateStore(directory: options.stateDirectory) } catch { throw ValidationError("cannot open the state store in \(options.stateDirectory.path): \(error)") }

        // Until the migrator starts (it records Interrupted and resumes): nothing to keep.
        let interrupts = InterruptGuard(during: dryRunSchema ? "validation (and its schema dry run)" : "validation")
        defer { interrupts.stop() }
        say("validating \(options.source) → \(options.target) for an \(options.mode.rawValue) migration")
        let request = ValidationRequest(source: options.source, target: options.target,
                                        databases: options.databases.isEmpty ? nil : options.databases,
                                        mode: options.mode, overwrite: options.overwrite, rules: rules)
        var validated = try await ValidationEngine(request: request).run().run
        if dryRunSchema { validated = await Validate.withSchemaDryRun(validated, source: options.source, target: options.target, pgBin: options.pgBin) }
        let run = teamPolicy.apply(to: validated)
        let reportBase = options.stateDirectory.appendingPathComponent("\(options.name)-validation")
        try Reports.render(run, as: .json).write(to: reportBase.appendingPathExtension("json"), atomically: true, encoding: .utf8)
        try Reports.render(run, as: .html).write(to: reportBase.appendingPathExtension("html"), atomically: true, encoding: .utf8)
        show(try Reports.render(run, as: .console, options: ReportOptions(color: ColorChoice.auto.enabled(), foldSucceeded: true, width: TerminalWidth.current())))

        if run.status == .failed {
            let message = "validation failed: \(run.results.filter { $0.blockingStatus == .failed }.count) rule(s) Failed; report: \(reportBase.path).html"
            try store.record(name: options.name, state: .validationFailed, substate: .validationInProgress, mode: options.mode.rawValue,
                             source: options.source.description, target: options.target.description, message: message)
            print("migration \(options.name): ValidationFailed — \(message)")
            throw ExitCode(1)
        }
        say("validation passed (report: \(reportBase.path).html); migrating")
        interrupts.stop()
        try await Migrate.migrate(options)
    }
}
