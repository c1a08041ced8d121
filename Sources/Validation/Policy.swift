import Foundation
import Yams

/// A team's policy from `.pgpreflight.yaml`: severity overrides, object exclusions,
/// suppressions with reasons, and a baseline of accepted findings.
///
/// ```yaml
/// rules:
///   tables.primary-key:
///     severity: failed                 # failed | warning | off
///     exclude: ["public.audit_*"]      # object patterns (* and ?) left out of this rule
/// suppressions:
///   - rule: objects.event-triggers
///     database: shop                   # optional
///     objects: ["note_ddl"]            # optional: patterns; all of the finding's objects must match
///     reason: "recreated after cutover"   # required
///     expires: 2027-01-31              # optional
/// baseline: pgpreflight-baseline.json  # relative to the file
/// ```
public struct Policy: Sendable, Equatable {
    public enum Severity: String, Sendable, CaseIterable { case failed, warning, off }

    public struct RulePolicy: Sendable, Equatable {
        public var severity: Severity?
        public var exclude: [ObjectPattern] = []
    }

    public struct Suppression: Sendable, Equatable {
        public var rule: String
        public var database: String?
        public var objects: [ObjectPattern]
        public var reason: String
        public var expires: String?   // yyyy-mm-dd
        public var location: String   // file:line, for messages
    }

    public var rules: [String: RulePolicy] = [:]
    public var suppressions: [Suppression] = []
    public var baseline: Baseline?

    public init() {}

    /// Reads a policy file. Every problem is a `PolicyError` with `file:line: what is wrong`.
    /// `knownRules` are the ids of loaded rules: anything else is an error.
    public static func load(file: URL, knownRules: Set<String>) throws -> Policy {
        let path = file.path
        guard let text = try? String(contentsOf: file, encoding: .utf8) else {
            throw PolicyError("\(path): cannot read the file")
        }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw PolicyError("\(path): not valid YAML: \(error)")
        }
        var policy = Policy()
        guard let root else { return policy }
        func at(_ node: Node?) -> String { "\(path):\(node?.mark?.line ?? 1)" }
        guard let top = root.mapping else { throw PolicyError("\(at(root)): expected a mapping with rules, suppressions, baseline") }

        for (keyNode, value) in top {
            switch keyNode.string ?? "" {
            case "rules":
                guard let rules = value.mapping else { throw PolicyError("\(at(value)): rules: expected a mapping of rule id to settings") }
                for (idNode, settings) in rules {
                    let id = idNode.string ?? ""
                    guard knownRules.contains(id) else { throw PolicyError("\(at(idNode)): unknown rule id '\(id)'") }
                    guard let mapping = settings.mapping else { throw PolicyError("\(at(settings)): \(id): expected severity and/or exclude") }
                    var rule = RulePolicy()
                    for (settingKey, settingValue) in mapping {
                        switch settingKey.string ?? "" {
                        case "severity":
                            guard let s = settingValue.string.flatMap(Severity.init(rawValue:)) else {
                                throw PolicyError("\(at(settingValue)): \(id): severity must be failed, warning or off")
                            }
                            rule.severity = s
                        case "exclude":
                            rule.exclude = try patterns(settingValue, at: at(settingValue), context: "\(id): exclude")
                        default:
                            throw PolicyError("\(at(settingKey)): \(id): unknown setting '\(settingKey.string ?? "")' (severity, exclude)")
                        }
                    }
                    policy.rules[id] = rule
                }
            case "suppressions":
                guard let list = value.sequence else { throw PolicyError("\(at(value)): suppressions: expected a list") }
                for item in list {
                    guard let mapping = item.mapping else { throw PolicyError("\(at(item)): a suppression must be a mapping") }
                    var rule: String?, database: String?, reason: String?, expires: String?
                    var objects: [ObjectPattern] = []
                    for (k, v) in mapping {
                        switch k.string ?? "" {
                        case "rule": rule = v.string
                        case "database": database = v.string
                        case "reason": reason = v.string
                        case "expires":
                            guard let text = v.string, Self.parseDate(text) != nil else {
                                throw PolicyError("\(at(v)): expires must be a date like 2027-01-31")
                            }
                            expires = text
                        case "objects": objects = try patterns(v, at: at(v), context: "objects")
                        default: throw PolicyError("\(at(k)): unknown suppression key '\(k.string ?? "")' (rule, database, objects, reason, expires)")
                        }
                    }
                    guard let rule else { throw PolicyError("\(at(item)): a suppression needs a rule") }
                    guard knownRules.contains(rule) else { throw PolicyError("\(at(item)): unknown rule id '\(rule)'") }
                    guard let reason, !reason.trimmingCharacters(in: .whitespaces).isEmpty else {
                        throw PolicyError("\(at(item)): the suppression of \(rule) needs a reason")
                    }
                    policy.suppressions.append(Suppression(rule: rule, database: database, objects: objects, reason: reason,
                                                           expires: expires, location: at(item)))
                }
            case "baseline":
                guard let name = value.string, !name.isEmpty else { throw PolicyError("\(at(value)): baseline: expected a file name") }
                let baselineURL = URL(fileURLWithPath: name, relativeTo: file.deletingLastPathComponent())
                policy.baseline = try Baseline.load(baselineURL)
            default:
                throw PolicyError("\(at(keyNode)): unknown key '\(keyNode.string ?? "")' (rules, suppressions, baseline)")
            }
        }
        return policy
    }

    /// Merges `--rule-severity ID=failed|warning|off` flags: the command line wins per rule.
    public mutating func applySeverityFlags(_ flags: [String], knownRules: Set<String>) throws {
        for flag in flags {
            let parts = flag.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let severity = Severity(rawValue: parts[1]) else {
                throw PolicyError("--rule-severity \(flag): expected ID=failed|warning|off")
            }
            guard knownRules.contains(parts[0]) else { throw PolicyError("--rule-severity \(flag): unknown rule id '\(parts[0])'") }
            rules[parts[0], default: RulePolicy()].severity = severity
        }
    }

    /// Applies the policy to a run: overrides, exclusions, suppressions, then the baseline.
    /// Nothing is hidden: accepted findings keep their status with `suppressed` set, and
    /// expired suppressions become notices.
    public func apply(to run: ValidationRun, today: Date = Date()) -> ValidationRun {
        var run = run
        var results: [RuleResult] = []
        for var result in run.results {
            let rule = rules[result.rule]
            if rule?.severity == .off { continue }
            if let exclude = rule?.exclude, !exclude.isEmpty, result.status != .succeeded, !result.objects.isEmpty {
                let kept = result.objects.filter { object in !exclude.contains { $0.matches(object) } }
                let excluded = result.objects.count - kept.count
                if excluded > 0, let rendering = result.rendering {
                    // Rendered again without them: the count, the list and the remedy leave them out.
                    let without = rendering.without { object in exclude.contains { $0.matches(object) } }
                    let rendered = without.render()
                    result.status = rendered.status; result.message = rendered.message + " (\(excluded) excluded by policy)"
                    result.remedy = rendered.remedy; result.objects = rendered.objects; result.rendering = without
                } else if excluded > 0 {
                    result.objects = kept
                    result.message += " (\(excluded) excluded by policy)"
                    if kept.isEmpty {
                        result.status = .succeeded
                        result.remedy = ""
                    }
                }
            }
            if result.status != .succeeded, let severity = rule?.severity {
                result.status = severity == .failed ? .failed : .warning
            }
            results.append(result)
        }
        let todayText = Self.dayFormatter.string(from: today)
        for suppression in suppressions {
            if let expires = suppression.expires, expires < todayText {
                run.notices.append("\(suppression.location): the suppression of \(suppression.rule) expired on \(expires) and no longer applies")
                continue
            }
            for index in results.indices where results[index].suppressed == nil && results[index].status != .succeeded {
                let result = results[index]
                guard result.rule == suppression.rule else { continue }
                if let database = suppression.database, database != result.database { continue }
                let covered = suppression.objects.isEmpty
                    || (!result.objects.isEmpty && result.objects.allSatisfy { object in suppression.objects.contains { $0.matches(object) } })
                if covered { results[index].suppressed = Acceptance(by: .suppression, reason: suppression.reason) }
            }
        }
        if let baseline {
            for index in results.indices where results[index].suppressed == nil && results[index].status != .succeeded {
                if baseline.accepts(results[index]) {
                    results[index].suppressed = Acceptance(by: .baseline, reason: "in the baseline \(baseline.name)")
                }
            }
        }
        run.results = results
        return run
    }

    private static func patterns(_ node: Node, at location: String, context: String) throws -> [ObjectPattern] {
        let items: [Node]
        if let sequence = node.sequence { items = Array(sequence) } else { items = [node] }
        return try items.map { item in
            guard let text = item.string else { throw PolicyError("\(location): \(context): expected text patterns") }
            guard let pattern = ObjectPattern(text) else {
                throw PolicyError("\(location): \(context): malformed pattern '\(text)' (use * and ? only, not empty)")
            }
            return pattern
        }
    }

    static func parseDate(_ text: String) -> Date? { dayFormatter.date(from: text) }

    public static var dayFormatterForTests: DateFormatter { dayFormatter }

    static let dayFormatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter
    }()
}

/// An object pattern: `*` any run of characters, `?` one character, everything else literal.
/// Quotes are ignored on both sides, so `public.audit_*` matches `public."audit_2024"`.
public struct ObjectPattern: Sendable, Equatable {
    public let text: String
    private let characters: [Character]

    public init?(_ text: String) {
        guard !text.isEmpty, !text.contains("["), !text.contains("]"), !text.contains("**") else { return nil }
        self.text = text
        self.characters = Array(text.replacingOccurrences(of: "\"", with: ""))
    }

    public func matches(_ object: String) -> Bool {
        let subject = Array(object.replacingOccurrences(of: "\"", with: ""))
        // Iterative glob matching with backtracking to the last star.
        var p = 0, s = 0, star = -1, mark = 0
        while s < subject.count {
            if p < characters.count && (characters[p] == "?" || characters[p] == subject[s]) { p += 1; s += 1 }
            else if p < characters.count && characters[p] == "*" { star = p; mark = s; p += 1 }
            else if star >= 0 { p = star + 1; mark += 1; s = mark }
            else { return false }
        }
        while p < characters.count && characters[p] == "*" { p += 1 }
        return p == characters.count
    }
}

/// Findings accepted as they are: written by `pgpreflight baseline`, read through the policy.
public struct Baseline: Sendable, Equatable, Codable {
    public struct Finding: Sendable, Equatable, Codable {
        public var rule: String
        public var database: String?
        public var status: Status
        public var objects: [String]
    }
    public var schemaVersion = 1
    public var createdAt: Date
    public var findings: [Finding]
    /// The file it was read from, for the reason shown on accepted findings.
    public var name = "baseline"

    enum CodingKeys: String, CodingKey { case schemaVersion, createdAt, findings }

    public init(run: ValidationRun) {
        createdAt = run.finishedAt
        findings = run.results.filter { $0.status != .succeeded }.map {
            Finding(rule: $0.rule, database: $0.database, status: $0.status, objects: $0.objects)
        }
    }

    /// A finding is accepted when the baseline holds the same rule and database with a
    /// status at least as bad and every object of the finding: a new object is new.
    public func accepts(_ result: RuleResult) -> Bool {
        findings.contains { finding in
            finding.rule == result.rule && finding.database == result.database && finding.status >= result.status
                && Set(result.objects).isSubset(of: Set(finding.objects))
        }
    }

    public func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }

    public static func load(_ url: URL) throws -> Baseline {
        guard let data = try? Data(contentsOf: url) else { throw PolicyError("\(url.path): cannot read the baseline") }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            var baseline = try decoder.decode(Baseline.self, from: data)
            baseline.name = url.lastPathComponent
            return baseline
        } catch {
            throw PolicyError("\(url.path): not a pgpreflight baseline: \(error.localizedDescription)")
        }
    }
}

public struct PolicyError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
