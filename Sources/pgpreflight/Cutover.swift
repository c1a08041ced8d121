import ArgumentParser
import Foundation
import Migration

/// `pgpreflight cutover NAME`: tells a running online migration to apply everything the
/// source committed, set the sequences, verify and finish; waits until it has.
struct Cutover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Finish an online migration: apply the last changes, set sequences, verify, drop the slot.",
        discussion: "Stop the applications' writes to the source first. Exit codes: 0 Succeeded, 1 otherwise, 2 bad input.")

    @Argument(help: "Migration name.")
    var name: String
    @OptionGroup var state: StateDirectoryOption
    var stateDir: String { state.stateDir }
    @Option(help: "Seconds to wait for the migration to finish.")
    var timeout: Int = 600

    func run() async throws {
        guard FileManager.default.fileExists(atPath: URL(fileURLWithPath: stateDir).appendingPathComponent("migrations.sqlite").path) else {
            throw ValidationError("no state store in \(stateDir)")
        }
        let store: StateStore
        do { store = try StateStore(directory: URL(fileURLWithPath: stateDir)) } catch { throw ValidationError("\(error)") }
        guard let record = try store.migration(name) else { throw ValidationError("no migration named \(name) in \(stateDir)") }
        guard record.mode == "online" else { throw ValidationError("migration \(name) is offline: there is nothing to cut over") }
        if record.state.isFinal || record.state == .failed {
            print("migration \(name) is \(record.state.rawValue); nothing to cut over")
            throw ExitCode(record.state == .succeeded ? 0 : 1)
        }
        // Nobody would act on the request: say so now rather than wait for the timeout.
        if let runner = try store.runner(name), !runner.alive {
            print("migration \(name) is not running (its migrator, process \(runner.pid), is gone): nothing would apply the last changes. "
                  + "Rerun the same `pgpreflight migrate \(name) --mode online …` command; once it is streaming again "
                  + "(WaitingForCutoverTrigger), run `pgpreflight cutover \(name)`")
            throw ExitCode(1)
        }
        // No process recorded (its run ended without finishing): nobody to ask.
        if try store.runner(name) == nil {
            print("migration \(name) is not running (\(record.state.rawValue)): rerun the same `pgpreflight migrate \(name) --mode online …` "
                  + "command; once it is streaming again (WaitingForCutoverTrigger), run `pgpreflight cutover \(name)`")
            throw ExitCode(1)
        }
        let started = Date()
        _ = try store.requestCutover(name)
        print("cutover of \(name) requested; waiting for the last changes to be applied …")
        while Date().timeIntervalSince(started) < Double(timeout) {
            try await Task.sleep(nanoseconds: 200_000_000)
            guard let now = try store.migration(name) else { continue }
            if let runner = try store.runner(name), !runner.alive, !now.state.isFinal, now.state != .failed {
                if try store.withdrawCutover(name) {
                    print("migration \(name): its migrator (process \(runner.pid)) stopped before it began the cutover; the request is "
                          + "withdrawn. Rerun the same `pgpreflight migrate` command, then `pgpreflight cutover \(name)` again")
                } else {
                    print("migration \(name): its migrator (process \(runner.pid)) stopped during the cutover; rerun the same "
                          + "`pgpreflight migrate` command: it finishes the cutover (keep the applications' writes stopped)")
                }
                throw ExitCode(1)
            }
            switch now.state {
            case .succeeded:
                print(String(format: "migration \(name): Succeeded (cutover took %.1f s)", Date().timeIntervalSince(started)))
                for (database, progress) in try store.cutoverProgress(name).sorted(by: { $0.key < $1.key }) {
                    print("  \(database): \(Self.describe(progress))")
                }
                return
            case .failed, .canceled, .validationFailed:
                print("migration \(name): \(now.state.rawValue)\(now.message.map { " — \($0)" } ?? "")")
                throw ExitCode(1)
            default:
                continue
            }
        }
        // The request belongs to this command: one nobody took must not arm a later run.
        if try store.withdrawCutover(name) {
            print("migration \(name) did not begin the cutover within \(timeout) s; the request is withdrawn (no later run cuts over "
                  + "without a new one). `pgpreflight status \(name)` shows where it is; run `pgpreflight cutover \(name)` again once "
                  + "it is WaitingForCutoverTrigger")
        } else {
            print("migration \(name): the cutover is under way but did not finish within \(timeout) s; it goes on. "
                  + "`pgpreflight status \(name)` shows where it is")
        }
        throw ExitCode(1)
    }

    /// One database's cutover for people: its step and its proof.
    static func describe(_ c: StateStore.CutoverProgress) -> String {
        var text = c.step
        if let received = c.receivedTransactions, let applied = c.appliedTransactions {
            text += " · \(received) source transaction(s) received, \(applied) applied"
        }
        if let position = c.appliedPosition { text += " · applied up to \(position)" }
        if let end = c.endLSN { text += " (source's end \(end))" }
        return text
    }
}
