import ArgumentParser
import Foundation
import PostgresClient
import Validation

/// The servers and databases of a validation or migration (`validate`, `migrate`, …).
struct ServerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The source server: a libpq connection string or URI.", valueName: "uri"))
    var source: String
    @Option(help: ArgumentHelp("The target server: a libpq connection string or URI.", valueName: "uri"))
    var target: String
    @Option(name: [.customShort("d"), .customLong("database")],
            help: ArgumentHelp("A database to validate (repeat for several; default: every source database except "
                               + "template0, template1, postgres, azure_maintenance, azure_sys).", valueName: "name"))
    var databases: [String] = []

    func sourceEndpoint() throws -> ConnectionString { try endpoint(source, "--source") }
    func targetEndpoint() throws -> ConnectionString { try endpoint(target, "--target") }

    private func endpoint(_ text: String, _ option: String) throws -> ConnectionString {
        do { return try ConnectionString(text) } catch { throw ValidationError("\(option): \(error)") }
    }
}

/// Which rules run, and how: shared by `validate`, `migrate` and `validate-and-migrate`.
struct RuleOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Migration mode: offline or online.", valueName: "mode"))
    var mode: MigrationMode = .offline
    @Option(name: .customLong("rules"), help: ArgumentHelp("A folder of extra rule files (repeatable).", valueName: "dir"))
    var ruleDirectories: [String] = []
    @Flag(help: "Databases that already exist on the target will be overwritten.")
    var overwrite = false

    var migrationMode: MigrationMode { mode }

    /// The shipped rules and the extra folders; a bad file is an error (exit 2).
    func loadRules() throws -> [Rule] {
        try RuleLoader.load(directories: ValidationRequest.ruleDirectories(extra: ruleDirectories.map { URL(fileURLWithPath: $0) }))
    }
}
