import Foundation
@testable import Reports
import Testing
import TestSupport
import Validation

/// reports/pgpreflight-report.schema.json describes what `--format json` writes: every fixture
/// run's JSON report is valid against it, and the schema is strict enough to notice a change.
@Suite struct JSONReportSchemaTests {
    @Test func everyFixtureRunsJSONMatchesThePublishedSchema() throws {
        for (name, run) in [("real", try Fixtures.realRun()), ("hostile", Fixtures.hostileRun()),
                            ("accepted", try Fixtures.acceptedRun()),
                            ("large", Fixtures.largeRun(succeeded: 200, failed: 5, objectsPerFailure: 50))] {
            let problems = try JSONSchemaValidator.problems(try Reports.render(run, as: .json), schema: JSONSchemaValidator.reportSchema)
            #expect(problems.isEmpty, "\(name): \(problems.joined(separator: "\n"))")
        }
    }

    @Test func theSchemaRejectsAChangedReport() throws {
        let text = try Reports.render(try Fixtures.acceptedRun(), as: .json)
        var document = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        var results = try #require(document["results"] as? [[String: Any]])
        results[0]["status"] = "Passed"
        results[0]["severity"] = "high"
        document["results"] = results
        document.removeValue(forKey: "mode")
        let changed = String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self)
        let problems = try JSONSchemaValidator.problems(changed, schema: JSONSchemaValidator.reportSchema)
        #expect(problems.contains { $0.contains("'mode' is a required property") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("results/0: ") && $0.contains("'severity' was unexpected") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("results/0/status: ") }, "\(problems)")
    }
}
