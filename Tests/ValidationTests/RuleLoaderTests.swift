import Foundation
import Testing
@testable import Validation

/// Malformed rule files stop the run with `file:line: what is wrong`.
@Suite struct RuleLoaderTests {
    static let valid = """
        id: test.valid
        title: A valid rule
        description: Used by the loader tests.
        scope: database
        servers: [source, target]
        probe:
          sql: SELECT 1 AS object WHERE {target.server_version_num} > 0 AND {database} <> ''
        status:
          offline: Warning
          online: Failed
        message:
          Failed: "{count} things: {objects}"
          Warning: "{count} things"
          Succeeded: "nothing"
        remedy: "{remedies}"
        examples:
          - name: nothing
            expect:
              status: Succeeded
        """

    func error(_ text: String, file: String = "rules/test.yaml") -> RuleLoadError? {
        do { _ = try RuleLoader.parse(text, file: file); return nil } catch let error as RuleLoadError { return error } catch {
            Issue.record("unexpected error \(error)"); return nil
        }
    }

    func replacing(_ old: String, _ new: String) -> String {
        #expect(Self.valid.contains(old), "test setup: \(old)")
        return Self.valid.replacingOccurrences(of: old, with: new)
    }

    @Test func validRuleLoads() throws {
        let rule = try RuleLoader.parse(Self.valid, file: "rules/test.yaml")
        #expect(rule.id == "test.valid")
        #expect(rule.servers == [.source, .target])
        #expect(rule.status[.online] == .failed && rule.status[.offline] == .warning)
        #expect(rule.probe?.runsOn == .source)
        #expect(rule.examples.count == 1)
    }

    @Test func unknownKeyNamesItsLine() throws {
        let e = try #require(error(replacing("scope: database", "scope: database\nseverity: high")))
        #expect(e.description == "rules/test.yaml:5: unknown key 'severity' in the rule (allowed: id, title, description, scope, servers, modes, documentation, requires, probe, builtin, status, message, remedy, examples)")
    }

    @Test func missingRequiredFields() throws {
        #expect(error(replacing("id: test.valid\n", ""))?.description.contains("missing 'id'") == true)
        #expect(error(replacing("title: A valid rule\n", ""))?.description.contains("missing 'title'") == true)
        #expect(error(replacing("scope: database\n", ""))?.description.contains("missing 'scope'") == true)
    }

    @Test func badStatusNames() throws {
        let e = try #require(error(replacing("online: Failed", "online: Error")))
        #expect(e.line == 10)
        #expect(e.message.contains("bad status 'Error'"))
        let inExample = try #require(error(replacing("      status: Succeeded", "      status: OK")))
        #expect(inExample.line == 19)
        let inMessage = try #require(error(replacing("  Warning: \"{count} things\"", "  Warn: \"{count} things\"")))
        #expect(inMessage.message.contains("unknown key 'Warn' in message"))
    }

    @Test func probeAndBuiltinAreExclusive() throws {
        let both = try #require(error(replacing("probe:", "builtin: connectivity.tls\nprobe:")))
        #expect(both.message.contains("either 'probe' or 'builtin'"))
        let neither = try #require(error(replacing("probe:\n  sql: SELECT 1 AS object WHERE {target.server_version_num} > 0 AND {database} <> ''\n", "")))
        #expect(neither.message.contains("needs a 'probe' or a 'builtin'"))
        let unknownBuiltin = "id: test.b\ntitle: t\ndescription: d\nscope: instance\nbuiltin: ping\n"
        #expect(error(unknownBuiltin)?.description == "rules/test.yaml:5: unknown builtin 'ping' (known: connectivity.source, connectivity.target, connectivity.tls, connectivity.latency)")
    }

    @Test func unknownPlaceholders() throws {
        let sql = try #require(error(replacing("{target.server_version_num}", "{target.version}")))
        #expect(sql.line == 7)
        #expect(sql.message.contains("unknown placeholder {target.version}"))
        let template = try #require(error(replacing("\"{count} things\"", "\"{total} things\"")))
        #expect(template.message.contains("unknown placeholder {total} in message"))
        let otherServer = try #require(error(replacing("servers: [source, target]", "servers: [source]")))
        #expect(otherServer.message.contains("uses {target.server_version_num} but servers does not list target"))
        let instance = try #require(error(replacing("scope: database", "scope: instance")))
        #expect(instance.message.contains("{database} is only bound for database-scope rules"))
    }

    @Test func invalidYAMLHasALine() throws {
        let e = try #require(error(replacing("remedy: \"{remedies}\"", "remedy: \"{remedies}\n  - [")))
        #expect(e.line > 1)
        #expect(e.message.hasPrefix("not valid YAML"))
    }

    @Test func duplicateIdsAcrossFolders() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-dup-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: base) }
        let first = base.appendingPathComponent("a"), second = base.appendingPathComponent("b")
        for dir in [first, second] {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try Self.valid.write(to: dir.appendingPathComponent("test.valid.yaml"), atomically: true, encoding: .utf8)
        }
        do {
            _ = try RuleLoader.load(directories: [first, second])
            Issue.record("expected a duplicate id error")
        } catch let e as RuleLoadError {
            #expect(e.file == second.appendingPathComponent("test.valid.yaml").path)
            #expect(e.line == 1)
            #expect(e.message.contains("duplicate rule id 'test.valid'"))
            #expect(e.message.contains(first.path))
        }
    }

    @Test func placeholdersBecomeBoundParameters() throws {
        let (sql, names) = try SQLPlaceholder.rewrite(
            "SELECT {target.settings} ->> 'x' WHERE {database} = current_database() AND {target.settings} ? 'y' AND n = ANY({databases})")
        #expect(sql == "SELECT $1::jsonb ->> 'x' WHERE $2::text = current_database() AND $1::jsonb ? 'y' AND n = ANY($3::text[])")
        #expect(names == ["target.settings", "database", "databases"])
        #expect(throws: PlaceholderError.self) { try SQLPlaceholder.rewrite("SELECT {target.extensions}") }
    }
}
