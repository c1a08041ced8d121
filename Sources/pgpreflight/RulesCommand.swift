import ArgumentParser
import Foundation
import Validation

/// `pgpreflight rules`: every rule the tool would run, from the shipped folder and `--rules`.
struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules", abstract: "List every rule: id, title, scope, servers, modes.")

    enum Format: String, CaseIterable, ExpressibleByArgument { case text, json }
    @Option(help: ArgumentHelp("Output format: text or json.", valueName: "format"))
    var format: Format = .text
    @Option(name: .customLong("rules"), help: ArgumentHelp("A folder of extra rule files (repeatable).", valueName: "dir"))
    var ruleDirectories: [String] = []

    struct Entry: Encodable {
        let id, title, description, scope: String
        let servers, modes: [String]
        let documentation: String?
        let file: String
    }

    func run() async throws {
        let rules = try RuleLoader.load(directories: ValidationRequest.ruleDirectories(extra: ruleDirectories.map { URL(fileURLWithPath: $0) }))
        if format == .json {
            let entries = rules.map {
                Entry(id: $0.id, title: $0.title, description: $0.description, scope: $0.scope.rawValue,
                      servers: $0.servers.map(\.rawValue), modes: $0.modes.map(\.rawValue), documentation: $0.documentation, file: $0.file)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            FileHandle.standardOutput.write(try encoder.encode(entries) + Data("\n".utf8))
            return
        }
        let idWidth = rules.map(\.id.count).max() ?? 2
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
        var lines = ["\(pad("ID", idWidth))  \(pad("SCOPE", 8))  \(pad("SERVERS", 13))  \(pad("MODES", 14))  TITLE"]
        for rule in rules {
            lines.append("\(pad(rule.id, idWidth))  \(pad(rule.scope.rawValue, 8))  \(pad(rule.servers.map(\.rawValue).joined(separator: ","), 13))  "
                         + "\(pad(rule.modes.map(\.rawValue).joined(separator: ","), 14))  \(rule.title)")
        }
        lines.append("\(rules.count) rules")
        print(lines.joined(separator: "\n"))
    }
}
