import Foundation
import Validation

/// GitHub Actions workflow commands for a run: the CLI prints them to stdout when
/// `GITHUB_ACTIONS=true`, and GitHub shows them as annotations on the job and the pull request.
///
/// - a Failed result that counts → `::error title=<rule> (<database>)::<message> — <remedy's first line>`
///   (`RuleResult.remedyHeadline`: with the second line when the first ends with a colon)
/// - a Warning that counts → `::warning …` (a Warning is not an error even with `strict`: the
///   exit code says whether the job fails, the annotation says what was found)
/// - an accepted finding → `::notice …` with its status and why it was accepted
/// - every notice of the run → `::notice title=pgpreflight::…`
/// Succeeded results print nothing. Errors come first, then warnings, then notices: GitHub
/// shows only the first few annotations of each kind per step.
public enum GitHubAnnotations {
    public static func render(_ run: ValidationRun) -> String {
        let ordered = run.groups.flatMap(\.results)
        var errors: [String] = [], warnings: [String] = [], notices: [String] = []
        for result in ordered where result.status != .succeeded {
            let title = result.rule + (result.database.map { " (\($0))" } ?? "")
            if let acceptance = result.suppressed {
                let by = acceptance.by == .baseline ? "the baseline" : "a suppression"
                notices.append(command("notice", title: title,
                                       message: "\(result.status.rawValue), accepted by \(by): \(acceptance.reason) — \(result.message)"))
                continue
            }
            var message = result.message
            if let remedy = result.remedyHeadline { message += " — " + remedy }
            if result.status == .failed {
                errors.append(command("error", title: title, message: message))
            } else {
                warnings.append(command("warning", title: title, message: message))
            }
        }
        notices += run.notices.map { command("notice", title: toolName, message: $0) }
        let lines = errors + warnings + notices
        return lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
    }

    /// `::name title=…::message`, escaped as GitHub's runner unescapes it (actions/toolkit
    /// `command.ts`): the message `%`, CR, LF; a property value also `:` and `,`.
    static func command(_ name: String, title: String, message: String) -> String {
        "::\(name) title=\(escapeProperty(title))::\(escapeData(message))"
    }

    static func escapeData(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "%": out += "%25"
            case "\r": out += "%0D"
            case "\n": out += "%0A"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func escapeProperty(_ text: String) -> String {
        escapeData(text).replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: ",", with: "%2C")
    }
}
