import Foundation
@testable import Reports
import Testing
import Validation

@Suite struct MarkdownReportTests {
    @Test func summaryResultsAndDetails() throws {
        let run = try Fixtures.realRun()
        let markdown = MarkdownReport.render(run)
        #expect(markdown.hasPrefix("## ❌ pgpreflight: Failed\n"))
        #expect(markdown.contains("| ❌ Failed | \(run.count(.failed)) |"))
        #expect(markdown.contains("| ⚠️ Warning | \(run.count(.warning)) |"))
        #expect(markdown.contains("| ✅ Succeeded | \(run.count(.succeeded)) |"))
        #expect(markdown.contains("PostgreSQL \(run.source.serverVersion!.replacingOccurrences(of: "_", with: "\\_"))"))
        #expect(markdown.contains("PostgreSQL \(run.target.serverVersion!)"))
        #expect(markdown.contains("| **Mode** | offline |"))

        // One table row per result, with its status.
        let rows = markdown.split(separator: "\n").filter { $0.hasPrefix("| `") }
        #expect(rows.count == run.results.count)
        for result in run.results {
            #expect(rows.contains { $0.hasPrefix("| `\(result.rule)` | \(result.database.map(MarkdownReport.cell) ?? "_server_") | "
                                                + "\(MarkdownReport.emoji(result.status)) \(result.status.rawValue) |") })
        }

        // A details section for every result that is not Succeeded, none for the others.
        let headings = markdown.split(separator: "\n").filter { $0.hasPrefix("#### ") }
        #expect(headings.count == run.count(.failed) + run.count(.warning))
        let collisions = try #require(run.results.first { $0.rule == "tables.case-collisions" })
        let section = try #require(markdown.components(separatedBy: "#### ❌ `tables.case-collisions`").last)
        for object in collisions.objects { #expect(section.contains(object)) }
        #expect(section.contains("```\nRename one of them, e.g.:\nALTER TABLE public.\"Order\" RENAME TO \"order_archive\";\n```"))
        #expect(!markdown.contains("#### ✅"))
    }

    @Test func strictTurnsWarningsIntoAFailedRun() {
        var run = Fixtures.hostileRun()
        run.results.removeAll { $0.status == .failed }
        #expect(MarkdownReport.render(run).hasPrefix("## ⚠️ pgpreflight: Warning"))
        let strict = MarkdownReport.render(run, options: ReportOptions(strict: true))
        #expect(strict.hasPrefix("## ❌ pgpreflight: Failed"))
        #expect(strict.contains("strict"))
    }

    @Test func escapesHTMLAndMarkdown() {
        let markdown = MarkdownReport.render(Fixtures.hostileRun())
        #expect(!markdown.contains("<script>"))
        #expect(markdown.contains("Bad &lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; 'quotes' ünïcødé ✓"))
        #expect(markdown.contains("café € &lt;shop&gt;"))
        // A backtick in an object cannot close the code block it sits in.
        #expect(markdown.contains("```\npublic.\"Ü<&>\"\npublic.`tick`\n```"))
        // Every table row has exactly its five cells (no pipe leaks out of a cell).
        for row in markdown.split(separator: "\n") where row.hasPrefix("| `") {
            #expect(row.replacingOccurrences(of: "\\|", with: "").filter { $0 == "|" }.count == 6)
        }
    }

    @Test func staysUnderTheLimitByFoldingSucceededRows() {
        // 1 500 Succeeded rows do not fit; the failures and their details do.
        let run = Fixtures.largeRun(succeeded: 1500, failed: 3, objectsPerFailure: 10)
        #expect(MarkdownReport.render(run, limit: 10_000_000).utf8.count > 60_000)
        let markdown = MarkdownReport.render(run)
        #expect(markdown.utf8.count <= 60_000)
        #expect(markdown.contains("_1500 Succeeded results are not listed"))
        #expect(!markdown.contains("✅ Succeeded | Nothing to report"))
        #expect(markdown.split(separator: "\n").filter { $0.hasPrefix("| `tables.primary-key`") }.count == 3)
        #expect(markdown.split(separator: "\n").filter { $0.hasPrefix("#### ❌") }.count == 3)
        #expect(markdown.contains("public.table_with_a_rather_long_name_9"))
        // The counts still cover everything.
        #expect(markdown.contains("| ✅ Succeeded | 1500 |"))
    }

    @Test func staysUnderTheLimitWhenEvenTheProblemsAreTooMany() {
        let huge = Fixtures.largeRun(succeeded: 2000, failed: 100, objectsPerFailure: 400)
        let markdown = MarkdownReport.render(huge)
        #expect(markdown.utf8.count <= 60_000)
        #expect(markdown.contains("Succeeded results are not listed"))
        #expect(markdown.contains("… and 395 more"))
        #expect(markdown.contains("### Details"))
        #expect(markdown.hasSuffix("checks</sub>\n"))

        let tiny = MarkdownReport.render(huge, limit: 5_000)
        #expect(tiny.utf8.count <= 5_000)
        #expect(tiny.contains("more results are left out") || tiny.contains("more non-Succeeded results are not listed"))
    }
}

extension MarkdownReportTests {
    /// Problems first; the passing rows folded in a <details> after them.
    @Test func problemsFirstAndPassingRowsFoldedInDetails() throws {
        let run = try Fixtures.realRun()
        let markdown = MarkdownReport.render(run)
        let lines = markdown.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let open = try #require(lines.firstIndex { $0.hasPrefix("<details><summary>✅ \(run.count(.succeeded)) Succeeded</summary>") })
        let close = try #require(lines[open...].firstIndex(of: "</details>"))
        #expect(lines[open + 1].isEmpty)  // GitHub renders the table inside only after a blank line
        let rows = lines.enumerated().filter { $0.element.hasPrefix("| `") }
        let problemRows = rows.filter { $0.offset < open }, passingRows = rows.filter { $0.offset > open && $0.offset < close }
        #expect(problemRows.count == run.results.filter { $0.status != .succeeded }.count)
        #expect(passingRows.count == run.count(.succeeded))
        #expect(problemRows.allSatisfy { !$0.element.contains("✅ Succeeded") })
        #expect(passingRows.allSatisfy { $0.element.contains("✅ Succeeded") })
        // Failed rows before Warning rows.
        let lastFailed = try #require(problemRows.last { $0.element.contains("❌ Failed") }?.offset)
        let firstWarning = try #require(problemRows.first { $0.element.contains("⚠️ Warning") }?.offset)
        #expect(lastFailed < firstWarning)
    }
}
