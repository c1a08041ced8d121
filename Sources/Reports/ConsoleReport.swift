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
        let rows = run.groups.flatMap(\.results)
        let ruleWidth = max(4, rows.map { clean($0.rule).count }.max() ?? 0)
        let dbWidth = max(8, rows.map { clean($0.database ?? "-").count }.max() ?? 0)
        let statusWidth = max(9, rows.map { $0.statusLabel.count }.max() ?? 0)
        let indent = String(repeating: " ", count: ruleWidth + dbWidth + statusWidth + 6)
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
                     + "\(run.blockingCount(.warning)) warnings, \(run.blockingCount(.succeeded)) succeeded\(accepted) "
                     + "(\(run.mode.rawValue) mode, \(run.databases.count) databases, \(run.durationMs) ms)")
        return lines.joined(separator: "\n") + "\n"
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
