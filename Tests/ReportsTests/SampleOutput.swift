import Foundation
import Reports
import Testing

/// `PGPREFLIGHT_REPORT_SAMPLES=/tmp/samples swift test --filter ReportsTests` writes every
/// format of the fixture runs there, to look at them (in a browser, a CI system, a PR comment).
@Test func writeSamplesWhenAsked() throws {
    guard let directory = ProcessInfo.processInfo.environment["PGPREFLIGHT_REPORT_SAMPLES"] else { return }
    let url = URL(fileURLWithPath: directory)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    var clean = try Fixtures.realRun()
    clean.results.removeAll { $0.status != .succeeded }
    let runs = [("real", try Fixtures.realRun()), ("hostile", Fixtures.hostileRun()), ("clean", clean),
                ("large", Fixtures.largeRun(succeeded: 3000, failed: 20, objectsPerFailure: 200)),
                ("accepted", try Fixtures.acceptedRun())]
    let extensions: [ReportFormat: String] = [.console: "txt", .json: "json", .junit: "xml", .markdown: "md", .html: "html",
                                                  .codequality: "codequality.json", .sarif: "sarif"]
    for (name, run) in runs {
        for format in ReportFormat.allCases {
            let text = try Reports.render(run, as: format)
            try text.write(to: url.appendingPathComponent("\(name).\(extensions[format]!)"), atomically: true, encoding: .utf8)
        }
        try GitHubAnnotations.render(run).write(to: url.appendingPathComponent("\(name).annotations.txt"), atomically: true, encoding: .utf8)
    }
}
