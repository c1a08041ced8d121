import Foundation
import Validation

/// `index.html` over all servers of a scan: status, counts, what changed, and the trend of the
/// last runs as a small inline chart. Self-contained (no network): one inline style and one
/// inline script, which filters the servers by status and by tag. The filter lives in the URL
/// fragment (`#status=Failed&tag=payments`), so a filtered view can be bookmarked or linked.
public enum FleetIndex {
    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    public static func render(summary: FleetScan.Summary) -> String {
        func keys(_ list: [ScanHistory.Key]) -> String {
            list.isEmpty ? "" : list.map { esc($0.rule + ($0.database.map { " (\($0))" } ?? "")) }.joined(separator: "<br>")
        }
        func findings(_ list: [ScanHistory.Finding], _ what: String) -> String {
            guard !list.isEmpty else { return "" }
            let shown = list.prefix(8).map { f in
                "<span class=\"finding \(f.status.rawValue)\">" + esc(f.rule + (f.database.map { " (\($0))" } ?? "")) + (f.object.map { ": <code>\(esc($0))</code>" } ?? "") + "</span>"
            }
            return "<div class=count>\(list.count) \(what)</div>" + shown.joined(separator: "<br>") + (list.count > 8 ? "<br><span class=muted>and \(list.count - 8) more (summary.json)</span>" : "")
        }
        func sparkline(_ points: [ScanHistory.TrendPoint]) -> String {
            guard points.count > 1 else { return "" }  // one scan draws no line
            let width = 120.0, height = 36.0
            let top = Double(max(1, points.map { $0.failed + $0.warnings }.max() ?? 1))
            let step = points.count > 1 ? width / Double(points.count - 1) : 0
            func path(_ value: (ScanHistory.TrendPoint) -> Int) -> String {
                points.enumerated().map { i, p in
                    String(format: "%.1f,%.1f", Double(i) * step, height - 2 - Double(value(p)) / top * (height - 4))
                }.joined(separator: " ")
            }
            return """
                <svg width="\(Int(width))" height="\(Int(height))" role="img" aria-label="failed and warnings over the last \(points.count) scans">
                <polyline fill="none" stroke="#d97706" stroke-width="2" points="\(path { $0.warnings })"/>
                <polyline fill="none" stroke="#dc2626" stroke-width="2" points="\(path { $0.failed })"/></svg>
                """
        }
        /// A cell with its column name (shown before the value on narrow screens); an empty
        /// one shows a dash on wide screens and nothing on narrow ones.
        /// (The value sits in one div so that a narrow screen's label-and-value row has two parts.)
        func cell(_ label: String, _ html: String, number: Bool = false, wide: Bool = false) -> String {
            let classes = [number ? "num" : nil, html.isEmpty ? "empty" : nil, wide && !html.isEmpty ? "wide" : nil].compactMap { $0 }.joined(separator: " ")
            return "<td data-label=\"\(label)\"\(classes.isEmpty ? "" : " class=\"\(classes)\"")><div class=v>\(html.isEmpty ? "<span class=muted>–</span>" : html)</div></td>"
        }
        /// What the filter script matches: the status and the tags (space-delimited on both sides).
        func filterAttributes(_ server: FleetScan.ServerSummary) -> String {
            "data-server=\"\(esc(server.name))\" data-status=\"\(server.status.rawValue)\" data-tags=\" \(server.tags.map(esc).joined(separator: " ")) \""
        }
        // (Typed: Scanning imports GRDB, whose SQL literal also has a `joined(separator:)`.)
        let rows = summary.servers.map { (server: FleetScan.ServerSummary) -> String in
            let tags = server.tags.map { "<a class=tag href=\"#tag=\(esc($0))\">\(esc($0))</a>" }.joined(separator: " ")
            return """
                <tr class=server \(filterAttributes(server))><td data-label="Server" class=name><a href="\(esc(server.name)).html">\(esc(server.name))</a>\(tags.isEmpty ? "" : "<div class=tags>\(tags)</div>")</td>
                \(cell("Status", "<span class=\"badge \(server.status.rawValue)\">\(server.status.rawValue)</span>"))
                \(cell("Failed", "\(server.failed)", number: true))\(cell("Warnings", "\(server.warnings)", number: true))
                \(cell("New findings", findings(server.newFindings, "new"), wide: true))
                \(cell("Resolved findings", findings(server.resolvedFindings, "resolved"), wide: true))
                \(cell("Rules newly Failed", keys(server.newFailures), wide: true))
                \(cell("Trend", sparkline(server.trend)))
                \(cell("Problem", server.problem.map { esc($0) } ?? "", wide: true))\(cell("Files", "<a href=\"\(esc(server.name)).json\">json</a> · <a href=\"\(esc(server.name)).junit.xml\">junit</a>"))</tr>
                """
        }.joined(separator: "\n")
        // Heat map: servers × rule families, each cell the family's worst status on the server.
        let families = Set(summary.servers.flatMap(\.families.keys)).sorted()
        let heatRows = summary.servers.map { (server: FleetScan.ServerSummary) -> String in
            "<tr \(filterAttributes(server))><th><a href=\"\(esc(server.name)).html\">\(esc(server.name))</a></th>" + families.map { family in
                let status = server.families[family]
                return "<td class=\"cell \(status?.rawValue ?? "none")\" title=\"\(esc(server.name)) · \(esc(family)): \(status?.rawValue ?? "not evaluated")\"></td>"
            }.joined() + "</tr>"
        }.joined(separator: "\n")
        // The heat map scrolls inside its own box: many families must not widen the page.
        let heatMap = families.isEmpty ? "" : """
            <h2>Readiness by rule family</h2>
            <div class=scroll><table class=heat><thead><tr><th></th>\(families.map { "<th class=family>\(esc($0))</th>" }.joined())</tr></thead>
            <tbody>
            \(heatRows)
            </tbody></table></div>
            """
        let statusButtons = (["all"] + Status.allCases.sorted(by: >).map(\.rawValue)).map { (status: String) -> String in
            let count = status == "all" ? summary.servers.count : summary.servers.filter { $0.status.rawValue == status }.count
            return "<button type=button data-status-filter=\"\(status)\" aria-pressed=\"\(status == "all")\">\(status == "all" ? "All" : status) <span class=n>\(count)</span></button>"
        }.joined()
        var tagCounts: [String: Int] = [:]
        for server in summary.servers { for tag in server.tags { tagCounts[tag, default: 0] += 1 } }
        let tagOptions = tagCounts.keys.sorted().map { "<option value=\"\(esc($0))\">\(esc($0)) (\(tagCounts[$0]!))</option>" }.joined()
        let finished = ISO8601DateFormatter().string(from: summary.finishedAt)
        return """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>pgpreflight fleet scan \(finished)</title>
            <style>\(style)</style></head><body>
            <h1>pgpreflight fleet scan <span class="badge \(summary.status.rawValue)">\(summary.status.rawValue)</span></h1>
            <div class=muted>\(summary.servers.count) servers · finished \(finished)\(summary.shard.map { " · shard \($0)" } ?? "") · red: failed, amber: warnings over recent scans</div>
            <p id=changes><strong>\(summary.newFindings)</strong> new findings · <strong>\(summary.resolvedFindings)</strong> resolved since the previous scan (a finding is a rule's object on a server's database)</p>
            <nav class=filters id=filters aria-label="Filter the servers" hidden>
            <div class=group role=group aria-label="Status">\(statusButtons)</div>
            <label>Tag <select id=tag-filter><option value="">All tags</option>\(tagOptions)</select></label>
            <span id=shown class=muted></span>
            </nav>
            <p id=empty class=muted hidden>No server matches this filter.</p>
            <table class=servers><thead><tr><th>Server</th><th>Status</th><th>Failed</th><th>Warnings</th><th>New findings</th><th>Resolved findings</th><th>Rules newly Failed</th><th>Trend</th><th>Problem</th><th>Files</th></tr></thead>
            <tbody>
            \(rows)
            </tbody></table>
            \(heatMap)
            <script>\(script)</script>
            </body></html>
            """
    }

    static let style = """
        [hidden]{display:none!important}
        body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1f2937}
        h1{font-size:1.4rem;margin:0 0 .25rem} .muted{color:#6b7280}
        table{border-collapse:collapse;width:100%;margin-top:1rem} th,td{padding:.5rem .6rem;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top}
        td{overflow-wrap:anywhere} td.wide{min-width:10rem} td.name,.badge,a.tag,td[data-label=Files]{white-space:nowrap}
        th{background:#f9fafb;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
        .badge{padding:.1rem .5rem;border-radius:999px;font-weight:600;font-size:.8rem;white-space:nowrap}
        code{font-size:.8rem} .count{font-weight:600} .finding.Failed code{color:#991b1b} .finding.Warning code{color:#92400e}
        .tags{margin-top:.2rem;white-space:normal} a.tag{display:inline-block;font-size:.75rem;padding:0 .45rem;border-radius:4px;background:#e0e7ff;color:#3730a3;text-decoration:none;margin:0 .2rem .2rem 0}
        .filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;margin-top:1rem}
        .filters .group{display:flex;flex-wrap:wrap;gap:.25rem}
        .filters button{font:inherit;padding:.25rem .7rem;border:1px solid #d1d5db;border-radius:999px;background:#fff;cursor:pointer}
        .filters button[aria-pressed=true]{background:#1f2937;color:#fff;border-color:#1f2937}
        .filters button .n{opacity:.7} .filters select{font:inherit;padding:.2rem}
        h2{font-size:1.1rem;margin:2rem 0 0} .scroll{overflow-x:auto;max-width:100%}
        table.heat{width:auto} table.heat td.cell{width:1.4rem;height:1.1rem;padding:0;border:1px solid #fff}
        th.family{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:500;padding:.3rem .1rem} td.none{background:#f3f4f6}
        .Succeeded{background:#dcfce7;color:#166534}.Warning{background:#fef3c7;color:#92400e}.Failed{background:#fee2e2;color:#991b1b}
        @media (max-width:720px){
          body{margin:1rem}
          table.servers thead{display:none}
          table.servers,table.servers tbody,table.servers tr{display:block}
          table.servers tr{border:1px solid #e5e7eb;border-radius:8px;margin:0 0 .75rem;padding:.4rem .2rem}
          table.servers td{display:flex;gap:.5rem;border:0;padding:.2rem .5rem;text-align:left;min-width:0}
          table.servers td::before{content:attr(data-label);flex:0 0 7.5rem;color:#6b7280;font-size:.8rem}
          table.servers td .v{flex:1 1 auto;min-width:0} table.servers td.wide{min-width:0}
          table.servers td.name{display:block;font-size:1.05rem;font-weight:600;white-space:normal} table.servers td.name::before{content:none}
          table.servers td.empty{display:none}
          table.servers td svg{max-width:100%}
        }
        """

    /// Reads the filter from the fragment, shows the matching rows, and writes what it did
    /// on <html> (data-filter-status, data-filter-tag, data-shown, data-overflow) for tests.
    static let script = """
        (function () {
          var root = document.documentElement;
          var filters = document.getElementById("filters"), select = document.getElementById("tag-filter");
          var shownText = document.getElementById("shown"), empty = document.getElementById("empty");
          var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-server]"));
          var buttons = Array.prototype.slice.call(filters.querySelectorAll("[data-status-filter]"));
          var statuses = buttons.map(function (b) { return b.getAttribute("data-status-filter"); });
          function current() {
            var state = { status: "all", tag: "" };
            location.hash.replace(/^#/, "").split("&").forEach(function (part) {
              var i = part.indexOf("="); if (i < 0) return;
              var key = part.slice(0, i), value;
              try { value = decodeURIComponent(part.slice(i + 1)); } catch (e) { return; }
              if (key === "status" && statuses.indexOf(value) >= 0) state.status = value;
              if (key === "tag") state.tag = value;
            });
            return state;
          }
          function go(status, tag) {
            var parts = [];
            if (status !== "all") parts.push("status=" + status);
            if (tag) parts.push("tag=" + encodeURIComponent(tag));
            location.hash = parts.join("&");
          }
          function measure() {
            root.setAttribute("data-overflow", root.scrollWidth > root.clientWidth ? "yes" : "no");
            root.setAttribute("data-width", String(root.clientWidth));
          }
          function apply() {
            var state = current(), shown = 0, total = 0;
            rows.forEach(function (row) {
              var match = (state.status === "all" || row.getAttribute("data-status") === state.status)
                && (!state.tag || row.getAttribute("data-tags").indexOf(" " + state.tag + " ") >= 0);
              row.hidden = !match;
              if (row.classList.contains("server")) { total++; if (match) shown++; }
            });
            buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.getAttribute("data-status-filter") === state.status)); });
            select.value = state.tag;
            if (select.value !== state.tag) {  // a tag no server has (an old link): say so in the list
              var option = document.createElement("option");
              option.value = state.tag; option.textContent = state.tag + " (0)";
              select.appendChild(option); select.value = state.tag;
            }
            shownText.textContent = shown === total ? total + " servers" : "showing " + shown + " of " + total + " servers";
            empty.hidden = shown !== 0;
            root.setAttribute("data-filter-status", state.status);
            root.setAttribute("data-filter-tag", state.tag);
            root.setAttribute("data-shown", String(shown));
            measure();
          }
          buttons.forEach(function (b) { b.addEventListener("click", function () { go(b.getAttribute("data-status-filter"), current().tag); }); });
          select.addEventListener("change", function () { go(current().status, select.value); });
          window.addEventListener("hashchange", apply);
          window.addEventListener("resize", measure);
          filters.hidden = false;
          apply();
        })();
        """
}
