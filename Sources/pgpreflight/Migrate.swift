import ArgumentParser
import Foundation
import Migration
import PostgresClient
import Validation

/// `pgpreflight migrate NAME --source URI --target URI …`: the embedded migrator.
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy databases from the source to the target, resumable; online mode streams changes until `cutover`.",
        discussion: """
            Rerun the same command with the same --state-dir to resume after a failure or a crash. \
            Exit codes: 0 Succeeded, 1 Failed or Canceled, 2 bad input.
            """)

    @OptionGroup var migration: MigrationArguments

    func run() async throws {
        let options: MigrationOptions
        do { options = try migration.makeOptions() } catch let error as MigrationUsageError { throw ValidationError(error.description) }
        try await Self.migrate(options)
    }

    /// Runs the migrator, prints its summary and exits with its code.
    static func migrate(_ options: MigrationOptions) async throws -> Never {
        let migrator: Migrator
        do { migrator = try Migrator(options) } catch let error as MigrationUsageError { throw ValidationError(error.description) }
        let outcome = await migrator.run()
        if !outcome.summary.isEmpty { FileHandle.standardError.write(("\n" + outcome.summary).data(using: .utf8)!) }
        var line = "migration \(outcome.name): \(outcome.state.rawValue)"
        if let message = outcome.message { line += " — \(message)" }
        print(line)
        throw ExitCode(outcome.exitCode)
    }
}

/// What `migrate` and `validate-and-migrate` take from the command line.
struct MigrationArguments: ParsableArguments {
    @Argument(help: "Migration name: letters, digits and '-', not starting with '-'.")
    var name: String
    @OptionGroup var servers: ServerOptions
    @Option(help: "offline (default) or online.")
    var mode: MigrationMode = .offline
    @Option(name: .shortAndLong, parsing: .unconditional, help: "Parallel workers (default: the number of cores; lowered to what the servers' free connections allow).")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Drop and recreate target databases that already hold objects.")
    var overwrite = false
    @Flag(help: "Start even while other sessions are connected to a source database.")
    var force = false
    @OptionGroup var state: StateDirectoryOption
    var stateDir: String { state.stateDir }
    @Option(help: "counts (default) or checksums.")
    var verify: VerifyMode = .counts
    @Option(help: "Directory holding pg_dump (default: the newest found).")
    var pgBin: String?
    @Flag(help: "When the target refuses a schema object, restore everything else and end Failed with the list of refused objects (default: stop at the first, naming it).")
    var continueOnError = false
    @Option(help: "Seconds any step waits for a lock on the source or the target before the run fails, naming the session that holds it (0: no limit).")
    var lockTimeout: Int = 300
    @Option(help: "Seconds to wait for another migration running against the same target server to finish before refusing (default 0: refuse at once).")
    var waitForTarget: Int = 0
    @Option(help: "Split a table larger than this many MB into ranges copied in parallel when it dwarfs the rest of the data (more than twice what each other worker copies).")
    var splitTablesLargerThanMb: Int = 256
    @Flag(help: "Online mode: refuse tables without a primary key or replica identity (by default their INSERTs stream and they are copied again at cutover, while writes are stopped).")
    var strictKeys = false
    @OptionGroup var verbosity: VerbosityOptions

    func makeOptions() throws -> MigrationOptions {
        let modeValue = mode, verifyValue = verify
        guard jobs >= 1 else { throw MigrationUsageError("--jobs must be at least 1") }
        let databases = servers.databases
        let sourceString: ConnectionString, targetString: ConnectionString
        do { sourceString = try ConnectionString(servers.source) } catch { throw MigrationUsageError("--source: \(error)") }
        do { targetString = try ConnectionString(servers.target) } catch { throw MigrationUsageError("--target: \(error)") }
        // A source URI naming a database means that database (DatabaseSelection.given); the
        // migrator copies each database under its own name, so a target naming another is refused.
        let selected = DatabaseSelection.given(databases, source: sourceString) ?? []
        if let named = DatabaseSelection.named(in: sourceString), databases.isEmpty,
           case let targetName = DatabaseSelection.targetName(for: named, databases: databases, source: sourceString, target: targetString),
           targetName != named {
            throw MigrationUsageError("--target names database \(targetName), but migrate copies \(named) under its own name: "
                                      + "leave the database out of the --target URI (or name \(named))")
        }
        var options = MigrationOptions(name: name, source: sourceString, target: targetString, databases: selected, mode: modeValue,
                                jobs: jobs, overwrite: overwrite, force: force,
                                stateDirectory: URL(fileURLWithPath: stateDir), verify: verifyValue,
                                pgBin: pgBin.map { URL(fileURLWithPath: $0) },
                                splitThresholdBytes: Int64(max(1, splitTablesLargerThanMb)) << 20,
                                showProgress: !verbosity.quiet)
        options.continueOnError = continueOnError
        guard lockTimeout >= 0 else { throw MigrationUsageError("--lock-timeout must be 0 (no limit) or a number of seconds") }
        options.lockTimeoutSeconds = lockTimeout
        guard waitForTarget >= 0 else { throw MigrationUsageError("--wait-for-target must be 0 (refuse at once) or a number of seconds") }
        options.targetWaitSeconds = waitForTarget
        options.strictKeys = strictKeys
        return options
    }
}

