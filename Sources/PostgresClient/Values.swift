import Foundation

/// A bound parameter value. Text values are sent in text format and cast by the server as
/// the statement needs; bytes are sent in binary format (for `bytea`).
public enum SQLValue: Sendable, Equatable {
    case null
    case text(String)
    case bytes([UInt8])
}

/// Anything that can be bound as a query parameter.
public protocol SQLParameter: Sendable {
    var sqlValue: SQLValue { get }
}

extension String: SQLParameter { public var sqlValue: SQLValue { .text(self) } }
extension Substring: SQLParameter { public var sqlValue: SQLValue { .text(String(self)) } }
extension Int: SQLParameter { public var sqlValue: SQLValue { .text(String(self)) } }
extension Int32: SQLParameter { public var sqlValue: SQLValue { .text(String(self)) } }
extension Int64: SQLParameter { public var sqlValue: SQLValue { .text(String(self)) } }
extension UInt32: SQLParameter { public var sqlValue: SQLValue { .text(String(self)) } }
extension Double: SQLParameter { public var sqlValue: SQLValue { .text(String(self)) } }
extension Bool: SQLParameter { public var sqlValue: SQLValue { .text(self ? "true" : "false") } }
extension Array: SQLParameter where Element == UInt8 { public var sqlValue: SQLValue { .bytes(self) } }
extension Data: SQLParameter { public var sqlValue: SQLValue { .bytes([UInt8](self)) } }
extension SQLValue: SQLParameter { public var sqlValue: SQLValue { self } }
extension Optional: SQLParameter where Wrapped: SQLParameter {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

/// Builds a PostgreSQL text array literal (`{"a","b"}`) to bind to a `text[]` parameter, so a
/// list of names stays one parameter whatever its length.
public struct TextArray: SQLParameter {
    public let elements: [String]
    public init(_ elements: [String]) { self.elements = elements }
    public var sqlValue: SQLValue {
        let quoted = elements.map { element -> String in
            let escaped = element.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\""
        }
        return .text("{" + quoted.joined(separator: ",") + "}")
    }
}

/// One row of a result, with typed accessors by index or column name. Values arrive in
/// text format; accessors convert them.
public struct Row: Sendable {
    public let columns: [String]
    public let values: [String?]

    public subscript(_ index: Int) -> String? { values[index] }
    public subscript(_ name: String) -> String? {
        guard let index = columns.firstIndex(of: name) else { return nil }
        return values[index]
    }

    public func isNull(_ index: Int) -> Bool { values[index] == nil }
    public func string(_ index: Int) -> String? { values[index] }
    public func string(_ name: String) -> String? { self[name] }
    public func int(_ index: Int) -> Int? { values[index].flatMap { Int($0) } }
    public func int(_ name: String) -> Int? { self[name].flatMap { Int($0) } }
    public func double(_ index: Int) -> Double? { values[index].flatMap { Double($0) } }
    public func double(_ name: String) -> Double? { self[name].flatMap { Double($0) } }
    public func bool(_ index: Int) -> Bool? { values[index].flatMap(Row.parseBool) }
    public func bool(_ name: String) -> Bool? { self[name].flatMap(Row.parseBool) }
    public func bytes(_ index: Int) -> [UInt8]? { values[index].flatMap(Row.parseBytea) }
    public func bytes(_ name: String) -> [UInt8]? { self[name].flatMap(Row.parseBytea) }

    /// The row as a column → value dictionary (NULL values left out).
    public var dictionary: [String: String] {
        var result: [String: String] = [:]
        for (column, value) in zip(columns, values) { if let value { result[column] = value } }
        return result
    }

    static func parseBool(_ text: String) -> Bool? {
        switch text { case "t", "true", "on", "1": return true
        case "f", "false", "off", "0": return false
        default: return nil }
    }

    /// Decodes bytea's hex output format (`\x0a0b`), the default since 9.0.
    static func parseBytea(_ text: String) -> [UInt8]? {
        guard text.hasPrefix("\\x") else { return Array(text.utf8) }
        let hex = Array(text.utf8.dropFirst(2))
        guard hex.count % 2 == 0 else { return nil }
        var out = [UInt8](); out.reserveCapacity(hex.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c { case 48...57: return c - 48; case 97...102: return c - 87; case 65...70: return c - 55; default: return nil }
        }
        var i = 0
        while i < hex.count {
            guard let hi = nibble(hex[i]), let lo = nibble(hex[i + 1]) else { return nil }
            out.append(hi << 4 | lo); i += 2
        }
        return out
    }
}

/// The rows of a statement, copied out of libpq's result.
public struct QueryResult: Sendable {
    public let columns: [String]
    public let rows: [Row]
    /// The command tag's row count (`UPDATE 3` → 3), when there is one.
    public let affectedRows: Int?

    public var first: Row? { rows.first }
    public var isEmpty: Bool { rows.isEmpty }
    public var count: Int { rows.count }
}
