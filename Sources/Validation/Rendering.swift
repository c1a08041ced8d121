import Foundation

/// What a probe's result is rendered from: its findings and the rule's templates. A result
/// keeps it so that a policy `exclude` can leave objects out and render the message, the count
/// and the remedy again without them.
public struct FindingRendering: Sendable, Equatable {
    public struct Finding: Sendable, Equatable {
        public var status: Status
        /// The probe's columns (one array shared by every finding of a result) and this row's
        /// values, NULL as nil: no dictionary per row (100 000 findings made 100 000 of them).
        public var columns: [String]
        public var values: [String?]

        public init(status: Status, columns: [String], values: [String?]) {
            self.status = status; self.columns = columns; self.values = values
        }

        public func value(_ column: String) -> String? { columns.firstIndex(of: column).flatMap { values[$0] } }
        /// The probe's row: column → value (NULL columns left out).
        public var row: [String: String] {
            var row: [String: String] = [:]
            for (column, value) in zip(columns, values) { if let value { row[column] = value } }
            return row
        }
        public var object: String? { value("object") }
    }

    public var findings: [Finding]
    /// Message templates per status.
    public var messages: [Status: String]
    public var remedy: String
    /// {database}, {mode}, {source.user}, … for the templates.
    public var values: [String: String]
    /// `could_not_check` reasons.
    public var unseen: [String]
    /// The grant to suggest with them.
    public var grant: String

    /// How many objects `{objects}` names in a message.
    static let messageObjects = 50

    /// The result's status, message, remedy and objects.
    public func render() -> (status: Status, message: String, remedy: String, objects: [String]) {
        let worstFinding = findings.map(\.status).max()
        if !unseen.isEmpty && (worstFinding ?? .succeeded) == .succeeded {
            return (.warning, "could not check: " + unseen.joined(separator: "; "), grant, [])
        }
        guard let worst = worstFinding else {
            let message = TemplatePlaceholder.render(messages[.succeeded] ?? "No problem found",
                                                     values: values.merging(["count": "0", "objects": "", "remedies": ""]) { $1 },
                                                     firstRow: [:])
            return (.succeeded, message, "", [])
        }
        let relevant = worst == .succeeded ? findings : findings.filter { $0.status != .succeeded }
        let objects = relevant.compactMap(\.object)
        let remedies = relevant.compactMap { $0.value("remedy") }
        var filled = values
        filled["count"] = String(relevant.count)
        filled["objects"] = objects.joined(separator: ", ")
        filled["remedies"] = remedies.joined(separator: "\n")
        let first = relevant.first?.row ?? [:]
        // A message names the first objects only (100 000 tables owned by a superuser made a
        // 1.5 MB message); the result's objects and the remedy keep them all.
        var shown = filled
        if objects.count > Self.messageObjects {
            shown["objects"] = objects.prefix(Self.messageObjects).joined(separator: ", ")
                + ", … (\(objects.count - Self.messageObjects) more)"
        }
        var message = TemplatePlaceholder.render(messages[worst] ?? "\(relevant.count) finding(s): {objects}", values: shown, firstRow: first)
        var remedy = Self.trimmed(TemplatePlaceholder.render(self.remedy.isEmpty ? "{remedies}" : self.remedy, values: filled, firstRow: first))
        if !unseen.isEmpty {
            message += " (and could not check everything: " + unseen.joined(separator: "; ") + ")"
            remedy += "\n" + grant
        }
        return (worst, message, worst == .succeeded ? "" : remedy, objects)
    }

    /// `text` without whitespace at either end. (Foundation's trimmingCharacters copied the whole
    /// text through UTF-16: a third of the CPU of a run with a 4.6 MB remedy.)
    static func trimmed(_ text: String) -> String {
        let start = text.drop { $0.isWhitespace }
        var end = start.endIndex
        while end > start.startIndex, start[start.index(before: end)].isWhitespace { end = start.index(before: end) }
        return String(start[..<end])
    }

    /// The same without the findings whose object `excluded` matches.
    public func without(_ excluded: (String) -> Bool) -> FindingRendering {
        var copy = self
        copy.findings = findings.filter { finding in finding.object.map { !excluded($0) } ?? true }
        return copy
    }
}
