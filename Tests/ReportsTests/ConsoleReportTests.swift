import Foundation
import Reports
import Testing
import Validation

@Suite struct ConsoleReportTests {
    @Test func gridRemediesAndSummary() throws {
        let run = try Fixtures.realRun()
        let text = ConsoleReport.render(run, options: ReportOptions())
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0].contains("PostgreSQL \(run.source.serverVersion!)") && lines[0].contains("offline mode"))
        let header = try #require(lines.firstIndex { $0.hasPrefix("RULE ") })
        #expect(lines[header].contains("DATABASE") && lines[header].hasSuffix("MESSAGE"))
        let statusColumn = try #require(lines[header].range(of: "STATUS")).lowerBound.utf16Offset(in: lines[header])

        // One grid row per result, the status in its column.
        for result in run.results {
            let row = try #require(lines.first {
                $0.hasPrefix(result.rule + " ") && $0.contains(" \(result.database ?? "-") ") && $0.hasSuffix(result.message)
            })
            #expect(row.dropFirst(statusColumn).hasPrefix(result.status.rawValue))
        }
        // The remedy and objects under each problem, nothing under Succeeded rows.
        let tls = try #require(lines.firstIndex { $0.hasPrefix("connectivity.tls ") })
        #expect(lines[tls + 1].trimmingCharacters(in: .whitespaces) == "↳ Enable SSL on the source (ssl = on) and connect with sslmode=require or stricter.")
        let primaryKey = try #require(lines.firstIndex { $0.hasPrefix("tables.primary-key ") && $0.contains("Warning") })
        #expect(lines[primaryKey + 1].trimmingCharacters(in: .whitespaces) == "objects: public.\"Audit\", public.events")
        #expect(lines[primaryKey + 2].contains("↳ ALTER TABLE public.\"Audit\" REPLICA IDENTITY FULL;"))
        let succeeded = try #require(lines.firstIndex { $0.hasPrefix("connectivity.source ") })
        #expect(lines[succeeded + 1].hasPrefix("connectivity.target "))

        #expect(lines.last { !$0.isEmpty } == "Failed: 2 failed, 2 warnings, 7 succeeded (offline mode, 2 databases, \(run.durationMs) ms)")
        #expect(!text.contains("\u{1B}["))
        #expect(ConsoleReport.render(run, options: ReportOptions(color: true)).contains("\u{1B}[31mFailed"))
    }

    @Test func noTerminalControlFromServerData() {
        var run = Fixtures.hostileRun()
        run.results[1].objects.append("public.\"\u{1B}]0;pwned\u{7}\"")
        let text = ConsoleReport.render(run, options: ReportOptions(strict: true))
        #expect(!text.contains("\u{1B}"))
        #expect(!text.contains("\u{7}"))
        #expect(text.hasSuffix("Failed (strict): 1 failed, 1 warning, 1 succeeded (online mode, 1 database, 1500 ms)\n"))
    }
}

/// What the CLI shows: problems first, the Succeeded rows counted in one line (unless `--all`),
/// no line wider than the terminal.
extension ConsoleReportTests {
    @Test func problemsFirstSucceededFoldedAndNoLineWiderThanTheTerminal() throws {
        let run = try Fixtures.realRun()
        let problems = run.results.filter { $0.status != .succeeded }
        let succeeded = run.results.filter { $0.status == .succeeded && $0.suppressed == nil }
        #expect(!problems.isEmpty && !succeeded.isEmpty)

        let listed = ConsoleReport.render(run, options: ReportOptions())
        let rows = listed.split(separator: "\n").map(String.init).filter { line in run.results.contains { line.hasPrefix($0.rule + " ") } }
        // Every problem row comes before the first Succeeded row.
        let firstSucceeded = try #require(rows.firstIndex { $0.contains(" Succeeded ") })
        #expect(rows[firstSucceeded...].allSatisfy { $0.contains(" Succeeded ") }, "\(rows)")

        let folded = ConsoleReport.render(run, options: ReportOptions(foldSucceeded: true))
        for result in succeeded where !problems.contains(where: { $0.rule == result.rule }) {
            #expect(!folded.contains(result.rule + " "), "\(result.rule) listed: \(folded)")
        }
        for result in problems { #expect(folded.contains(result.rule + " "), "\(result.rule) missing: \(folded)") }
        #expect(folded.contains("✓ \(succeeded.count) more rules Succeeded (--all lists them)"), "\(folded)")
        #expect(folded.contains("\(succeeded.count) succeeded"))  // the summary still counts them

        for width in [60, 80, 100] {
            let narrow = ConsoleReport.render(run, options: ReportOptions(foldSucceeded: true, width: width))
            let lines = narrow.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.allSatisfy { $0.count <= width }, "\(width): \(lines.filter { $0.count > width })")
            // Nothing lost: the same words, only on more lines.
            let words = { (text: String) in text.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ") }
            #expect(words(narrow) == words(folded))
        }
        // Colour codes take no room.
        let coloured = ConsoleReport.render(run, options: ReportOptions(color: true, width: 80))
        #expect(coloured.contains("\u{1B}["))
        #expect(coloured.split(separator: "\n").allSatisfy {
            $0.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression).count <= 80
        })
    }
}
