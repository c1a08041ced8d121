import Foundation
@testable import Reports
import Testing
import TestSupport
import Validation

@Suite struct HTMLReportTests {
    private func rows(_ html: String) -> [Substring] {
        html.split(separator: "\n").filter { $0.hasPrefix("<tr class=") }
    }

    @Test func everyResultWithItsStatusMessageAndRemedy() throws {
        let run = try Fixtures.realRun()
        let html = HTMLReport.render(run)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.contains("<span class=\"badge fail\">✕ Failed</span>"))
        #expect(rows(html).count == run.results.count)
        // Problems first.
        #expect(rows(html).map { $0.contains("data-status=\"Failed\"") ? 0 : $0.contains("data-status=\"Warning\"") ? 1 : 2 }
                == rows(html).map { $0.contains("data-status=\"Failed\"") ? 0 : $0.contains("data-status=\"Warning\"") ? 1 : 2 }.sorted())
        for result in run.results {
            #expect(html.contains("<code class=\"rule\">\(HTMLReport.escape(result.rule))</code>"))
            #expect(html.contains("<div class=\"message\">\(HTMLReport.escape(result.message))</div>"))
            if result.status != .succeeded {
                #expect(html.contains("<pre>\(HTMLReport.escape(result.remedy))</pre>"))
            }
            for object in result.objects { #expect(html.contains("<code>\(HTMLReport.escape(object))</code>")) }
        }
        let cssClass: [Status: String] = [.failed: "fail", .warning: "warn", .succeeded: "ok"]
        for row in rows(html) {
            let status = try #require(Status.allCases.first { row.contains("data-status=\"\($0.rawValue)\"") })
            #expect(row.hasPrefix("<tr class=\"\(cssClass[status]!)\""))
        }
        for status in Status.allCases {
            #expect(html.contains("<span class=\"count\">\(run.count(status))</span><span class=\"label\">\(status.rawValue)</span>"))
        }
        #expect(html.contains("PostgreSQL \(run.source.serverVersion!)"))
        #expect(html.contains("PostgreSQL \(run.target.serverVersion!)"))
        #expect(html.contains("<dd>Offline<span class=\"note\">"))
    }

    @Test func filtersByStatusAndDatabase() throws {
        let run = try Fixtures.realRun()
        let html = HTMLReport.render(run)
        for filter in ["all", "Failed", "Warning", "Succeeded"] {
            #expect(html.contains("<button type=\"button\" data-status-filter=\"\(filter)\""))
        }
        #expect(html.contains("<select id=\"database-filter\">"))
        #expect(html.contains("<option value=\"instance\">Server-wide checks</option>"))
        for database in run.databases {
            #expect(html.contains("<option value=\"db:\(database)\">\(database)</option>"))
            let expected = run.results.filter { $0.database == database }.count
            #expect(rows(html).filter { $0.contains("data-scope=\"db:\(database)\"") }.count == expected)
        }
        #expect(rows(html).filter { $0.contains("data-scope=\"instance\"") }.count == run.results.filter { $0.database == nil }.count)
        // The filter script is inline and reads exactly these attributes.
        #expect(html.contains("row.getAttribute(\"data-status\")"))
        #expect(html.contains("row.getAttribute(\"data-scope\")"))
        #expect(html.contains("<section class=\"toolbar\" id=\"toolbar\" hidden>"))  // shown by the script only
    }

    @Test func selfContained() throws {
        let html = HTMLReport.render(try Fixtures.realRun())
        for reference in ["<link", " src=", "url(", "@import", "//fonts.", "<iframe", "<img"] {
            #expect(!html.contains(reference), "the report references \(reference)")
        }
        // "http" appears only in documentation links.
        let linkPrefix = "<a class=\"doc\" href=\""
        var remaining = html[...]
        while let range = remaining.range(of: "http") {
            #expect(html[..<range.lowerBound].hasSuffix(linkPrefix), "http outside a documentation link")
            remaining = remaining[range.upperBound...]
        }
        #expect(html.components(separatedBy: linkPrefix + "https://www.postgresql.org/docs/current/").count - 1
                == (try Fixtures.realRun()).results.count)
        #expect(html.components(separatedBy: "<script>").count == 2)
        #expect(html.components(separatedBy: "<style>").count == 2)
    }

    @Test func escapesEverything() {
        var run = Fixtures.hostileRun()
        run.results[0].documentation = "javascript:alert(1)"
        run.results[1].documentation = "https://example.com/?a=1&b=\"2\""
        let html = HTMLReport.render(run)
        #expect(html.components(separatedBy: "<script>").count == 2)  // only ours
        #expect(!html.contains("<b>"))
        #expect(html.contains("Bad &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39; ünïcødé ✓ \u{FFFD}bell"))
        #expect(html.contains("ALTER TABLE public.&quot;Ü&lt;&amp;&gt;&quot; REPLICA IDENTITY FULL; -- it&#39;s &quot;fine&quot;"))
        #expect(html.contains("<option value=\"db:café € &lt;shop&gt;\">café € &lt;shop&gt;</option>"))
        #expect(html.contains("migr&lt;ator&gt;@"))
        #expect(!html.contains("javascript:"))
        #expect(html.contains("href=\"https://example.com/?a=1&amp;b=&quot;2&quot;\""))
        #expect(!html.contains("\u{1}"))
    }

    @Test func strictAndServerName() {
        var run = Fixtures.hostileRun()
        run.results.removeAll { $0.status == .failed }
        #expect(HTMLReport.render(run).contains("<span class=\"badge warn\">▲ Warning</span>"))
        let strict = HTMLReport.render(run, options: ReportOptions(strict: true, serverName: "prod-eu"))
        #expect(strict.contains("<span class=\"badge fail\">✕ Failed</span>"))
        #expect(strict.contains("strict: warnings fail"))
        #expect(strict.contains("<h1>prod-eu <span class=\"arrow\">→</span>"))
    }
}

extension HTMLReportTests {
    /// At 400 px (a phone) each result is a block of its own, so the finding and remedy get the
    /// whole width instead of a column beside status and check that broke one word per line.
    /// (No browser here: the stylesheet is checked for the rules that do it.)
    @Test func narrowScreensStackEachResult() throws {
        let run = try Fixtures.realRun()
        let html = HTMLReport.render(run)
        let start = try #require(html.range(of: "@media (max-width: 560px) {"))
        let block = String(html[start.upperBound...].prefix { $0 != "@" })
        #expect(block.contains(".results thead { display: none; }"), "\(block)")
        #expect(block.contains(".results, .results tbody, .results tr, .results td { display: block; width: auto; }"), "\(block)")
        #expect(block.contains(".remedy pre { overflow-wrap: anywhere; word-break: normal; }"), "\(block)")
        // Every result has the cells the stacked layout styles.
        #expect(html.components(separatedBy: "<td class=\"c-status\">").count - 1 == run.results.count)
        #expect(html.components(separatedBy: "<td class=\"c-finding\">").count - 1 == run.results.count)
    }
}

extension HTMLReportTests {
    /// Measures the laid-out page in the browser and records it on <html>: the viewport width,
    /// whether the page is wider, elements reaching past the viewport's edges, and how many
    /// visible results show their finding below their status across the row's width (stacked)
    /// or beside it (a table row).
    static let layoutProbe = """
        <script>
        (() => {
          const root = document.documentElement, width = root.clientWidth;
          let stacked = 0, beside = 0;
          for (const row of document.querySelectorAll('.results tbody tr')) {
            const status = row.querySelector('td.c-status'), finding = row.querySelector('td.c-finding');
            if (!status || !finding || row.offsetParent === null) continue;
            const s = status.getBoundingClientRect(), f = finding.getBoundingClientRect(), r = row.getBoundingClientRect();
            if (f.top >= s.bottom - 1 && f.width >= r.width - 2) stacked++; else beside++;
          }
          const past = [...document.body.querySelectorAll('*')].filter(e => {
            const b = e.getBoundingClientRect();
            return b.width > 0 && b.height > 0 && (b.right > width + 1 || b.left < -1);
          }).map(e => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).replace(/ /g, '.') : ''));
          root.setAttribute('data-width', String(width));
          root.setAttribute('data-overflow', root.scrollWidth > width ? 'yes' : 'no');
          root.setAttribute('data-past-edge', past.slice(0, 8).join(' '));
          root.setAttribute('data-stacked', String(stacked));
          root.setAttribute('data-beside', String(beside));
        })();
        </script>
        """

    /// The report as a phone shows it (390 px, rendered by headless Chromium): nothing wider
    /// than the screen, and every visible result stacked (status, check, finding and remedy one
    /// under the other at the full width); at 1280 px the same results are table rows.
    @Test func aPhoneShowsEveryResultStackedAndNothingOverflows() throws {
        let chromium = try #require(HeadlessChromium.binary, "headless Chromium is missing: run scripts/setup.sh (apt package chromium-headless-shell)")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-html-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let browser = HeadlessChromium(binary: chromium, scratch: directory)
        for (name, run) in [("real", try Fixtures.realRun()), ("hostile", Fixtures.hostileRun()),
                            ("large", Fixtures.largeRun(succeeded: 20, failed: 5, objectsPerFailure: 50))] {
            let html = HTMLReport.render(run)
            let end = try #require(html.range(of: "</body>", options: .backwards))
            let page = directory.appendingPathComponent("\(name).html")
            try html.replacingCharacters(in: end, with: Self.layoutProbe + "\n</body>").write(to: page, atomically: true, encoding: .utf8)

            let phone = HeadlessChromium.rootAttributes(of: try browser.dumpDOM(of: page, width: 390))
            #expect(phone["data-width"] == "390", "\(name): \(phone)")
            #expect(phone["data-overflow"] == "no", "\(name): the page is wider than a 390 px screen")
            #expect(phone["data-past-edge"] == "", "\(name): past the screen's edge: \(phone["data-past-edge"] ?? "?")")
            #expect(Int(phone["data-stacked"] ?? "") ?? 0 > 0, "\(name): \(phone)")
            #expect(phone["data-beside"] == "0", "\(name): \(phone)")

            let desktop = HeadlessChromium.rootAttributes(of: try browser.dumpDOM(of: page, width: 1280))
            #expect(desktop["data-stacked"] == "0" && desktop["data-beside"] == phone["data-stacked"], "\(name): \(desktop)")
        }
    }
}
