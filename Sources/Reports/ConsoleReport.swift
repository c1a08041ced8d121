import Foundation
import Validation

/// The console grid: rule, database, status, message; the remedy under every Warning and
/// Failed row; a one-line summary at the end.
public enum ConsoleReport {
    public static func render(_ run: ValidationRun, options: ReportOptions) -> String {
        var lines: [String] = []
        let ruleWidth = max(4, run.results.map(\.rule.count).max() ?? 0)
        let dbWidth = max(8, run.results.map { ($0.database ?? "-").count }.max() ?? 0)
        func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
        lines.append("\(pad("RULE", ruleWidth))  \(pad("DATABASE", dbWidth))  \(pad("STATUS", 9))  MESSAGE")
        for result in run.results {
            let status = pad(result.status.rawValue, 9)
            let coloured = options.color ? colour(result.status) + status + "\u{1B}[0m" : status
            lines.append("\(pad(result.rule, ruleWidth))  \(pad(result.database ?? "-", dbWidth))  \(coloured)  \(result.message)")
            if result.status != .succeeded, !result.remedy.isEmpty {
                for remedyLine in result.remedy.split(separator: "\n", omittingEmptySubsequences: false) {
                    lines.append(String(repeating: " ", count: ruleWidth + dbWidth + 15) + "↳ " + remedyLine)
                }
            }
        }
        lines.append("")
        lines.append("\(run.status.rawValue): \(run.count(.failed)) failed, \(run.count(.warning)) warnings, "
                     + "\(run.count(.succeeded)) succeeded (\(run.mode.rawValue) mode, \(run.databases.count) databases, \(run.durationMs) ms)")
        return lines.joined(separator: "\n") + "\n"
    }

    static func colour(_ status: Status) -> String {
        switch status {
        case .succeeded: "\u{1B}[32m"
        case .warning: "\u{1B}[33m"
        case .failed: "\u{1B}[31m"
        }
    }
}
