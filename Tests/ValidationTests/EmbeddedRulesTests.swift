import Foundation
import LocalServers
import Testing
import TestSupport
import Validation

/// The rules ship inside the binary: the embedded set is exactly the checkout's rules/ (the
/// single source, compiled in by the EmbedRules plugin), and a binary copied anywhere finds them.
@Suite struct EmbeddedRulesTests {
    @Test func theEmbeddedRulesAreTheCheckoutsRulesFolder() throws {
        let embedded = try RuleLoader.load(directories: [RuleLoader.embeddedDirectory])
        let checkout = try RuleLoader.load(directories: [TestServers.projectRoot.appendingPathComponent("rules")])
        #expect(embedded.map(\.id) == checkout.map(\.id))
        #expect(embedded.map(\.title) == checkout.map(\.title))
        #expect(embedded.map(\.file) == checkout.map { "rules/" + URL(fileURLWithPath: $0.file).lastPathComponent })
        let files = try FileManager.default.contentsOfDirectory(atPath: TestServers.projectRoot.appendingPathComponent("rules").path)
        #expect(embedded.count == files.filter { $0.hasSuffix(".yaml") }.count)
    }

    @Test func extraFoldersAddToTheEmbeddedRulesAndADuplicateIdIsAnError() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-embedded-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let shipped = TestServers.projectRoot.appendingPathComponent("rules/tables.unlogged.yaml")
        try FileManager.default.copyItem(at: shipped, to: directory.appendingPathComponent("copy.yaml"))
        let error = #expect(throws: RuleLoadError.self) {
            try RuleLoader.load(directories: [RuleLoader.embeddedDirectory, directory])
        }
        #expect(error?.description == "\(directory.appendingPathComponent("copy.yaml").path):1: duplicate rule id 'tables.unlogged' (also in rules/tables.unlogged.yaml)")
    }

    /// The binary copied to an empty folder, run from another empty folder without
    /// PGPREFLIGHT_RULES: every shipped rule, and `--rules DIR` adds one.
    @Test func aCopiedBinaryRunsFromAnyDirectory() throws {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let built = try #require([beside.appendingPathComponent("pgpreflight"), beside.deletingLastPathComponent().appendingPathComponent("pgpreflight")]
            .first { FileManager.default.isExecutableFile(atPath: $0.path) })
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-copied-\(UUID().uuidString)")
        let bin = root.appendingPathComponent("bin"), work = root.appendingPathComponent("work"), extra = root.appendingPathComponent("extra")
        for folder in [bin, work, extra] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        defer { try? FileManager.default.removeItem(at: root) }
        let rule = try String(contentsOf: TestServers.projectRoot.appendingPathComponent("rules/tables.unlogged.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "id: tables.unlogged", with: "id: custom.unlogged-again")
        try rule.write(to: extra.appendingPathComponent("custom.yaml"), atomically: true, encoding: .utf8)

        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "PGPREFLIGHT_RULES")
        // cp in the shell: a copy written by this process could be held open by a concurrent
        // fork and refuse to run ("Text file busy").
        let shell = "cp '\(built.path)' '\(bin.path)/' && cd '\(work.path)' && '\(bin.path)/pgpreflight' rules && '\(bin.path)/pgpreflight' rules --rules '\(extra.path)'"
        let output = try LocalServer.run(["/bin/sh", "-c", shell], environment: environment)
        let count = try FileManager.default.contentsOfDirectory(atPath: TestServers.projectRoot.appendingPathComponent("rules").path)
            .filter { $0.hasSuffix(".yaml") }.count
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasSuffix(" rules") && !$0.hasPrefix(" ") } == ["\(count) rules", "\(count + 1) rules"], "\(output)")
        #expect(output.contains("custom.unlogged-again"))
    }
}
