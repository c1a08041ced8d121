import ArgumentParser
import Foundation

/// What a mistyped command line did not recognise, and the nearest name it knows:
/// `unknown option '--sourc'; did you mean '--source'?`. Asked only once the parser has refused
/// the line; nil when every command and option is known (the parser's own message is clearer then).
enum Suggestions {
    static func diagnose(_ arguments: [String]) -> String? {
        var command: any ParsableCommand.Type = PGPreflight.self
        var path = ["pgpreflight"]
        var index = 0
        // Subcommands: the leading words that are not options.
        while index < arguments.count {
            let word = arguments[index]
            if word.hasPrefix("-") {
                // `scan --inventory …` means `scan run --inventory …`: the group's default subcommand.
                if let fallback = command.configuration.defaultSubcommand { command = fallback }
                break
            }
            let subcommands: [any ParsableCommand.Type] = command.configuration.subcommands
            if subcommands.isEmpty { break }
            if word == "help" { return nil }
            var names: [String] = []
            var found: (any ParsableCommand.Type)? = nil
            for subcommand in subcommands {
                let name = subcommand.configuration.commandName ?? subcommand._commandName
                names.append(name)
                if name == word { found = subcommand }
            }
            guard let next = found else { return unknown("command", word, among: names, otherwise: " (commands: \(names.joined(separator: ", ")))") }
            command = next
            path.append(word)
            index += 1
        }
        let known = optionNames(of: command)
        for token in arguments[index...] {
            if token == "--" { break }
            let name = String(token.split(separator: "=", maxSplits: 1).first ?? "")
            let isLong = name.hasPrefix("--") && name.count > 2
            let isShort = !isLong && name.count == 2 && name.hasPrefix("-") && (name.last?.isLetter ?? false)
            if !(isLong || isShort) || known.contains(name) { continue }
            return unknown("option", name, among: Array(known), otherwise: " (see \(path.joined(separator: " ")) --help)")
        }
        return nil
    }

    /// `unknown option '--sourc'; did you mean '--source'?`, or `otherwise` without a near name.
    static func unknown(_ kind: String, _ word: String, among names: [String], otherwise: String) -> String {
        let head = "unknown \(kind) '\(word)'"
        if let near = nearest(word, among: names) { return head + "; did you mean '\(near)'?" }
        return head + otherwise
    }

    /// `--source`, `-j`, … as the command's help lists them (hidden ones included).
    static func optionNames(of command: any ParsableCommand.Type) -> Set<String> {
        let help = PGPreflight.helpMessage(for: command, includeHidden: true, columns: 10_000)
        let pattern = try! NSRegularExpression(pattern: #"(?<![\w-])(--[a-zA-Z][a-zA-Z0-9-]*|-[a-zA-Z])(?![\w-])"#)
        let range = NSRange(help.startIndex..., in: help)
        var names: Set<String> = ["--help", "-h"]
        for match in pattern.matches(in: help, range: range) {
            names.insert(String(help[Range(match.range(at: 1), in: help)!]))
        }
        // `--[no-]dry-run-schema` in the help: both spellings.
        let inversion = try! NSRegularExpression(pattern: #"--\[no-\]([a-zA-Z0-9-]+)"#)
        for match in inversion.matches(in: help, range: range) {
            let base = String(help[Range(match.range(at: 1), in: help)!])
            names.insert("--" + base); names.insert("--no-" + base)
        }
        return names
    }

    /// The closest name: one the word begins, or within a third of its length in edits.
    static func nearest(_ word: String, among names: [String]) -> String? {
        let scored = names.map { ($0, distance(word, $0)) }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }
        guard let best = scored.first else { return nil }
        if word.count >= 3, let prefixed = names.filter({ $0.hasPrefix(word) }).min(by: { $0.count < $1.count }) { return prefixed }
        return best.1 <= max(1, min(3, word.count / 3)) ? best.0 : nil
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
