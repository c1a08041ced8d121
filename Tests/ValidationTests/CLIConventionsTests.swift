import Foundation
import LocalServers
import Testing
import TestSupport

/// The conventions DBAs and CI systems know from psql and pg_dump: `-V`, short options,
/// `NO_COLOR` / `TERM=dumb` / `--color`, suggestions for a mistyped command or option, enum
/// options checked by the parser, and reports valid against their published schemas.
/// Runs the binary `swift build` built, against real servers.
@Suite(.serialized) struct CLIConventionsTests {
    let cli = CLITests()

    /// The binary beside the test bundle (any `--scratch-path`), else CLITests' choice.
    static let binary: URL? = {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let candidates = [beside.appendingPathComponent("pgpreflight"), beside.deletingLastPathComponent().appendingPathComponent("pgpreflight")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? CLITests.binary
    }()

    /// Runs the tool; returns its exit code and its output (stdout and stderr together).
    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (code: Int, output: String) {
        let binary = try #require(Self.binary, "build the pgpreflight executable first (swift build)")
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        do {
            return (0, try LocalServer.run([binary.path] + arguments, environment: env))
        } catch let error as LocalServerError {
            let text = error.message  // "pgpreflight failed (exit N): output"
            guard let open = text.range(of: "(exit "), let close = text.range(of: "): ", range: open.upperBound..<text.endIndex),
                  let code = Int(text[open.upperBound..<close.lowerBound]) else { throw error }
            return (code, String(text[close.upperBound...]))
        }
    }

    func lines(_ text: String) -> [String] {
        text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").map(String.init)
    }

    @Test func versionNamesTheCommitAndLibpq() throws {
        for flag in ["--version", "-V"] {
            let (code, output) = try run([flag])
            #expect(code == 0)
            let line = output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(line.range(of: #"^pgpreflight \d+\.\d+\.\d+ \(commit [^,]+, libpq \d+\.\d+(\.\d+)?\)$"#, options: .regularExpression) != nil,
                    "\(flag): \(line)")
        }
    }

    @Test func aMistypedOptionOrCommandNamesTheNearest() throws {
        let server = "host=127.0.0.1 port=1 user=postgres"
        let cases: [([String], String)] = [
            (["validate", "--sourc", server, "--target", server], "pgpreflight: unknown option '--sourc'; did you mean '--source'?"),
            (["valiate", "--source", server, "--target", server], "pgpreflight: unknown command 'valiate'; did you mean 'validate'?"),
            (["migrate", "m", "--source", server, "--target", server, "--jbos", "2"], "pgpreflight: unknown option '--jbos'; did you mean '--jobs'?"),
            (["validate", "--source", server, "--target", server, "--formt", "json"], "pgpreflight: unknown option '--formt'; did you mean '--format'?"),
            (["rules", "--rule", "x"], "pgpreflight: unknown option '--rule'; did you mean '--rules'?"),
        ]
        for (arguments, expected) in cases {
            let (code, output) = try run(arguments)
            #expect(code == 2, "\(arguments)")
            #expect(lines(output) == [expected], "\(arguments): \(output)")
        }
        let (code, output) = try run(["frobnicate"])
        #expect(code == 2)
        #expect(lines(output).count == 1 && output.contains("unknown command 'frobnicate'") && output.contains("validate"), "\(output)")
    }

    @Test func enumOptionsAreCheckedByTheParser() throws {
        let server = "host=127.0.0.1 port=1 user=postgres"
        for (arguments, valid) in [(["validate", "--source", server, "--target", server, "--color", "sometimes"], "always"),
                                   (["migrate", "m", "--source", server, "--target", server, "--verify", "everything"], "checksums"),
                                   (["migrate", "m", "--source", server, "--target", server, "--mode", "sideways"], "online"),
                                   (["status", "--format", "yaml"], "json"),
                                   (["validate", "--source", server, "--target", server, "--format", "pdf"], "sarif")] {
            let (code, output) = try run(arguments)
            #expect(code == 2, "\(arguments)")
            #expect(lines(output).count == 1 && output.contains(valid), "\(arguments): \(output)")
        }
    }

    /// Runs under a pseudo-terminal (`script`), as in a terminal; returns the output.
    func inTerminal(_ arguments: [String], environment: [String: String]) throws -> String {
        let binary = try #require(Self.binary)
        let command = ([binary.path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "NO_COLOR")
        env.merge(environment) { $1 }
        do { return try LocalServer.run(["/usr/bin/script", "-qefc", command, "/dev/null"], environment: env) } catch let error as LocalServerError {
            return error.message  // exit 1: something Failed; the output is in the message
        }
    }

    @Test func colourFollowsTheTerminalNoColorTermDumbAndColor() throws {
        let server = TestServers.pg15
        let database = try TestServers.freshDatabase(on: server)
        let rules = try cli.connectivityOnlyRules()
        let base = ["validate", "--source", server.uri(database: database), "--target", server.uri(), "-d", database]
        let env = ["PGPREFLIGHT_RULES": rules.path, "TERM": "xterm-256color"]
        let escape = "\u{1B}["
        #expect(try inTerminal(base, environment: env).contains(escape), "a terminal gets colours")
        #expect(!(try inTerminal(base, environment: env.merging(["NO_COLOR": "1"]) { $1 })).contains(escape), "NO_COLOR")
        #expect(!(try inTerminal(base, environment: env.merging(["TERM": "dumb"]) { $1 })).contains(escape), "TERM=dumb")
        #expect(!(try inTerminal(base + ["--color", "never"], environment: env)).contains(escape), "--color never")
        let piped = try run(base + ["--color", "always"], environment: env)
        #expect(piped.output.contains(escape), "--color always, even into a pipe")
        let plain = try run(base, environment: env)
        #expect(!plain.output.contains(escape), "a pipe gets no colours")
        #expect(plain.output.contains(database), "-d selects the database: \(plain.output)")
    }

    @Test func writtenJSONAndSARIFMatchTheirSchemas() throws {
        let server = TestServers.pg15
        let database = try TestServers.freshDatabase(on: server)
        try server.psql("CREATE TABLE no_key (a int); CREATE TABLE \"Mixed\" (id int PRIMARY KEY); CREATE TABLE mixed (id int PRIMARY KEY)", database: database)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (format, schema) in [("json", JSONSchemaValidator.reportSchema), ("sarif", JSONSchemaValidator.sarifSchema)] {
            let file = directory.appendingPathComponent("report.\(format)")
            let (code, output) = try run(["validate", "--source", server.uri(database: database), "--target", TestServers.pg18.uri(),
                                          "--database", database, "--format", format, "--output", file.path, "-q"])
            #expect(code <= 1, "\(format): \(output)")
            let text = try String(contentsOf: file, encoding: .utf8)
            #expect(text.contains("tables.primary-key"))
            let problems = try JSONSchemaValidator.problems(text, schema: schema)
            #expect(problems.isEmpty, "\(format): \(problems.joined(separator: "\n"))")
        }
    }

    /// `-j`, `-d`, `-q` and `-v` on `migrate`: quiet prints no progress, verbose the job timeline.
    @Test func migrateShortOptionsQuietAndVerbose() throws {
        let source = TestServers.pg15, target = TestServers.pg18
        for (flag, expectTimeline) in [("-q", false), ("-v", true)] {
            let database = try TestServers.freshDatabase(on: source, prefix: "short")
            try source.psql("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 500) g",
                            database: database)
            let state = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-short-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: state) }
            let (code, output) = try run(["migrate", "short-\(flag.dropFirst())", "--source", source.uri(), "--target", target.uri(),
                                          "-d", database, "-j", "2", flag, "--state-dir", state.path,
                                          "--wait-for-target", "600"],  // other suites migrate into the same target
                                         environment: ["PGPREFLIGHT_TRACE": ""])
            #expect(code == 0, "\(flag): \(output)")
            let all = lines(output)
            #expect(all.last?.hasPrefix("migration short-\(flag.dropFirst()): Succeeded") == true, "\(flag): \(output)")
            let timeline = all.filter { $0.range(of: #"^\s*\d+\.\d{3} (begin|end) "#, options: .regularExpression) != nil }
            #expect(timeline.isEmpty != expectTimeline, "\(flag): \(output)")
            if flag == "-q" {
                // Only the summary and the final line: no timestamped progress lines.
                #expect(!all.contains { $0.range(of: #"^\d{2}:\d{2}:\d{2} "#, options: .regularExpression) != nil }, "\(output)")
            }
            try? target.psql("DROP DATABASE IF EXISTS \(database) WITH (FORCE)")
        }
    }
}

extension CLIConventionsTests {
    /// Progress in a log (not a terminal): timestamped lines with the percent of the source's
    /// bytes copied and their total, rising at each tenth to 100 %; `status` (text and JSON)
    /// shows the percent, the total and the tables in flight (none once done).
    @Test func migrateLogsRisingPercentsOfBytesEndingAt100() throws {
        let source = TestServers.pg15, target = TestServers.pg18
        let database = try TestServers.freshDatabase(on: source, prefix: "progress")
        // Five tables of the same size: each one copied is a fifth of the bytes.
        try source.psql((1...5).map { "CREATE TABLE part\($0) (id int PRIMARY KEY, v text); INSERT INTO part\($0) SELECT g, md5(g::text) FROM generate_series(1, 20000) g;" }
                            .joined(separator: "\n"), database: database)
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-progress-\(UUID().uuidString)")
        defer {
            try? FileManager.default.removeItem(at: state)
            try? target.psql("DROP DATABASE IF EXISTS \(database) WITH (FORCE)")
        }
        let name = "progress-\(database.replacingOccurrences(of: "_", with: "-"))"
        let (code, output) = try run(["migrate", name, "--source", source.uri(), "--target", target.uri(), "-d", database, "-j", "1",
                                      "--state-dir", state.path, "--wait-for-target", "600"])
        #expect(code == 0, "\(output)")
        let pattern = #"^\d{2}:\d{2}:\d{2} tables \d+/5 · (\d+) % of \d+(\.\d)? [kMG]?B · "#
        let percents = lines(output).compactMap { line -> Int? in
            guard let match = line.range(of: pattern, options: .regularExpression) else { return nil }
            return Int(line[match].split(separator: "·")[1].split(separator: " ")[0])
        }
        #expect(percents.last == 100, "\(output)")
        #expect(percents == percents.sorted(), "\(percents)")
        #expect(Set(percents).count >= 3, "a line at each fifth copied: \(percents)\n\(output)")

        let text = try run(["status", name, "--state-dir", state.path])
        #expect(text.output.contains(" · 100.0 % of "), "\(text.output)")
        #expect(!text.output.contains("copying: "), "\(text.output)")
        let json = try run(["status", name, "--state-dir", state.path, "--format", "json"])
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        let first = try #require((decoded["databases"] as? [[String: Any]])?.first)
        #expect(first["percentCopied"] as? Double == 100, "\(first)")
        #expect((first["bytesTotal"] as? Int ?? 0) > 5 * 8192, "\(first)")
        #expect((first["tablesInFlight"] as? [String]) == [], "\(first)")
    }
}
