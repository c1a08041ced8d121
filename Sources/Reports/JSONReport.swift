import Foundation
import Validation

/// The JSON report of `validate --format json`, in the shape of docs/design.md.
public enum JSONReport {
    struct Document: Encodable {
        struct Tool: Encodable { let name: String; let version: String }
        struct Result: Encodable {
            let rule, title, scope: String
            let database: String?
            let status, message, remedy: String
            let objects: [String]
            let documentation: String?
            let startedAt, finishedAt: Date
            let durationMs: Int
            let suppressed: Acceptance?
            enum CodingKeys: String, CodingKey {
                case rule, title, scope, database, status, message, remedy, objects, documentation, startedAt, finishedAt, durationMs
                case suppressed
            }
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(rule, forKey: .rule); try c.encode(title, forKey: .title); try c.encode(scope, forKey: .scope)
                try c.encode(database, forKey: .database)  // explicit null for instance results
                try c.encode(status, forKey: .status); try c.encode(message, forKey: .message)
                try c.encode(remedy, forKey: .remedy); try c.encode(objects, forKey: .objects)
                try c.encodeIfPresent(documentation, forKey: .documentation)
                try c.encode(startedAt, forKey: .startedAt); try c.encode(finishedAt, forKey: .finishedAt)
                try c.encode(durationMs, forKey: .durationMs)
                try c.encodeIfPresent(suppressed, forKey: .suppressed)
            }
        }
        let schemaVersion = 1
        let tool = Tool(name: toolName, version: toolVersion)
        let mode: String
        let status: String
        let startedAt, finishedAt: Date
        let durationMs: Int
        let source, target: ServerInfo
        let databases: [String]
        let platform: String?
        let targetProfile: String?
        let notices: [String]
        let results: [Result]
        /// The rules a server that could not be reached kept from running, as JUnit's <skipped>.
        /// At the top level: results are closed objects in schemaVersion 1.
        struct Skipped: Encodable { let rule: String; let because: String }
        let skippedRules: [Skipped]
    }

    public static func render(_ run: ValidationRun) throws -> String {
        let document = Document(
            mode: run.mode.rawValue, status: run.status.rawValue, startedAt: run.startedAt, finishedAt: run.finishedAt,
            durationMs: run.durationMs, source: run.source, target: run.target, databases: run.databases,
            platform: run.platform, targetProfile: run.targetProfile, notices: run.notices,
            results: run.results.map {
                .init(rule: $0.rule, title: $0.title, scope: $0.scope.rawValue, database: $0.database, status: $0.status.rawValue,
                      message: $0.message, remedy: $0.remedy, objects: $0.objects, documentation: $0.documentation,
                      startedAt: $0.startedAt, finishedAt: $0.finishedAt, durationMs: $0.durationMs,
                      suppressed: $0.suppressed)
            },
            skippedRules: JUnitReport.notRun(in: run.results).map { .init(rule: $0.rule, because: $0.because) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(document), as: UTF8.self) + "\n"
    }
}
