import Foundation
import Validation

/// The HTML report of `validate --format html`: one self-contained file (inline CSS and a
/// little inline JavaScript, nothing fetched from the network) that a DBA can attach to an
/// e-mail. A header with the overall status, the servers and the run; counts per status; a
/// table of every result (problems first) with its message, objects and remedy; filters by
/// status, database and text. Without JavaScript every row is shown and the filters are hidden.
/// An accepted finding (suppression or baseline) keeps its status pill, carries an "accepted"
/// badge and the reason, and is counted and filtered as "Accepted" (it does not block); the
/// run's notices stand in a box above the results.
public enum HTMLReport {
    public static func render(_ run: ValidationRun, options: ReportOptions = ReportOptions()) -> String {
        let overall = run.effectiveStatus(strict: options.strict)
        let groups = run.groups
        // Problems first, then accepted findings, then by scope unit in the run's order.
        let ordered = [Status.failed, .warning].flatMap { status in
            groups.flatMap { $0.results.filter { $0.status == status && $0.suppressed == nil } }
        } + [Status.failed, .warning, .succeeded].flatMap { status in
            groups.flatMap { $0.results.filter { $0.status == status && $0.suppressed != nil } }
        } + groups.flatMap { $0.results.filter { $0.status == .succeeded && $0.suppressed == nil } }
        let sourceName = options.serverName ?? run.source.endpoint

        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="generator" content="\(toolName) \(toolVersion)">
            <title>\(escape("\(overall.rawValue) · migration readiness of \(sourceName)"))</title>
            <style>\(stylesheet)</style>
            </head>
            <body>
            <header class="hero">
            <div class="wrap">
            <div class="eyebrow">PostgreSQL migration readiness · \(toolName) \(toolVersion)</div>
            <div class="title-row">
            <h1>\(escape(sourceName)) <span class="arrow">→</span> \(escape(run.target.endpoint))</h1>
            <span class="badge \(cssClass(overall))">\(symbol(overall)) \(overall.rawValue)</span>
            </div>
            <p class="verdict">\(escape(verdict(run, options: options)))</p>
            \(run.platformName.map { "<p class=\"platform\">Source platform: <strong>\(escape($0))</strong></p>" } ?? "")
            \(run.targetProfileName.map { "<p class=\"platform\">Target profile: <strong>\(escape($0))</strong></p>" } ?? "")
            <dl class="meta">
            \(meta("Source", run.source.endpoint, run.source.serverVersion.map { "PostgreSQL \($0)" }))
            \(meta("Target", run.target.endpoint, run.target.serverVersion.map { "PostgreSQL \($0)" }))
            \(meta("Mode", run.mode.rawValue.capitalized, run.mode == .online ? "logical replication" : "dump and restore"))
            \(meta("Databases", String(run.databases.count), run.databases.isEmpty ? nil : run.databases.joined(separator: ", ")))
            \(meta("Started", ReportTime.readable(run.startedAt), nil))
            \(meta("Duration", ReportTime.duration(ms: run.durationMs), options.strict ? "strict: warnings fail" : nil))
            </dl>
            </div>
            </header>
            <main class="wrap">

            """
        if !run.notices.isEmpty {
            html += "<section class=\"notices\" aria-label=\"Notices\"><div class=\"notices-label\">Notice</div><ul>"
                + run.notices.map { "<li>\(escape($0))</li>" }.joined() + "</ul></section>\n"
        }
        html += "<section class=\"cards\" aria-label=\"Results per status\">\n"
        // Each card counts what its filter shows: accepted findings only under Accepted.
        let cards: [(label: String, css: String, count: Int)] = [Status.failed, .warning, .succeeded].map {
            ($0.rawValue, cssClass($0), run.blockingCount($0))
        } + [(acceptedKey, "accepted", run.acceptedCount)]
        for card in cards {
            html += """
                <button type="button" class="card \(card.css)\(card.count == 0 ? " zero" : "")" data-status-filter="\(card.label)">\
                <span class="count">\(card.count)</span><span class="label">\(card.label)</span></button>

                """
        }
        html += """
            <button type="button" class="card total" data-status-filter="all">\
            <span class="count">\(run.results.count)</span><span class="label">Checks in total</span></button>
            </section>
            <section class="toolbar" id="toolbar" hidden>
            <div class="segmented" role="group" aria-label="Filter by status">
            <button type="button" data-status-filter="all" aria-pressed="true">All</button>
            <button type="button" data-status-filter="Failed" aria-pressed="false">Failed</button>
            <button type="button" data-status-filter="Warning" aria-pressed="false">Warning</button>
            <button type="button" data-status-filter="Succeeded" aria-pressed="false">Succeeded</button>
            <button type="button" data-status-filter="\(acceptedKey)" aria-pressed="false">Accepted</button>
            </div>
            <label class="field">Database
            <select id="database-filter">
            <option value="all">All databases and the server</option>
            <option value="instance">Server-wide checks</option>

            """
        for group in groups {
            guard let database = group.database else { continue }
            html += "<option value=\"\(escape(scopeKey(database)))\">\(escape(database))</option>\n"
        }
        html += """
            </select>
            </label>
            <label class="field grow">Search
            <input type="search" id="text-filter" placeholder="rule, object, message…" autocomplete="off">
            </label>
            <span class="shown" id="shown" aria-live="polite"></span>
            </section>
            <table class="results">
            <thead><tr><th class="c-status">Status</th><th class="c-rule">Check</th><th class="c-db">Database</th>\
            <th>Finding and remedy</th><th class="c-time">Time</th></tr></thead>
            <tbody>

            """
        for result in ordered { html += row(result) }
        html += """
            </tbody>
            </table>
            <p class="empty" id="empty" hidden>No result matches these filters.</p>
            </main>
            <footer class="wrap">
            Generated by \(toolName) \(toolVersion) · \(escape(ReportTime.readable(run.finishedAt))) · \
            \(run.results.count) checks · This page is self-contained and loads nothing from the network.
            </footer>
            <script>\(script)</script>
            </body>
            </html>

            """
        return html
    }

    private static func row(_ result: RuleResult) -> String {
        var cell = "<div class=\"message\">\(escape(result.message))</div>\n"
        if !result.objects.isEmpty {
            let items = result.objects.map { "<li><code>\(escape($0))</code></li>" }.joined()
            let noun = result.objects.count == 1 ? "object" : "objects"
            if result.objects.count <= 6 {
                cell += "<ul class=\"objects\">\(items)</ul>\n"
            } else {
                cell += "<details class=\"objects\"><summary>\(result.objects.count) \(noun)</summary><ul class=\"objects\">\(items)</ul></details>\n"
            }
        }
        if let acceptance = result.suppressed {
            cell = "<div class=\"acceptance\"><span class=\"accepted-badge\">accepted</span> "
                + "by \(acceptance.by == .baseline ? "the baseline" : "a suppression"): "
                + "<span class=\"reason\">\(escape(acceptance.reason))</span></div>\n" + cell
        }
        if result.status != .succeeded, !result.remedy.isEmpty {
            cell += "<div class=\"remedy\"><div class=\"remedy-label\">Remedy</div><pre>\(escape(result.remedy))</pre></div>\n"
        }
        if let documentation = result.documentation, let link = safeLink(documentation) {
            cell += "<a class=\"doc\" href=\"\(escape(link))\" target=\"_blank\" rel=\"noopener noreferrer\">Documentation ↗</a>\n"
        }
        return """
            <tr class="\(cssClass(result.status))\(result.suppressed == nil ? "" : " accepted")" \
            data-status="\(result.suppressed == nil ? result.status.rawValue : acceptedKey)" \
            data-scope="\(escape(result.database.map(scopeKey) ?? "instance"))">
            <td class="c-status"><span class="pill \(cssClass(result.status))">\(symbol(result.status)) \(result.status.rawValue)</span>\
            \(result.suppressed == nil ? "" : "<span class=\"accepted-badge\" title=\"\(escape(result.suppressed!.summary))\">accepted</span>")</td>
            <td class="c-rule"><code class="rule">\(escape(result.rule))</code><div class="title">\(escape(result.title))</div></td>
            <td class="c-db">\(result.database.map { escape($0) } ?? "<span class=\"muted\">server</span>")</td>
            <td class="c-finding">\(cell)</td>
            <td class="c-time">\(ReportTime.duration(ms: result.durationMs))</td>
            </tr>

            """
    }

    /// The filter key of a database (prefixed so that no database name collides with "all"
    /// or "instance").
    private static func scopeKey(_ database: String) -> String { "db:" + database }

    private static func meta(_ label: String, _ value: String, _ note: String?) -> String {
        // Lets a long user@host:port wrap after the "@" rather than inside the port.
        let value = escape(value).replacingOccurrences(of: "@", with: "@<wbr>")
        return "<div><dt>\(escape(label))</dt><dd>\(value)\(note.map { "<span class=\"note\">\(escape($0))</span>" } ?? "")</dd></div>"
    }

    /// The status filter value of accepted findings (rows keep their status pill).
    static let acceptedKey = "Accepted"

    private static func verdict(_ run: ValidationRun, options: ReportOptions) -> String {
        let failed = run.blockingCount(.failed), warnings = run.blockingCount(.warning), accepted = run.acceptedCount
        let sentence: String
        switch run.effectiveStatus(strict: options.strict) {
        case .succeeded:
            sentence = accepted == 0 ? "Every check passed: nothing stands in the way of this migration."
                : "Nothing stands in the way of this migration."
        case .warning:
            sentence = "Nothing blocks this migration; \(counted(warnings, "warning")) should be reviewed before it starts."
        case .failed where failed == 0:
            sentence = "\(counted(warnings, "warning")) fail this run in strict mode: resolve them before migrating."
        case .failed:
            sentence = "\(counted(failed, "check")) failed: the migration cannot start until \(failed == 1 ? "it is" : "they are") fixed"
                + (warnings > 0 ? "; \(counted(warnings, "warning")) should be reviewed too." : ".")
        }
        guard accepted > 0 else { return sentence }
        return sentence + " \(counted(accepted, "finding")) accepted by a suppression or the baseline \(accepted == 1 ? "does" : "do") not count."
    }

    private static func cssClass(_ status: Status) -> String {
        switch status {
        case .succeeded: "ok"
        case .warning: "warn"
        case .failed: "fail"
        }
    }

    private static func symbol(_ status: Status) -> String {
        switch status {
        case .succeeded: "✓"
        case .warning: "▲"
        case .failed: "✕"
        }
    }

    /// Only http(s) links become links (never `javascript:` or `data:`).
    private static func safeLink(_ url: String) -> String? {
        let lower = url.lowercased()
        guard lower.hasPrefix("https://") || lower.hasPrefix("http://"), !url.contains(where: \.isWhitespace) else { return nil }
        return url
    }

    /// Escapes text for HTML element content and quoted attribute values.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\u{0}"..."\u{8}", "\u{B}", "\u{C}", "\u{E}"..."\u{1F}", "\u{7F}": out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static let stylesheet = """

        :root {
          --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --paper: #ffffff; --canvas: #f5f6f8;
          --fail: #b42318; --fail-bg: #fef3f2; --fail-line: #fecdca;
          --warn: #a15c07; --warn-bg: #fffaeb; --warn-line: #fedf89;
          --ok: #067647; --ok-bg: #ecfdf3; --ok-line: #abefc6;
          --hero: #0f1b2d;
          --sans: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif;
          --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace;
        }
        * { box-sizing: border-box; }
        [hidden] { display: none !important; }
        html { -webkit-text-size-adjust: 100%; }
        body { margin: 0; background: var(--canvas); color: var(--ink); font: 15px/1.5 var(--sans); }
        .wrap { max-width: 1280px; margin: 0 auto; padding: 0 32px; }
        code, pre { font-family: var(--mono); font-size: 13px; }
        .hero { background: var(--hero); color: #fff; padding: 28px 0 30px; }
        .eyebrow { text-transform: uppercase; letter-spacing: .08em; font-size: 12px; color: #9fb0c8; font-weight: 600; }
        .title-row { display: flex; align-items: center; gap: 18px; flex-wrap: wrap; margin: 6px 0 4px; }
        h1 { font-size: 26px; line-height: 1.25; margin: 0; font-weight: 650; word-break: break-word; }
        h1 .arrow { color: #9fb0c8; font-weight: 400; }
        .badge { display: inline-flex; align-items: center; gap: 6px; padding: 5px 14px; border-radius: 999px;
                 font-weight: 700; font-size: 15px; letter-spacing: .02em; }
        .badge.fail { background: #d92d20; color: #fff; }
        .badge.warn { background: #f79009; color: #1f1300; }
        .badge.ok { background: #17b26a; color: #fff; }
        .verdict { margin: 4px 0 20px; color: #d5deea; font-size: 16px; }
        .platform { margin: -12px 0 18px; color: #b8c5d8; font-size: 14px; } .platform strong { color: #fff; font-weight: 600; }
        .notices { margin: 24px 0 0; padding: 12px 16px; background: var(--warn-bg); border: 1px solid var(--warn-line);
                   border-left: 5px solid #f79009; border-radius: 10px; }
        .notices-label { font-size: 11px; text-transform: uppercase; letter-spacing: .08em; font-weight: 700; color: var(--warn); }
        .notices ul { margin: 4px 0 0; padding-left: 18px; } .notices li { word-break: break-word; }
        .accepted-badge { display: inline-block; margin-left: 6px; padding: 1px 8px; border-radius: 999px; font-size: 12px;
                          font-weight: 700; color: #5925dc; background: #f4f3ff; border: 1px solid #d9d6fe; white-space: nowrap; }
        .acceptance { margin-bottom: 6px; color: #344054; font-size: 14px; } .acceptance .accepted-badge { margin-left: 0; }
        .acceptance .reason { font-style: italic; }
        .results tr.accepted td { background: #fcfcfd; } .results tr.accepted .message { font-weight: 400; }
        .meta { display: grid; grid-template-columns: minmax(200px, 1.7fr) minmax(200px, 1.7fr) 1fr 1.4fr 1.3fr 1fr;
                gap: 14px 28px; margin: 0; }
        .meta div { min-width: 0; }
        .meta dt { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: #9fb0c8; }
        .meta dd { margin: 2px 0 0; font-weight: 600; overflow-wrap: anywhere; }
        .meta .note { display: block; font-weight: 400; color: #b8c5d8; font-size: 13px; }
        .cards { display: grid; grid-template-columns: repeat(5, 1fr); gap: 16px; margin: 24px 0 18px; }
        .card { text-align: left; font: inherit; color: inherit; cursor: pointer; background: var(--paper);
                border: 1px solid var(--line); border-left: 5px solid var(--line); border-radius: 10px; padding: 14px 18px;
                box-shadow: 0 1px 2px rgba(16,24,40,.05); }
        .card:hover { box-shadow: 0 2px 8px rgba(16,24,40,.10); }
        .card .count { display: block; font-size: 30px; font-weight: 700; line-height: 1.1; }
        .card .label { color: var(--muted); font-weight: 600; }
        .card.fail { border-left-color: var(--fail); } .card.fail .count { color: var(--fail); }
        .card.warn { border-left-color: #f79009; } .card.warn .count { color: var(--warn); }
        .card.ok { border-left-color: #17b26a; } .card.ok .count { color: var(--ok); }
        .card.total { border-left-color: #475467; }
        .card.accepted { border-left-color: #7a5af8; } .card.accepted .count { color: #5925dc; }
        .card.zero { border-left-color: var(--line); } .card.zero .count { color: #98a2b3; }
        .toolbar { display: flex; align-items: flex-end; gap: 16px; flex-wrap: wrap; background: var(--paper);
                   border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; margin-bottom: 14px; }
        .segmented { display: inline-flex; border: 1px solid #d0d5dd; border-radius: 8px; overflow: hidden; }
        .segmented button { font: inherit; font-size: 14px; padding: 7px 14px; border: 0; border-right: 1px solid #d0d5dd;
                            background: #fff; color: var(--ink); cursor: pointer; }
        .segmented button:last-child { border-right: 0; }
        .segmented button[aria-pressed="true"] { background: var(--hero); color: #fff; }
        .field { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); font-weight: 600; gap: 3px; }
        .field.grow { flex: 1; min-width: 200px; }
        select, input[type=search] { font: inherit; font-size: 14px; color: var(--ink); padding: 6px 10px;
                                     border: 1px solid #d0d5dd; border-radius: 8px; background: #fff; }
        .shown { color: var(--muted); font-size: 13px; padding-bottom: 8px; }
        table.results { width: 100%; border-collapse: separate; border-spacing: 0; background: var(--paper);
                        border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
        .results th { text-align: left; font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
                      background: #f9fafb; padding: 10px 14px; border-bottom: 1px solid var(--line); }
        .results td { padding: 14px; border-bottom: 1px solid var(--line); vertical-align: top; }
        .results tbody tr:last-child td { border-bottom: 0; }
        .results tr.fail td:first-child { box-shadow: inset 4px 0 0 var(--fail); }
        .results tr.warn td:first-child { box-shadow: inset 4px 0 0 #f79009; }
        .results tr.ok td:first-child { box-shadow: inset 4px 0 0 #17b26a; }
        .c-status { width: 130px; } .c-rule { width: 280px; } .c-db { width: 150px; word-break: break-word; }
        .c-time { width: 80px; text-align: right; color: var(--muted); white-space: nowrap; font-size: 13px; }
        .pill { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 13px; font-weight: 700;
                white-space: nowrap; border: 1px solid; }
        .pill.fail { color: var(--fail); background: var(--fail-bg); border-color: var(--fail-line); }
        .pill.warn { color: var(--warn); background: var(--warn-bg); border-color: var(--warn-line); }
        .pill.ok { color: var(--ok); background: var(--ok-bg); border-color: var(--ok-line); }
        .rule { font-weight: 600; color: var(--ink); word-break: break-word; }
        .title { color: var(--muted); font-size: 13px; margin-top: 2px; }
        .muted { color: var(--muted); font-style: italic; }
        .message { font-weight: 500; word-break: break-word; }
        tr.ok .message { font-weight: 400; color: #344054; }
        ul.objects { margin: 6px 0 0; padding: 0; list-style: none; display: flex; flex-wrap: wrap; gap: 6px; }
        ul.objects code { background: #f2f4f7; border: 1px solid var(--line); border-radius: 6px; padding: 1px 7px; word-break: break-all; }
        details.objects { margin-top: 6px; } details.objects summary { cursor: pointer; color: #344054; font-size: 13px; font-weight: 600; }
        .remedy { margin-top: 10px; }
        .remedy-label { font-size: 11px; text-transform: uppercase; letter-spacing: .08em; font-weight: 700; color: var(--muted); margin-bottom: 4px; }
        .remedy pre { margin: 0; padding: 10px 12px; background: #0f1b2d; color: #e6edf6; border-radius: 8px;
                      white-space: pre-wrap; word-break: break-word; line-height: 1.45; }
        tr.warn .remedy pre { border-left: 3px solid #f79009; } tr.fail .remedy pre { border-left: 3px solid #f04438; }
        a.doc { display: inline-block; margin-top: 8px; font-size: 13px; color: #175cd3; text-decoration: none; }
        a.doc:hover { text-decoration: underline; }
        .empty { text-align: center; color: var(--muted); padding: 24px; }
        footer.wrap { color: var(--muted); font-size: 12px; padding-top: 18px; padding-bottom: 32px; }
        @media (max-width: 820px) {
          .wrap { padding: 0 14px; } .cards { grid-template-columns: repeat(2, 1fr); }
          .meta { grid-template-columns: repeat(2, 1fr); }
          .c-time, .c-db { display: none; } .c-rule { width: auto; }
        }
        /* A phone (400 px): each result a block of its own, the finding and remedy the full width
           (as table cells beside the status and check columns they broke one word per line). */
        @media (max-width: 560px) {
          .results thead { display: none; }
          .results, .results tbody, .results tr, .results td { display: block; width: auto; }
          .results td { border-bottom: 0; padding: 6px 12px; } .results td.c-time { display: none; }
          .results td.c-status { padding-top: 12px; } .results tr { border-bottom: 1px solid var(--line); }
          .results tr.fail td:first-child, .results tr.warn td:first-child, .results tr.ok td:first-child { box-shadow: none; }
          .results tr.fail { box-shadow: inset 4px 0 0 var(--fail); } .results tr.warn { box-shadow: inset 4px 0 0 #f79009; }
          .results tr.ok { box-shadow: inset 4px 0 0 #17b26a; }
          .remedy pre { overflow-wrap: anywhere; word-break: normal; }
          /* The five status buttons are wider than a phone: they share the row and wrap. */
          .toolbar { padding: 10px 12px; } .segmented { display: flex; flex-wrap: wrap; width: 100%; }
          .segmented button { flex: 1 1 auto; padding: 7px 10px; }
        }
        @media print {
          body { background: #fff; } .hero { background: #fff; color: var(--ink); border-bottom: 2px solid var(--ink); }
          .eyebrow, .meta dt, .verdict, .meta .note, h1 .arrow { color: var(--muted); }
          .toolbar { display: none !important; } tr { break-inside: avoid; } .card { box-shadow: none; }
          .remedy pre { background: #f2f4f7; color: var(--ink); }
        }

        """

    private static let script = """

        (function () {
          var rows = Array.prototype.slice.call(document.querySelectorAll("table.results tbody tr"));
          var toolbar = document.getElementById("toolbar");
          var database = document.getElementById("database-filter");
          var search = document.getElementById("text-filter");
          var shown = document.getElementById("shown");
          var empty = document.getElementById("empty");
          var statusButtons = Array.prototype.slice.call(toolbar.querySelectorAll("[data-status-filter]"));
          var state = { status: "all", scope: "all", text: "" };
          toolbar.hidden = false;

          function apply() {
            var count = 0;
            rows.forEach(function (row) {
              var visible = (state.status === "all" || row.getAttribute("data-status") === state.status)
                && (state.scope === "all" || row.getAttribute("data-scope") === state.scope)
                && (state.text === "" || row.textContent.toLowerCase().indexOf(state.text) !== -1);
              row.hidden = !visible;
              if (visible) { count += 1; }
            });
            statusButtons.forEach(function (button) {
              button.setAttribute("aria-pressed", String(button.getAttribute("data-status-filter") === state.status));
            });
            shown.textContent = "Showing " + count + " of " + rows.length;
            empty.hidden = count !== 0;
          }

          Array.prototype.slice.call(document.querySelectorAll("[data-status-filter]")).forEach(function (button) {
            button.addEventListener("click", function () {
              state.status = button.getAttribute("data-status-filter");
              apply();
            });
          });
          database.addEventListener("change", function () { state.scope = database.value; apply(); });
          search.addEventListener("input", function () { state.text = search.value.trim().toLowerCase(); apply(); });
          apply();
        })();

        """
}
