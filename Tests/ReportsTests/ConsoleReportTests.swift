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
        #expect(text.hasSuffix("Failed (strict): 1 failed, 1 warnings, 1 succeeded (online mode, 1 databases, 1500 ms)\n"))
    }
}
