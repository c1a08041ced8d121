import Foundation
import LocalServers
import PostgresClient
import TestSupport
import Testing
import Validation

/// Servers for rule examples, one per (major, settings list), started on first use and kept for
/// the whole test run. They are separate from `TestServers`, whose other tests create roles
/// and slots that instance-scope rules would see.
enum ExampleServers {
    nonisolated(unsafe) private static var cache: [String: LocalServer] = [:]
    private static let lock = NSLock()

    static func server(major: Int, settings: [String], hba: [String] = []) throws -> LocalServer {
        let key = "\(major)|" + settings.joined(separator: "\n") + "|" + hba.joined(separator: "\n")
        if let server = lock.withLock({ cache[key] }) { return server }
        guard let bin = LocalServer.binDirectory(major: major, projectRoot: TestServers.projectRoot) else {
            throw ExampleError("PostgreSQL \(major) binaries not found: run scripts/setup.sh")
        }
        let server = try LocalServer(major: major, binDirectory: bin, settings: settings, hbaLines: hba, name: "rules")
        lock.withLock { cache[key] = server }
        return server
    }

    /// The checkout's rules/, or `PGPREFLIGHT_RULES` (to run the examples of another folder).
    static let rulesDirectory: URL = ProcessInfo.processInfo.environment["PGPREFLIGHT_RULES"].map { URL(fileURLWithPath: $0) }
        ?? TestServers.projectRoot.appendingPathComponent("rules")
}

/// One example of one rule, named so that a failure says which.
struct ExampleCase: CustomTestStringConvertible, Sendable {
    let rule: Rule
    let example: RuleExample
    var testDescription: String { "\(rule.id): \(example.name)" }
    var location: String { "\(URL(fileURLWithPath: rule.file).lastPathComponent):\(example.line)" }
}

/// Runs an example as rules/README.md describes and returns the rule's result.
struct ExampleRunner {
    private static let counter = NSLock()
    nonisolated(unsafe) private static var next = 0

    let allRules: [Rule]

    func run(_ testCase: ExampleCase) async throws -> (result: RuleResult?, database: String, run: ValidationRun) {
        let rule = testCase.rule, example = testCase.example
        let source = try ExampleServers.server(major: example.sourceMajor, settings: example.sourceSettings, hba: example.sourceHBA)
        let target = try ExampleServers.server(major: example.targetMajor, settings: example.targetSettings)
        let number = Self.counter.withLock { Self.next += 1; return Self.next }
        let database = "example_\(number)_\(ProcessInfo.processInfo.processIdentifier)"

        let sourceAdmin = try TestServers.connect(source)
        let targetAdmin = try TestServers.connect(target)
        defer { sourceAdmin.close(); targetAdmin.close() }
        var targetDatabaseCreated = false
        defer {
            let force = " WITH (FORCE)"
            try? sourceAdmin.execute("DROP DATABASE IF EXISTS \((try? sourceAdmin.quoteIdentifier(database)) ?? database)\(force)")
            if targetDatabaseCreated {
                try? targetAdmin.execute("DROP DATABASE IF EXISTS \((try? targetAdmin.quoteIdentifier(database)) ?? database)\(force)")
            }
            if let user = example.sourceUser { try? sourceAdmin.execute("DROP ROLE IF EXISTS \((try? sourceAdmin.quoteIdentifier(user)) ?? user)") }
            if let user = example.targetUser { try? targetAdmin.execute("DROP ROLE IF EXISTS \((try? targetAdmin.quoteIdentifier(user)) ?? user)") }
            if let cleanup = example.cleanup { try? sourceAdmin.execute(cleanup) }
            if let cleanup = example.targetCleanup { try? targetAdmin.execute(cleanup) }
        }

        try sourceAdmin.execute("CREATE DATABASE \(try sourceAdmin.quoteIdentifier(database))")
        if let user = example.sourceUser { try createRole(user, on: sourceAdmin) }
        if let user = example.targetUser { try createRole(user, on: targetAdmin) }
        if let setup = example.setup {
            let connection = try TestServers.connect(source, database: database)
            defer { connection.close() }
            try connection.execute(setup)
        }
        if let setup = example.targetInstanceSetup { try targetAdmin.execute(setup) }
        if let setup = example.targetSetup {
            try targetAdmin.execute("CREATE DATABASE \(try targetAdmin.quoteIdentifier(database))")
            targetDatabaseCreated = true
            let connection = try TestServers.connect(target, database: database)
            defer { connection.close() }
            try connection.execute(setup)
        }

        var sourceEndpoint = try ConnectionString(source.connectionString(user: example.sourceUser))
        var targetEndpoint = try ConnectionString(target.connectionString(user: example.targetUser))
        if example.unreachable == .source { sourceEndpoint = try ConnectionString("host=127.0.0.1 port=\(try LocalServer.freePort()) user=postgres") }
        if example.unreachable == .target { targetEndpoint = try ConnectionString("host=127.0.0.1 port=\(try LocalServer.freePort()) user=postgres") }

        // The rule under test, plus the connectivity rules that report unreachable servers.
        let rules = allRules.filter { $0.id == rule.id || $0.id == "connectivity.source" || $0.id == "connectivity.target" }
        let request = ValidationRequest(source: sourceEndpoint, target: targetEndpoint, databases: [database], mode: example.mode,
                                        overwrite: example.overwrite, rules: rules)
        let run = try await validate(request)
        let wanted = rule.scope == .database ? database : nil
        // An instance rule's result for the example's database is a connectivity failure of that
        // database: it is the one the example is about.
        let result = run.results.first { $0.rule == rule.id && $0.database == database }
            ?? run.results.first { $0.rule == rule.id && $0.database == wanted }
            ?? run.results.first { $0.rule == rule.id }
        return (result, database, run)
    }

    private func createRole(_ name: String, on admin: Connection) throws {
        let exists = try admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [name]).count > 0
        if !exists { try admin.execute("CREATE ROLE \(try admin.quoteIdentifier(name)) LOGIN") }
    }

    /// What is wrong with `result` against the example's expectation (empty: nothing).
    static func mismatches(_ result: RuleResult?, _ example: RuleExample, database: String) -> [String] {
        guard let result else { return ["the rule gave no result (was it left out?)"] }
        func fill(_ s: String) -> String { s.replacingOccurrences(of: "{database}", with: database) }
        var problems: [String] = []
        let expect = example.expect
        if result.status != expect.status { problems.append("status: expected \(expect.status.rawValue), got \(result.status.rawValue)") }
        if let objects = expect.objects?.map(fill), Set(objects) != Set(result.objects) || objects.count != result.objects.count {
            problems.append("objects: expected \(objects), got \(result.objects)")
        }
        if let text = expect.messageContains.map(fill), !result.message.contains(text) {
            problems.append("message: expected it to contain \"\(text)\"")
        }
        if let text = expect.remedyContains.map(fill), !result.remedy.contains(text) {
            problems.append("remedy: expected it to contain \"\(text)\"")
        }
        return problems
    }
}

struct ExampleError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
