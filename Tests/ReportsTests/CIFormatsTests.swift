import Foundation
@testable import Reports
import Testing
import Validation

@Suite struct CodeQualityTests {
    private func issues(_ text: String) throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
    }

    @Test func oneIssuePerFindingInGitLabsShape() throws {
        let run = try Fixtures.acceptedRun()
        let text = try Reports.render(run, as: .codequality)
        let list = try issues(text)
        let findings = run.results.filter { $0.status != .succeeded }
        #expect(list.count == findings.count)
        #expect(list.count == 4)
        for issue in list {
            #expect(Set(issue.keys) == ["description", "check_name", "fingerprint", "severity", "location"])
            let location = try #require(issue["location"] as? [String: Any])
            let path = try #require(location["path"] as? String)
            #expect(path.hasPrefix("postgresql://127.0.0.1:\(run.source.port)"))
            #expect((location["lines"] as? [String: Any])?["begin"] as? Int == 1)
            #expect((issue["fingerprint"] as? String)?.range(of: "^[0-9a-f]{32}$", options: .regularExpression) != nil)
        }
        func issue(_ rule: String) throws -> [String: Any] { try #require(list.first { $0["check_name"] as? String == rule }) }
        // Failed → critical, Warning → minor, accepted → info with the reason.
        #expect(try issue("extensions.preload")["severity"] as? String == "critical")
        #expect(try issue("connectivity.tls")["severity"] as? String == "minor")
        #expect(try issue("tables.case-collisions")["severity"] as? String == "info")
        #expect(try issue("tables.primary-key")["severity"] as? String == "info")
        let collision = try issue("tables.case-collisions")
        #expect((collision["description"] as? String)?.contains("(accepted by a suppression: \(Fixtures.suppressionReason))") == true)
        #expect((collision["location"] as? [String: Any])?["path"] as? String
                == "postgresql://127.0.0.1:\(run.source.port)/\(run.databases[0])")
        let preload = try issue("extensions.preload")
        #expect((preload["description"] as? String)?.hasPrefix("Failed: ") == true)
        // The remedy's first line ends with a colon, so its second line comes with it.
        let setting = try #require(run.results.first { $0.rule == "extensions.preload" }?.remedy.split(separator: "\n").dropFirst().first)
        #expect(setting.contains("shared_preload_libraries = '"))
        #expect((preload["description"] as? String)?.hasSuffix("— On the target, set: \(setting.trimmingCharacters(in: .whitespaces))") == true)
        #expect((preload["location"] as? [String: Any])?["path"] as? String == "postgresql://127.0.0.1:\(run.source.port)")
        // Nothing Succeeded in it.
        #expect(!list.contains { ($0["description"] as? String)?.hasPrefix("Succeeded") == true })
        // Strict: a Warning fails the run, so it is major.
        let strict = try issues(try Reports.render(run, as: .codequality, options: ReportOptions(strict: true)))
        #expect(strict.first { $0["check_name"] as? String == "connectivity.tls" }?["severity"] as? String == "major")
    }

    @Test func fingerprintsAreStableAndDistinct() throws {
        let run = try Fixtures.acceptedRun()
        let first = try issues(try Reports.render(run, as: .codequality)).compactMap { $0["fingerprint"] as? String }
        // Another run of the same findings: other times, reworded messages, objects in another order.
        var again = run
        for index in again.results.indices {
            again.results[index].message += " (again)"
            again.results[index].startedAt = Date()
            again.results[index].objects.reverse()
        }
        let second = try issues(try Reports.render(again, as: .codequality)).compactMap { $0["fingerprint"] as? String }
        #expect(first == second)
        #expect(Set(first).count == first.count)
        // The same rule in another database, or with one more object, is another finding.
        let warning = try #require(run.results.first { $0.rule == "tables.primary-key" && $0.status == .warning })
        var elsewhere = warning
        elsewhere.database = run.databases[1]
        var grown = warning
        grown.objects.append("public.new_table")
        let prints = Set([warning, elsewhere, grown].map(CodeQualityReport.fingerprint))
        #expect(prints.count == 3)
    }

    @Test func emptyWhenEverythingSucceeded() throws {
        var run = try Fixtures.realRun()
        run.results.removeAll { $0.status != .succeeded }
        #expect(try Reports.render(run, as: .codequality) == "[]\n")
        #expect(try issues(try Reports.render(run, as: .codequality)).isEmpty)
    }

    @Test func md5MatchesRFC1321() {
        // The test suite of RFC 1321, appendix A.5.
        let vectors = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
            (String(repeating: "1234567890", count: 8), "57edf4a22be3c955ac49da2e2107b67a"),
        ]
        for (input, digest) in vectors { #expect(MD5.hex(Array(input.utf8)) == digest, "md5(\(input))") }
    }
}

@Suite struct GitHubAnnotationsTests {
    @Test func errorsWarningsAndAcceptedNotices() throws {
        let run = try Fixtures.acceptedRun()
        let lines = GitHubAnnotations.render(run).split(separator: "\n").map(String.init)
        let preload = try #require(run.results.first { $0.rule == "extensions.preload" })
        let tls = try #require(run.results.first { $0.rule == "connectivity.tls" })
        let collision = try #require(run.results.first { $0.rule == "tables.case-collisions" })
        let shop = run.databases[0]
        #expect(lines.count == 5)
        let setting = try #require(preload.remedy.split(separator: "\n").dropFirst().first).trimmingCharacters(in: .whitespaces)
        #expect(lines[0] == "::error title=extensions.preload::\(preload.message) — On the target, set: \(setting)")
        #expect(lines[1] == "::warning title=connectivity.tls::\(tls.message) — \(tls.remedy)")
        #expect(lines[3] == "::notice title=tables.case-collisions (\(shop))::Failed, accepted by a suppression: "
                + "\(Fixtures.suppressionReason) — \(collision.message)")
        #expect(lines[2].hasPrefix("::notice title=tables.primary-key (\(shop))::Warning, accepted by the baseline: in the baseline baseline.json — "))
        #expect(lines[4].hasPrefix("::notice title=pgpreflight::") && lines[4].hasSuffix(Fixtures.expiredNotice))
        // Succeeded results print nothing.
        #expect(!lines.contains { $0.contains("connectivity.source") })

        var clean = try Fixtures.realRun()
        clean.results.removeAll { $0.status != .succeeded }
        #expect(GitHubAnnotations.render(clean) == "")
    }

    @Test func escapesPerWorkflowCommandRules() {
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        let run = ValidationRun(
            mode: .online, startedAt: now, finishedAt: now,
            source: ServerInfo(host: "h", port: 5432, user: "u", serverVersion: nil),
            target: ServerInfo(host: "t", port: 5432, user: "u", serverVersion: nil),
            databases: ["db:1,2%"],
            results: [RuleResult(rule: "tables.primary-key", title: "t", scope: .database, database: "db:1,2%", status: .failed,
                                 message: "100% of\r\ntables: a, b\n::error::injected", remedy: "\n  first line: 50%\nsecond line",
                                 objects: [], startedAt: now, finishedAt: now)],
            notices: ["line one\nline two 5%"])
        let lines = GitHubAnnotations.render(run).split(separator: "\n").map(String.init)
        #expect(lines == [
            "::error title=tables.primary-key (db%3A1%2C2%25)::100%25 of%0D%0Atables: a, b%0A::error::injected — first line: 50%25",
            "::notice title=pgpreflight::line one%0Aline two 5%25",
        ])
        #expect(GitHubAnnotations.escapeData("a\rb") == "a%0Db")
        #expect(GitHubAnnotations.escapeProperty("x:y,z%\n") == "x%3Ay%2Cz%25%0A")
    }
}
