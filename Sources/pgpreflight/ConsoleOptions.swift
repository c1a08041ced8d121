import ArgumentParser
import Foundation
import Migration
import Reports
import Validation

extension MigrationMode: ExpressibleByArgument {}
extension VerifyMode: ExpressibleByArgument {}
extension ReportFormat: ExpressibleByArgument {}

/// `--color auto|always|never` for the console report.
enum ColorChoice: String, CaseIterable, ExpressibleByArgument, Sendable {
    case auto, always, never

    /// auto: only on a terminal, and not with `NO_COLOR` (https://no-color.org) or `TERM=dumb`.
    func enabled(for descriptor: Int32 = STDOUT_FILENO, environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        switch self {
        case .always: return true
        case .never: return false
        case .auto:
            if let noColor = environment["NO_COLOR"], !noColor.isEmpty { return false }
            if environment["TERM"] == "dumb" { return false }
            return isatty(descriptor) == 1
        }
    }
}

/// `-v/--verbose` and `-q/--quiet`, for every command that runs validations or migrations.
struct VerbosityOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print each worker job's start and end with the time since the run began (the job timeline; same as PGPREFLIGHT_TRACE=1).")
    var verbose = false
    @Flag(name: .shortAndLong, help: "Print only the report and errors: no progress lines.")
    var quiet = false

    func validate() throws {
        if verbose && quiet { throw ValidationError("--verbose and --quiet cannot be used together") }
        // The migrator reads PGPREFLIGHT_TRACE when its first job starts.
        if verbose { setenv("PGPREFLIGHT_TRACE", "1", 1) }
        if quiet { Console.quiet = true }
    }
}

enum Console {
    /// `--quiet`: `say` prints nothing.
    nonisolated(unsafe) static var quiet = false
}

/// `--state-dir`, the same for every command that reads or writes the state store.
struct StateDirectoryOption: ParsableArguments {
    @Option(help: ArgumentHelp("Directory of the state store.", valueName: "dir"))
    var stateDir: String = ".pgpreflight"
}
