import ArgumentParser
import Foundation
import PostgresClient
import Scanning
import Validation

/// `pgpreflight scan`: the nightly readiness scan over a fleet.
struct Scan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate every server of an inventory; write reports, history and what got worse since the last scan.",
        discussion: "Exit codes: 0 no server has a Failed result, 1 some server has, 2 bad inventory or rules.")

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

    func validate() throws {
        guard parallel >= 1 else { throw ValidationError("--parallel must be at least 1") }
    }

    func run() async throws {
        let fleet: Inventory
        do { fleet = try Inventory.load(URL(fileURLWithPath: inventory)) } catch let error as InventoryError {
            throw ValidationError(error.description)
        }
        // Everything that can be wrong with the input is found before any server is contacted.
        var plans: [String: (ValidationRequest)] = [:]
        let baseDirectories = try ValidationRequest.ruleDirectories(extra: ruleDirectories.map { URL(fileURLWithPath: $0) })
        for server in fleet.servers {
            let source: ConnectionString, target: ConnectionString
            do { source = try ConnectionString(server.source); target = try ConnectionString(server.target) } catch {
                throw ValidationError("\(server.location): server \(server.name): \(error)")
            }
            let rules = try RuleLoader.load(directories: baseDirectories + server.ruleDirectories)
            plans[server.name] = ValidationRequest(source: source, target: target, databases: server.databases, mode: server.mode, rules: rules)
        }
        let requests = plans
        let scan = FleetScan(inventory: fleet, reportsDirectory: URL(fileURLWithPath: reports), parallel: parallel,
                             metricsFile: metrics.map { URL(fileURLWithPath: $0) }) { server in
            let request = requests[server.name]!
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
        for server in summary.servers {
            let changes = [server.newFailures.isEmpty ? nil : "\(server.newFailures.count) new failures",
                           server.newWarnings.isEmpty ? nil : "\(server.newWarnings.count) new warnings",
                           server.resolved.isEmpty ? nil : "\(server.resolved.count) resolved"].compactMap { $0 }
            print("\(server.name): \(server.status.rawValue), \(server.failed) failed, \(server.warnings) warnings"
                  + (changes.isEmpty ? "" : " (\(changes.joined(separator: ", ")))"))
        }
        print("reports: \(summary.directory)")
        if summary.status == .failed { throw ExitCode(1) }
    }
}
