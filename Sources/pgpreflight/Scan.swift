import ArgumentParser
import Foundation
import PostgresClient
import Reports
import Scanning
import Validation

/// `pgpreflight scan`: the nightly readiness scan over a fleet (`scan [run]`), and `scan merge`
/// of shard outputs. A group, so that the two share no option names.
struct Scan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate every server of an inventory (scan run, the default), or merge shard outputs (scan merge).",
        subcommands: [ScanRun.self, Merge.self], defaultSubcommand: ScanRun.self)
}

struct ScanRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Validate every server of an inventory; write reports, history and what got worse since the last scan.",
        discussion: """
            A server whose entry cannot be used (an unset ${VAR}), that cannot be reached or that misses its deadline \
            is reported Failed with the cause; the other servers are scanned and the reports written all the same.
            Exit codes: 0 the --fail-on condition is not met, 1 it is (default: some server has a Failed result), \
            2 bad inventory, rules or options.
            """)

    @Option(help: ArgumentHelp("The inventory (YAML): servers with name, source, target, databases, mode, rules.", valueName: "file"))
    var inventory: String
    @Option(help: ArgumentHelp("Where reports and history.sqlite go.", valueName: "dir"))
    var reports: String = "pgpreflight-reports"
    @Option(help: ArgumentHelp("Servers scanned at the same time.", valueName: "n"))
    var parallel: Int = 4
    @Option(help: ArgumentHelp("Also write a Prometheus textfile (node_exporter textfile collector).", valueName: "file"))
    var metrics: String?
    @Option(name: .customLong("rules"), help: ArgumentHelp("A folder of extra rule files for every server (repeatable).", valueName: "dir"))
    var ruleDirectories: [String] = []
    @Option(help: ArgumentHelp("Scan only shard I of N (0-based, I < N), chosen by a hash of the server's name: run N of these and `scan merge` their folders.", valueName: "I/N"))
    var shard: String?
    @Option(help: ArgumentHelp("Seconds allowed to connect (libpq connect_timeout) and for each statement (statement_timeout).", valueName: "seconds"))
    var serverTimeout: Int = 60
    @Option(help: ArgumentHelp("Wall-clock seconds a server may take in all; then it is reported Failed and its worker moves on (default: 5 × --server-timeout).", valueName: "seconds"))
    var serverDeadline: Int?
    @Option(help: ArgumentHelp("Where the history goes: a SQLite file (default DIR/history.sqlite) or postgresql://… (a schema shared by all shards).", valueName: "file|url"))
    var history: String?
    @Option(help: ArgumentHelp("When to exit 1: failed (some server has a Failed result), new (some finding is new since the previous scan), never.", valueName: "condition"))
    var failOn: FailOn = .failed

    func validate() throws {
        guard parallel >= 1 else { throw ValidationError("--parallel must be at least 1") }
        guard serverTimeout >= 1 else { throw ValidationError("--server-timeout must be at least 1 second") }
        if let serverDeadline, serverDeadline < 1 { throw ValidationError("--server-deadline must be at least 1 second") }
        if let shard { _ = try Self.parseShard(shard) }
    }

    /// The Prometheus textfile's folder is made (like --reports) and checked before any server
    /// is contacted: a path that cannot be written is one line, not a file error once the scan is over.
    static func prepareMetrics(_ path: String?) throws {
        guard let path else { return }
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
            throw ValidationError("--metrics \(path): a folder; give the file to write (e.g. \(path)/pgpreflight.prom)")
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        do { try fm.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw ValidationError("--metrics \(path): cannot create the folder \(folder.path)")
        }
        guard fm.isWritableFile(atPath: folder.path) else { throw ValidationError("--metrics \(path): cannot write in \(folder.path)") }
    }

    static func parseShard(_ text: String) throws -> (index: Int, count: Int) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]), count >= 1, (0..<count).contains(index) else {
            throw ValidationError("--shard '\(text)': expected I/N with 0 <= I < N (e.g. 0/3, 1/3, 2/3)")
        }
        return (index, count)
    }

    func run() async throws {
        var fleet: Inventory
        do { fleet = try Inventory.load(URL(fileURLWithPath: inventory)) } catch let error as InventoryError {
            throw ValidationError(error.description)
        }
        if let shard { let (index, count) = try Self.parseShard(shard); fleet = fleet.shard(index, of: count) }
        try Self.prepareMetrics(metrics)
        let reportsDirectory = URL(fileURLWithPath: reports)
        let store = try openHistory(history, reports: reportsDirectory)
        // Rules are checked before any server is contacted; an entry's bad connection string
        // fails that server only.
        var plans: [String: Result<ValidationRequest, ClientError>] = [:]
        let baseDirectories = try ValidationRequest.ruleDirectories(extra: ruleDirectories.map { URL(fileURLWithPath: $0) })
        let timeout = serverTimeout
        var loaded: [[URL]: [Rule]] = [:]  // most entries share the same folders: load them once
        for server in fleet.servers where server.problem == nil {
            let directories = baseDirectories + server.ruleDirectories
            let rules = try loaded[directories] ?? RuleLoader.load(directories: directories)
            loaded[directories] = rules
            do {
                let source = try Self.withTimeout(ConnectionString(server.source), timeout)
                let target = try Self.withTimeout(ConnectionString(server.target), timeout)
                plans[server.name] = .success(ValidationRequest(source: source, target: target, databases: server.databases, mode: server.mode,
                                                                rules: rules, statementTimeout: "\(timeout)s"))
            } catch {
                plans[server.name] = .failure(ClientError("\(server.location): server \(server.name): \(error)"))
            }
        }
        let requests = plans
        let scan = FleetScan(inventory: fleet, reportsDirectory: reportsDirectory, parallel: parallel,
                             metricsFile: metrics.map { URL(fileURLWithPath: $0) }, history: store,
                             serverDeadline: Double(serverDeadline ?? 5 * serverTimeout), shard: shard) { server in
            let request: ValidationRequest
            switch requests[server.name]! {
            case .failure(let error):
                return FleetScan.failedRun(server: server, rule: "scan.inventory-entry", title: "The inventory entry can be used",
                                           message: "\(error)", remedy: "Fix the server's connection string in the inventory.")
            case .success(let r): request = r
            }
            do {
                return try await ValidationEngine(request: request).run().run
            } catch {
                // The engine reports unreachable servers as results; anything else becomes one.
                let now = Date()
                return ValidationRun(mode: server.mode, startedAt: now, finishedAt: now,
                                     source: ServerInfo(host: request.source.host, port: request.source.port, user: request.source.user, serverVersion: nil),
                                     target: ServerInfo(host: request.target.host, port: request.target.port, user: request.target.user, serverVersion: nil),
                                     databases: [], results: [RuleResult(rule: "connectivity.source", title: "The source accepts connections", scope: .instance,
                                                                         database: nil, status: .failed, message: "could not validate: \(error)",
                                                                         remedy: "Check the server's entry in the inventory.", objects: [],
                                                                         startedAt: now, finishedAt: now)])
            }
        }
        let summary = try await scan.run()
        try Self.finish(summary, failOn: failOn)
    }

    /// libpq's connect_timeout: the smaller of the entry's own and --server-timeout.
    static func withTimeout(_ endpoint: ConnectionString, _ seconds: Int) -> ConnectionString {
        if let own = endpoint.value("connect_timeout").flatMap(Int.init), own > 0, own <= seconds { return endpoint }
        return endpoint.with("connect_timeout", String(seconds))
    }

    static func finish(_ summary: FleetScan.Summary, failOn: FailOn) throws {
        for server in summary.servers {
            let changes = [server.newFindings.isEmpty ? nil : "\(counted(server.newFindings.count, "new finding"))",
                           server.resolvedFindings.isEmpty ? nil : "\(server.resolvedFindings.count) resolved"].compactMap { $0 }
            print("\(server.name): \(server.status.rawValue), \(server.failed) failed, \(counted(server.warnings, "warning"))"
                  + (changes.isEmpty ? "" : " (\(changes.joined(separator: ", ")))")
                  + (server.problem.map { ": \($0)" } ?? ""))
        }
        print("\(counted(summary.servers.count, "server")), \(counted(summary.newFindings, "new finding")), \(summary.resolvedFindings) resolved")
        print("reports: \(summary.directory)")
        switch failOn {
        case .failed: if summary.status == .failed { throw ExitCode(1) }
        case .new: if summary.newFindings > 0 { throw ExitCode(1) }
        case .never: break
        }
    }

    enum FailOn: String, ExpressibleByArgument, CaseIterable { case failed, new, never }

    func openHistory(_ spec: String?, reports: URL) throws -> any HistoryStore {
        guard let spec else {
            try FileManager.default.createDirectory(at: reports, withIntermediateDirectories: true)
            return try ScanHistory(url: reports.appendingPathComponent("history.sqlite"))
        }
        if spec.hasPrefix("postgresql://") || spec.hasPrefix("postgres://") {
            do { return try PostgresHistory(ConnectionString(spec)) } catch {
                throw ValidationError("--history: \(error)")
            }
        }
        return try ScanHistory(url: URL(fileURLWithPath: spec))
    }

}

extension Scan {
    typealias FailOn = ScanRun.FailOn

    /// `pgpreflight scan merge`: one fleet report from the outputs of `scan --shard` runs.
    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Combine the outputs of `scan --shard I/N` runs into one fleet report (the same files a single scan writes).",
            discussion: "Each DIR is a shard's run folder (with summary.json) or its --reports folder (its latest run is taken). Every shard must be there once.")

        @Argument(help: ArgumentHelp("The shards' output folders.", valueName: "dir"))
        var directories: [String]
        @Option(help: ArgumentHelp("Where the merged run folder goes.", valueName: "dir"))
        var reports: String = "pgpreflight-reports"
        @Option(help: ArgumentHelp("Also write a Prometheus textfile.", valueName: "file"))
        var metrics: String?
        @Option(help: ArgumentHelp("When to exit 1: failed, new, never.", valueName: "condition"))
        var failOn: FailOn = .failed

        func run() throws {
            try ScanRun.prepareMetrics(metrics)
            let summary: FleetScan.Summary
            do {
                summary = try FleetScan.merge(directories.map { URL(fileURLWithPath: $0) }, into: URL(fileURLWithPath: reports),
                                              metricsFile: metrics.map { URL(fileURLWithPath: $0) })
            } catch let error as InventoryError { throw ValidationError(error.description) }
            try ScanRun.finish(summary, failOn: failOn)
        }
    }
}
