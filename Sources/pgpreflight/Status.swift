import ArgumentParser
import Foundation
import Migration

/// `pgpreflight status [NAME]`: reads the state store (works while `migrate` runs).
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the state of migrations recorded in the state directory.")

    @Argument(help: "Migration name (default: every migration in the store).")
    var name: String?
    @OptionGroup var state: StateDirectoryOption
    var stateDir: String { state.stateDir }
    @Option(help: "text or json.")
    var format: RulesCommand.Format = .text

    func run() async throws {
        guard FileManager.default.fileExists(atPath: URL(fileURLWithPath: stateDir).appendingPathComponent("migrations.sqlite").path) else {
            throw ValidationError("no state store in \(stateDir)")
        }
        let store: StateStore
        // Read-only: polling `status` never holds a lock a running `migrate` waits for.
        do { store = try StateStore(directory: URL(fileURLWithPath: stateDir), readOnly: true) } catch { throw ValidationError("\(error)") }
        let names = try name.map { [$0] } ?? store.migrations().map(\.name)
        var statuses: [StateStore.Status] = []
        for name in names {
            guard let status = try store.status(name) else { throw ValidationError("no migration named \(name) in \(stateDir)") }
            statuses.append(status)
        }
        if format == .json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = name != nil ? try encoder.encode(statuses[0]) : try encoder.encode(statuses)
            print(String(decoding: data, as: UTF8.self))
            return
        }
        for status in statuses {
            print("\(status.name): \(status.state) / \(status.substate) (\(status.mode), started \(status.startedAt)\(status.finishedAt.map { ", ended \($0)" } ?? ""))")
            if let message = status.message { print("  \(message)") }
            for db in status.databases {
                let t = db.tables
                var line = "  \(db.name): \(db.state) · tables \(t.total) total, \(t.queued) queued, \(t.copying) copying, \(t.copied) copied, \(t.errors) errors"
                if let percent = db.percentCopied, let total = db.bytesTotal {
                    line += " · " + String(format: "%.1f", percent) + " % of \(formatBytes(total))"
                }
                line += " · \(db.rowsCopied) rows, \(formatBytes(db.bytesCopied)) streamed"
                if let latency = db.latencySeconds {
                    line += String(format: " · latency %.1f s, %@ pending", latency, formatBytes(db.pendingBytes ?? 0))
                }
                print(line)
                if !db.tablesInFlight.isEmpty { print("    copying: " + db.tablesInFlight.joined(separator: ", ")) }
                if let c = db.cutover { print("    cutover: " + Cutover.describe(c)) }
            }
        }
    }
}
