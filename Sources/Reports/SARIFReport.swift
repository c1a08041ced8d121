import Foundation
import Validation

/// SARIF 2.1.0 (`--format sarif`), as GitHub code scanning ingests it
/// (https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html):
///
/// - one run; `tool.driver.rules` lists every rule that has a result, with its title as the short
///   description, its remedy (or title) as help text and its documentation as `helpUri`;
/// - one result per Warning and Failed result (Succeeded results are left out): `level` error for
///   Failed (and for a Warning with `strict`), warning for a Warning; the message names the
///   database and the objects and gives the remedy's first line;
/// - the physical location is the rule's file, `rules/<id>.yaml`, line 1 (a finding is in a
///   database, not in a file); the logical locations are the database and the objects;
/// - an accepted finding keeps its level and gets a suppression (`external`, `accepted`, the
///   reason): GitHub shows it as dismissed. When a baseline applies, every result has a
///   `baselineState`: `unchanged` for the findings the baseline accepts, `new` for the others;
/// - `partialFingerprints` is the Code Quality fingerprint (rule, database, objects), stable
///   from run to run; the run's notices are `toolExecutionNotifications` (level note);
/// - GitHub's ingestion limits: at most 25 000 results and 1 000 locations per result, and
///   messages of at most 1 000 characters shown: objects beyond `maxObjects` are counted, not listed.
public enum SARIFReport {
    static let schemaURI = "https://json.schemastore.org/sarif-2.1.0.json"
    static let maxObjects = 100
    static let maxResults = 25_000

    struct Log: Encodable {
        let schema = SARIFReport.schemaURI
        let version = "2.1.0"
        let runs: [Run]
        enum CodingKeys: String, CodingKey { case schema = "$schema", version, runs }
    }
    struct Run: Encodable {
        let tool: Tool
        let invocations: [Invocation]
        let results: [Result]
        let properties: [String: String]
    }
    struct Tool: Encodable { let driver: Driver }
    struct Driver: Encodable {
        let name: String
        let version: String
        let semanticVersion: String
        let rules: [ReportingDescriptor]
    }
    struct Message: Encodable { let text: String }
    struct MultiformatMessage: Encodable { let text: String; let markdown: String? }
    struct ReportingDescriptor: Encodable {
        struct Configuration: Encodable { let level: String }
        let id: String
        let name: String
        let shortDescription: Message
        let fullDescription: Message
        let help: MultiformatMessage
        let helpUri: String?
        let defaultConfiguration: Configuration
    }
    struct Invocation: Encodable {
        struct Notification: Encodable { let level: String; let message: Message }
        let executionSuccessful: Bool
        let startTimeUtc: String
        let endTimeUtc: String
        let toolExecutionNotifications: [Notification]
    }
    struct Result: Encodable {
        let ruleId: String
        let ruleIndex: Int
        let level: String
        let message: Message
        let locations: [Location]
        let partialFingerprints: [String: String]
        let suppressions: [Suppression]?
        let baselineState: String?
    }
    struct Location: Encodable {
        struct Physical: Encodable {
            struct Artifact: Encodable { let uri: String }
            struct Region: Encodable { let startLine: Int }
            let artifactLocation: Artifact
            let region: Region
        }
        struct Logical: Encodable { let name: String; let fullyQualifiedName: String; let kind: String }
        let physicalLocation: Physical
        let logicalLocations: [Logical]
    }
    struct Suppression: Encodable { let kind: String; let status: String; let justification: String }

    public static func render(_ run: ValidationRun, options: ReportOptions = ReportOptions()) throws -> String {
        let findings = Array(run.groups.flatMap(\.results).filter { $0.status != .succeeded }.prefix(maxResults))
        var ruleIDs: [String] = []
        for result in findings where !ruleIDs.contains(result.rule) { ruleIDs.append(result.rule) }
        let rules = ruleIDs.map { id -> ReportingDescriptor in
            let mine = findings.filter { $0.rule == id }
            let first = mine[0]
            let remedy = mine.map(\.remedy).first { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }
            let worst = mine.map(\.status).max() ?? .warning
            return ReportingDescriptor(
                id: id, name: id, shortDescription: Message(text: first.title), fullDescription: Message(text: first.title),
                help: MultiformatMessage(text: remedy ?? first.title, markdown: nil),
                helpUri: first.documentation.flatMap { URL(string: $0)?.scheme == nil ? nil : $0 },
                defaultConfiguration: .init(level: worst == .failed ? "error" : "warning"))
        }
        // Some finding accepted by a baseline: a baseline applies to this run.
        let baselineApplies = run.results.contains { $0.suppressed?.by == .baseline }
        let results = findings.map { result -> Result in
            let level = result.status == .failed || options.strict ? "error" : "warning"
            let suppressions = result.suppressed.map {
                [Suppression(kind: "external", status: "accepted",
                             justification: "\($0.by == .baseline ? "baseline" : "suppression"): \($0.reason)")]
            }
            let baselineState = baselineApplies ? (result.suppressed?.by == .baseline ? "unchanged" : "new") : nil
            return Result(ruleId: result.rule, ruleIndex: ruleIDs.firstIndex(of: result.rule)!, level: level,
                          message: Message(text: message(result)), locations: [location(result, server: options.serverName ?? "source")],
                          partialFingerprints: ["pgpreflightFinding/v1": CodeQualityReport.fingerprint(result)],
                          suppressions: suppressions, baselineState: baselineState)
        }
        let invocation = Invocation(
            executionSuccessful: true, startTimeUtc: ReportTime.iso(run.startedAt), endTimeUtc: ReportTime.iso(run.finishedAt),
            toolExecutionNotifications: run.notices.map { .init(level: "note", message: Message(text: $0)) })
        let log = Log(runs: [Run(
            tool: Tool(driver: Driver(name: toolName, version: toolVersion, semanticVersion: toolVersion, rules: rules)),
            invocations: [invocation], results: results,
            properties: ["mode": run.mode.rawValue, "status": run.status.rawValue,
                         "source": run.source.endpoint, "target": run.target.endpoint])])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(log), as: UTF8.self) + "\n"
    }

    /// `[shop] 2 tables have no primary key: public.events, public.log — Add a primary key …`
    static func message(_ result: RuleResult) -> String {
        var text = result.message
        if let database = result.database { text = "[\(database)] " + text }
        let objects = result.objects
        if !objects.isEmpty, !objects.allSatisfy({ text.contains($0) }) {
            let listed = objects.prefix(10).joined(separator: ", ")
            text += " (\(listed)\(objects.count > 10 ? ", and \(objects.count - 10) more" : ""))"
        }
        if let remedy = result.remedyHeadline { text += " — " + remedy }
        return text
    }

    static func location(_ result: RuleResult, server: String) -> Location {
        let scope = result.database ?? server
        var logical = [Location.Logical(name: scope, fullyQualifiedName: scope, kind: result.database == nil ? "module" : "namespace")]
        logical += result.objects.prefix(maxObjects).map {
            Location.Logical(name: $0, fullyQualifiedName: "\(scope)/\($0)", kind: "resource")
        }
        return Location(physicalLocation: .init(artifactLocation: .init(uri: "rules/\(result.rule).yaml"), region: .init(startLine: 1)),
                        logicalLocations: logical)
    }
}
