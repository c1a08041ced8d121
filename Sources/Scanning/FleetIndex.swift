import Foundation
import Validation

/// `index.html` over all servers of a scan: status, counts, what changed, and the trend of the
/// last runs as a small inline chart. Self-contained (no network).
public enum FleetIndex {
    public static func render(summary: FleetScan.Summary) -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        func keys(_ list: [ScanHistory.Key]) -> String {
            list.isEmpty ? "<span class=muted>–</span>" : list.map { esc($0.rule + ($0.database.map { " (\($0))" } ?? "")) }.joined(separator: "<br>")
        }
        func findings(_ list: [ScanHistory.Finding]) -> String {
            guard !list.isEmpty else { return "<span class=muted>–</span>" }
            let shown = list.prefix(8).map { f in
                "<span class=\"finding \(f.status.rawValue)\">" + esc(f.rule + (f.database.map { " (\($0))" } ?? "")) + (f.object.map { ": <code>\(esc($0))</code>" } ?? "") + "</span>"
            }
            return shown.joined(separator: "<br>") + (list.count > 8 ? "<br><span class=muted>and \(list.count - 8) more (summary.json)</span>" : "")
        }
        func sparkline(_ points: [ScanHistory.TrendPoint]) -> String {
            guard !points.isEmpty else { return "" }
            let width = 160.0, height = 36.0
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
        let rows = summary.servers.map { server in
            """
            <tr><td><a href="\(esc(server.name)).html">\(esc(server.name))</a></td>
            <td><span class="badge \(server.status.rawValue)">\(server.status.rawValue)</span></td>
            <td class=num>\(server.failed)</td><td class=num>\(server.warnings)</td>
            <td class=num>\(server.newFindings.count)</td><td>\(findings(server.newFindings))</td>
            <td class=num>\(server.resolvedFindings.count)</td><td>\(findings(server.resolvedFindings))</td>
            <td>\(keys(server.newFailures))</td>
            <td>\(sparkline(server.trend))</td>
            <td>\(server.problem.map { esc($0) } ?? "")</td><td><a href="\(esc(server.name)).json">json</a> · <a href="\(esc(server.name)).junit.xml">junit</a></td></tr>
            """
        }.joined(separator: "\n")
        // Heat map: servers × rule families, each cell the family's worst status on the server.
        let families = Set(summary.servers.flatMap(\.families.keys)).sorted()
        let heatRows = summary.servers.map { server in
            "<tr><th><a href=\"\(esc(server.name)).html\">\(esc(server.name))</a></th>" + families.map { family in
                let status = server.families[family]
                return "<td class=\"cell \(status?.rawValue ?? "none")\" title=\"\(esc(server.name)) · \(esc(family)): \(status?.rawValue ?? "not evaluated")\"></td>"
            }.joined() + "</tr>"
        }.joined(separator: "\n")
        let heatMap = families.isEmpty ? "" : """
            <h2>Readiness by rule family</h2>
            <table class=heat><thead><tr><th></th>\(families.map { "<th class=family>\(esc($0))</th>" }.joined())</tr></thead>
            <tbody>
            \(heatRows)
            </tbody></table>
            """
        let finished = ISO8601DateFormatter().string(from: summary.finishedAt)
        return """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>pgpreflight fleet scan \(finished)</title>
            <style>
            body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1f2937}
            h1{font-size:1.4rem;margin:0 0 .25rem} .muted{color:#6b7280}
            table{border-collapse:collapse;width:100%;margin-top:1rem} th,td{padding:.5rem .6rem;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top}
            th{background:#f9fafb;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
            .badge{padding:.1rem .5rem;border-radius:999px;font-weight:600;font-size:.8rem}
            code{font-size:.8rem} .finding.Failed code{color:#991b1b} .finding.Warning code{color:#92400e}
            h2{font-size:1.1rem;margin:2rem 0 0} table.heat{width:auto} table.heat td.cell{width:1.4rem;height:1.1rem;padding:0;border:1px solid #fff}
            th.family{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:500;padding:.3rem .1rem} td.none{background:#f3f4f6}
            .Succeeded{background:#dcfce7;color:#166534}.Warning{background:#fef3c7;color:#92400e}.Failed{background:#fee2e2;color:#991b1b}
            </style></head><body>
            <h1>pgpreflight fleet scan <span class="badge \(summary.status.rawValue)">\(summary.status.rawValue)</span></h1>
            <div class=muted>\(summary.servers.count) servers · finished \(finished)\(summary.shard.map { " · shard \($0)" } ?? "") · red: failed, amber: warnings over recent scans</div>
            <p id=changes><strong>\(summary.newFindings)</strong> new findings · <strong>\(summary.resolvedFindings)</strong> resolved since the previous scan (a finding is a rule's object on a server's database)</p>
            <table><thead><tr><th>Server</th><th>Status</th><th>Failed</th><th>Warnings</th><th>New</th><th>New findings</th><th>Resolved</th><th>Resolved findings</th><th>Rules newly Failed</th><th>Trend</th><th>Problem</th><th>Files</th></tr></thead>
            <tbody>
            \(rows)
            </tbody></table>
            \(heatMap)
            </body></html>
            """
    }
}
