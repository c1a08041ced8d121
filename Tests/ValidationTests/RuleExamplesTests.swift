import Foundation
import Testing
import TestSupport
import Validation

/// Runs every example of every rule file in rules/ against real servers (PostgreSQL 15 source,
/// 18 target unless the example says otherwise), one at a time.
@Suite(.serialized) struct RuleExamplesTests {
    static let rules: [Rule] = {
        do { return try RuleLoader.load(directories: [ExampleServers.rulesDirectory]) } catch {
            fatalError("rules/ does not load: \(error)")
        }
    }()
    static let cases: [ExampleCase] = rules.flatMap { rule in rule.examples.map { ExampleCase(rule: rule, example: $0) } }

    @Test(arguments: cases)
    func example(_ testCase: ExampleCase) async throws {
        let (result, database, run) = try await ExampleRunner(allRules: Self.rules).run(testCase)
        let problems = ExampleRunner.mismatches(result, testCase.example, database: database)
        if !problems.isEmpty {
            let got = result.map { "status \($0.status.rawValue), message \"\($0.message)\", objects \($0.objects), remedy \"\($0.remedy)\"" }
                ?? "no result; results: \(run.results.map { "\($0.rule)=\($0.status.rawValue) \($0.message)" })"
            Issue.record(Comment(rawValue: "\(testCase.rule.id) / \(testCase.example.name) (\(testCase.location)):\n  "
                                 + problems.joined(separator: "\n  ") + "\n  actual: \(got)"))
        }
    }

    /// Rules whose other statuses need servers the tests do not have.
    static let singleStatusReasons: [String: String] = [
        "version.source-minimum": "Failed needs a source older than 9.5",
        "version.target-supported": "Failed needs a target older than 11",
        "version.removed-features": "Failed needs a source older than 14 (the removed features cannot be created on 15)",
        "connectivity.latency": "Warning needs a server more than 20 ms away (EngineTests lowers the threshold)",
        "replication.decoding-plugin": "Failed needs a source older than 10",
        "transactions.long-running": "Warning needs a transaction open for more than 10 minutes",
        "encoding.database": "Warning needs a SQL_ASCII database; example databases are UTF8",
        "connectivity.tls": "Succeeded needs SSL on both servers (EngineTests starts two with a certificate)",
    ]

    @Test func everyRuleHasExamplesForItsStatuses() {
        #expect(!Self.rules.isEmpty)
        for rule in Self.rules {
            let statuses = Set(rule.examples.map(\.expect.status))
            if rule.examples.isEmpty {
                Issue.record(Comment(rawValue: "\(rule.id) (\(rule.file)) has no example"))
            } else if statuses.count < 2 && Self.singleStatusReasons[rule.id] == nil {
                Issue.record(Comment(rawValue: "\(rule.id) (\(rule.file)) only has \(statuses.map(\.rawValue)) examples: "
                                     + "add one for each other status it can produce"))
            }
        }
    }
}
