import Foundation
@testable import Reports
import Testing
import TestSupport
import Validation

/// `--format sarif`: valid SARIF 2.1.0 (checked against the vendored OASIS schema) that GitHub
/// code scanning accepts: one run, rules with help, a result per finding with its rule file and
/// the database object, accepted findings suppressed, and the baseline state.
@Suite struct SARIFReportTests {
    func log(_ run: ValidationRun, options: ReportOptions = ReportOptions()) throws -> [String: Any] {
        let text = try Reports.render(run, as: .sarif, options: options)
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func onlyRun(_ log: [String: Any]) throws -> [String: Any] {
        let runs = try #require(log["runs"] as? [[String: Any]])
        #expect(runs.count == 1)
        return try #require(runs.first)
    }

    @Test func everyFixtureRunIsValidSARIF() throws {
        var clean = try Fixtures.realRun()
        clean.results.removeAll { $0.status != .succeeded }
        for (name, run) in [("real", try Fixtures.realRun()), ("hostile", Fixtures.hostileRun()), ("clean", clean),
                            ("accepted", try Fixtures.acceptedRun()),
                            ("large", Fixtures.largeRun(succeeded: 300, failed: 20, objectsPerFailure: 2000))] {
            let text = try Reports.render(run, as: .sarif)
            let problems = try JSONSchemaValidator.problems(text, schema: JSONSchemaValidator.sarifSchema)
            #expect(problems.isEmpty, "\(name): \(problems.joined(separator: "\n"))")
        }
    }

    @Test func theValidatorRejectsWhatIsNotSARIF() throws {
        let broken = #"{"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": [{"level": "fatal", "message": {"text": "x"}}]}]}"#
        let problems = try JSONSchemaValidator.problems(broken, schema: JSONSchemaValidator.sarifSchema)
        #expect(problems.contains { $0.contains("'name' is a required property") }, "\(problems)")
        #expect(problems.contains { $0.contains("'fatal' is not one of") }, "\(problems)")
    }

    @Test func resultsNameTheRuleFileTheDatabaseAndTheObjects() throws {
        let run = try Fixtures.realRun()
        let sarif = try log(run)
        #expect(sarif["version"] as? String == "2.1.0")
        let only = try onlyRun(sarif)
        let driver = try #require((only["tool"] as? [String: Any])?["driver"] as? [String: Any])
        #expect(driver["name"] as? String == "pgpreflight")
        let rules = try #require(driver["rules"] as? [[String: Any]])
        let results = try #require(only["results"] as? [[String: Any]])
        let findings = run.results.filter { $0.status != .succeeded }
        #expect(results.count == findings.count)
        #expect(Set(rules.compactMap { $0["id"] as? String }) == Set(findings.map(\.rule)))

        let noKey = try #require(findings.first { $0.rule == "tables.primary-key" && !$0.objects.isEmpty })
        let result = try #require(results.first { $0["ruleId"] as? String == noKey.rule })
        #expect(result["level"] as? String == (noKey.status == .failed ? "error" : "warning"))
        let index = try #require(result["ruleIndex"] as? Int)
        #expect(rules[index]["id"] as? String == noKey.rule)
        let help = try #require((rules[index]["help"] as? [String: Any])?["text"] as? String)
        #expect(help == noKey.remedy)
        #expect((rules[index]["shortDescription"] as? [String: Any])?["text"] as? String == noKey.title)
        let message = try #require((result["message"] as? [String: Any])?["text"] as? String)
        #expect(message.hasPrefix("[\(noKey.database!)] \(noKey.message)"))

        let location = try #require((result["locations"] as? [[String: Any]])?.first)
        let physical = try #require(location["physicalLocation"] as? [String: Any])
        #expect((physical["artifactLocation"] as? [String: Any])?["uri"] as? String == "rules/tables.primary-key.yaml")
        #expect((physical["region"] as? [String: Any])?["startLine"] as? Int == 1)
        let logical = try #require(location["logicalLocations"] as? [[String: Any]])
        #expect(logical.first?["name"] as? String == noKey.database)
        #expect(logical.dropFirst().compactMap { $0["name"] as? String } == noKey.objects)
        #expect(logical.dropFirst().first?["fullyQualifiedName"] as? String == "\(noKey.database!)/\(noKey.objects[0])")
        #expect(result["suppressions"] == nil && result["baselineState"] == nil)
        #expect((result["partialFingerprints"] as? [String: String])?["pgpreflightFinding/v1"] == CodeQualityReport.fingerprint(noKey))
    }

    @Test func strictMakesWarningsErrors() throws {
        let run = try Fixtures.realRun()
        let warning = try #require(run.results.first { $0.status == .warning })
        let results = try #require(try onlyRun(try log(run, options: ReportOptions(strict: true)))["results"] as? [[String: Any]])
        let same = try #require(results.first { $0["ruleId"] as? String == warning.rule })
        #expect(same["level"] as? String == "error")
    }

    @Test func acceptedFindingsAreSuppressedAndTheBaselineSetsTheirState() throws {
        let run = try Fixtures.acceptedRun()
        let results = try #require(try onlyRun(try log(run))["results"] as? [[String: Any]])
        func result(_ rule: String) throws -> [String: Any] { try #require(results.first { $0["ruleId"] as? String == rule }) }

        let suppressed = try result("tables.case-collisions")
        let suppression = try #require((suppressed["suppressions"] as? [[String: Any]])?.first)
        #expect(suppression["kind"] as? String == "external")
        #expect(suppression["status"] as? String == "accepted")
        #expect(suppression["justification"] as? String == "suppression: \(Fixtures.suppressionReason)")
        #expect(suppressed["level"] as? String == "error")  // it keeps its status, as in every report
        #expect(suppressed["baselineState"] as? String == "new")

        let baselined = try #require(results.first {
            $0["ruleId"] as? String == "tables.primary-key" && $0["baselineState"] as? String == "unchanged"
        })
        #expect(((baselined["suppressions"] as? [[String: Any]])?.first?["justification"] as? String)?.hasPrefix("baseline: in the baseline") == true)

        let stillFailing = try result("extensions.preload")
        #expect(stillFailing["suppressions"] == nil)
        #expect(stillFailing["baselineState"] as? String == "new")
        let invocation = try #require((try onlyRun(try log(run))["invocations"] as? [[String: Any]])?.first)
        let notes = try #require(invocation["toolExecutionNotifications"] as? [[String: Any]])
        #expect(notes.count == 1 && notes[0]["level"] as? String == "note")
    }

    /// GitHub code scanning: at most 1 000 locations per result; messages stay short.
    @Test func largeRunsStayWithinGitHubsLimits() throws {
        let run = Fixtures.largeRun(succeeded: 300, failed: 20, objectsPerFailure: 2000)
        let results = try #require(try onlyRun(try log(run))["results"] as? [[String: Any]])
        #expect(results.count == 20)
        for result in results {
            let location = try #require((result["locations"] as? [[String: Any]])?.first)
            #expect((location["logicalLocations"] as? [Any])?.count ?? 0 <= 1000)
            #expect(((result["message"] as? [String: Any])?["text"] as? String)?.count ?? 0 < 2000)
        }
    }
}
