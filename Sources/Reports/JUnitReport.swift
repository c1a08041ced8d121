import Foundation
import Validation

/// The JUnit XML report of `validate --format junit`, for CI test reporters (GitLab, Jenkins,
/// GitHub Actions reporters, Azure DevOps). Valid against the Jenkins xUnit `junit-10.xsd`
/// they follow and against our stricter `reports/pgpreflight-junit.xsd`.
///
/// - one `testsuite` for the instance results, one per database, totals on every suite;
/// - one `testcase` per result: `classname` = `pgpreflight.<server>.<database|instance>`
///   (GitLab shows it as the suite, Azure as the test file), `name` = the rule id, for a
///   warning `⚠ warning: <rule id> [database]` (so that a passing warning stands out in a CI
///   test list, which shows names, not system-out);
/// - Failed → `<failure type="<rule id>" message="…">` with message, objects and remedy;
///   Warning → a passing test case whose `<system-out>` carries the warning and remedy
///   (a failure with `strict`, so the report agrees with the exit code; with
///   `junitWarningsAsFailures` a `<failure type="warning">`, the exit code unchanged);
/// - a finding a suppression or the baseline accepted → `<skipped message="<reason>"/>` and a
///   `<system-out>` with its original status, message, objects and remedy; counted in the
///   suite's `skipped`, never in `failures` (it does not count toward the exit code);
/// - a server that could not be reached: after its failed connectivity test case, each rule
///   that could not run because of it as a test case with `<skipped message="not run: …"/>`
///   (counted in `tests` and `skipped`);
/// - `errors` is always 0: a check that could not run is a Failed result;
/// - the run's notices (an expired suppression, …) are the first suite's `<system-out>`; the
///   detected source platform is a `platform` property of every suite.
public enum JUnitReport {
    public static func render(_ run: ValidationRun, options: ReportOptions = ReportOptions()) throws -> String {
        let server = options.serverName ?? "source"
        let groups = run.groups
        let xml = try XMLWriter()
        try xml.startDocument()
        try xml.comment(" \(toolName) \(toolVersion): validation of \(run.source.endpoint) for \(run.target.endpoint), "
                        + "\(run.mode.rawValue) mode: \(run.effectiveStatus(strict: options.strict).rawValue) ")
        if groups.isEmpty {
            // No suite to carry them (a run without results): the notices are not lost.
            for notice in run.notices { try xml.comment(" Notice: \(notice) ") }
        }
        try xml.start("testsuites")
        try xml.attribute("name", toolName)
        try xml.attribute("tests", String(run.results.count + groups.map { notRun(in: $0.results).count }.reduce(0, +)))
        try xml.attribute("failures", String(failures(in: run.results, options: options)))
        try xml.attribute("errors", "0")
        try xml.attribute("time", seconds(run.finishedAt.timeIntervalSince(run.startedAt)))

        for group in groups {
            let className = "\(toolName).\(server).\(group.database ?? "instance")"
            try xml.start("testsuite")
            try xml.attribute("name", className)
            let skippedHere = notRun(in: group.results)
            try xml.attribute("tests", String(group.results.count + skippedHere.count))
            try xml.attribute("failures", String(failures(in: group.results, options: options)))
            try xml.attribute("errors", "0")
            try xml.attribute("skipped", String(group.results.filter { $0.suppressed != nil }.count + skippedHere.count))
            try xml.attribute("time", seconds(group.results.reduce(0) { $0 + $1.finishedAt.timeIntervalSince($1.startedAt) }))
            try xml.attribute("timestamp", ReportTime.iso(group.results.map(\.startedAt).min() ?? run.startedAt))
            try xml.attribute("hostname", run.source.host)

            try xml.start("properties")
            for (name, value) in properties(run, group: group, options: options) {
                try xml.element("property", ["name": name, "value": value])
            }
            try xml.end()

            var used: [String: Int] = [:]
            for result in group.results {
                try testCase(result, className: className, name: uniqueName(testName(result), &used), xml: xml, options: options)
            }
            for (rule, because) in skippedHere {
                try xml.start("testcase")
                try xml.attribute("classname", className)
                try xml.attribute("name", uniqueName(rule, &used))
                try xml.attribute("time", seconds(0))
                try xml.element("skipped", ["message": "not run: \(because)"])
                try xml.element("system-out", text: "Not run: \(because).")
                try xml.end()
            }
            if group.database == groups.first?.database, !run.notices.isEmpty {
                try xml.element("system-out", text: run.notices.map { "Notice: " + $0 }.joined(separator: "\n"))
            }
            try xml.end()
        }
        try xml.end()
        return try xml.finish()
    }

    private static func testCase(_ result: RuleResult, className: String, name: String, xml: XMLWriter, options: ReportOptions) throws {
        let strict = options.strict
        try xml.start("testcase")
        try xml.attribute("classname", className)
        try xml.attribute("name", name)
        try xml.attribute("time", seconds(result.finishedAt.timeIntervalSince(result.startedAt)))
        if let acceptance = result.suppressed {
            try xml.element("skipped", ["message": acceptance.reason])
            try xml.element("system-out", text: details(result))
            try xml.end()
            return
        }
        switch result.status {
        case .failed:
            try xml.element("failure", ["message": result.message, "type": result.rule], text: details(result))
        case .warning where strict:
            try xml.element("failure", ["message": "Warning: " + result.message, "type": result.rule], text: details(result))
        case .warning where options.junitWarningsAsFailures:
            try xml.element("failure", ["message": "Warning: " + result.message, "type": "warning"], text: details(result))
        case .warning:
            try xml.element("system-out", text: details(result))
        case .succeeded:
            try xml.element("system-out", text: details(result))
        }
        try xml.end()
    }

    /// The body of a failure or system-out: what a developer reads in the CI test view.
    static func details(_ result: RuleResult) -> String {
        var lines = ["\(result.status.rawValue): \(result.message)"]
        if let acceptance = result.suppressed {
            lines.append("Accepted by \(acceptance.by == .baseline ? "the baseline" : "a suppression"): \(acceptance.reason)")
        }
        lines.append("Rule: \(result.rule) (\(result.title))")
        if let database = result.database { lines.append("Database: \(database)") }
        if !result.objects.isEmpty {
            lines.append("Objects (\(result.objects.count)):")
            lines += result.objects.map { "  " + $0 }
        }
        if result.status != .succeeded, !result.remedy.isEmpty {
            lines.append("Remedy:")
            lines += result.remedy.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }
        }
        if let documentation = result.documentation { lines.append("Documentation: \(documentation)") }
        return lines.joined(separator: "\n")
    }

    private static func properties(_ run: ValidationRun, group: ResultGroup, options: ReportOptions) -> [(String, String)] {
        var list: [(String, String)] = [
            ("pgpreflight.version", toolVersion),
            ("mode", run.mode.rawValue),
            ("strict", String(options.strict)),
            ("source", run.source.endpoint),
            ("target", run.target.endpoint),
        ]
        if let version = run.source.serverVersion { list.append(("source.version", version)) }
        if let version = run.target.serverVersion { list.append(("target.version", version)) }
        if let platform = run.platform { list.append(("platform", platform)) }
        if let profile = run.targetProfile { list.append(("target.profile", profile)) }
        if let database = group.database { list.append(("database", database)) }
        // The suite's status as the exit code sees it: accepted findings do not count.
        list.append(("status", group.results.map(\.blockingStatus).max()?.rawValue ?? Status.succeeded.rawValue))
        return list
    }

    private static func failures(in results: [RuleResult], options: ReportOptions) -> Int {
        let warningsFail = options.strict || options.junitWarningsAsFailures
        return results.filter { $0.suppressed == nil && ($0.status == .failed || (warningsFail && $0.status == .warning)) }.count
    }

    /// The rules a group's unreachable servers kept from running, each once, with why.
    static func notRun(in results: [RuleResult]) -> [(rule: String, because: String)] {
        var seen = Set(results.map(\.rule)), list: [(String, String)] = []
        for result in results where result.status == .failed && !result.skippedRules.isEmpty {
            let server = result.rule == "connectivity.target" ? "the target" : "the source"
            for rule in result.skippedRules where seen.insert(rule).inserted {
                list.append((rule, "\(server) could not be reached (\(result.rule) Failed)"))
            }
        }
        return list
    }

    /// The rule id; a warning's says so, with its database (an accepted one is a skipped test
    /// under its rule id: it no longer warns).
    static func testName(_ result: RuleResult) -> String {
        guard result.status == .warning, result.suppressed == nil else { return result.rule }
        return "⚠ warning: \(result.rule)" + (result.database.map { " [\($0)]" } ?? "")
    }

    /// The rule id, made unique within the suite (GitLab keeps only the first of duplicates).
    private static func uniqueName(_ rule: String, _ used: inout [String: Int]) -> String {
        let seen = used[rule, default: 0]
        used[rule] = seen + 1
        return seen == 0 ? rule : "\(rule)#\(seen + 1)"
    }

    /// Seconds with exactly three decimals, never negative nor in exponent form (junit-10.xsd).
    static func seconds(_ interval: TimeInterval) -> String {
        String(format: "%.3f", interval.isFinite ? max(0, interval) : 0)
    }
}
