import ArgumentParser
import Foundation
import PostgresClient
import Validation

/// The servers and databases of a validation or migration (`validate`, `migrate`, …).
struct ServerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The source server: a libpq connection string or URI. A URI that names a database "
                               + "(…/shop, dbname=shop) means that database, as with psql; naming postgres only says where to connect.",
                               valueName: "uri"))
    var source: String
    @Option(help: ArgumentHelp("The target server: a libpq connection string or URI. When the source names a database, "
                               + "a database named here is the one it is compared with (…/shop_copy).", valueName: "uri"))
    var target: String
    @Option(name: [.customShort("d"), .customLong("database")],
            help: ArgumentHelp("A database (repeat for several; it wins over a database the --source URI names; default: the one "
                               + "the --source URI names, else every source database except template0, template1, postgres, "
                               + "azure_maintenance, azure_sys).", valueName: "name"))
    var databases: [String] = []

    func sourceEndpoint() throws -> ConnectionString { try endpoint(source, "--source") }
    func targetEndpoint() throws -> ConnectionString { try endpoint(target, "--target") }

    /// --database, else the database the source URI names, else nil: the default selection.
    func givenDatabases() throws -> [String]? { DatabaseSelection.given(databases, source: try sourceEndpoint()) }

    /// Source database → target database of another name (`--source …/shop --target …/shop_copy`).
    func targetNames() throws -> [String: String] {
        let source = try sourceEndpoint(), target = try targetEndpoint()
        guard let named = DatabaseSelection.named(in: source) else { return [:] }
        let targetName = DatabaseSelection.targetName(for: named, databases: databases, source: source, target: target)
        return targetName == named ? [:] : [named: targetName]
    }

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
