import CLibPQ
import Foundation

/// A log sequence number (`0/16B3748`).
public struct LSN: Comparable, Hashable, Sendable, CustomStringConvertible, Codable {
    public let value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public init?(_ text: String) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let hi = UInt64(parts[0], radix: 16), let lo = UInt64(parts[1], radix: 16) else { return nil }
        value = hi << 32 | lo
    }
    public static let zero = LSN(0)
    public var description: String { String(format: "%X/%X", UInt32(value >> 32), UInt32(value & 0xFFFF_FFFF)) }
    public static func < (a: LSN, b: LSN) -> Bool { a.value < b.value }
}

/// A logical replication slot created with an exported snapshot.
public struct CreatedSlot: Sendable {
    public let name: String
    /// The LSN from which the slot's changes follow the snapshot.
    public let consistentPoint: LSN
    /// Usable with `SET TRANSACTION SNAPSHOT` while the creating session stays idle.
    public let snapshotName: String?
    public let plugin: String
}

/// What the server sends inside a CopyBoth replication stream.
public enum ReplicationMessage: Sendable {
    /// WAL data: for logical slots, one output-plugin message.
    case data(start: LSN, end: LSN, serverTime: Date, payload: [UInt8])
    /// A keepalive; when `replyRequested` the server wants a status update now.
    case keepalive(end: LSN, serverTime: Date, replyRequested: Bool)
}

/// A replication connection (`replication=database`): creates logical slots with exported
/// snapshots and streams changes with `START_REPLICATION`. Like `Connection`, it blocks: run
/// it on a thread of its own.
public final class ReplicationConnection: @unchecked Sendable {
    private let handle: OpaquePointer
    public let endpoint: ConnectionString
    private let secrets: [String]
    private var streaming = false

    public static func open(_ endpoint: ConnectionString, applicationName: String = "pgpreflight-replication") throws -> ReplicationConnection {
        // The walsender renders the values it sends with its session's settings: pinned, so a
        // source whose defaults differ (DateStyle, float digits before 12, …) sends exact,
        // unambiguous text.
        let pinned = (endpoint.value("options").map { $0 + " " } ?? "") + Self.pinnedOptions
        let replicationEndpoint = endpoint.with("replication", "database").with("options", pinned)
        let pairs = replicationEndpoint.keywordsAndValues(defaults: [("application_name", applicationName), ("connect_timeout", "10")])
        let keywords = pairs.map { strdup($0.0) } + [nil]
        let values = pairs.map { strdup($0.1) } + [nil]
        defer { keywords.forEach { free($0) }; values.forEach { free($0) } }
        let handle = keywords.map { UnsafePointer($0) }.withUnsafeBufferPointer { k in
            values.map { UnsafePointer($0) }.withUnsafeBufferPointer { v in PQconnectdbParams(k.baseAddress, v.baseAddress, 1) }
        }
        guard let handle else { throw ConnectionFailure(cause: .other, message: "out of memory", endpoint: endpoint.description) }
        if PQstatus(handle) != CONNECTION_OK {
            let text = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
            let reached = ReachedEndpoint(handle)
            PQfinish(handle)
            throw ConnectionFailure(cause: ConnectionFailure.classify(text), message: Redaction.scrub(text, secrets: endpoint.secrets),
                                    endpoint: reached?.description ?? endpoint.description, reached: reached)
        }
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        return ReplicationConnection(handle: handle, endpoint: endpoint)
    }

    public static let pinnedOptions = "-c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex -c TimeZone=UTC"

    private init(handle: OpaquePointer, endpoint: ConnectionString) {
        self.handle = handle
        self.endpoint = endpoint
        self.secrets = endpoint.secrets
    }

    deinit { PQfinish(handle) }

    public var serverVersionNumber: Int { Int(PQserverVersion(handle)) }

    /// Creates a logical slot and exports its snapshot. The snapshot stays usable until this
    /// connection runs its next command, so copy the data before `startReplication`.
    public func createLogicalSlot(_ name: String, plugin: String = "pgoutput", exportSnapshot: Bool = true) throws -> CreatedSlot {
        let quoted = try quoteIdentifier(name)
        let snapshotClause: String
        if serverVersionNumber < 100000 {
            snapshotClause = ""  // 9.4–9.6 always export the snapshot and know no option for it
        } else if serverVersionNumber >= 150000 {
            snapshotClause = "(SNAPSHOT '\(exportSnapshot ? "export" : "nothing")')"
        } else {
            snapshotClause = exportSnapshot ? "EXPORT_SNAPSHOT" : "NOEXPORT_SNAPSHOT"
        }
        let rows = try simpleQuery("CREATE_REPLICATION_SLOT \(quoted) LOGICAL \(plugin) \(snapshotClause)")
        guard let row = rows.first, row.count >= 4, let point = row[1].flatMap(LSN.init) else {
            throw ClientError("CREATE_REPLICATION_SLOT returned no consistent point")
        }
        return CreatedSlot(name: row[0] ?? name, consistentPoint: point, snapshotName: row[2], plugin: row[3] ?? plugin)
    }

    /// `IDENTIFY_SYSTEM`: the server's current WAL flush position.
    public func currentFlushPosition() throws -> LSN {
        let rows = try simpleQuery("IDENTIFY_SYSTEM")
        guard let text = rows.first?[2], let lsn = LSN(text) else { throw ClientError("IDENTIFY_SYSTEM returned no position") }
        return lsn
    }

    /// Starts streaming a logical slot from `start` with the given plugin options
    /// (e.g. `["proto_version": "1", "publication_names": "\"pub\""]`).
    public func startReplication(slot: String, start: LSN, options: [(String, String)]) throws {
        var sql = "START_REPLICATION SLOT \(try quoteIdentifier(slot)) LOGICAL \(start)"
        if !options.isEmpty {
            sql += " (" + options.map { "\"\($0.0)\" '\($0.1.replacingOccurrences(of: "'", with: "''"))'" }.joined(separator: ", ") + ")"
        }
        guard let result = PQexec(handle, sql) else { throw ClientError(lastError) }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COPY_BOTH else {
            throw ClientError("START_REPLICATION failed: \(lastError)")
        }
        streaming = true
    }

    /// Waits up to `timeout` seconds for the next message; nil when none arrived in time.
    /// Throws when the stream ends or breaks.
    public func next(timeout: TimeInterval) throws -> ReplicationMessage? {
        let deadline = Date().addingTimeInterval(timeout)
        var polled = false
        while true {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(handle, &buffer, 1)
            if length > 0, let buffer {
                defer { PQfreemem(buffer) }
                let bytes = UnsafeRawBufferPointer(start: buffer, count: Int(length))
                if let message = Self.parse(bytes) { return message }
                continue
            }
            if length == -1 { throw ClientError("replication stream ended: \(lastError)") }
            if length == -2 { throw ClientError("replication stream failed: \(lastError)") }
            // Nothing buffered: read what the socket already holds, else wait for it.
            if !polled {
                polled = true
                if PQconsumeInput(handle) == 0 { throw ClientError("replication stream failed: \(lastError)") }
                continue
            }
            polled = false
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { return nil }
            var pfd = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
            _ = poll(&pfd, 1, Int32(min(remaining, 1) * 1000))
            if PQconsumeInput(handle) == 0 { throw ClientError("replication stream failed: \(lastError)") }
        }
    }

    /// Sends a standby status update: `written`/`flushed`/`applied` tell the server what it
    /// may forget (the slot's confirmed position advances to `flushed`).
    public func sendStatus(written: LSN, flushed: LSN, applied: LSN, replyRequested: Bool = false) throws {
        var message: [UInt8] = [UInt8(ascii: "r")]
        for value in [written.value, flushed.value, applied.value, UInt64(bitPattern: Self.postgresMicroseconds(Date()))] {
            withUnsafeBytes(of: value.bigEndian) { message.append(contentsOf: $0) }
        }
        message.append(replyRequested ? 1 : 0)
        let sent = message.withUnsafeBytes { PQputCopyData(handle, $0.baseAddress!.assumingMemoryBound(to: CChar.self), Int32($0.count)) }
        guard sent == 1, PQflush(handle) == 0 else { throw ClientError("could not send status: \(lastError)") }
    }

    /// Ends the stream (CopyDone) so the connection can run commands again.
    public func stopStreaming() {
        guard streaming else { return }
        streaming = false
        _ = PQputCopyEnd(handle, nil)
        _ = PQflush(handle)
        // Drain what the server still sends until it acknowledges the end of the copy.
        var buffer: UnsafeMutablePointer<CChar>?
        while PQgetCopyData(handle, &buffer, 0) > 0 { PQfreemem(buffer) }
        while let result = PQgetResult(handle) { PQclear(result) }
    }

    public func close() { stopStreaming() }

    // MARK: Internals

    private var lastError: String {
        Redaction.scrub(String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines), secrets: secrets)
    }

    private func quoteIdentifier(_ name: String) throws -> String {
        guard let escaped = PQescapeIdentifier(handle, name, name.utf8.count) else { throw ClientError(lastError) }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    private func simpleQuery(_ sql: String) throws -> [[String?]] {
        guard let result = PQexec(handle, sql) else { throw ClientError(lastError) }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else {
            let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? "XX000"
            let message = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) } ?? lastError
            throw ServerError(sqlState: sqlState, severity: "ERROR", message: Redaction.scrub(message, secrets: secrets), detail: nil, hint: nil)
        }
        return (0..<PQntuples(result)).map { r in
            (0..<PQnfields(result)).map { c in
                PQgetisnull(result, r, c) == 1 ? nil : String(cString: PQgetvalue(result, r, c))
            }
        }
    }

    /// Microseconds since 2000-01-01, PostgreSQL's epoch.
    static func postgresMicroseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 - 946_684_800) * 1_000_000)
    }

    static func date(fromPostgresMicroseconds micros: Int64) -> Date {
        Date(timeIntervalSince1970: Double(micros) / 1_000_000 + 946_684_800)
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) -> ReplicationMessage? {
        var reader = ByteReader(bytes: Array(bytes))
        switch reader.uint8() {
        case UInt8(ascii: "w"):
            let start = LSN(reader.uint64()), end = LSN(reader.uint64())
            let time = date(fromPostgresMicroseconds: Int64(bitPattern: reader.uint64()))
            return .data(start: start, end: end, serverTime: time, payload: reader.rest())
        case UInt8(ascii: "k"):
            let end = LSN(reader.uint64())
            let time = date(fromPostgresMicroseconds: Int64(bitPattern: reader.uint64()))
            return .keepalive(end: end, serverTime: time, replyRequested: reader.uint8() == 1)
        default:
            return nil
        }
    }
}

/// Reads big-endian integers and strings from a protocol message.
public struct ByteReader {
    let bytes: [UInt8]
    public private(set) var offset = 0
    public init(bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }

    public mutating func uint8() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }
    public mutating func uint16() -> UInt16 { UInt16(uint8()) << 8 | UInt16(uint8()) }
    public mutating func uint32() -> UInt32 { UInt32(uint16()) << 16 | UInt32(uint16()) }
    public mutating func uint64() -> UInt64 { UInt64(uint32()) << 32 | UInt64(uint32()) }
    public mutating func int32() -> Int32 { Int32(bitPattern: uint32()) }
    public mutating func bytes(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, offset + max(0, count))
        defer { offset = end }
        return Array(bytes[offset..<end])
    }
    /// A NUL-terminated string.
    public mutating func cString() -> String {
        let start = offset
        while offset < bytes.count && bytes[offset] != 0 { offset += 1 }
        let text = String(decoding: bytes[start..<offset], as: UTF8.self)
        offset = min(bytes.count, offset + 1)
        return text
    }
    public mutating func rest() -> [UInt8] { bytes(bytes.count - offset) }
}
