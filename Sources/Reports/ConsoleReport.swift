import Foundation
import Validation

/// The console grid, as the managed service's validation view shows it: rule, database,
/// status, message; under every Warning and Failed row its acceptance (when a suppression or
/// the baseline accepted it), objects and remedy; the run's notices, then a one-line summary
/// that counts accepted findings on their own. Control characters from the servers (object names, messages) are
/// neutralised so that they cannot drive the terminal.
public enum ConsoleReport {
    /// How many objects a row lists before "(+N more)"; the other formats list them all.
    static let maxObjects = 10

    public static func render(_ run: ValidationRun, options: ReportOptions) -> String {
        var lines: [String] = []
        // Problems first: Failed, Warning, then accepted findings, then Succeeded (each in the
        // groups' order); Succeeded rows folded into one count line when asked.
        let all = run.groups.flatMap(\.results)
        func rank(_ result: RuleResult) -> Int {
            result.suppressed != nil ? 2 : result.status == .failed ? 0 : result.status == .warning ? 1 : 3
        }
        let ordered = all.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(\.element)
        let folded = options.foldSucceeded ? ordered.filter { rank($0) == 3 } : []
        let rows = options.foldSucceeded ? ordered.filter { rank($0) != 3 } : ordered
        let ruleWidth = max(4, rows.map { clean($0.rule).count }.max() ?? 0)
        let dbWidth = max(8, rows.map { clean($0.database ?? "-").count }.max() ?? 0)
        let statusWidth = max(9, rows.map { $0.statusLabel.count }.max() ?? 0)
        // Remedies and objects go under the message column, or 4 columns in when that column is
        // past half of a narrow terminal.
        let messageColumn = ruleWidth + dbWidth + statusWidth + 6
        let indent = String(repeating: " ", count: options.width.map { messageColumn > $0 / 2 } == true ? 4 : messageColumn)
        var gridRows = Set<Int>()  // continuation lines of a grid row start under its message
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
        func dim(_ s: String) -> String { options.color ? "\u{1B}[2m" + s + "\u{1B}[0m" : s }
        func bold(_ s: String) -> String { options.color ? "\u{1B}[1m" + s + "\u{1B}[0m" : s }

        lines.append(dim("\(clean(options.serverName ?? run.source.endpoint))\(version(run.source)) → "
                         + "\(clean(run.target.endpoint))\(version(run.target)), \(run.mode.rawValue) mode"))
        if let platform = run.platformName { lines.append(dim("Source platform: \(clean(platform))")) }
        if let profile = run.targetProfileName { lines.append(dim("Target profile: \(clean(profile))")) }
        lines.append("")
        lines.append(bold("\(pad("RULE", ruleWidth))  \(pad("DATABASE", dbWidth))  \(pad("STATUS", statusWidth))  MESSAGE"))
        for result in rows {
            let status = pad(result.statusLabel, statusWidth)
            // An accepted finding keeps its status but is dimmed: it does not block.
            let coloured = !options.color ? status
                : result.suppressed == nil ? colour(result.status) + status + "\u{1B}[0m" : dim(status)
            gridRows.insert(lines.count)
            lines.append("\(pad(clean(result.rule), ruleWidth))  \(pad(clean(result.database ?? "-"), dbWidth))  "
                         + "\(coloured)  \(clean(result.message))")
            guard result.status != .succeeded else { continue }
            if let acceptance = result.suppressed {
                lines.append(indent + "↳ accepted: " + clean(acceptance.summary))
            }
            if !result.objects.isEmpty {
                let shown = result.objects.prefix(maxObjects).map(clean).joined(separator: ", ")
                let more = result.objects.count > maxObjects ? " (+\(result.objects.count - maxObjects) more)" : ""
                lines.append(indent + dim("objects: " + shown + more))
            }
            let remedy = result.remedy.split(separator: "\n", omittingEmptySubsequences: false).map { clean(String($0)) }
            for (index, remedyLine) in remedy.enumerated() where !(remedy.count == 1 && remedyLine.isEmpty) {
                lines.append(indent + (index == 0 ? "↳ " : "  ") + remedyLine)
            }
        }
        if !folded.isEmpty {
            lines.append(dim("✓ \(folded.count) more rule\(folded.count == 1 ? "" : "s") Succeeded (--all lists them)"))
        }
        lines.append("")
        if !run.notices.isEmpty {
            lines += run.notices.map { "notice: " + clean($0) }
            lines.append("")
        }
        let overall = run.effectiveStatus(strict: options.strict)
        let label = options.color ? colour(overall) + overall.rawValue + "\u{1B}[0m" : overall.rawValue
        // Failed, warnings and succeeded count what was not accepted; accepted findings on their own.
        let accepted = run.acceptedCount > 0 ? ", \(run.acceptedCount) accepted" : ""
        lines.append("\(label)\(options.strict ? " (strict)" : ""): \(run.blockingCount(.failed)) failed, "
                     + "\(counted(run.blockingCount(.warning), "warning")), \(run.blockingCount(.succeeded)) succeeded\(accepted) "
                     + "(\(run.mode.rawValue) mode, \(counted(run.databases.count, "database")), \(run.durationMs) ms)")
        guard let width = options.width else { return lines.joined(separator: "\n") + "\n" }
        // Continuation lines start under the message column (grid rows) or under the text
        // after the leading spaces (remedies, objects).
        return lines.enumerated().flatMap { index, line -> [String] in
            let leading = line.prefix { $0 == " " }.count
            return fit(line, width: width, hang: gridRows.contains(index) ? indent.count : leading > 0 ? leading + 2 : 2)
        }.joined(separator: "\n") + "\n"
    }

    /// `line` cut at spaces into lines of at most `width` visible characters (ANSI colour codes
    /// count for nothing); a word longer than a line is cut where it must. Continuation lines
    /// are indented by `hang` (at most half the width).
    static func fit(_ line: String, width: Int, hang: Int) -> [String] {
        let width = max(width, 20)
        guard visibleCount(line) > width else { return [line] }
        let hang = min(hang, width / 2)
        let margin = String(repeating: " ", count: hang)
        // Tokens: a run of spaces and the word after it.
        var tokens: [(spaces: Int, word: String)] = []
        var spaces = 0, word = ""
        for character in line {
            if character == " " {
                if !word.isEmpty { tokens.append((spaces, word)); word = ""; spaces = 0 }
                spaces += 1
            } else {
                word.append(character)
            }
        }
        if !word.isEmpty { tokens.append((spaces, word)) }
        var result: [String] = []
        var current = "", count = 0
        var fresh = false  // `current` holds only the margin of a continuation line
        for (spaces, token) in tokens {
            let gap = fresh ? 0 : spaces
            if count + gap + visibleCount(token) <= width {
                current += String(repeating: " ", count: gap) + token
                count += gap + visibleCount(token); fresh = false
                continue
            }
            if !fresh && count > 0 { result.append(current); current = margin; count = hang; fresh = true }
            var word = token
            while count + visibleCount(word) > width {  // longer than a whole line: cut it
                let room = width - count
                result.append(current + String(word.prefix(room)))
                word = String(word.dropFirst(room)); current = margin; count = hang; fresh = true
            }
            if !word.isEmpty { current += word; count += visibleCount(word); fresh = false }
        }
        if !fresh { result.append(current) }
        return result
    }

    /// Characters a terminal shows: ANSI colour sequences (ESC [ … m) left out.
    static func visibleCount(_ text: String) -> Int {
        guard text.contains("\u{1B}") else { return text.count }
        var count = 0, inEscape = false
        for character in text {
            if inEscape { if character == "m" { inEscape = false }; continue }
            if character == "\u{1B}" { inEscape = true; continue }
            count += 1
        }
        return count
    }

    private static func version(_ server: ServerInfo) -> String {
        server.serverVersion.map { " (PostgreSQL \(clean($0)))" } ?? ""
    }

    static func colour(_ status: Status) -> String {
        switch status {
        case .succeeded: "\u{1B}[32m"
        case .warning: "\u{1B}[33m"
        case .failed: "\u{1B}[31m"
        }
    }

    /// One line of text without control characters (ESC would let a table name recolour or
    /// rewrite the terminal); tabs and newlines become spaces.
    static func clean(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else { return text }
        var scalars = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x09, 0x0A, 0x0D: scalars.append(" ")
            case 0..<0x20, 0x7F...0x9F: scalars.append("\u{FFFD}")
            default: scalars.append(scalar)
            }
        }
        return String(scalars)
    }
}
