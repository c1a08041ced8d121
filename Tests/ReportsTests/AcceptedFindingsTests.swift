import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Reports
import Testing
import Validation

/// Findings a suppression or the baseline accepted, the run's notices and the detected
/// platform, in every format: an accepted finding keeps its status and says why it was
/// accepted, but does not count toward the run's status (the exit code).
@Suite struct AcceptedFindingsTests {
    let baselineReason = "in the baseline baseline.json"

    private func accepted(_ run: ValidationRun) throws -> (suppressed: RuleResult, baselined: RuleResult) {
        let suppressed = try #require(run.results.first { $0.rule == "tables.case-collisions" })
        let baselined = try #require(run.results.first { $0.rule == "tables.primary-key" && $0.status == .warning })
        return (suppressed, baselined)
    }

    @Test func thePolicyAcceptedWhatTheFixtureSays() throws {
        let run = try Fixtures.acceptedRun()
        let (suppressed, baselined) = try accepted(run)
        #expect(suppressed.status == .failed)
        #expect(suppressed.suppressed == Acceptance(by: .suppression, reason: Fixtures.suppressionReason))
        #expect(baselined.suppressed?.by == .baseline)
        #expect(run.results.filter { $0.suppressed != nil }.count == 2)
        #expect(run.notices.count == 1 && run.notices[0].hasSuffix(Fixtures.expiredNotice))
        #expect(run.status == .failed)  // extensions.preload still fails
    }

    // MARK: console

    @Test func consoleShowsAcceptedWithReasonAndCountsThemApart() throws {
        let run = try Fixtures.acceptedRun()
        let (suppressed, baselined) = try accepted(run)
        let text = ConsoleReport.render(run, options: ReportOptions())
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[1] == "Source platform: Azure Database for PostgreSQL")
        let header = try #require(lines.firstIndex { $0.hasPrefix("RULE ") })
        let statusColumn = try #require(lines[header].range(of: "STATUS")).lowerBound.utf16Offset(in: lines[header])

        let collision = try #require(lines.firstIndex { $0.hasPrefix("tables.case-collisions ") })
        #expect(lines[collision].dropFirst(statusColumn).hasPrefix("Failed (accepted)  "))
        #expect(lines[collision + 1].trimmingCharacters(in: .whitespaces)
                == "↳ accepted: \(Fixtures.suppressionReason) (suppression)")
        // Its objects and remedy are still there.
        #expect(lines[collision + 2].contains("objects: " + suppressed.objects.joined(separator: ", ")))
        #expect(lines[collision + 3].contains("↳ Rename one of them"))

        let primaryKey = try #require(lines.firstIndex { $0.hasPrefix("tables.primary-key ") && $0.contains(baselined.database!) && $0.contains("Warning") })
        #expect(lines[primaryKey].dropFirst(statusColumn).hasPrefix("Warning (accepted)"))
        #expect(lines[primaryKey + 1].trimmingCharacters(in: .whitespaces) == "↳ accepted: \(baselineReason) (baseline)")

        // What still counts is not marked.
        let preload = try #require(lines.first { $0.hasPrefix("extensions.preload ") })
        #expect(preload.dropFirst(statusColumn).hasPrefix("Failed ") && !preload.contains("accepted"))

        let summary = try #require(lines.last { !$0.isEmpty })
        #expect(summary == "Failed: 1 failed, 1 warning, 7 succeeded, 2 accepted (offline mode, 2 databases, \(run.durationMs) ms)")
        let notice = try #require(lines.firstIndex { $0.hasPrefix("notice: ") })
        #expect(lines[notice].hasSuffix(Fixtures.expiredNotice))
        #expect(notice > primaryKey && notice < lines.lastIndex(of: summary)!)
        // In colour an accepted status is dimmed, not red: it does not block.
        let coloured = ConsoleReport.render(run, options: ReportOptions(color: true))
        #expect(coloured.contains("\u{1B}[2mFailed (accepted)"))
        #expect(coloured.contains("\u{1B}[31mFailed "))
    }

    @Test func everyFailureAcceptedMakesTheRunPassInEveryFormat() throws {
        var run = try Fixtures.acceptedRun()
        for index in run.results.indices where run.results[index].status != .succeeded {
            run.results[index].suppressed = run.results[index].suppressed ?? Acceptance(by: .suppression, reason: "known")
        }
        #expect(run.status == .succeeded)
        #expect(ConsoleReport.render(run, options: ReportOptions()).hasSuffix(
            "Succeeded: 0 failed, 0 warnings, 7 succeeded, 4 accepted (offline mode, 2 databases, \(run.durationMs) ms)\n"))
        #expect(MarkdownReport.render(run).hasPrefix("## ✅ pgpreflight: Succeeded"))
        #expect(HTMLReport.render(run).contains("<span class=\"badge ok\">✓ Succeeded</span>"))
        let junit = try parseXML(try JUnitReport.render(run, options: ReportOptions(strict: true)))
        #expect(try junit.nodes(forXPath: "//failure").isEmpty)
        #expect(attribute(try #require(try junit.nodes(forXPath: "/testsuites").first), "failures") == "0")
        #expect(try junit.nodes(forXPath: "//property[@name='status' and @value!='Succeeded']").isEmpty)
        let json = try JSONSerialization.jsonObject(with: Data(try JSONReport.render(run).utf8)) as? [String: Any]
        #expect(json?["status"] as? String == "Succeeded")
        // Still nothing hidden: the statuses are there.
        let statuses = (json?["results"] as? [[String: Any]])?.compactMap { $0["status"] as? String } ?? []
        #expect(statuses.filter { $0 == "Failed" }.count == 2)
    }

    // MARK: markdown

    @Test func markdownMarksAcceptedRowsAndGivesTheReasons() throws {
        let run = try Fixtures.acceptedRun()
        let (suppressed, baselined) = try accepted(run)
        let markdown = MarkdownReport.render(run)
        #expect(markdown.hasPrefix("## ❌ pgpreflight: Failed\n"))
        #expect(markdown.contains("2 findings were accepted by a suppression or the baseline"))
        #expect(markdown.contains("| Rule | Database | Status | Accepted | Message |"))
        #expect(markdown.contains("| ❌ Failed | 1 |"))
        #expect(markdown.contains("| ⚠️ Warning | 1 |"))
        #expect(markdown.contains("| ✅ Succeeded | 7 |"))
        #expect(markdown.contains("| ☑️ Accepted | 2 (1 Failed, 1 Warning) |"))
        #expect(markdown.contains("| **Source platform** | Azure Database for PostgreSQL |"))
        // The notice box comes before the tables.
        let noticeLine = try #require(markdown.split(separator: "\n").first { $0.hasPrefix("> - ") })
        #expect(noticeLine.hasSuffix(MarkdownReport.text(Fixtures.expiredNotice)))
        #expect(markdown.range(of: "> [!WARNING]")!.lowerBound < markdown.range(of: "### Results")!.lowerBound)

        let rows = markdown.split(separator: "\n").filter { $0.hasPrefix("| `") }
        #expect(rows.count == run.results.count)
        #expect(rows.filter { $0.contains("| ☑️ suppression |") }.count == 1)
        #expect(rows.filter { $0.contains("| ☑️ baseline |") }.count == 1)
        #expect(rows.contains { $0.hasPrefix("| `tables.case-collisions` | \(MarkdownReport.cell(suppressed.database!)) | ❌ Failed | ☑️ suppression |") })
        #expect(rows.contains { $0.hasPrefix("| `extensions.preload` | _server_ | ❌ Failed |  |") })
        for row in rows { #expect(row.replacingOccurrences(of: "\\|", with: "").filter { $0 == "|" }.count == 6) }

        // Details keep everything and say why.
        let collision = try #require(markdown.components(separatedBy: "#### ❌ `tables.case-collisions`").last)
        #expect(collision.hasPrefix(" · \(MarkdownReport.cell(suppressed.database!)) · accepted\n"))
        #expect(collision.contains("☑️ **Accepted** by a suppression: \(MarkdownReport.text(Fixtures.suppressionReason))"))
        #expect(collision.contains("Rename one of them"))
        let primaryKey = try #require(markdown.components(separatedBy: "#### ⚠️ `tables.primary-key` · \(MarkdownReport.cell(baselined.database!))").last)
        #expect(primaryKey.contains("☑️ **Accepted** by the baseline: \(MarkdownReport.text(baselineReason))"))
    }

    @Test func markdownStillFoldsUnderTheLimitWithAcceptedRows() {
        var run = Fixtures.largeRun(succeeded: 1500, failed: 3, objectsPerFailure: 10)
        let failures = run.results.indices.filter { run.results[$0].status == .failed }
        run.results[failures[0]].suppressed = Acceptance(by: .baseline, reason: "in the baseline")
        run.notices = ["a notice | with a pipe"]
        let markdown = MarkdownReport.render(run)
        #expect(markdown.utf8.count <= 60_000)
        #expect(markdown.contains("_1500 Succeeded results are not listed"))
        let rows = markdown.split(separator: "\n").filter { $0.hasPrefix("| `tables.primary-key`") }
        #expect(rows.count == 3)
        #expect(rows.filter { $0.contains("☑️ baseline") }.count == 1)
        #expect(markdown.contains("| ☑️ Accepted | 1 (1 Failed) |"))
        #expect(markdown.contains("| ❌ Failed | 2 |"))
        #expect(markdown.contains("> - a notice \\| with a pipe"))
        let tiny = MarkdownReport.render(run, limit: 5_000)
        #expect(tiny.utf8.count <= 5_000)
    }

    // MARK: html

    @Test func htmlBadgesReasonsFilterAndNotice() throws {
        let run = try Fixtures.acceptedRun()
        let html = HTMLReport.render(run)
        let rows = html.split(separator: "\n").filter { $0.hasPrefix("<tr class=") }
        #expect(rows.count == run.results.count)
        #expect(rows.filter { $0.contains("data-status=\"Accepted\"") }.count == 2)
        #expect(rows.filter { $0.contains("data-status=\"Failed\"") }.count == 1)
        #expect(rows.filter { $0.contains("data-status=\"Warning\"") }.count == 1)
        // Accepted rows keep their status class and come after the problems that count.
        #expect(rows[0].hasPrefix("<tr class=\"fail\"") && rows[1].hasPrefix("<tr class=\"warn\""))
        #expect(rows[2].hasPrefix("<tr class=\"fail accepted\"") && rows[3].hasPrefix("<tr class=\"warn accepted\""))

        #expect(html.contains("<span class=\"pill fail\">✕ Failed</span><span class=\"accepted-badge\" title=\"\(HTMLReport.escape(Fixtures.suppressionReason)) (suppression)\">accepted</span>"))
        #expect(html.contains("<span class=\"accepted-badge\">accepted</span> by a suppression: <span class=\"reason\">\(HTMLReport.escape(Fixtures.suppressionReason))</span>"))
        #expect(html.contains("<span class=\"accepted-badge\">accepted</span> by the baseline: <span class=\"reason\">\(baselineReason)</span>"))
        #expect(html.contains("<button type=\"button\" data-status-filter=\"Accepted\" aria-pressed=\"false\">Accepted</button>"))
        #expect(html.contains("<span class=\"count\">2</span><span class=\"label\">Accepted</span>"))
        #expect(html.contains("<span class=\"count\">1</span><span class=\"label\">Failed</span>"))
        #expect(html.contains("<span class=\"count\">7</span><span class=\"label\">Succeeded</span>"))
        #expect(html.contains("<p class=\"platform\">Source platform: <strong>Azure Database for PostgreSQL</strong></p>"))
        #expect(html.contains("<section class=\"notices\""))
        #expect(html.contains("\(HTMLReport.escape(Fixtures.expiredNotice))</li>"))
        #expect(html.contains("2 findings accepted by a suppression or the baseline do not count."))
        // Without accepted findings or notices nothing of this appears (but the filter exists).
        let plain = HTMLReport.render(try Fixtures.realRun())
        #expect(!plain.contains("class=\"accepted-badge\"") && !plain.contains("<section class=\"notices\"") && !plain.contains("class=\"platform\""))
        #expect(plain.contains("<span class=\"count\">0</span><span class=\"label\">Accepted</span>"))
    }

    // MARK: junit

    @Test func junitSkipsAcceptedFindingsAndValidatesAgainstBothSchemas() throws {
        let run = try Fixtures.acceptedRun()
        let (suppressed, baselined) = try accepted(run)
        for strict in [false, true] {
            let xml = try JUnitReport.render(run, options: ReportOptions(strict: strict))
            #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: jenkinsSchema) == [])
            #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: ourSchema) == [])
            #expect(try XMLSchemaValidator.validate(xml: xml, schemaText: JUnitReport.schema) == [])
            let document = try parseXML(xml)

            // The suppressed Failed: skipped with the reason, original status and message kept.
            let collision = try #require(try document.nodes(forXPath: "//testcase[@name='tables.case-collisions']").first)
            #expect(try collision.nodes(forXPath: "failure").isEmpty)
            let skipped = try #require(try collision.nodes(forXPath: "skipped").first)
            #expect(attribute(skipped, "message") == Fixtures.suppressionReason)
            let out = try #require(try collision.nodes(forXPath: "system-out").first?.stringValue)
            #expect(out.hasPrefix("Failed: \(suppressed.message)\nAccepted by a suppression: \(Fixtures.suppressionReason)\n"))
            for object in suppressed.objects { #expect(out.contains(object)) }

            // The baselined Warning: skipped even in strict mode (it does not count).
            let path = "//testsuite[@name='pgpreflight.source.\(baselined.database!)']/testcase[@name='tables.primary-key']"
            let primaryKey = try #require(try document.nodes(forXPath: path).first)
            #expect(attribute(try #require(try primaryKey.nodes(forXPath: "skipped").first), "message") == baselineReason)
            #expect(try primaryKey.nodes(forXPath: "failure").isEmpty)

            // Counts: skipped = accepted per suite; failures leave accepted ones out.
            for suite in try document.nodes(forXPath: "/testsuites/testsuite") {
                let cases = try suite.nodes(forXPath: "testcase")
                #expect(attribute(suite, "tests") == String(cases.count))
                #expect(attribute(suite, "skipped") == String(try suite.nodes(forXPath: "testcase[skipped]").count))
                #expect(attribute(suite, "failures") == String(try suite.nodes(forXPath: "testcase[failure]").count))
            }
            let suites = try #require(try document.nodes(forXPath: "/testsuites").first)
            #expect(attribute(suites, "failures") == String(strict ? 2 : 1))  // preload (+ tls warning in strict)
            #expect(try document.nodes(forXPath: "//testcase[skipped]").count == 2)
            let shopSuite = try #require(try document.nodes(forXPath: "//testsuite[@name='pgpreflight.source.\(suppressed.database!)']").first)
            #expect(attribute(shopSuite, "skipped") == "2")
            #expect(attribute(shopSuite, "failures") == "0")
            // The shop suite's status no longer counts what was accepted.
            #expect(try shopSuite.nodes(forXPath: "properties/property[@name='status']").first.flatMap { attribute($0, "value") } == "Succeeded")

            // Notices in the first suite's system-out, the platform on every suite.
            let notices = try document.nodes(forXPath: "/testsuites/testsuite[1]/system-out")
            #expect(notices.count == 1)
            #expect(notices.first?.stringValue?.hasPrefix("Notice: ") == true)
            #expect(notices.first?.stringValue?.hasSuffix(Fixtures.expiredNotice) == true)
            #expect(try document.nodes(forXPath: "/testsuites/testsuite[position() > 1]/system-out").isEmpty)
            #expect(try document.nodes(forXPath: "//property[@name='platform' and @value='azure']").count
                    == (try document.nodes(forXPath: "/testsuites/testsuite")).count)
        }
    }

    @Test func junitKeepsNoticesOfARunWithoutResults() throws {
        var run = try Fixtures.acceptedRun()
        run.results = []
        let xml = try JUnitReport.render(run)
        #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: jenkinsSchema) == [])
        #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: ourSchema) == [])
        #expect(xml.contains("<!-- Notice: ") && xml.contains(Fixtures.expiredNotice))
    }

    @Test func ourSchemaRejectsAMalformedSkip() throws {
        let xml = try JUnitReport.render(try Fixtures.acceptedRun())
        let noMessage = xml.replacingOccurrences(of: #"<skipped message="[^"]*"/>"#, with: "<skipped/>", options: .regularExpression)
        #expect(noMessage != xml)
        #expect(try XMLSchemaValidator.validate(xml: noMessage, schemaFile: jenkinsSchema) == [])
        #expect(try XMLSchemaValidator.validate(xml: noMessage, schemaFile: ourSchema) != [])
        // A skip must carry the original status in its system-out.
        let noOut = xml.replacingOccurrences(of: #"(<skipped message="[^"]*"/>)\s*<system-out>[^<]*</system-out>"#, with: "$1",
                                             options: .regularExpression)
        #expect(noOut != xml)
        #expect(try XMLSchemaValidator.validate(xml: noOut, schemaFile: ourSchema) != [])
    }

    @Test func reasonsAndNoticesAreEscapedLikeServerText() throws {
        var run = Fixtures.hostileRun()
        let reason = "<img src=x onerror=alert(1)> | `tick` \u{1B}[31m\nsecond line"
        run.results[1].suppressed = Acceptance(by: .suppression, reason: reason)
        run.notices = ["<b>bold</b> | \u{1B}]0;title\u{7}"]
        run.platform = "<unknown>"
        let html = HTMLReport.render(run)
        #expect(!html.contains("<img") && !html.contains("<b>") && !html.contains("<unknown>"))
        #expect(html.contains("&lt;img src=x onerror=alert(1)&gt;"))
        let markdown = MarkdownReport.render(run)
        #expect(!markdown.contains("<img") && !markdown.contains("<b>"))
        for row in markdown.split(separator: "\n") where row.hasPrefix("| `") {
            #expect(row.replacingOccurrences(of: "\\|", with: "").filter { $0 == "|" }.count == 6)
        }
        let console = ConsoleReport.render(run, options: ReportOptions())
        #expect(!console.contains("\u{1B}") && !console.contains("\u{7}"))
        #expect(console.contains("Source platform: <unknown>"))
        let xml = try JUnitReport.render(run)
        #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: jenkinsSchema) == [])
        #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: ourSchema) == [])
        let skipped = try #require(try parseXML(xml).nodes(forXPath: "//skipped").first)
        #expect(attribute(skipped, "message") == reason.replacingOccurrences(of: "\u{1B}", with: "\u{FFFD}"))
    }

    // MARK: json

    @Test func jsonCarriesSuppressedNoticesAndPlatform() throws {
        let run = try Fixtures.acceptedRun()
        let json = try #require(try JSONSerialization.jsonObject(with: Data(try JSONReport.render(run).utf8)) as? [String: Any])
        #expect(json["platform"] as? String == "azure")
        #expect((json["notices"] as? [String])?.first?.hasSuffix(Fixtures.expiredNotice) == true)
        #expect(json["status"] as? String == "Failed")
        let results = try #require(json["results"] as? [[String: Any]])
        let collision = try #require(results.first { $0["rule"] as? String == "tables.case-collisions" })
        #expect(collision["status"] as? String == "Failed")
        let suppressed = try #require(collision["suppressed"] as? [String: Any])
        #expect(suppressed["by"] as? String == "suppression")
        #expect(suppressed["reason"] as? String == Fixtures.suppressionReason)
        let preload = try #require(results.first { $0["rule"] as? String == "extensions.preload" })
        #expect(preload["suppressed"] == nil)
        #expect(results.filter { ($0["suppressed"] as? [String: Any])?["by"] as? String == "baseline" }.count == 1)
    }
}
