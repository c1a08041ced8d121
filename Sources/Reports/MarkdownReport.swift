import Foundation
import Validation

/// The Markdown report of `validate --format markdown`, for pull-request and merge-request
/// comments: a heading with the overall status, the run's notices, a summary table, a table of
/// the results, problems first, the Succeeded ones folded in a `<details>` after them, and a
/// details section per result that is not Succeeded. An accepted finding
/// (suppression or baseline) keeps its status, is marked in the Accepted column with the reason
/// in its details, and is counted on its own in the summary.
///
/// GitHub refuses comments over 65 536 characters, so the report stays under `limit`
/// (measured in UTF-8 bytes, which is never less than any count a forge uses): it first folds
/// the Succeeded rows, then shortens long object lists and remedies, then leaves out the
/// last rows and details, and says each time what it left out.
public enum MarkdownReport {
    public static let defaultLimit = 60_000

    public static func render(_ run: ValidationRun, options: ReportOptions = ReportOptions(), limit: Int = defaultLimit) -> String {
        let attempts: [Shape] = [
            Shape(foldSucceeded: false, maxObjects: nil, maxRemedyLines: nil),
            Shape(foldSucceeded: true, maxObjects: nil, maxRemedyLines: nil),
            Shape(foldSucceeded: true, maxObjects: 25, maxRemedyLines: 40),
            Shape(foldSucceeded: true, maxObjects: 5, maxRemedyLines: 10),
        ]
        for shape in attempts {
            let text = compose(run, options: options, shape: shape, budget: nil)
            if text.utf8.count <= limit { return text }
        }
        // Still too long (thousands of non-Succeeded results): keep what fits.
        return compose(run, options: options, shape: attempts.last!, budget: limit)
    }

    struct Shape {
        var foldSucceeded: Bool
        var maxObjects: Int?
        var maxRemedyLines: Int?
    }

    static func emoji(_ status: Status) -> String {
        switch status {
        case .succeeded: "✅"
        case .warning: "⚠️"
        case .failed: "❌"
        }
    }

    private static func compose(_ run: ValidationRun, options: ReportOptions, shape: Shape, budget: Int?) -> String {
        let overall = run.effectiveStatus(strict: options.strict)
        var head: [String] = []
        head.append("## \(emoji(overall)) pgpreflight: \(overall.rawValue)")
        head.append("")
        head.append(verdict(run, options: options))
        head.append("")
        if !run.notices.isEmpty {
            head.append("> [!WARNING]")
            head += run.notices.map { "> - \(Self.text($0))" }
            head.append("")
        }
        head.append("| | |")
        head.append("| --- | --- |")
        head.append("| **Status** | \(emoji(overall)) **\(overall.rawValue)**\(options.strict ? " (strict: warnings fail)" : "") |")
        for status in [Status.failed, .warning, .succeeded] {
            head.append("| \(emoji(status)) \(status.rawValue) | \(run.blockingCount(status)) |")
        }
        if run.acceptedCount > 0 {
            let byStatus = [Status.failed, .warning].compactMap { status -> String? in
                let n = run.results.filter { $0.status == status && $0.suppressed != nil }.count
                return n == 0 ? nil : "\(n) \(status.rawValue)"
            }
            head.append("| \(acceptedMark) Accepted | \(run.acceptedCount) (\(byStatus.joined(separator: ", "))) |")
        }
        head.append("| **Source** | \(server(run.source)) |")
        if let platform = run.platformName { head.append("| **Source platform** | \(cell(platform)) |") }
        head.append("| **Target** | \(server(run.target)) |")
        if let profile = run.targetProfileName { head.append("| **Target profile** | \(cell(profile)) |") }
        head.append("| **Mode** | \(run.mode.rawValue) |")
        head.append("| **Databases** | \(run.databases.isEmpty ? "none" : run.databases.map(cell).joined(separator: ", ")) |")
        head.append("| **Run** | \(ReportTime.readable(run.startedAt)), \(ReportTime.duration(ms: run.durationMs)) |")
        head.append("")

        // Problems first (Failed, Warning, each in the groups' order), then the Succeeded ones.
        let all = run.groups.flatMap(\.results)
        func rank(_ status: Status) -> Int { status == .failed ? 0 : status == .warning ? 1 : 2 }
        let ordered = all.enumerated().sorted { (rank($0.element.status), $0.offset) < (rank($1.element.status), $1.offset) }.map(\.element)
        let listed = shape.foldSucceeded ? ordered.filter { $0.status != .succeeded } : ordered
        let folded = ordered.count - listed.count
        let problems = ordered.filter { $0.status != .succeeded }

        let tableHead = ["### Results", "", "| Rule | Database | Status | Accepted | Message |", "| --- | --- | --- | --- | --- |"]
        func row(_ result: RuleResult) -> String {
            "| `\(result.rule)` | \(result.database.map(cell) ?? "_server_") | \(emoji(result.status)) \(result.status.rawValue) | "
                + "\(result.suppressed.map { "\(acceptedMark) \($0.by.rawValue)" } ?? "") | \(cell(result.message)) |"
        }
        let rows = listed.map(row)
        let details = problems.map { detail($0, shape: shape) }
        let footer = ["", "<sub>\(toolName) \(toolVersion) · \(run.results.count) checks</sub>", ""]

        func foldNote(_ count: Int) -> String {
            "_\(count) Succeeded result\(count == 1 ? " is" : "s are") not listed to keep this comment short; "
                + "the JUnit, JSON and HTML reports list every result._"
        }

        guard let budget else {
            // The passing rows folded in a <details> below the problems (GitHub renders the
            // table inside once a blank line follows the summary).
            let passing = listed.filter { $0.status == .succeeded }
            var lines = head + (passing.count == listed.count && !passing.isEmpty ? Array(tableHead.prefix(2)) : tableHead)
                + listed.filter { $0.status != .succeeded }.map(row)
            if !passing.isEmpty {
                lines += ["", "<details><summary>\(emoji(.succeeded)) \(passing.count) Succeeded</summary>", ""]
                    + Array(tableHead.suffix(2)) + passing.map(row) + ["", "</details>"]
            }
            if folded > 0 { lines += ["", foldNote(folded)] }
            if !details.isEmpty { lines += ["", "### Details", ""] + details }
            return (lines + footer).joined(separator: "\n")
        }

        // Budgeted: rows and details in order while they fit, with a note for the rest.
        let reserve = 600  // for the notes and the footer
        var text = (head + tableHead).joined(separator: "\n") + "\n"
        var shownRows = 0
        for row in rows where text.utf8.count + row.utf8.count + 1 + reserve <= budget {
            text += row + "\n"; shownRows += 1
        }
        let omittedRows = rows.count - shownRows
        if folded > 0 { text += "\n" + foldNote(folded) + "\n" }
        if omittedRows > 0 {
            text += "\n_\(omittedRows) more non-Succeeded results are not listed here: see the full report._\n"
        }
        var shownDetails = 0
        if !details.isEmpty && text.utf8.count + reserve < budget {
            text += "\n### Details\n\n"
            for block in details {
                guard text.utf8.count + block.utf8.count + 1 + reserve <= budget else { break }
                text += block + "\n"; shownDetails += 1
            }
        }
        if shownDetails < details.count {
            text += "\n_The details of \(details.count - shownDetails) more results are left out: see the full report._\n"
        }
        return text + footer.joined(separator: "\n")
    }

    /// Marks an accepted finding (a check mark in a box: seen and accepted, not passed).
    static let acceptedMark = "☑️"

    private static func verdict(_ run: ValidationRun, options: ReportOptions) -> String {
        let failed = run.blockingCount(.failed), warnings = run.blockingCount(.warning), accepted = run.acceptedCount
        let sentence: String
        switch run.effectiveStatus(strict: options.strict) {
        case .succeeded:
            sentence = accepted == 0 ? "Every check passed: nothing stands in the way of this migration."
                : "Nothing stands in the way of this migration."
        case .warning:
            sentence = "Nothing blocks this migration, but \(warnings) warning\(warnings == 1 ? "" : "s") should be reviewed first."
        case .failed where failed == 0:
            sentence = "\(warnings) warning\(warnings == 1 ? "" : "s") fail this run (strict mode): fix them before migrating."
        case .failed:
            sentence = "\(failed) check\(failed == 1 ? "" : "s") failed: fix \(failed == 1 ? "it" : "them") before migrating"
                + (warnings > 0 ? ", and review \(warnings) warning\(warnings == 1 ? "" : "s")." : ".")
        }
        guard accepted > 0 else { return sentence }
        return sentence + " \(accepted) finding\(accepted == 1 ? " was" : "s were") accepted by a suppression or the baseline"
            + " and \(accepted == 1 ? "does" : "do") not count (see why below)."
    }

    private static func server(_ info: ServerInfo) -> String {
        "`\(info.endpoint.replacingOccurrences(of: "`", with: "'"))`" + (info.serverVersion.map { " · PostgreSQL \(cell($0))" } ?? "")
    }

    private static func detail(_ result: RuleResult, shape: Shape) -> String {
        var lines: [String] = []
        let place = result.database.map { " · \(cell($0))" } ?? " · server"
        lines.append("#### \(emoji(result.status)) `\(result.rule)`\(place)\(result.suppressed == nil ? "" : " · accepted")")
        lines.append("")
        lines.append("**\(result.status.rawValue):** \(text(result.message))  ")
        if let acceptance = result.suppressed {
            lines.append("\(acceptedMark) **Accepted** by \(acceptance.by == .baseline ? "the baseline" : "a suppression"): "
                         + "\(text(acceptance.reason))  ")
        }
        lines.append("_\(text(result.title))_")
        if !result.objects.isEmpty {
            let shown = shape.maxObjects.map { Array(result.objects.prefix($0)) } ?? result.objects
            lines.append("")
            lines.append("Objects (\(result.objects.count)):")
            lines.append(contentsOf: fenced(shown.joined(separator: "\n")
                + (shown.count < result.objects.count ? "\n… and \(result.objects.count - shown.count) more" : "")))
        }
        if !result.remedy.isEmpty {
            var remedyLines = result.remedy.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if let max = shape.maxRemedyLines, remedyLines.count > max {
                let more = remedyLines.count - max
                remedyLines = Array(remedyLines.prefix(max)) + ["… and \(more) more lines"]
            }
            lines.append("")
            lines.append("Remedy:")
            lines.append(contentsOf: fenced(remedyLines.joined(separator: "\n")))
        }
        if let documentation = result.documentation, documentation.hasPrefix("https://") || documentation.hasPrefix("http://") {
            lines.append("")
            lines.append("[Documentation](\(documentation.replacingOccurrences(of: ")", with: "%29").replacingOccurrences(of: " ", with: "%20")))")
        }
        lines.append("")
        return lines.joined(separator: "\n")
    }

    /// A code block whose fence is longer than any run of backticks in the content.
    private static func fenced(_ content: String) -> [String] {
        var longest = 0, current = 0
        for character in content {
            current = character == "`" ? current + 1 : 0
            longest = max(longest, current)
        }
        let fence = String(repeating: "`", count: max(3, longest + 1))
        return [fence, content, fence]
    }

    /// Text in a paragraph: no HTML, no Markdown markup.
    static func text(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\\", "`", "*", "_", "[", "]", "|", "~", "#", "!": out += "\\" + String(character)
            case "\n", "\r", "\r\n": out += " "
            default: out.append(character)
            }
        }
        return out
    }

    /// Text in a table cell: as `text`, on one line (the pipe is escaped by `text`).
    static func cell(_ value: String) -> String { text(value) }
}
