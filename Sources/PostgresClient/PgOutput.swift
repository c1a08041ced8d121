import Foundation

/// One column value of a pgoutput tuple.
public enum TupleValue: Sendable, Equatable {
    case null
    /// A TOASTed value the UPDATE did not change: the target must keep what it has.
    case unchangedToast
    case text(String)
}

public struct RelationColumn: Sendable, Equatable {
    public let name: String
    public let typeOID: UInt32
    public let typeModifier: Int32
    /// Part of the replica identity (the key used to find the row).
    public let isKey: Bool
}

public struct RelationDescription: Sendable, Equatable {
    public let id: UInt32
    public let schema: String
    public let name: String
    /// `d` default, `n` nothing, `f` full, `i` index.
    public let replicaIdentity: Character
    public let columns: [RelationColumn]
}

/// The messages of the `pgoutput` plugin (protocol versions 1 and 2), decoded. Version 2
/// (PostgreSQL 14+, `streaming 'on'`) adds the stream messages: a large transaction arrives
/// in blocks between STREAM START and STREAM STOP before its STREAM COMMIT (or ABORT); inside
/// a block every change message carries its (sub)transaction's xid after the tag.
public enum PgOutputMessage: Sendable, Equatable {
    case begin(finalLSN: LSN, commitTime: Date, xid: UInt32)
    case commit(commitLSN: LSN, endLSN: LSN, commitTime: Date)
    case relation(RelationDescription)
    case insert(relation: UInt32, new: [TupleValue])
    /// `old` is the key (`K`) or the whole old row (`O`, REPLICA IDENTITY FULL) when sent.
    case update(relation: UInt32, old: [TupleValue]?, oldIsKeyOnly: Bool, new: [TupleValue])
    case delete(relation: UInt32, old: [TupleValue], oldIsKeyOnly: Bool)
    case truncate(relations: [UInt32], cascade: Bool, restartIdentity: Bool)
    case origin(name: String, lsn: LSN)
    case type(oid: UInt32, schema: String, name: String)
    case message(prefix: String, content: [UInt8], transactional: Bool)
    case streamStart(xid: UInt32, firstSegment: Bool)
    case streamStop
    case streamCommit(xid: UInt32, commitLSN: LSN, endLSN: LSN, commitTime: Date)
    /// `subxid == xid`: the whole transaction; otherwise that subtransaction only.
    case streamAbort(xid: UInt32, subxid: UInt32)

    public static func decode(_ payload: [UInt8]) throws -> PgOutputMessage {
        try decode(payload, inStream: false).message
    }

    /// Decodes one message; inside a stream block (`inStream`), change messages start with
    /// the xid of the (sub)transaction that made them, returned as `xid`.
    public static func decode(_ payload: [UInt8], inStream: Bool) throws -> (message: PgOutputMessage, xid: UInt32?) {
        var r = ByteReader(bytes: payload)
        let tag = r.uint8()
        var xid: UInt32?
        if inStream, "RYIUDTM".utf8.contains(tag) { xid = r.uint32() }
        return (try decodeBody(tag, &r), xid)
    }

    private static func decodeBody(_ tag: UInt8, _ r: inout ByteReader) throws -> PgOutputMessage {
        switch tag {
        case UInt8(ascii: "S"):
            let xid = r.uint32()
            return .streamStart(xid: xid, firstSegment: r.uint8() == 1)
        case UInt8(ascii: "E"):
            return .streamStop
        case UInt8(ascii: "c"):
            let xid = r.uint32()
            _ = r.uint8()  // flags, unused
            let commit = LSN(r.uint64()), end = LSN(r.uint64())
            return .streamCommit(xid: xid, commitLSN: commit, endLSN: end,
                                 commitTime: ReplicationConnection.date(fromPostgresMicroseconds: Int64(bitPattern: r.uint64())))
        case UInt8(ascii: "A"):
            let xid = r.uint32()
            return .streamAbort(xid: xid, subxid: r.uint32())
        case UInt8(ascii: "B"):
            let lsn = LSN(r.uint64())
            let time = ReplicationConnection.date(fromPostgresMicroseconds: Int64(bitPattern: r.uint64()))
            return .begin(finalLSN: lsn, commitTime: time, xid: r.uint32())
        case UInt8(ascii: "C"):
            _ = r.uint8()  // flags, unused
            let commit = LSN(r.uint64()), end = LSN(r.uint64())
            return .commit(commitLSN: commit, endLSN: end,
                           commitTime: ReplicationConnection.date(fromPostgresMicroseconds: Int64(bitPattern: r.uint64())))
        case UInt8(ascii: "R"):
            let id = r.uint32()
            let schema = r.cString(), name = r.cString()
            let identity = Character(UnicodeScalar(r.uint8()))
            let count = Int(r.uint16())
            var columns: [RelationColumn] = []
            for _ in 0..<count {
                let flags = r.uint8()
                let columnName = r.cString()
                let oid = r.uint32()
                columns.append(RelationColumn(name: columnName, typeOID: oid, typeModifier: r.int32(), isKey: flags & 1 == 1))
            }
            return .relation(RelationDescription(id: id, schema: schema, name: name, replicaIdentity: identity, columns: columns))
        case UInt8(ascii: "I"):
            let id = r.uint32()
            _ = r.uint8()  // 'N'
            return .insert(relation: id, new: try tuple(&r))
        case UInt8(ascii: "U"):
            let id = r.uint32()
            var kind = r.uint8()
            var old: [TupleValue]?
            var keyOnly = false
            if kind == UInt8(ascii: "K") || kind == UInt8(ascii: "O") {
                keyOnly = kind == UInt8(ascii: "K")
                old = try tuple(&r)
                kind = r.uint8()
            }
            guard kind == UInt8(ascii: "N") else { throw ClientError("pgoutput: malformed UPDATE") }
            return .update(relation: id, old: old, oldIsKeyOnly: keyOnly, new: try tuple(&r))
        case UInt8(ascii: "D"):
            let id = r.uint32()
            let kind = r.uint8()
            return .delete(relation: id, old: try tuple(&r), oldIsKeyOnly: kind == UInt8(ascii: "K"))
        case UInt8(ascii: "T"):
            let count = Int(r.uint32())
            let options = r.uint8()
            return .truncate(relations: (0..<count).map { _ in r.uint32() }, cascade: options & 1 != 0, restartIdentity: options & 2 != 0)
        case UInt8(ascii: "O"):
            let lsn = LSN(r.uint64())
            return .origin(name: r.cString(), lsn: lsn)
        case UInt8(ascii: "Y"):
            let oid = r.uint32()
            return .type(oid: oid, schema: r.cString(), name: r.cString())
        case UInt8(ascii: "M"):
            let transactional = r.uint8() & 1 == 1
            _ = r.uint64()
            let prefix = r.cString()
            let length = Int(r.uint32())
            return .message(prefix: prefix, content: r.bytes(length), transactional: transactional)
        default:
            throw ClientError("pgoutput: unknown message type \(Character(UnicodeScalar(tag)))")
        }
    }

    private static func tuple(_ r: inout ByteReader) throws -> [TupleValue] {
        let count = Int(r.uint16())
        var values: [TupleValue] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            switch r.uint8() {
            case UInt8(ascii: "n"): values.append(.null)
            case UInt8(ascii: "u"): values.append(.unchangedToast)
            case UInt8(ascii: "t"):
                let length = Int(r.uint32())
                values.append(.text(String(decoding: r.bytes(length), as: UTF8.self)))
            default: throw ClientError("pgoutput: malformed tuple")
            }
        }
        return values
    }
}
