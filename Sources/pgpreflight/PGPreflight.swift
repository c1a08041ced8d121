import ArgumentParser
import Foundation
import Validation

@main
struct PGPreflight: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgpreflight",
        abstract: "Tells whether a PostgreSQL database can move to a managed server, and moves it.",
        discussion: "Exit codes: 0 nothing Failed, 1 something Failed, 2 the tool could not do its job.",
        version: versionText,
        subcommands: [Validate.self, RulesCommand.self, Migrate.self, ValidateAndMigrate.self, Status.self, Cutover.self, Cancel.self, Verify.self,
                      BaselineCommand.self, Scan.self, Demo.self])

    /// Exit codes as docs/design.md says: usage errors and anything the tool cannot do are 2
    /// (ArgumentParser's default for usage errors is 64), with one line on standard error.
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments == ["-V"] {
            print(versionText)
            Foundation.exit(0)
        }
        do {
            var command: ParsableCommand
            do { command = try parseAsRoot(arguments) } catch {
                // A mistyped command or option: say which, and the nearest known name.
                if exitCode(for: error) != .success, let diagnosis = Suggestions.diagnose(arguments) {
                    FileHandle.standardError.write(Data("pgpreflight: \(diagnosis)\n".utf8))
                    Foundation.exit(2)
                }
                throw error
            }
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))  // --help, --version
                Foundation.exit(0)
            }
            let message = oneLine(message(for: error))
            FileHandle.standardError.write(Data("pgpreflight: \(message)\n".utf8))
            Foundation.exit(2)
        }
    }

    /// The parser's message in one line: a list of valid values (`- console` lines) joined
    /// after its introduction, anything else after the first line left out.
    static func oneLine(_ message: String) -> String {
        let lines = message.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        guard var first = lines.first else { return message }
        let items = lines.dropFirst().prefix { $0.hasPrefix("- ") }.map { String($0.dropFirst(2)) }
        if first.hasSuffix(":"), !items.isEmpty { first += " " + items.joined(separator: ", ") }
        return first
    }
}
