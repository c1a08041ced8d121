import Foundation

/// Turns wal2json (format version 2) messages into the same `PgOutputMessage`s pgoutput
/// gives, so one applier serves both: wal2json is the output plugin for sources older than
/// PostgreSQL 10, which have no pgoutput.
///
/// Each wal2json change carries its table's name and column names instead of a relation
/// id, so the decoder makes up a relation per table and column shape and emits it before the
/// first change that uses it. Columns an UPDATE leaves out are unchanged TOAST values.
public final class Wal2JSONDecoder {
    /// START_REPLICATION options this decoder expects.
    public static let options: [(String, String)] = [
        ("format-version", "2"), ("include-timestamp", "1"), ("include-pk", "1"), ("include-lsn", "1"), ("include-types", "1"),
    ]
    /// wal2json 2.4+: numbers as strings. Without it NaN and ±Infinity arrive as JSON null;
    /// older builds refuse the option, and then get `options` alone.
    public static let numericsAsStrings: (String, String) = ("numeric-data-types-as-string", "1")

    private var relationIDs: [String: UInt32] = [:]

    public init() {}

    private struct Column {
        let name: String
        let value: TupleValue
    }

    private struct Message {
        var action = ""
        var timestamp: String?
        var lsn: String?
        var nextlsn: String?
        var schema: String?
        var table: String?
        var columns: [Column]?
        var identity: [Column]?
        var pk: [Column]?
    }

    /// Reads one wal2json message. Not JSONDecoder: a number must keep its exact text
    /// (`1.0`, `5.990`, 40-digit fractions, `1e+300`), which Double and Decimal do not.
    private static func parse(_ payload: [UInt8]) throws -> Message {
        var reader = JSONReader(bytes: payload)
        guard case .object(let fields, _) = try reader.value() else { throw ClientError("wal2json: a message is not an object") }
        var message = Message()
        func columns(_ value: JSONReader.Value) -> [Column]? {
            guard case .array(let items, _) = value else { return nil }
            return items.compactMap { item in
                guard case .object(let f, _) = item, let name = f.first(where: { $0.0 == "name" })?.1.text else { return nil }
                var value = f.first(where: { $0.0 == "value" })?.1.tupleValue ?? .null
                // wal2json writes bytea as bare hex digits, without the `\x` the type reads back.
                if case .text(let hex) = value, f.first(where: { $0.0 == "type" })?.1.text == "bytea", !hex.hasPrefix("\\x") {
                    value = .text("\\x" + hex)
                }
                return Column(name: name, value: value)
            }
        }
        for (key, value) in fields {
            switch key {
            case "action": message.action = value.text ?? ""
            case "timestamp": message.timestamp = value.text
            case "lsn": message.lsn = value.text
            case "nextlsn": message.nextlsn = value.text
            case "schema": message.schema = value.text
            case "table": message.table = value.text
            case "columns": message.columns = columns(value)
            case "identity": message.identity = columns(value)
            case "pk": message.pk = columns(value)
            default: break
            }
        }
        return message
    }

    public func decode(_ payload: [UInt8]) throws -> [PgOutputMessage] {
        let message: Message
        do { message = try Self.parse(payload) } catch {
            throw ClientError("wal2json: unreadable message: \(error)")
        }
        let time = message.timestamp.flatMap(Self.parseTimestamp) ?? Date()
        switch message.action {
        case "B":
            // `lsn` is the commit record's position, `nextlsn` the end of it.
            return [.begin(finalLSN: message.lsn.flatMap(LSN.init) ?? .zero, commitTime: time, xid: 0)]
        case "C":
            let end = message.nextlsn.flatMap(LSN.init) ?? .zero
            return [.commit(commitLSN: message.lsn.flatMap(LSN.init) ?? end, endLSN: end, commitTime: time)]
        case "I", "U", "D":
            guard let schema = message.schema, let table = message.table else { throw ClientError("wal2json: change without a table") }
            let new = message.columns ?? []
            let old = message.identity ?? []
            let keys = Set((message.pk ?? []).map(\.name))
            // REPLICA IDENTITY FULL sends every old column, the primary key's too: the identity
            // is then more than the key (or there is no key).
            let full = !old.isEmpty && (keys.isEmpty || Set(old.map(\.name)) != keys)
            var names: [String] = []
            for column in new + old where !names.contains(column.name) { names.append(column.name) }
            let keyNames = message.action == "I" || full ? keys : Set(old.map(\.name))
            let (id, relation) = relationFor(schema: schema, table: table, names: names, keys: keyNames, full: full)
            var out: [PgOutputMessage] = relation.map { [.relation($0)] } ?? []
            func tuple(_ columns: [Column], missing: TupleValue) -> [TupleValue] {
                names.map { name in columns.first { $0.name == name }?.value ?? missing }
            }
            switch message.action {
            case "I": out.append(.insert(relation: id, new: tuple(new, missing: .null)))
            case "U": out.append(.update(relation: id, old: old.isEmpty ? nil : tuple(old, missing: .unchangedToast),
                                         oldIsKeyOnly: !full, new: tuple(new, missing: .unchangedToast)))
            default: out.append(.delete(relation: id, old: tuple(old, missing: .unchangedToast), oldIsKeyOnly: !full))
            }
            return out
        case "T":
            guard let schema = message.schema, let table = message.table else { throw ClientError("wal2json: truncate without a table") }
            let (id, relation) = relationFor(schema: schema, table: table, names: [], keys: [], full: false)
            return (relation.map { [PgOutputMessage.relation($0)] } ?? []) + [.truncate(relations: [id], cascade: false, restartIdentity: false)]
        default:
            return []  // messages ("M") and anything newer
        }
    }

    /// The relation of this table and column shape; the description is returned only the
    /// first time, when it must be emitted.
    private func relationFor(schema: String, table: String, names: [String], keys: Set<String>, full: Bool) -> (UInt32, RelationDescription?) {
        let shape = "\(schema)\u{0}\(table)\u{0}\(names.joined(separator: "\u{1}"))\u{0}\(keys.sorted().joined(separator: "\u{1}"))\u{0}\(full)"
        if let id = relationIDs[shape] { return (id, nil) }
        let id = UInt32(relationIDs.count + 1)
        relationIDs[shape] = id
        let columns = names.map { RelationColumn(name: $0, typeOID: 0, typeModifier: -1, isKey: keys.contains($0)) }
        return (id, RelationDescription(id: id, schema: schema, name: table, replicaIdentity: full ? "f" : "d", columns: columns))
    }

    /// `2026-11-22 01:20:15.927605+00` (the server's timestamptz output).
    static func parseTimestamp(_ text: String) -> Date? {
        var main = text
        var fraction = 0.0
        if let dot = text.firstIndex(of: ".") {
            let afterDot = text[text.index(after: dot)...]
            let digits = afterDot.prefix { $0.isNumber }
            fraction = Double("0." + digits) ?? 0
            main = String(text[..<dot]) + String(afterDot.dropFirst(digits.count))
        }
        if main.range(of: #"[+-]\d\d$"#, options: .regularExpression) != nil { main += ":00" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withTimeZone, .withSpaceBetweenDateAndTime]
        return formatter.date(from: main).map { $0.addingTimeInterval(fraction) }
    }
}

/// A small JSON reader that keeps numbers as the text they were written as.
struct JSONReader {
    enum Value {
        /// Objects and arrays keep their text too: wal2json may write a json value as JSON.
        case object([(String, Value)], raw: String), array([Value], raw: String), string(String), number(String), bool(Bool), null

        var text: String? {
            switch self {
            case .string(let s), .number(let s): return s
            case .bool(let b): return b ? "true" : "false"
            default: return nil
            }
        }

        var tupleValue: TupleValue {
            switch self {
            case .null: return .null
            case .string(let s), .number(let s): return .text(s)
            case .bool(let b): return .text(b ? "true" : "false")
            case .object(_, let raw), .array(_, let raw): return .text(raw)
            }
        }
    }

    let bytes: [UInt8]
    var offset = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    private mutating func skipSpace() {
        while offset < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[offset]) { offset += 1 }
    }

    private func fail(_ what: String) -> ClientError { ClientError("JSON: \(what) at byte \(offset)") }

    mutating func value() throws -> Value {
        skipSpace()
        guard offset < bytes.count else { throw fail("unexpected end") }
        let start = offset
        func raw() -> String { String(decoding: bytes[start..<offset], as: UTF8.self) }
        switch bytes[offset] {
        case UInt8(ascii: "{"):
            offset += 1
            var fields: [(String, Value)] = []
            skipSpace()
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "}") { offset += 1; return .object(fields, raw: raw()) }
            while true {
                skipSpace()
                guard case .string(let key) = try value() else { throw fail("object key") }
                skipSpace()
                guard offset < bytes.count, bytes[offset] == UInt8(ascii: ":") else { throw fail("':' expected") }
                offset += 1
                fields.append((key, try value()))
                skipSpace()
                guard offset < bytes.count else { throw fail("unexpected end") }
                if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
                if bytes[offset] == UInt8(ascii: "}") { offset += 1; return .object(fields, raw: raw()) }
                throw fail("',' or '}' expected")
            }
        case UInt8(ascii: "["):
            offset += 1
            var items: [Value] = []
            skipSpace()
            if offset < bytes.count, bytes[offset] == UInt8(ascii: "]") { offset += 1; return .array(items, raw: raw()) }
            while true {
                items.append(try value())
                skipSpace()
                guard offset < bytes.count else { throw fail("unexpected end") }
                if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
                if bytes[offset] == UInt8(ascii: "]") { offset += 1; return .array(items, raw: raw()) }
                throw fail("',' or ']' expected")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        default:
            // A number, true/false/null, or a bare word (NaN, Infinity) kept as its text.
            while offset < bytes.count, !",]} \t\r\n".utf8.contains(bytes[offset]) { offset += 1 }
            let word = String(decoding: bytes[start..<offset], as: UTF8.self)
            switch word {
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "null": return .null
            case "": throw fail("value expected")
            default: return .number(word)
            }
        }
    }

    private mutating func string() throws -> String {
        offset += 1  // opening quote
        var out: [UInt8] = []
        while offset < bytes.count {
            let byte = bytes[offset]
            offset += 1
            if byte == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            guard byte == UInt8(ascii: "\\") else { out.append(byte); continue }
            guard offset < bytes.count else { break }
            let escape = bytes[offset]
            offset += 1
            switch escape {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar), offset + 1 < bytes.count,
                   bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u") {
                    offset += 2
                    let low = try hex4()
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                out.append(contentsOf: Array(String(UnicodeScalar(scalar).map(Character.init) ?? "\u{FFFD}").utf8))
            default: out.append(escape)  // \" \\ \/
            }
        }
        throw fail("unterminated string")
    }

    private mutating func hex4() throws -> UInt32 {
        guard offset + 4 <= bytes.count, let value = UInt32(String(decoding: bytes[offset..<offset + 4], as: UTF8.self), radix: 16) else {
            throw fail("bad \\u escape")
        }
        offset += 4
        return value
    }
}
