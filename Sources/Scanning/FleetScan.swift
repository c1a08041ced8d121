import Foundation
import Reports
import Validation

/// A nightly readiness scan over an inventory: validates every server (concurrently, bounded),
/// writes per-server reports, an index over all servers, `summary.json`, the history, and
/// optionally a Prometheus textfile.
public struct FleetScan: Sendable {
    public struct ServerSummary: Codable, Sendable {
        public var name: String
        public var status: Status
        public var failed: Int
        public var warnings: Int
        public var newFailures: [ScanHistory.Key]
        public var newWarnings: [ScanHistory.Key]
        public var resolved: [ScanHistory.Key]
    }

    public struct Summary: Codable, Sendable {
        public var startedAt: Date
        public var finishedAt: Date
        public var servers: [ServerSummary]
        /// The folder this run's reports were written to.
        public var directory: String
        public var status: Status { servers.map(\.status).max() ?? .succeeded }
    }

    public var inventory: Inventory
    public var reportsDirectory: URL
    public var parallel: Int
    public var metricsFile: URL?
    /// Validates one server. Unreachable servers come back as connectivity results, not errors.
    public var validate: @Sendable (Inventory.Server) async -> ValidationRun

    public init(inventory: Inventory, reportsDirectory: URL, parallel: Int, metricsFile: URL?,
                validate: @escaping @Sendable (Inventory.Server) async -> ValidationRun) {
        self.inventory = inventory; self.reportsDirectory = reportsDirectory; self.parallel = max(1, parallel)
        self.metricsFile = metricsFile; self.validate = validate
    }

    public func run(now: Date = Date()) async throws -> Summary {
        let fm = FileManager.default
        try fm.createDirectory(at: reportsDirectory, withIntermediateDirectories: true)
        let stamp = Self.stampFormatter.string(from: now)
        var runDirectory = reportsDirectory.appendingPathComponent(stamp)
        var suffix = 1
        while fm.fileExists(atPath: runDirectory.path) {  // two scans in one second keep both
            suffix += 1
            runDirectory = reportsDirectory.appendingPathComponent("\(stamp)-\(suffix)")
        }
        try fm.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        let history = try ScanHistory(url: reportsDirectory.appendingPathComponent("history.sqlite"))

        // Bounded concurrency: at most `parallel` servers at once, results kept in inventory order.
        var runs: [String: ValidationRun] = [:]
        try await withThrowingTaskGroup(of: (String, ValidationRun).self) { group in
            var pending = inventory.servers[...]
            for _ in 0..<min(parallel, pending.count) {
                let server = pending.removeFirst()
                group.addTask { (server.name, await validate(server)) }
            }
            while let (name, run) = try await group.next() {
                runs[name] = run
                if let server = pending.popFirst() { group.addTask { (server.name, await validate(server)) } }
            }
        }

        var summaries: [ServerSummary] = []
        var trends: [String: [ScanHistory.TrendPoint]] = [:]
        for server in inventory.servers {
            guard let run = runs[server.name] else { continue }
            let comparison = try history.record(server: server.name, run: run)
            for (format, ext) in [(ReportFormat.json, "json"), (.junit, "junit.xml"), (.html, "html")] {
                let text = try Reports.render(run, as: format, options: ReportOptions(serverName: server.name))
                try text.write(to: runDirectory.appendingPathComponent("\(server.name).\(ext)"), atomically: true, encoding: .utf8)
            }
            summaries.append(ServerSummary(
                name: server.name, status: run.status,
                failed: run.results.filter { $0.blockingStatus == .failed }.count,
                warnings: run.results.filter { $0.blockingStatus == .warning }.count,
                newFailures: comparison.newFailures, newWarnings: comparison.newWarnings, resolved: comparison.resolved))
            trends[server.name] = try history.trend(server: server.name)
        }
        let summary = Summary(startedAt: now, finishedAt: Date(), servers: summaries, directory: runDirectory.path)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(summary).write(to: runDirectory.appendingPathComponent("summary.json"))
        try FleetIndex.render(summary: summary, runs: runs, trends: trends)
            .write(to: runDirectory.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
        if let metricsFile {
            try PrometheusMetrics.render(summary: summary, runs: runs).write(to: metricsFile, atomically: true, encoding: .utf8)
        }
        return summary
    }

    nonisolated(unsafe) static let stampFormatter: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withYear, .withMonth, .withDay, .withTime, .withTimeZone]  // 20261121T230000Z
        f.timeZone = TimeZone(identifier: "UTC")
        return f
    }()
}

/// node_exporter textfile-collector format.
public enum PrometheusMetrics {
    public static func render(summary: FleetScan.Summary, runs: [String: ValidationRun]) -> String {
        func label(_ s: String) -> String {
            s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }
        func value(_ status: Status) -> Int { switch status { case .succeeded: 0; case .warning: 1; case .failed: 2 } }
        var lines = [
            "# HELP pgpreflight_rule_status Result of each rule: 0 Succeeded, 1 Warning, 2 Failed (accepted findings count as 0).",
            "# TYPE pgpreflight_rule_status gauge",
        ]
        for server in summary.servers {
            for result in runs[server.name]?.results ?? [] {
                lines.append("pgpreflight_rule_status{server=\"\(label(server.name))\",database=\"\(label(result.database ?? ""))\",rule=\"\(label(result.rule))\"} \(value(result.blockingStatus))")
            }
        }
        for (metric, help, pick) in [
            ("pgpreflight_server_failed", "Failed results per server.", { (s: FleetScan.ServerSummary) in s.failed }),
            ("pgpreflight_server_warnings", "Warning results per server.", { $0.warnings }),
            ("pgpreflight_server_new_failures", "Failed results that were not Failed in the previous scan.", { $0.newFailures.count }),
        ] as [(String, String, (FleetScan.ServerSummary) -> Int)] {
            lines.append("# HELP \(metric) \(help)")
            lines.append("# TYPE \(metric) gauge")
            for server in summary.servers { lines.append("\(metric){server=\"\(label(server.name))\"} \(pick(server))") }
        }
        lines.append("# HELP pgpreflight_scan_timestamp_seconds When the scan finished.")
        lines.append("# TYPE pgpreflight_scan_timestamp_seconds gauge")
        lines.append("pgpreflight_scan_timestamp_seconds \(Int(summary.finishedAt.timeIntervalSince1970))")
        return lines.joined(separator: "\n") + "\n"
    }
}
