import Foundation
import PostgresClient

/// The `{name}` placeholders of probe SQL. Each becomes a bound parameter `$n::type`, so a
/// rule never splices data into SQL.
enum SQLPlaceholder {
    /// Per-server facts (`{source.settings}`, `{target.roles}`, …) and their SQL types.
    static let serverFacts: [String: String] = [
        "server_version_num": "integer",
        "settings": "jsonb",
        "available_extensions": "jsonb",
        "roles": "text[]",
        "collations": "text[]",
        "languages": "text[]",
        "user": "text",
        "extensions": "jsonb",
        "platform": "text",
        "profile": "text",
        "superuser": "boolean",
        "build": "jsonb",
        "catalog_columns": "text[]",
    ]
    /// Facts only one server has: extensions installed in the selected databases are read
    /// from the source's database sessions.
    static let sourceOnlyFacts: Set<String> = ["extensions"]

    static let runValues: [String: String] = [
        "mode": "text",
        "overwrite": "boolean",
        "databases": "text[]",
        "database_count": "integer",
        "database": "text",
        "database.columns": "jsonb",
        "knowledge.settings": "jsonb",
        "knowledge.extensions": "jsonb",
    ]

    static let pattern = try! NSRegularExpression(pattern: #"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\}"#)

    /// The SQL type of `name`, or a reason why it is not a placeholder.
    static func type(of name: String) -> Result<String, PlaceholderError> {
        if let type = runValues[name] { return .success(type) }
        let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
        if parts.count == 2, let role = ServerRole(rawValue: parts[0]), let type = serverFacts[parts[1]] {
            if role == .target && sourceOnlyFacts.contains(parts[1]) {
                return .failure(PlaceholderError("{\(name)} does not exist: only {source.\(parts[1])}"))
            }
            return .success(type)
        }
        return .failure(PlaceholderError("unknown placeholder {\(name)} in probe SQL (known: "
            + (runValues.keys.sorted().map { "{\($0)}" } + ["{source.X}", "{target.X} with X one of " + serverFacts.keys.sorted().joined(separator: ", ")]).joined(separator: ", ") + ")"))
    }

    /// Every placeholder name in `sql`, in order of first appearance.
    static func names(in sql: String) -> [String] {
        var seen: [String] = []
        let range = NSRange(sql.startIndex..., in: sql)
        for match in pattern.matches(in: sql, range: range) {
            let name = String(sql[Range(match.range(at: 1), in: sql)!])
            if !seen.contains(name) { seen.append(name) }
        }
        return seen
    }

    /// Rewrites `sql` with `$n::type` in place of each placeholder; returns the placeholder
    /// bound to each `$n`, in order.
    static func rewrite(_ sql: String) throws -> (sql: String, parameters: [String]) {
        let names = names(in: sql)
        var text = sql
        for (index, name) in names.enumerated() {
            let type = try type(of: name).get()
            text = text.replacingOccurrences(of: "{\(name)}", with: "$\(index + 1)::\(type)")
        }
        return (text, names)
    }
}

struct PlaceholderError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `{name}` placeholders of message and remedy templates.
enum TemplatePlaceholder {
    static let names: Set<String> = ["count", "objects", "remedies", "database", "mode", "source.user", "target.user"]

    static func isKnown(_ name: String) -> Bool { names.contains(name) || name.hasPrefix("first.") }

    /// Fills a template. Unknown `{first.column}` values become empty.
    static func render(_ template: String, values: [String: String], firstRow: [String: String]) -> String {
        let range = NSRange(template.startIndex..., in: template)
        var result = ""
        var last = template.startIndex
        for match in SQLPlaceholder.pattern.matches(in: template, range: range) {
            let whole = Range(match.range, in: template)!
            let name = String(template[Range(match.range(at: 1), in: template)!])
            result += template[last..<whole.lowerBound]
            if name.hasPrefix("first.") {
                result += firstRow[String(name.dropFirst("first.".count))] ?? ""
            } else if let value = values[name] {
                result += value
            } else {
                result += template[whole]
            }
            last = whole.upperBound
        }
        result += template[last...]
        return result
    }
}
