import Foundation
import Validation

/// Every output format of a validation run. Each format is a pure function of the run, in a
/// file of its own.
public enum ReportFormat: String, CaseIterable, Sendable {
    case console, json, junit, markdown, html
    /// GitLab Code Quality JSON (`artifacts:reports:codequality`).
    case codequality
    /// SARIF 2.1.0 (GitHub code scanning, `github/codeql-action/upload-sarif`).
    case sarif
}

public struct ReportOptions: Sendable {
    /// Warnings count as failures (JUnit marks them as failures too).
    public var strict: Bool
    /// ANSI colours in the console format (when the output is a terminal).
    public var color: Bool
    /// What to call the validated server in reports: the inventory name in `scan`, nil for
    /// `validate` (then "source"). JUnit class names are `pgpreflight.<serverName>.<database>`.
    public var serverName: String?
    /// Console: Succeeded rows folded into one count line (the CLI's default; `--all` lists them).
    public var foldSucceeded: Bool
    /// Console: no line longer than this (wrapped at spaces, continuation lines indented); nil: no limit.
    public var width: Int?
    /// JUnit (`--junit-warnings failure`): warnings are `<failure type="warning">`, so that a CI
    /// test view lists them as failing tests, without `strict`'s exit code.
    public var junitWarningsAsFailures: Bool
    public init(strict: Bool = false, color: Bool = false, serverName: String? = nil, foldSucceeded: Bool = false, width: Int? = nil,
                junitWarningsAsFailures: Bool = false) {
        self.strict = strict; self.color = color; self.serverName = serverName
        self.foldSucceeded = foldSucceeded; self.width = width; self.junitWarningsAsFailures = junitWarningsAsFailures
    }
}

public enum Reports {
    public static func render(_ run: ValidationRun, as format: ReportFormat, options: ReportOptions = ReportOptions()) throws -> String {
        switch format {
        case .json: return try JSONReport.render(run)
        case .console: return ConsoleReport.render(run, options: options)
        case .junit: return try JUnitReport.render(run, options: options)
        case .markdown: return MarkdownReport.render(run, options: options)
        case .html: return HTMLReport.render(run, options: options)
        case .codequality: return try CodeQualityReport.render(run, options: options)
        case .sarif: return try SARIFReport.render(run, options: options)
        }
    }
}

public struct ReportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The results of one scope unit: the instance (database nil) or one database.
struct ResultGroup {
    let database: String?
    let results: [RuleResult]
    func count(_ status: Status) -> Int { results.filter { $0.status == status }.count }
}

extension ValidationRun {
    /// Instance results first, then one group per database in the run's order (databases
    /// that only appear in results come after, in order of appearance). Empty groups are left out.
    var groups: [ResultGroup] {
        var order: [String?] = [nil] + databases.map { Optional($0) }
        for result in results where !order.contains(result.database) { order.append(result.database) }
        return order.compactMap { database in
            let members = results.filter { $0.database == database }
            return members.isEmpty ? nil : ResultGroup(database: database, results: members)
        }
    }

    /// The run's status as the exit code sees it: with `strict`, a Warning counts as Failed.
    func effectiveStatus(strict: Bool) -> Status {
        strict && status == .warning ? .failed : status
    }

    /// Results with this status that were not accepted: what the summaries count per status.
    func blockingCount(_ status: Status) -> Int {
        results.filter { $0.status == status && $0.suppressed == nil }.count
    }

    /// Findings a suppression or the baseline accepted: counted on their own in every summary.
    var acceptedCount: Int { results.filter { $0.suppressed != nil }.count }

    /// "Azure Database for PostgreSQL" for the detected platform profile, nil when none was detected.
    var platformName: String? { platform.map(PlatformNames.name(of:)) }

    /// "self-managed PostgreSQL, the migration user is a superuser", … for the target's profile.
    var targetProfileName: String? { targetProfile.map(PlatformNames.profileName(of:)) }
}

extension RuleResult {
    /// The status a report shows for a finding, with its acceptance: `Failed (accepted)`.
    var statusLabel: String { status.rawValue + (suppressed == nil ? "" : " (accepted)") }

    /// The remedy in one line for one-line formats (annotations, Code Quality): its first
    /// non-empty line, and the next one too when the first only introduces it
    /// (`On the target, set: shared_preload_libraries = '…'`). nil without a remedy.
    var remedyHeadline: String? {
        let lines = remedy.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard let first = lines.first else { return nil }
        return first.hasSuffix(":") && lines.count > 1 ? first + " " + lines[1] : first
    }
}

extension Acceptance {
    /// `recreated after cutover (suppression)`
    var summary: String { "\(reason) (\(by.rawValue))" }
}

enum PlatformNames {
    /// The target's profile: a platform, or self-managed with or without a superuser.
    static func profileName(of profile: String) -> String {
        switch profile.lowercased() {
        case "self-managed-superuser": "self-managed PostgreSQL, the migration user is a superuser"
        case "self-managed": "self-managed PostgreSQL, the migration user is not a superuser"
        default: name(of: profile)
        }
    }

    static func name(of platform: String) -> String {
        switch platform.lowercased() {
        case "azure": "Azure Database for PostgreSQL"
        case "rds": "Amazon RDS for PostgreSQL"
        case "cloudsql": "Google Cloud SQL for PostgreSQL"
        default: platform
        }
    }
}

extension ServerInfo {
    /// `user@host:port` (never a password: ServerInfo holds none).
    var endpoint: String { (user.map { "\($0)@" } ?? "") + "\(host):\(port)" }
}

enum ReportTime {
    /// `2026-11-21T23:00:00Z`
    static func iso(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    /// `2026-11-21 23:00:00 UTC`
    static func readable(_ date: Date) -> String {
        iso(date).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: " UTC")
    }

    /// `812 ms`, `4.2 s`, `3 min 5 s`
    static func duration(ms: Int) -> String {
        if ms < 1000 { return "\(max(0, ms)) ms" }
        if ms < 60_000 { return String(format: "%.1f s", Double(ms) / 1000) }
        return "\(ms / 60_000) min \((ms % 60_000) / 1000) s"
    }
}

/// "1 warning", "2 warnings": a count with its noun in the right number (regular plurals only).
public func counted(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }
