import Foundation
import LocalServers
import Testing
import TestSupport

/// `pgpreflight validate` and `pgpreflight rules` as a pipeline runs them: exit codes, one-line
/// errors, no secrets. Runs the binary `swift build` / `swift test` built.
@Suite(.serialized) struct CLITests {
    static let binary: URL? = {
        // .build, or the scratch path of a worktree build (--scratch-path .build-<name>)
        let scratch = ((try? FileManager.default.contentsOfDirectory(atPath: TestServers.projectRoot.path)) ?? [])
            .filter { $0.hasPrefix(".build-") }.sorted()
            .map { TestServers.projectRoot.appendingPathComponent($0).appendingPathComponent("debug/pgpreflight") }
        let candidates = [TestServers.projectRoot.appendingPathComponent(".build/debug/pgpreflight"),
                          Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("pgpreflight")] + scratch
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    /// Runs the tool; returns its exit code and its output (stdout and stderr together).
    func pgpreflight(_ arguments: [String], environment: [String: String] = [:]) throws -> (code: Int, output: String) {
        let binary = try #require(Self.binary, "build the pgpreflight executable first (swift build)")
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        do {
            return (0, try LocalServer.run([binary.path] + arguments, environment: env))
        } catch let error as LocalServerError {
            // "pgpreflight failed (exit N): output"
            let text = error.message
            guard let open = text.range(of: "(exit "), let close = text.range(of: "): ", range: open.upperBound..<text.endIndex),
                  let code = Int(text[open.upperBound..<close.lowerBound]) else { throw error }
            return (code, String(text[close.upperBound...]))
        }
    }

    /// A rules folder with only the connectivity rules, so exit codes do not depend on what
    /// other rules find on the test servers.
    func connectivityOnlyRules() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-cli-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let shipped = TestServers.projectRoot.appendingPathComponent("rules")
        for name in ["README.md", "connectivity.source.yaml", "connectivity.target.yaml", "connectivity.tls.yaml", "connectivity.latency.yaml"] {
            try FileManager.default.copyItem(at: shipped.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        return directory
    }

    @Test func badArgumentsExitTwoWithOneLine() throws {
        let source = "host=127.0.0.1 port=1 user=postgres"
        for arguments in [["validate", "--source", source, "--target", source, "--mode", "sideways"],
                          ["validate", "--source", source, "--target", source, "--format", "pdf"],
                          ["validate", "--source", source],
                          ["rules", "--format", "yaml"]] {
            let (code, output) = try pgpreflight(arguments)
            #expect(code == 2, "\(arguments)")
            #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(arguments): \(output)")
        }
        let secret = "hunter2-correct-horse"
        let (code, output) = try pgpreflight(["validate", "--source", "host=x password=\(secret) 'unterminated", "--target", source])
        #expect(code == 2)
        #expect(output.contains("malformed connection string"))
        #expect(!output.contains(secret))
    }

    /// Under GitHub Actions the report is followed by annotation lines; a policy file's
    /// suppression makes the same finding accepted (exit 0) and says so.
    @Test func githubAnnotationsAndPolicyFromTheCommandLine() throws {
        let rules = try connectivityOnlyRules()
        let closed = try LocalServer.freePort()
        let source = TestServers.pg15.connectionString()
        let target = "host=127.0.0.1 port=\(closed) user=postgres connect_timeout=2"
        let arguments = ["validate", "--source", source, "--target", target, "--database", "postgres", "--format", "json"]
        func pgpreflight(_ arguments: [String], environment: [String: String] = [:]) throws -> (code: Int, output: String) {
            try self.pgpreflight(arguments, environment: environment.merging(["PGPREFLIGHT_RULES": rules.path]) { $1 })
        }
        let (code, output) = try pgpreflight(arguments, environment: ["GITHUB_ACTIONS": "true"])
        #expect(code == 1)
        #expect(output.contains("::error title=connectivity.target"))
        let (plain, plainOutput) = try pgpreflight(arguments, environment: ["GITHUB_ACTIONS": "false"])
        #expect(plain == 1)
        #expect(!plainOutput.contains("::error"))

        let policy = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-policy-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: policy) }
        try """
            suppressions:
              - rule: connectivity.target
                reason: "the target is built next week"
            """.write(to: policy, atomically: true, encoding: .utf8)
        let (accepted, acceptedOutput) = try pgpreflight(arguments + ["--config", policy.path], environment: ["GITHUB_ACTIONS": "false"])
        #expect(accepted == 0, "\(acceptedOutput)")
        #expect(acceptedOutput.contains("\"reason\" : \"the target is built next week\""))
        let (overridden, _) = try pgpreflight(arguments + ["--rule-severity", "connectivity.target=warning", "--strict"],
                                              environment: ["GITHUB_ACTIONS": "false"])
        #expect(overridden == 1)  // Warning with --strict
        let (unknown, unknownOutput) = try pgpreflight(arguments + ["--rule-severity", "no.such-rule=off"])
        #expect(unknown == 2)
        #expect(unknownOutput.contains("unknown rule id 'no.such-rule'"))
    }

    @Test func badRulesFileExitsTwoWithFileAndLine() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("mine.yaml")
        try "id: mine.rule\ntitle: Mine\ndescription: d\nscope: instance\nseverity: high\n".write(to: file, atomically: true, encoding: .utf8)
        let (code, output) = try pgpreflight(["rules", "--rules", directory.path])
        #expect(code == 2)
        #expect(output.contains("\(file.path):5: unknown key 'severity'"))
    }

    @Test func exitCodesFollowTheWorstStatus() throws {
        let (source, target) = (try ExampleServers.server(major: 15, settings: ["cluster_name = 'engine-tests'"]),
                                try ExampleServers.server(major: 18, settings: ["cluster_name = 'engine-tests'"]))
        let rules = try connectivityOnlyRules()
        defer { try? FileManager.default.removeItem(at: rules) }
        let env = ["PGPREFLIGHT_RULES": rules.path]
        let base = ["validate", "--source", source.connectionString(), "--target", target.connectionString(), "--database", "postgres"]
        // connectivity.tls warns (the test servers have no SSL): 0, or 1 with --strict.
        #expect(try pgpreflight(base, environment: env).code == 0)
        #expect(try pgpreflight(base + ["--strict"], environment: env).code == 1)

        let output = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: output) }
        let secret = "not-the-password-77"
        let unreachable = "postgresql://postgres:\(secret)@127.0.0.1:\(try LocalServer.freePort())/postgres"
        let (code, text) = try pgpreflight(["validate", "--source", source.connectionString(), "--target", unreachable,
                                            "--format", "json", "--output", output.path], environment: env)
        #expect(code == 1)
        #expect(!text.contains(secret))
        let json = try String(contentsOf: output, encoding: .utf8)
        #expect(!json.contains(secret))
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(document["status"] as? String == "Failed")
        let results = try #require(document["results"] as? [[String: Any]])
        let connectivity = try #require(results.first { $0["rule"] as? String == "connectivity.target" })
        #expect(connectivity["status"] as? String == "Failed")
        #expect((connectivity["message"] as? String)?.contains("refused") == true)
        #expect(connectivity["database"] is NSNull)
    }

    @Test func rulesListsEveryShippedRule() throws {
        let (code, output) = try pgpreflight(["rules", "--format", "json"])
        #expect(code == 0)
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]])
        let ids = Set(entries.compactMap { $0["id"] as? String })
        #expect(ids == Set(RuleExamplesTests.rules.map(\.id)))
        let text = try pgpreflight(["rules"])
        #expect(text.code == 0)
        #expect(text.output.contains("connectivity.source"))
        #expect(text.output.contains("\(ids.count) rules"))
    }
}

extension CLITests {
    /// A target that cannot be reached: the JSON report lists the rules it kept from running
    /// (as JUnit's <skipped>), with why, and still matches its schema; none of them ran.
    @Test func theJSONReportListsTheRulesAnUnreachableServerKeptFromRunning() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-skipped-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        let (code, output) = try pgpreflight(["validate", "--source", TestServers.pg15.uri(),
                                              "--target", "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2",  // nothing listens on port 1
                                              "--database", "postgres", "--format", "json", "--output", file.path, "-q"])
        #expect(code == 1, "\(output)")
        let text = try String(contentsOf: file, encoding: .utf8)
        let problems = try JSONSchemaValidator.problems(text, schema: JSONSchemaValidator.reportSchema)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let results = try #require(document["results"] as? [[String: Any]])
        let skipped = try #require(document["skippedRules"] as? [[String: Any]])
        #expect(!skipped.isEmpty)
        let target = try #require(results.first { $0["rule"] as? String == "connectivity.target" })
        #expect((target["message"] as? String)?.contains("\(skipped.count) rules that need the target were skipped") == true, "\(target)")
        let shipped = TestServers.projectRoot.appendingPathComponent("rules")
        let ran = Set(results.compactMap { $0["rule"] as? String })
        for entry in skipped {
            let rule = try #require(entry["rule"] as? String)
            #expect(FileManager.default.fileExists(atPath: shipped.appendingPathComponent("\(rule).yaml").path), "\(rule)")
            #expect(!ran.contains(rule), "\(rule) ran")
            #expect(entry["because"] as? String == "the target could not be reached (connectivity.target Failed)", "\(entry)")
        }

        // Both servers reached: the list is there, empty.
        let reached = try pgpreflight(["validate", "--source", TestServers.pg15.uri(), "--target", TestServers.pg18.uri(),
                                       "--database", "postgres", "--format", "json", "--output", file.path, "-q"])
        #expect(reached.code <= 1, "\(reached.output)")
        let all = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        #expect((all["skippedRules"] as? [Any])?.isEmpty == true, "\(all["skippedRules"] ?? "none")")
    }
}

extension CLITests {
    /// `--output` naming a symbolic link or a FIFO (as /dev/null and /dev/stdout are a device
    /// and a link) writes through it: the report reaches what it points to and the name is not
    /// replaced by a regular file (an atomic rename did that, to /dev/null when run as root).
    @Test func outputThroughASymlinkOrAFIFOIsWrittenThroughNotReplaced() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-through-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = TestServers.pg15.uri()
        let arguments = ["validate", "--source", server, "--target", TestServers.pg18.uri(), "--database", "postgres",
                         "--format", "json", "-q", "--output"]
        let rulesOnly = ["PGPREFLIGHT_RULES": try connectivityOnlyRules().path]
        func kind(_ path: URL) throws -> FileAttributeType? {
            try FileManager.default.attributesOfItem(atPath: path.path)[.type] as? FileAttributeType
        }

        let real = directory.appendingPathComponent("real.json"), link = directory.appendingPathComponent("link.json")
        try Data().write(to: real)
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: real)
        let viaLink = try pgpreflight(arguments + [link.path], environment: rulesOnly)
        #expect(viaLink.code <= 1, "\(viaLink.output)")
        #expect(try kind(link) == .typeSymbolicLink)
        #expect(try String(contentsOf: real, encoding: .utf8).contains("\"schemaVersion\" : 1"))

        let fifo = directory.appendingPathComponent("fifo")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        let copy = directory.appendingPathComponent("from-fifo.json")
        let reader = Process()  // the FIFO's other end
        reader.executableURL = URL(fileURLWithPath: "/bin/sh")
        reader.arguments = ["-c", "cat \"$0\" > \"$1\"", fifo.path, copy.path]
        try reader.run()
        let viaFIFO = try pgpreflight(arguments + [fifo.path], environment: rulesOnly)
        reader.waitUntilExit()
        #expect(viaFIFO.code <= 1, "\(viaFIFO.output)")
        #expect(try kind(fifo) != .typeRegular, "the FIFO was replaced by a file")
        #expect(try String(contentsOf: copy, encoding: .utf8).contains("\"schemaVersion\" : 1"))
    }
}
