import ArgumentParser
import Foundation
import PostgresClient
import Reports
import Validation

/// How a run is reported: shared by `validate`, `verify` and `validate-and-migrate`.
struct OutputOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Report format: \(ReportFormat.allCases.map(\.rawValue).joined(separator: ", ")). The console report "
                               + "wraps its lines at the terminal's width (COLUMNS when set; not wrapped when the output is not a terminal).",
                               valueName: "format"))
    var format: ReportFormat = .console
    @Option(help: ArgumentHelp("Write the report to this file instead of standard output.", valueName: "file"))
    var output: String?
    @Flag(help: "Warnings count as failures (exit code 1).")
    var strict = false
    @Option(help: ArgumentHelp("Colours in the console report: auto (on a terminal, unless NO_COLOR is set or TERM=dumb), always or never.", valueName: "when"))
    var color: ColorChoice = .auto
    @Flag(help: "Console report: list every rule, Succeeded ones too (default: problems first, the Succeeded ones counted in one line).")
    var all = false
    @Option(help: ArgumentHelp("JUnit report: warnings as passing tests with their text (pass, the default) or as <failure type=\"warning\"> "
                               + "(failure; the exit code stays as without --strict).", valueName: "pass|failure"))
    var junitWarnings: JUnitWarnings = .pass
    @OptionGroup var verbosity: VerbosityOptions

    func check() throws {}

    var reportFormat: ReportFormat { format }

    /// Renders the run, writes it, and under GitHub Actions also prints annotation lines.
    func emit(_ run: ValidationRun) throws {
        let colour = reportFormat == .console && (color == .always || (output == nil && color.enabled()))
        let text = try Reports.render(run, as: reportFormat, options: ReportOptions(strict: strict, color: colour, foldSucceeded: !all,
                                                                                    width: TerminalWidth.current(),
                                                                                    junitWarningsAsFailures: junitWarnings == .failure))
        if let output {
            try writeReport(text, to: output)
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        if ProcessInfo.processInfo.environment["GITHUB_ACTIONS"] == "true" {
            let annotations = GitHubAnnotations.render(run)
            if !annotations.isEmpty { FileHandle.standardOutput.write(Data(annotations.utf8)) }
        }
    }

    /// 0 nothing Failed (with --strict nothing Warning either), 1 otherwise.
    func exitIfFailed(_ run: ValidationRun) throws {
        if run.status == .failed || (strict && run.status == .warning) { throw ExitCode(1) }
    }
}

/// A team's policy: `.pgpreflight.yaml` (or `--config FILE`) and `--rule-severity` flags.
struct PolicyOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: ArgumentHelp("Policy file (default: .pgpreflight.yaml in the working directory, if present).", valueName: "file"))
    var config: String?
    @Option(name: .customLong("rule-severity"), help: ArgumentHelp("Override a rule's severity: ID=failed|warning|off (repeatable; wins over the file).", valueName: "id=severity"))
    var ruleSeverities: [String] = []

    func load(rules: [Rule]) throws -> Policy {
        let known = Set(rules.map(\.id))
        var policy = Policy()
        let defaultFile = URL(fileURLWithPath: ".pgpreflight.yaml")
        if let config {
            guard FileManager.default.fileExists(atPath: config) else { throw ValidationError("--config \(config): no such file") }
            policy = try wrap { try Policy.load(file: URL(fileURLWithPath: config), knownRules: known) }
        } else if FileManager.default.fileExists(atPath: defaultFile.path) {
            policy = try wrap { try Policy.load(file: defaultFile, knownRules: known) }
        }
        try wrap { try policy.applySeverityFlags(ruleSeverities, knownRules: known) }
        return policy
    }

    private func wrap<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as PolicyError { throw ValidationError(error.description) }
    }
}

extension ServerOptions {
    /// The databases given with --database, else the one the source URI names, else the
    /// default selection (DatabaseSelection, as validate and migrate).
    func selectedDatabases() async throws -> [String] {
        if let given = try givenDatabases() { return given }
        let connection = try await Connection.connect(try sourceEndpoint())
        defer { connection.close() }
        return try await connection.run { try DatabaseSelection.read(from: $0, given: nil).selected }
    }
}

extension ServerInfo {
    /// Host, port, user and server version (when the server answers); never a password.
    static func describe(_ endpoint: ConnectionString) async -> ServerInfo {
        var info = ServerInfo(host: endpoint.host, port: endpoint.port, user: endpoint.user, serverVersion: nil)
        if let connection = try? await Connection.connect(endpoint) {
            let reached = connection.reached  // a service file may name another host than the string
            info.host = reached.host; info.port = reached.port; info.user = reached.user ?? info.user
            info.serverVersion = connection.parameterStatus("server_version")
            connection.close()
        }
        return info
    }
}

/// Writes a report file, or throws one clear line (a directory, a missing folder, no permission).
func writeReport(_ text: String, to path: String) throws {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
        throw ValidationError("cannot write \(path): it is a directory; give a file name")
    }
    let file = URL(fileURLWithPath: path)
    // A device (/dev/null, /dev/stdout), a FIFO or a symbolic link is written through: an
    // atomic write renames a new file over it (as root it replaced /dev/null with a file).
    var info = stat()
    if lstat(path, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
        let descriptor = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard descriptor >= 0 else { throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))") }
            written += n
        }
        return
    }
    do { try Data(text.utf8).write(to: file, options: .atomic) }
    catch {
        let folder = file.deletingLastPathComponent().path
        let reason = !FileManager.default.fileExists(atPath: folder) ? "the folder \(folder) does not exist"
            : !FileManager.default.isWritableFile(atPath: folder) ? "no permission to write in \(folder)" : "\(error.localizedDescription)"
        throw ValidationError("cannot write \(path): \(reason)")
    }
}

/// `--junit-warnings`: how the JUnit report shows warnings.
enum JUnitWarnings: String, CaseIterable, ExpressibleByArgument { case pass, failure }

/// How wide the console report may be: COLUMNS when set, else the terminal's width; nil (no
/// limit) when standard output is not a terminal: a file, a pipe or a CI log keeps whole lines,
/// for grep and for viewers that wrap them themselves.
enum TerminalWidth {
    static func current() -> Int? {
        if let text = ProcessInfo.processInfo.environment["COLUMNS"], let columns = Int(text), columns > 0 { return columns }
        var size = winsize()
        if isatty(STDOUT_FILENO) == 1, ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return nil
    }
}
