import Foundation
import Yams

/// A rules file that cannot be used: `file:line: what is wrong`.
public struct RuleLoadError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let line: Int
    public let message: String
    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}

/// Reads `*.yaml` rule files (schema: rules/README.md), checking everything that can be
/// checked without a server: keys, required fields, status names, placeholders, duplicates.
public enum RuleLoader {
    /// Stands for the rules compiled into the binary (rules/*.yaml at build time, by the
    /// EmbedRules plugin) in a list of rule folders; their files are named `rules/<file>`.
    public static let embeddedDirectory = URL(string: "pgpreflight-embedded:rules")!

    /// The shipped rules: `$PGPREFLIGHT_RULES` (a folder that replaces them), else the rules
    /// compiled into the binary (`embeddedDirectory`), so the binary works from any directory.
    public static func shippedDirectory() -> URL? {
        if let env = ProcessInfo.processInfo.environment["PGPREFLIGHT_RULES"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return embeddedDirectory
    }

    private static func loadEmbedded() throws -> [Rule] {
        try embeddedFiles.map { file in
            let path = "rules/\(file.name)"
            guard let data = Data(base64Encoded: file.base64) else { throw RuleLoadError(file: path, line: 0, message: "cannot read the file") }
            return try parse(String(decoding: data, as: UTF8.self), file: path)
        }
    }

    /// Loads the shipped rules plus `extraDirectories`, in id order. A duplicate id across
    /// folders is an error.
    public static func load(directories: [URL]) throws -> [Rule] {
        var rules: [Rule] = []
        var seen: [String: String] = [:]
        for directory in directories {
            if directory == embeddedDirectory {
                for rule in try loadEmbedded() {
                    if let other = seen[rule.id] {
                        throw RuleLoadError(file: rule.file, line: 1, message: "duplicate rule id '\(rule.id)' (also in \(other))")
                    }
                    seen[rule.id] = rule.file
                    rules.append(rule)
                }
                continue
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw RuleLoadError(file: directory.path, line: 0, message: "not a directory")
            }
            let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
            for name in names {
                let path = directory.appendingPathComponent(name).path
                let rule = try loadFile(path)
                if let other = seen[rule.id] {
                    throw RuleLoadError(file: path, line: 1, message: "duplicate rule id '\(rule.id)' (also in \(other))")
                }
                seen[rule.id] = path
                rules.append(rule)
            }
        }
        return rules.sorted { $0.id < $1.id }
    }

    public static func loadFile(_ path: String) throws -> Rule {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw RuleLoadError(file: path, line: 0, message: "cannot read the file")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws -> Rule {
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch let error as YamlError {
            throw RuleLoadError(file: file, line: yamlErrorLine(error), message: "not valid YAML: \(yamlErrorSummary(error))")
        }
        guard let root else { throw RuleLoadError(file: file, line: 1, message: "empty file") }
        return try RuleParser(file: file).rule(root)
    }

    private static func yamlErrorLine(_ error: YamlError) -> Int {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return 1
        }
    }

    private static func yamlErrorSummary(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _), .composer(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
        default: return "\(error)".split(separator: "\n").first.map(String.init) ?? "syntax error"
        }
    }
}

/// Builtin checks registered in Swift, by the name a rule's `builtin:` gives.
public enum BuiltinCheck: String, CaseIterable, Sendable {
    case connectivitySource = "connectivity.source"
    case connectivityTarget = "connectivity.target"
    case connectivityTLS = "connectivity.tls"
    case connectivityLatency = "connectivity.latency"
}

private struct RuleParser {
    let file: String

    func fail(_ node: Node?, _ message: String) -> RuleLoadError {
        RuleLoadError(file: file, line: node?.mark?.line ?? 1, message: message)
    }

    func mapping(_ node: Node, _ what: String, allowed: [String]) throws -> [String: (key: Node, value: Node)] {
        guard let mapping = node.mapping else { throw fail(node, "\(what) must be a mapping") }
        var result: [String: (key: Node, value: Node)] = [:]
        for (key, value) in mapping {
            guard let name = key.scalar?.string else { throw fail(key, "\(what): keys must be plain names") }
            guard allowed.contains(name) else {
                throw fail(key, "unknown key '\(name)' in \(what) (allowed: \(allowed.joined(separator: ", ")))")
            }
            if result[name] != nil { throw fail(key, "duplicate key '\(name)' in \(what)") }
            result[name] = (key, value)
        }
        return result
    }

    func string(_ node: Node, _ what: String) throws -> String {
        guard let scalar = node.scalar else { throw fail(node, "\(what) must be a string") }
        return scalar.string
    }

    func required(_ map: [String: (key: Node, value: Node)], _ key: String, in node: Node, _ what: String) throws -> String {
        guard let entry = map[key] else { throw fail(node, "missing '\(key)' in \(what)") }
        let value = try string(entry.value, key)
        if value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw fail(entry.value, "'\(key)' is empty") }
        return value
    }

    func strings(_ node: Node, _ what: String) throws -> [String] {
        if let scalar = node.scalar { return [scalar.string] }
        guard let sequence = node.sequence else { throw fail(node, "\(what) must be a list") }
        return try sequence.map { try string($0, what) }
    }

    func status(_ node: Node, _ what: String) throws -> Status {
        let text = try string(node, what)
        guard let status = Status(rawValue: text) else {
            throw fail(node, "bad status '\(text)' in \(what) (use Succeeded, Warning or Failed)")
        }
        return status
    }

    func role(_ node: Node, _ what: String) throws -> ServerRole {
        let text = try string(node, what)
        guard let role = ServerRole(rawValue: text) else { throw fail(node, "bad server '\(text)' in \(what) (use source or target)") }
        return role
    }

    func mode(_ node: Node, _ what: String) throws -> MigrationMode {
        let text = try string(node, what)
        guard let mode = MigrationMode(rawValue: text) else { throw fail(node, "bad mode '\(text)' in \(what) (use offline or online)") }
        return mode
    }

    func int(_ node: Node, _ what: String) throws -> Int {
        guard let value = node.int else { throw fail(node, "\(what) must be an integer") }
        return value
    }

    func bool(_ node: Node, _ what: String) throws -> Bool {
        guard let value = node.bool else { throw fail(node, "\(what) must be true or false") }
        return value
    }

    static let ruleKeys = ["id", "title", "description", "scope", "servers", "modes", "documentation", "requires",
                           "probe", "builtin", "status", "message", "remedy", "examples"]

    func rule(_ root: Node) throws -> Rule {
        let map = try mapping(root, "the rule", allowed: Self.ruleKeys)
        let id = try required(map, "id", in: root, "the rule")
        guard id.range(of: #"^[a-z0-9]+(?:[.-][a-z0-9]+)*$"#, options: .regularExpression) != nil else {
            throw fail(map["id"]?.value, "id '\(id)' must be dotted lower-case (e.g. tables.primary-key)")
        }
        let title = try required(map, "title", in: root, "the rule")
        let description = try required(map, "description", in: root, "the rule")
        guard let scopeEntry = map["scope"] else { throw fail(root, "missing 'scope' in the rule") }
        let scopeText = try string(scopeEntry.value, "scope")
        guard let scope = RuleScope(rawValue: scopeText) else {
            throw fail(scopeEntry.value, "bad scope '\(scopeText)' (use instance or database)")
        }

        var probe: Probe?
        var builtin: String?
        switch (map["probe"], map["builtin"]) {
        case (nil, nil): throw fail(root, "the rule needs a 'probe' or a 'builtin'")
        case (.some, .some(let entry)): throw fail(entry.key, "a rule has either 'probe' or 'builtin', not both")
        case (.some(let entry), nil): probe = try self.probe(entry.value, defaultServer: nil)
        case (nil, .some(let entry)):
            let name = try string(entry.value, "builtin")
            guard BuiltinCheck(rawValue: name) != nil else {
                throw fail(entry.value, "unknown builtin '\(name)' (known: \(BuiltinCheck.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            builtin = name
        }

        var servers: [ServerRole]
        if let entry = map["servers"] {
            servers = try strings(entry.value, "servers").enumerated().map { _, text in
                guard let role = ServerRole(rawValue: text) else { throw fail(entry.value, "bad server '\(text)' in servers (use source or target)") }
                return role
            }
            if servers.isEmpty { throw fail(entry.value, "servers must name at least one server") }
        } else {
            servers = [probe?.runsOn ?? .source]
        }
        if var p = probe {
            if map["probe"]?.value.mapping?["runs_on"] == nil { p.runsOn = servers[0] }
            guard servers.contains(p.runsOn) else {
                throw fail(map["probe"]?.value, "probe runs_on \(p.runsOn.rawValue), which servers does not list")
            }
            probe = p
        }

        var modes = MigrationMode.allCases
        if let entry = map["modes"] {
            modes = try strings(entry.value, "modes").map { text in
                guard let mode = MigrationMode(rawValue: text) else { throw fail(entry.value, "bad mode '\(text)' in modes (use offline or online)") }
                return mode
            }
        }

        var statusMap: [MigrationMode: Status] = [:]
        if let entry = map["status"] {
            if entry.value.scalar != nil {
                let s = try status(entry.value, "status")
                for mode in MigrationMode.allCases { statusMap[mode] = s }
            } else {
                let statusEntries = try mapping(entry.value, "status", allowed: MigrationMode.allCases.map(\.rawValue))
                for (name, pair) in statusEntries { statusMap[MigrationMode(rawValue: name)!] = try status(pair.value, "status.\(name)") }
            }
        }

        var messages: [Status: String] = [:]
        if let entry = map["message"] {
            if entry.value.scalar != nil {
                let text = try string(entry.value, "message")
                for s in Status.allCases { messages[s] = text }
            } else {
                let messageEntries = try mapping(entry.value, "message", allowed: Status.allCases.map(\.rawValue))
                for (name, pair) in messageEntries { messages[Status(rawValue: name)!] = try string(pair.value, "message.\(name)") }
            }
        } else if builtin == nil {
            throw fail(root, "missing 'message' in the rule")
        }
        let remedy = try map["remedy"].map { try string($0.value, "remedy") } ?? ""
        let requires = try map["requires"].map { try string($0.value, "requires") }
        for (key, text) in [("message", messages.values.joined(separator: " ")), ("remedy", remedy), ("requires", requires ?? "")] {
            for name in SQLPlaceholder.names(in: text) where !TemplatePlaceholder.isKnown(name) {
                throw fail(map[key]?.value, "unknown placeholder {\(name)} in \(key) (known: \(TemplatePlaceholder.names.sorted().map { "{\($0)}" }.joined(separator: ", ")), {first.<column>})")
            }
        }

        if let probe {
            for sql in probe.allSQL {
                for name in SQLPlaceholder.names(in: sql) {
                    let node = map["probe"]?.value
                    if case .failure(let error) = SQLPlaceholder.type(of: name) { throw fail(node, error.description) }
                    if (name == "database" || name == "database.columns") && scope != .database {
                        throw fail(node, "{database} is only bound for database-scope rules")
                    }
                    if let role = ServerRole(rawValue: String(name.split(separator: ".")[0])), name.contains("."), !servers.contains(role) {
                        throw fail(node, "probe uses {\(name)} but servers does not list \(role.rawValue)")
                    }
                }
            }
        }

        var examples: [RuleExample] = []
        if let entry = map["examples"] {
            guard let sequence = entry.value.sequence else { throw fail(entry.value, "examples must be a list") }
            examples = try sequence.map { try example($0) }
        }

        return Rule(id: id, title: title, description: description.trimmingCharacters(in: .whitespacesAndNewlines),
                    scope: scope, servers: servers, modes: modes,
                    documentation: try map["documentation"].map { try string($0.value, "documentation") },
                    requires: requires, probe: probe, builtin: builtin, status: statusMap, messages: messages,
                    remedy: remedy.trimmingCharacters(in: .whitespacesAndNewlines), examples: examples, file: file)
    }

    func probe(_ node: Node, defaultServer: ServerRole?) throws -> Probe {
        let map = try mapping(node, "probe", allowed: ["runs_on", "sql", "variants"])
        let runsOn = try map["runs_on"].map { try role($0.value, "runs_on") } ?? defaultServer ?? .source
        let sql = try required(map, "sql", in: node, "probe")
        var variants: [Probe.Variant] = []
        if let entry = map["variants"] {
            guard let sequence = entry.value.sequence else { throw fail(entry.value, "variants must be a list") }
            for item in sequence {
                let v = try mapping(item, "a variant", allowed: ["below", "sql"])
                guard let below = v["below"] else { throw fail(item, "missing 'below' in a variant") }
                variants.append(.init(below: try int(below.value, "below"), sql: try required(v, "sql", in: item, "a variant")))
            }
        }
        return Probe(runsOn: runsOn, sql: sql, variants: variants)
    }

    static let exampleKeys = ["name", "mode", "overwrite", "source_major", "target_major", "source_settings", "target_settings",
                              "source_hba",
                              "source_user", "target_user", "setup", "target_setup", "target_instance_setup", "cleanup",
                              "target_cleanup", "unreachable", "expect"]

    func example(_ node: Node) throws -> RuleExample {
        let map = try mapping(node, "an example", allowed: Self.exampleKeys)
        let name = try required(map, "name", in: node, "an example")
        guard let expectEntry = map["expect"] else { throw fail(node, "missing 'expect' in example '\(name)'") }
        let e = try mapping(expectEntry.value, "expect", allowed: ["status", "objects", "message_contains", "remedy_contains"])
        guard let statusEntry = e["status"] else { throw fail(expectEntry.value, "missing 'status' in expect") }
        let expectation = RuleExample.Expectation(
            status: try status(statusEntry.value, "expect.status"),
            objects: try e["objects"].map { try strings($0.value, "objects") },
            messageContains: try e["message_contains"].map { try string($0.value, "message_contains") },
            remedyContains: try e["remedy_contains"].map { try string($0.value, "remedy_contains") })
        var example = RuleExample(name: name, expect: expectation, line: node.mark?.line ?? 1)
        if let v = map["mode"] { example.mode = try mode(v.value, "mode") }
        if let v = map["overwrite"] { example.overwrite = try bool(v.value, "overwrite") }
        for (key, keyPath) in [("source_major", \RuleExample.sourceMajor), ("target_major", \RuleExample.targetMajor)] {
            guard let v = map[key] else { continue }
            let major = try int(v.value, key)
            guard [15, 18].contains(major) else { throw fail(v.value, "\(key) must be 15 or 18 (the servers the tests have)") }
            example[keyPath: keyPath] = major
        }
        if let v = map["source_settings"] { example.sourceSettings = try strings(v.value, "source_settings") }
        if let v = map["target_settings"] { example.targetSettings = try strings(v.value, "target_settings") }
        if let v = map["source_hba"] { example.sourceHBA = try strings(v.value, "source_hba") }
        let optionalStrings: [(String, WritableKeyPath<RuleExample, String?>)] = [
            ("source_user", \.sourceUser), ("target_user", \.targetUser), ("setup", \.setup), ("target_setup", \.targetSetup),
            ("target_instance_setup", \.targetInstanceSetup), ("cleanup", \.cleanup), ("target_cleanup", \.targetCleanup),
        ]
        for (key, keyPath) in optionalStrings {
            if let v = map[key] { example[keyPath: keyPath] = try string(v.value, key) }
        }
        if let v = map["unreachable"] { example.unreachable = try role(v.value, "unreachable") }
        return example
    }
}
