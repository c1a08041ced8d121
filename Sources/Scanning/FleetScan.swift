import Foundation
import PostgresClient
import Reports
import Validation

/// A nightly readiness scan over an inventory: validates every server (concurrently, bounded),
/// writes per-server reports, an index over all servers, `summary.json`, the history, and
/// optionally a Prometheus textfile.
public struct FleetScan: Sendable {
    public struct ServerSummary: Codable, Sendable, Equatable {
        public var name: String
        /// Position of the entry in the inventory (0-based): servers are listed in this order.
        public var position: Int
        /// The entry's `tags:` (a team, …), for filtering the index page.
        public var tags: [String]
        public var status: Status
        public var failed: Int
        public var warnings: Int
        /// Rule level: results that became Failed, became Warning, became Succeeded.
        public var newFailures: [ScanHistory.Key]
        public var newWarnings: [ScanHistory.Key]
        public var resolved: [ScanHistory.Key]
        /// Object level: (rule, database, object) found now and not in the previous run, and the reverse.
        public var newFindings: [ScanHistory.Finding]
        public var resolvedFindings: [ScanHistory.Finding]
        /// Why the server could not be validated (bad entry, unreachable, deadline), if so.
        public var problem: String?
        /// Failed and warning counts of the server's last runs, oldest first (this one included).
        public var trend: [ScanHistory.TrendPoint]
        /// Worst (non-accepted) status per rule family (`tables` for `tables.primary-key`): the
        /// index page's heat map.
        public var families: [String: Status]

        static func families(_ statuses: [RuleStatus]) -> [String: Status] {
            var worst: [String: Status] = [:]
            for s in statuses {
                let family = String(s.rule.split(separator: ".").first ?? Substring(s.rule))
                worst[family] = max(worst[family] ?? .succeeded, s.status)
            }
            return worst
        }
    }

    public struct Summary: Codable, Sendable {
        public var startedAt: Date
        public var finishedAt: Date
        public var status: Status
        /// Object-level findings new / resolved since the previous run, over all servers.
        public var newFindings: Int
        public var resolvedFindings: Int
        public var servers: [ServerSummary]
        /// The folder this run's reports were written to.
        public var directory: String
        /// "I/N" when this run is one shard of a scan (`scan --shard`); absent for a whole scan.
        public var shard: String?

        public init(startedAt: Date, finishedAt: Date, servers: [ServerSummary], directory: String, shard: String? = nil) {
            self.startedAt = startedAt; self.finishedAt = finishedAt
            self.servers = servers.sorted { ($0.position, $0.name) < ($1.position, $1.name) }
            self.status = servers.map(\.status).max() ?? .succeeded
            self.newFindings = servers.reduce(0) { $0 + $1.newFindings.count }
            self.resolvedFindings = servers.reduce(0) { $0 + $1.resolvedFindings.count }
            self.directory = directory; self.shard = shard
        }
    }

    public var inventory: Inventory
    public var reportsDirectory: URL
    public var parallel: Int
    public var metricsFile: URL?
    /// nil: `reportsDirectory/history.sqlite`.
    public var history: (any HistoryStore)?
    /// Wall-clock limit per server, in seconds: a server still running then is reported Failed
    /// and its worker moves on (nil: none).
    public var serverDeadline: Double?
    /// "I/N" for a shard run.
    public var shard: String?
    /// Validates one server. Unreachable servers come back as connectivity results, not errors.
    public var validate: @Sendable (Inventory.Server) async -> ValidationRun

    public init(inventory: Inventory, reportsDirectory: URL, parallel: Int, metricsFile: URL?,
                history: (any HistoryStore)? = nil, serverDeadline: Double? = nil, shard: String? = nil,
                validate: @escaping @Sendable (Inventory.Server) async -> ValidationRun) {
        self.inventory = inventory; self.reportsDirectory = reportsDirectory; self.parallel = max(1, parallel)
        self.metricsFile = metricsFile; self.history = history; self.serverDeadline = serverDeadline; self.shard = shard
        self.validate = validate
    }

    public func run(now: Date = Date()) async throws -> Summary {
        let runDirectory = try Self.makeRunDirectory(in: reportsDirectory, now: now)
        let history = try self.history ?? ScanHistory(url: reportsDirectory.appendingPathComponent("history.sqlite"))

        // Bounded concurrency: at most `parallel` servers at once. Each run is recorded and its
        // reports written as soon as it ends, so memory does not grow with the fleet.
        var summaries: [ServerSummary] = []
        var statuses: [String: [RuleStatus]] = [:]
        var historyFailures = 0, firstHistoryError: String?
        let deadline = serverDeadline, validate = self.validate
        let abandoned = Abandoned()
        @Sendable func scanOne(_ server: Inventory.Server) async -> (Inventory.Server, ValidationRun) {
            if let problem = server.problem {
                return (server, Self.failedRun(server: server, rule: "scan.inventory-entry", title: "The inventory entry can be used",
                                               message: problem, remedy: "Fix the server's entry in the inventory or set the variable."))
            }
            return (server, await Self.withDeadline(deadline, server: server, abandoned: abandoned) { await validate(server) })
        }
        try await withThrowingTaskGroup(of: (Inventory.Server, ValidationRun).self) { group in
            var pending = inventory.servers[...]
            for _ in 0..<min(parallel, pending.count) {
                let server = pending.removeFirst()
                group.addTask { await scanOne(server) }
            }
            while let (server, run) = try await group.next() {
                if let next = pending.popFirst() { group.addTask { await scanOne(next) } }
                // A history that fails (its server went away) does not lose the scan: the reports
                // are written, without "what changed" for that server, and the scan then fails.
                var comparison = ScanHistory.Comparison(newFailures: [], newWarnings: [], resolved: [], newFindings: [], resolvedFindings: [])
                var trend: [ScanHistory.TrendPoint] = []
                do {
                    comparison = try history.record(server: server.name, run: run)
                    trend = try history.trend(server: server.name, limit: 30)
                } catch {
                    historyFailures += 1
                    if firstHistoryError == nil { firstHistoryError = "\(error)" }
                }
                for (format, ext) in [(ReportFormat.json, "json"), (.junit, "junit.xml"), (.html, "html")] {
                    let text = try Reports.render(run, as: format, options: ReportOptions(serverName: server.name))
                    try text.write(to: runDirectory.appendingPathComponent("\(server.name).\(ext)"), atomically: true, encoding: .utf8)
                }
                let ruleStatuses = run.results.map { RuleStatus(rule: $0.rule, database: $0.database, status: $0.blockingStatus) }
                statuses[server.name] = ruleStatuses
                summaries.append(ServerSummary(
                    name: server.name, position: server.position, tags: server.tags, status: run.status,
                    failed: run.results.filter { $0.blockingStatus == .failed }.count,
                    warnings: run.results.filter { $0.blockingStatus == .warning }.count,
                    newFailures: comparison.newFailures, newWarnings: comparison.newWarnings, resolved: comparison.resolved,
                    newFindings: comparison.newFindings, resolvedFindings: comparison.resolvedFindings,
                    problem: Self.problem(of: run), trend: trend, families: ServerSummary.families(ruleStatuses)))
            }
        }
        // The sessions of validations abandoned at their deadline are closed before the scan ends
        // (a process that exits first would leave a cancelled-too-late statement running on the
        // server until its statement_timeout).
        _ = await abandoned.settle(within: 30)
        let summary = Summary(startedAt: now, finishedAt: Date(), servers: summaries, directory: runDirectory.path, shard: shard)
        try Self.writeFleetFiles(summary, statuses: statuses, into: runDirectory, metricsFile: metricsFile)
        if let firstHistoryError {
            throw InventoryError("the history could not record \(historyFailures) of \(summaries.count) servers (\(firstHistoryError)); reports without what changed: \(runDirectory.path)")
        }
        return summary
    }

    // MARK: Merging shards

    /// Combines the outputs of shard runs (each a run folder with `summary.json`, or a reports
    /// folder whose latest run is taken) into one run folder under `reportsDirectory`, with the
    /// same files a single run writes.
    public static func merge(_ directories: [URL], into reportsDirectory: URL, metricsFile: URL?, now: Date = Date()) throws -> Summary {
        guard !directories.isEmpty else { throw InventoryError("scan merge: give the shard output folders") }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        var parts: [(URL, Summary)] = []
        for directory in directories {
            let run = try runFolder(directory)
            let summary: Summary
            do { summary = try decoder.decode(Summary.self, from: Data(contentsOf: run.appendingPathComponent("summary.json"))) } catch let DecodingError.keyNotFound(key, _) {
                throw InventoryError("\(run.path)/summary.json: not a scan summary (no '\(key.stringValue)')")
            } catch {
                throw InventoryError("\(run.path)/summary.json: not a scan summary")
            }
            parts.append((run, summary))
        }
        // Every shard exactly once: a missing shard would silently drop servers from the report.
        let shards = parts.compactMap(\.1.shard)
        if !shards.isEmpty {
            let counts = Set(shards.compactMap { $0.split(separator: "/").last.flatMap { Int($0) } })
            guard shards.count == parts.count, counts.count == 1, let count = counts.first else {
                throw InventoryError("scan merge: the folders are not shards of one scan (\(parts.map { $0.1.shard ?? "whole scan" }.joined(separator: ", ")))")
            }
            let indices = shards.compactMap { $0.split(separator: "/").first.flatMap { Int($0) } }
            let missing = (0..<count).filter { !indices.contains($0) }.map { "\($0)/\(count)" }
            guard missing.isEmpty else { throw InventoryError("scan merge: shard \(missing.joined(separator: ", ")) missing") }
            guard Set(indices).count == indices.count else { throw InventoryError("scan merge: a shard is given twice") }
        }
        var seen: [String: String] = [:]
        for (run, summary) in parts {
            for server in summary.servers {
                if let other = seen.updateValue(run.path, forKey: server.name) {
                    throw InventoryError("scan merge: server \(server.name) is in both \(other) and \(run.path)")
                }
            }
        }
        let runDirectory = try makeRunDirectory(in: reportsDirectory, now: now)
        let fm = FileManager.default
        var statuses: [String: [RuleStatus]] = [:]
        for (run, summary) in parts {
            for server in summary.servers {
                for ext in ["json", "junit.xml", "html"] {
                    let file = "\(server.name).\(ext)"
                    try fm.copyItem(at: run.appendingPathComponent(file), to: runDirectory.appendingPathComponent(file))
                }
                statuses[server.name] = try RuleStatus.read(report: run.appendingPathComponent("\(server.name).json"))
            }
        }
        var servers = parts.flatMap(\.1.servers)
        for i in servers.indices where servers[i].families.isEmpty {  // a summary from before the heat map
            servers[i].families = ServerSummary.families(statuses[servers[i].name] ?? [])
        }
        let summary = Summary(startedAt: parts.map(\.1.startedAt).min() ?? now, finishedAt: parts.map(\.1.finishedAt).max() ?? now,
                              servers: servers, directory: runDirectory.path)
        try writeFleetFiles(summary, statuses: statuses, into: runDirectory, metricsFile: metricsFile)
        return summary
    }

    static func runFolder(_ directory: URL) throws -> URL {
        let fm = FileManager.default
        if fm.fileExists(atPath: directory.appendingPathComponent("summary.json").path) { return directory }
        let children = (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
        guard let latest = children.filter({ fm.fileExists(atPath: directory.appendingPathComponent($0).appendingPathComponent("summary.json").path) })
            .max(by: { $0.compare($1, options: .numeric) == .orderedAscending }) else {
            throw InventoryError("\(directory.path): no summary.json here or in a run folder under it (not a scan's output)")
        }
        return directory.appendingPathComponent(latest)
    }

    // MARK: Pieces

    static func writeFleetFiles(_ summary: Summary, statuses: [String: [RuleStatus]], into runDirectory: URL, metricsFile: URL?) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(summary).write(to: runDirectory.appendingPathComponent("summary.json"))
        try FleetIndex.render(summary: summary)
            .write(to: runDirectory.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
        if let metricsFile {
            try PrometheusMetrics.render(summary: summary, statuses: statuses).write(to: metricsFile, atomically: true, encoding: .utf8)
        }
    }

    static func makeRunDirectory(in reportsDirectory: URL, now: Date) throws -> URL {
        let fm = FileManager.default
        try fm.createDirectory(at: reportsDirectory, withIntermediateDirectories: true)
        let stamp = Self.stampFormatter.string(from: now)
        var runDirectory = reportsDirectory.appendingPathComponent(stamp)
        var suffix = 1
        while true {  // two scans (or shards) in one second keep both
            do {
                try fm.createDirectory(at: runDirectory, withIntermediateDirectories: false)
                return runDirectory
            } catch where fm.fileExists(atPath: runDirectory.path) {
                suffix += 1
                runDirectory = reportsDirectory.appendingPathComponent("\(stamp)-\(suffix)")
            }
        }
    }

    /// The cause of a server-level failure, for the summary.
    static func problem(of run: ValidationRun) -> String? {
        run.results.first { $0.status == .failed && ($0.rule.hasPrefix("scan.") || $0.rule == "connectivity.source" || $0.rule == "connectivity.target") }?.message
    }

    /// A run with one Failed result: the server could not be validated at all.
    public static func failedRun(server: Inventory.Server, rule: String, title: String, message: String, remedy: String) -> ValidationRun {
        let now = Date()
        let unknown = ServerInfo(host: "", port: 0, user: nil, serverVersion: nil)
        return ValidationRun(mode: server.mode, startedAt: now, finishedAt: now, source: unknown, target: unknown, databases: [],
                             results: [RuleResult(rule: rule, title: title, scope: .instance, database: nil, status: .failed,
                                                  message: message, remedy: remedy, objects: [], startedAt: now, finishedAt: now)])
    }

    /// Runs `body`; when it has not finished after `seconds`, returns a Failed run instead and
    /// cancels it: a connection attempt still waiting ends at once (`Connection.connect` is
    /// cancellable), a running statement is cancelled on the server (PQcancel, through
    /// `Connection.cancelsStatementsWithTask`), no further statement starts, and the validation
    /// closes its sessions as it returns. The abandoned work is handed to `abandoned`, so that
    /// the scan can wait for those sessions to be gone before it ends.
    static func withDeadline(_ seconds: Double?, server: Inventory.Server, abandoned: Abandoned? = nil,
                             _ body: @escaping @Sendable () async -> ValidationRun) async -> ValidationRun {
        guard let seconds else { return await body() }
        let once = Once()
        return await withCheckedContinuation { (continuation: CheckedContinuation<ValidationRun, Never>) in
            let work = Task {
                let run = await Connection.$cancelsStatementsWithTask.withValue(true) { await body() }
                if once.claim() { continuation.resume(returning: run) }
            }
            let timer = Task {
                try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
                guard !Task.isCancelled, once.claim() else { return }
                abandoned?.add(work)
                work.cancel()
                continuation.resume(returning: failedRun(
                    server: server, rule: "scan.deadline", title: "The server is validated within its deadline",
                    message: "did not finish within \(seconds.formatted()) s (--server-deadline): validation abandoned",
                    remedy: "Check that the server answers; raise --server-deadline if it is only slow."))
            }
            Task { _ = await work.value; timer.cancel() }
        }
    }

    nonisolated(unsafe) static let stampFormatter: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withYear, .withMonth, .withDay, .withTime, .withTimeZone]  // 20261121T230000Z
        f.timeZone = TimeZone(identifier: "UTC")
        return f
    }()
}

extension FleetScan.ServerSummary {
    /// Also reads the summaries earlier versions wrote, for `scan merge` of their shards: they
    /// lack `tags` (read as none) and, before the heat map, `families` (read as none; the merge
    /// works them out from the server's report).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), position: try c.decode(Int.self, forKey: .position),
                  tags: try c.decodeIfPresent([String].self, forKey: .tags) ?? [], status: try c.decode(Status.self, forKey: .status),
                  failed: try c.decode(Int.self, forKey: .failed), warnings: try c.decode(Int.self, forKey: .warnings),
                  newFailures: try c.decode([ScanHistory.Key].self, forKey: .newFailures),
                  newWarnings: try c.decode([ScanHistory.Key].self, forKey: .newWarnings),
                  resolved: try c.decode([ScanHistory.Key].self, forKey: .resolved),
                  newFindings: try c.decode([ScanHistory.Finding].self, forKey: .newFindings),
                  resolvedFindings: try c.decode([ScanHistory.Finding].self, forKey: .resolvedFindings),
                  problem: try c.decodeIfPresent(String.self, forKey: .problem),
                  trend: try c.decode([ScanHistory.TrendPoint].self, forKey: .trend),
                  families: try c.decodeIfPresent([String: Status].self, forKey: .families) ?? [:])
    }
}

/// Validations abandoned at their deadline, still winding down (a cancel on its way to the
/// server, sessions closing).
final class Abandoned: @unchecked Sendable {
    private var tasks: [Task<Void, Never>] = []
    private let lock = NSLock()
    func add(_ task: Task<Void, Never>) { lock.withLock { tasks.append(task) } }

    /// Waits until every abandoned validation has returned (and so closed its sessions), or
    /// `seconds` have passed: a server that stopped answering may never take the cancel request.
    /// True when all have returned.
    func settle(within seconds: Double) async -> Bool {
        let tasks = lock.withLock { self.tasks }
        guard !tasks.isEmpty else { return true }
        let once = Once()
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let all = Task {
                for task in tasks { await task.value }
                if once.claim() { continuation.resume(returning: true) }
            }
            Task {
                try? await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
                if once.claim() { continuation.resume(returning: false) }
                all.cancel()
            }
        }
    }
}

final class Once: @unchecked Sendable {
    private var done = false
    private let lock = NSLock()
    func claim() -> Bool { lock.withLock { defer { done = true }; return !done } }
}

/// A rule's (non-accepted) status on a server, what the metrics need of a run.
public struct RuleStatus: Sendable {
    public var rule: String
    public var database: String?
    public var status: Status

    /// Reads it back from a server's JSON report (for `scan merge`).
    static func read(report: URL) throws -> [RuleStatus] {
        struct Document: Decodable {
            struct Result: Decodable { let rule: String; let database: String?; let status: Status; let suppressed: Acceptance? }
            let results: [Result]
        }
        let document: Document
        do { document = try JSONDecoder().decode(Document.self, from: Data(contentsOf: report)) } catch {
            throw InventoryError("\(report.path): not a pgpreflight JSON report")
        }
        return document.results.map { RuleStatus(rule: $0.rule, database: $0.database, status: $0.suppressed == nil ? $0.status : .succeeded) }
    }
}

/// node_exporter textfile-collector format (Prometheus text exposition format 0.0.4).
///
/// Every per-server series carries the server's inventory tags as one `tags` label, joined the
/// way Prometheus' own service discovery joins tags (`__meta_consul_tags`): with a comma before,
/// between and after, `tags=",payments,tier-1,"`, so that `{tags=~".*,payments,.*"}` selects a
/// team, and `""` when the server has none. (One label per tag would need a tag to be a label
/// name and would make each server's label set different.)
public enum PrometheusMetrics {
    public static func render(summary: FleetScan.Summary, statuses: [String: [RuleStatus]]) -> String {
        /// A label value escaped per the exposition format: backslash, double quote, line feed.
        func label(_ s: String) -> String {
            s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }
        func tags(_ server: FleetScan.ServerSummary) -> String {
            server.tags.isEmpty ? "" : "," + server.tags.joined(separator: ",") + ","
        }
        func serverLabels(_ server: FleetScan.ServerSummary) -> String {
            "server=\"\(label(server.name))\",tags=\"\(label(tags(server)))\""
        }
        func value(_ status: Status) -> Int { switch status { case .succeeded: 0; case .warning: 1; case .failed: 2 } }
        var lines = [
            "# HELP pgpreflight_rule_status Result of each rule: 0 Succeeded, 1 Warning, 2 Failed (accepted findings count as 0).",
            "# TYPE pgpreflight_rule_status gauge",
        ]
        for server in summary.servers {
            for result in statuses[server.name] ?? [] {
                lines.append("pgpreflight_rule_status{\(serverLabels(server)),database=\"\(label(result.database ?? ""))\",rule=\"\(label(result.rule))\"} \(value(result.status))")
            }
        }
        for (metric, help, pick) in [
            ("pgpreflight_server_failed", "Failed results per server.", { (s: FleetScan.ServerSummary) in s.failed }),
            ("pgpreflight_server_warnings", "Warning results per server.", { $0.warnings }),
            ("pgpreflight_server_new_failures", "Failed results that were not Failed in the previous scan.", { $0.newFailures.count }),
            ("pgpreflight_server_findings_new", "Findings (rule, database, object) that were not in the previous scan.", { $0.newFindings.count }),
            ("pgpreflight_server_findings_resolved", "Findings of the previous scan that are gone.", { $0.resolvedFindings.count }),
        ] as [(String, String, (FleetScan.ServerSummary) -> Int)] {
            lines.append("# HELP \(metric) \(help)")
            lines.append("# TYPE \(metric) gauge")
            for server in summary.servers { lines.append("\(metric){\(serverLabels(server))} \(pick(server))") }
        }
        // Fleet-wide, per rule: every rule of the scan has a line (0 when nothing changed).
        var rules = Set(statuses.values.flatMap { $0.map(\.rule) })
        for server in summary.servers { rules.formUnion(server.newFindings.map(\.rule)); rules.formUnion(server.resolvedFindings.map(\.rule)) }
        for (metric, help, pick) in [
            ("pgpreflight_findings_new", "Findings of the rule, over all servers, that were not in the previous scan.", { (s: FleetScan.ServerSummary) in s.newFindings }),
            ("pgpreflight_findings_resolved", "Findings of the rule, over all servers, of the previous scan that are gone.", { $0.resolvedFindings }),
        ] as [(String, String, (FleetScan.ServerSummary) -> [ScanHistory.Finding])] {
            lines.append("# HELP \(metric) \(help)")
            lines.append("# TYPE \(metric) gauge")
            var counts: [String: Int] = [:]
            for server in summary.servers { for finding in pick(server) { counts[finding.rule, default: 0] += 1 } }
            for rule in rules.sorted() { lines.append("\(metric){rule=\"\(label(rule))\"} \(counts[rule] ?? 0)") }
        }
        lines.append("# HELP pgpreflight_scan_timestamp_seconds When the scan finished.")
        lines.append("# TYPE pgpreflight_scan_timestamp_seconds gauge")
        lines.append("pgpreflight_scan_timestamp_seconds \(Int(summary.finishedAt.timeIntervalSince1970))")
        return lines.joined(separator: "\n") + "\n"
    }
}
