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
        ("format-version", "2"), ("include-timestamp", "1"), ("include-pk", "1"), ("include-lsn", "1"), ("include-types", "0"),
    ]

    private var relationIDs: [String: UInt32] = [:]

    public init() {}

    private struct Column: Decodable {
        let name: String
        let value: Cell?
    }

    private enum Cell: Decodable {
        case text(String), number(Decimal), bool(Bool), null
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let d = try? c.decode(Decimal.self) { self = .number(d) }
            else { self = .text(try c.decode(String.self)) }
        }
        var tupleValue: TupleValue {
            switch self {
            case .null: return .null
            case .text(let t): return .text(t)
            case .bool(let b): return .text(b ? "true" : "false")
            case .number(let d): return .text("\(d)")
            }
        }
    }

    private struct Message: Decodable {
        let action: String
        let timestamp: String?
        let lsn: String?
        let nextlsn: String?
        let schema: String?
        let table: String?
        let columns: [Column]?
        let identity: [Column]?
        let pk: [Column]?
    }

    public func decode(_ payload: [UInt8]) throws -> [PgOutputMessage] {
        let message: Message
        do { message = try JSONDecoder().decode(Message.self, from: Data(payload)) } catch {
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
            let full = keys.isEmpty && !old.isEmpty
            var names: [String] = []
            for column in new + old where !names.contains(column.name) { names.append(column.name) }
            let keyNames = message.action == "I" ? keys : Set(old.map(\.name))
            let (id, relation) = relationFor(schema: schema, table: table, names: names, keys: keyNames, full: full)
            var out: [PgOutputMessage] = relation.map { [.relation($0)] } ?? []
            func tuple(_ columns: [Column], missing: TupleValue) -> [TupleValue] {
                names.map { name in columns.first { $0.name == name }.map { $0.value?.tupleValue ?? .null } ?? missing }
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
