import Foundation
import Testing
import Validation

@Suite struct PolicyTests {
    let known: Set<String> = ["tables.primary-key", "objects.event-triggers", "roles.superusers", "tables.unlogged"]

    func result(_ rule: String, _ status: Status, database: String? = "shop", objects: [String]) -> RuleResult {
        RuleResult(rule: rule, title: rule, scope: database == nil ? .instance : .database, database: database, status: status,
                   message: "\(objects.count) findings", remedy: "fix it", objects: objects, startedAt: Date(), finishedAt: Date())
    }

    func run(_ results: [RuleResult]) -> ValidationRun {
        let server = ServerInfo(host: "127.0.0.1", port: 5432, user: "postgres", serverVersion: "15")
        return ValidationRun(mode: .online, startedAt: Date(), finishedAt: Date(), source: server, target: server,
                             databases: ["shop"], results: results)
    }

    func write(_ text: String, name: String = ".pgpreflight.yaml") throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("policy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent(name)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    @Test func suppressionWithReasonAcceptsWithoutHiding() throws {
        let file = try write("""
            suppressions:
              - rule: objects.event-triggers
                database: shop
                objects: ["note_ddl"]
                reason: "recreated by the platform team after cutover"
            """)
        let policy = try Policy.load(file: file, knownRules: known)
        let applied = policy.apply(to: run([result("objects.event-triggers", .failed, objects: ["note_ddl"])]))
        #expect(applied.results.count == 1)
        #expect(applied.results[0].status == .failed)
        #expect(applied.results[0].suppressed == Acceptance(by: .suppression, reason: "recreated by the platform team after cutover"))
        #expect(applied.status == .succeeded)
        // Another database is not covered.
        let other = policy.apply(to: run([result("objects.event-triggers", .failed, database: "billing", objects: ["note_ddl"])]))
        #expect(other.status == .failed)
    }

    @Test func suppressionWithoutReasonIsAnErrorWithFileAndLine() throws {
        let file = try write("""
            suppressions:
              - rule: objects.event-triggers
                objects: ["note_ddl"]
            """)
        #expect { try Policy.load(file: file, knownRules: known) } throws: { error in
            "\(error)" == "\(file.path):2: the suppression of objects.event-triggers needs a reason"
        }
    }

    @Test func unknownRuleAndMalformedPatternAreErrors() throws {
        let unknown = try write("rules:\n  tables.no-such-rule:\n    severity: off\n")
        #expect { try Policy.load(file: unknown, knownRules: known) } throws: { "\($0)".hasSuffix(":2: unknown rule id 'tables.no-such-rule'") }
        let malformed = try write("rules:\n  tables.primary-key:\n    exclude: [\"public.[a-z]\"]\n")
        #expect { try Policy.load(file: malformed, knownRules: known) } throws: { "\($0)".contains(":3: tables.primary-key: exclude: malformed pattern") }
        let badSeverity = try write("rules:\n  tables.primary-key:\n    severity: fatal\n")
        #expect { try Policy.load(file: badSeverity, knownRules: known) } throws: { "\($0)".contains(":3: tables.primary-key: severity must be") }
    }

    @Test func expiredSuppressionStopsApplyingAndTheRunSaysSo() throws {
        let file = try write("""
            suppressions:
              - rule: roles.superusers
                reason: "until the audit"
                expires: 2026-01-31
            """)
        let policy = try Policy.load(file: file, knownRules: known)
        let applied = policy.apply(to: run([result("roles.superusers", .warning, database: nil, objects: ["alice"])]),
                                   today: Policy.dayFormatterForTests.date(from: "2026-11-21")!)
        #expect(applied.results[0].suppressed == nil)
        #expect(applied.status == .warning)
        #expect(applied.notices.count == 1)
        #expect(applied.notices[0].contains("expired on 2026-01-31"))
    }

    @Test func severityOverridesFromFileAndCommandLine() throws {
        let file = try write("""
            rules:
              tables.primary-key:
                severity: failed
              tables.unlogged:
                severity: off
              roles.superusers:
                severity: warning
            """)
        var policy = try Policy.load(file: file, knownRules: known)
        try policy.applySeverityFlags(["roles.superusers=failed"], knownRules: known)
        let applied = policy.apply(to: run([
            result("tables.primary-key", .warning, objects: ["public.events"]),
            result("tables.unlogged", .warning, objects: ["public.cache"]),
            result("roles.superusers", .warning, database: nil, objects: ["alice"]),
        ]))
        #expect(applied.results.map(\.rule) == ["tables.primary-key", "roles.superusers"])
        #expect(applied.results.map(\.status) == [.failed, .failed])  // the command line won for roles.superusers
        #expect(throws: PolicyError.self) { try policy.applySeverityFlags(["roles.superusers=loud"], knownRules: known) }
    }

    @Test func exclusionPatternsDropObjects() throws {
        let file = try write("""
            rules:
              tables.primary-key:
                exclude: ["public.audit_*", "staging.*"]
            """)
        let policy = try Policy.load(file: file, knownRules: known)
        let applied = policy.apply(to: run([
            result("tables.primary-key", .warning, objects: ["public.audit_2024", "staging.\"Raw\"", "public.events"]),
            result("tables.primary-key", .warning, database: "billing", objects: ["public.audit_log"]),
        ]))
        #expect(applied.results[0].objects == ["public.events"])
        #expect(applied.results[0].status == .warning)
        #expect(applied.results[1].status == .succeeded)
        #expect(applied.results[1].objects.isEmpty)
    }

    @Test func baselineFailsOnlyWhatIsNew() throws {
        let before = run([result("tables.primary-key", .failed, objects: ["public.events"]),
                          result("roles.superusers", .warning, database: nil, objects: ["alice"])])
        let baselineFile = try write(try Baseline(run: before).encoded(), name: "pgpreflight-baseline.json")
        let policyFile = baselineFile.deletingLastPathComponent().appendingPathComponent(".pgpreflight.yaml")
        try "baseline: pgpreflight-baseline.json\n".write(to: policyFile, atomically: true, encoding: .utf8)
        let policy = try Policy.load(file: policyFile, knownRules: known)
        let after = policy.apply(to: run([
            result("tables.primary-key", .failed, objects: ["public.events", "public.new_table"]),  // a new object
            result("roles.superusers", .warning, database: nil, objects: ["alice"]),
            result("objects.event-triggers", .failed, objects: ["note_ddl"]),                       // a new finding
        ]))
        #expect(after.results.filter { $0.suppressed == nil && $0.status != .succeeded }.map(\.rule)
                == ["tables.primary-key", "objects.event-triggers"])
        #expect(after.results[1].suppressed?.by == .baseline)
        #expect(after.status == .failed)
        let unchanged = policy.apply(to: before)
        #expect(unchanged.status == .succeeded)
    }

    @Test func patternsMatchQuotedNames() {
        #expect(ObjectPattern("public.audit_*")!.matches("public.\"audit_Log\""))
        #expect(!ObjectPattern("public.audit_*")!.matches("public.events"))
        #expect(ObjectPattern("s?.t*")!.matches("s1.table"))
        #expect(ObjectPattern("") == nil)
        #expect(ObjectPattern("a[b]") == nil)
    }
}
