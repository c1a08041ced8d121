import CLibPQ
import Foundation

/// One libpq session.
///
/// **How connections run.** libpq calls block (query, COPY). Each `Connection` owns a serial
/// `DispatchQueue`, and `run(_:)` executes the blocking calls on that queue, suspending the
/// calling task meanwhile. `connect(_:)` drives libpq's non-blocking connect on a Dispatch
/// worker, polling the socket in short slices, so cancelling the task ends the attempt. Dispatch worker
/// threads are separate from Swift concurrency's cooperative pool, so dozens of connections
/// can wait on the network at once without starving other tasks. The synchronous methods
/// are for code that is already on a connection's queue (inside `run`) or on a thread of its
/// own. A connection must not be used by two threads at the same time; `run` serialises.
public final class Connection: @unchecked Sendable {
    let handle: OpaquePointer  // internal: Connection+Pipe.swift streams COPY between two sessions
    public let endpoint: ConnectionString
    private let queue: DispatchQueue
    private let secrets: [String]
    private var closed = false
    /// Made at connect time: `cancelQuery()` may be called from any thread, even while another
    /// thread waits in a libpq call on this session.
    private let cancelHandle: OpaquePointer?

    private init(handle: OpaquePointer, endpoint: ConnectionString) {
        self.handle = handle
        self.cancelHandle = PQgetCancel(handle)
        self.endpoint = endpoint
        self.secrets = endpoint.secrets
        self.queue = DispatchQueue(label: "pgpreflight.connection")
        PQsetNoticeProcessor(handle, { _, _ in }, nil)  // server notices are not our output
        OpenSessions.add(self)
    }

    deinit {
        if !closed { PQfinish(handle) }
        if let cancelHandle { PQfreeCancel(cancelHandle) }
    }

    /// Asks the server to cancel the statement this session is running (PQcancel), from any
    /// thread; the waiting call then fails with SQLSTATE 57014. Nothing happens when idle.
    public func cancelQuery() {
        guard let cancelHandle else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancelHandle, &buffer, Int32(buffer.count))
    }

    // MARK: Opening

    /// Opens a session synchronously. Throws `ConnectionFailure` with a classified cause.
    public static func open(_ endpoint: ConnectionString, connectTimeout: Int = 10,
                            applicationName: String = "pgpreflight") throws -> Connection {
        try establish(endpoint, connectTimeout: connectTimeout, applicationName: applicationName, cancelled: nil)
    }

    /// Opens a session without blocking the cooperative pool. Cancelling the task ends the
    /// attempt within one poll slice (100 ms) with a `ConnectionFailure`, so a server that
    /// accepts TCP and never answers holds its Dispatch thread only until the caller gives up.
    public static func connect(_ endpoint: ConnectionString, connectTimeout: Int = 10,
                               applicationName: String = "pgpreflight") async throws -> Connection {
        let cancelled = CancelFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(with: Result {
                        try establish(endpoint, connectTimeout: connectTimeout, applicationName: applicationName, cancelled: cancelled)
                    })
                }
            }
        } onCancel: { cancelled.set() }
    }

    /// The one connect loop: PQconnectStartParams, then PQconnectPoll driven by poll(2) on the
    /// session's socket in short slices, checking `cancelled` between slices.
    ///
    /// libpq enforces connect_timeout only inside its blocking PQconnectdb, so this loop does it
    /// the same way: at least 2 s, restarted whenever libpq moves to another host or address,
    /// and "timeout expired" appended to libpq's "connection to server at … failed: " text.
    /// Through its public API libpq cannot be told to go on to the next host after a timeout,
    /// so a connection string listing several hosts uses PQconnectdbParams and keeps libpq's
    /// failover exactly (not cancellable).
    private static func establish(_ endpoint: ConnectionString, connectTimeout: Int, applicationName: String,
                                  cancelled: CancelFlag?) throws -> Connection {
        var defaults: [(String, String)] = [("application_name", applicationName)]
        if ProcessInfo.processInfo.environment["PGCONNECT_TIMEOUT"] == nil {
            defaults.append(("connect_timeout", String(connectTimeout)))
        }
        let pairs = endpoint.keywordsAndValues(defaults: defaults)
        if cancelled?.isSet == true {
            throw ConnectionFailure(cause: .other, message: "connection attempt cancelled before it started", endpoint: endpoint.description)
        }
        if endpoint.listsSeveralHosts { return try openBlocking(pairs, endpoint: endpoint) }
        func failure(_ handle: OpaquePointer, appending suffix: String = "") -> ConnectionFailure {
            let text = (String(cString: PQerrorMessage(handle)) + suffix).trimmingCharacters(in: .whitespacesAndNewlines)
            let reached = ReachedEndpoint(handle)
            PQfinish(handle)
            let message = Redaction.scrub(text, secrets: endpoint.secrets)
            return ConnectionFailure(cause: ConnectionFailure.classify(text), message: message,
                                     endpoint: reached?.description ?? endpoint.description, reached: reached)
        }
        let started: OpaquePointer? = withCStrings(pairs.map(\.0)) { keywords in
            withCStrings(pairs.map(\.1)) { values in PQconnectStartParams(keywords, values, 1) }
        }
        guard let handle = started else {
            throw ConnectionFailure(cause: .other, message: "out of memory", endpoint: endpoint.description)
        }
        if PQstatus(handle) == CONNECTION_BAD { throw failure(handle) }

        let timeout: Int
        switch Self.connectTimeout(of: handle) {
        case .failure(let error): PQfinish(handle); throw ConnectionFailure(cause: .other, message: error.message, endpoint: endpoint.description)
        case .success(let seconds): timeout = seconds
        }

        var state = PGRES_POLLING_WRITING  // libpq: just after PQconnectStart, wait for writing
        var attempt: (socket: Int32, host: String, port: String)?
        var expiry: ContinuousClock.Instant?
        while true {
            if state == PGRES_POLLING_OK { return Connection(handle: handle, endpoint: endpoint) }
            if state == PGRES_POLLING_FAILED { throw failure(handle) }
            let socket = PQsocket(handle)
            let current = (socket: socket, host: PQhost(handle).map { String(cString: $0) } ?? "",
                           port: PQport(handle).map { String(cString: $0) } ?? "")
            if timeout > 0, attempt.map({ $0 != current }) ?? true {
                expiry = .now + .seconds(timeout)
                attempt = current
            }
            guard socket >= 0 else { state = PQconnectPoll(handle); continue }  // libpq moves on or fails
            var descriptor = pollfd(fd: socket, events: Int16(state == PGRES_POLLING_READING ? POLLIN : POLLOUT), revents: 0)
            while true {
                if cancelled?.isSet == true {
                    throw failure(handle, appending: "connection attempt cancelled (the caller stopped waiting)")
                }
                var slice = 100
                if let expiry {
                    let left = ContinuousClock.now.duration(to: expiry)
                    if left <= .zero { throw failure(handle, appending: "timeout expired") }
                    let (seconds, attoseconds) = left.components
                    slice = min(slice, max(1, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000) + 1))
                }
                let ready = poll(&descriptor, 1, Int32(slice))
                if ready > 0 { break }
                if ready < 0 && errno != EINTR {
                    throw failure(handle, appending: "poll() failed: \(String(cString: strerror(errno)))")
                }
            }
            state = PQconnectPoll(handle)
        }
    }

    private static func openBlocking(_ pairs: [(String, String)], endpoint: ConnectionString) throws -> Connection {
        let opened: OpaquePointer? = withCStrings(pairs.map(\.0)) { keywords in
            withCStrings(pairs.map(\.1)) { values in PQconnectdbParams(keywords, values, 1) }
        }
        guard let handle = opened else {
            throw ConnectionFailure(cause: .other, message: "out of memory", endpoint: endpoint.description)
        }
        if PQstatus(handle) != CONNECTION_OK {
            let text = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
            let reached = ReachedEndpoint(handle)
            PQfinish(handle)
            let message = Redaction.scrub(text, secrets: endpoint.secrets)
            throw ConnectionFailure(cause: ConnectionFailure.classify(text), message: message,
                                    endpoint: reached?.description ?? endpoint.description, reached: reached)
        }
        return Connection(handle: handle, endpoint: endpoint)
    }

    /// connect_timeout as libpq resolved it (keywords, then PGCONNECT_TIMEOUT), with libpq's
    /// rules: none when unset, 0 or negative; at least 2 s; a non-integer is an error.
    private static func connectTimeout(of handle: OpaquePointer) -> Result<Int, ClientError> {
        guard let text = option("connect_timeout", of: handle)?.trimmingCharacters(in: .whitespaces), !text.isEmpty else {
            return .success(0)
        }
        guard let seconds = Int(text) else {
            return .failure(ClientError("invalid integer value \"\(text)\" for connection option \"connect_timeout\""))
        }
        return .success(seconds <= 0 ? 0 : max(2, seconds))
    }

    private static func option(_ keyword: String, of handle: OpaquePointer) -> String? {
        guard let options = PQconninfo(handle) else { return nil }
        defer { PQconninfoFree(options) }
        var option = options
        while let name = option.pointee.keyword {
            if String(cString: name) == keyword { return option.pointee.val.map { String(cString: $0) } }
            option = option.advanced(by: 1)
        }
        return nil
    }

    /// Runs `body` on this connection's own queue, off the cooperative pool.
    public func run<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body(self) }) }
        }
    }

    public func close() {
        guard !closed else { return }
        closed = true
        OpenSessions.remove(self) { PQfinish(handle) }
    }

    // MARK: Facts about the session

    /// `server_version_num`, e.g. 150008.
    public var serverVersionNumber: Int { Int(PQserverVersion(handle)) }
    public var serverVersion: String { parameterStatus("server_version") ?? String(serverVersionNumber) }
    public var isEncrypted: Bool { PQsslInUse(handle) == 1 }
    public var backendPID: Int { Int(PQbackendPID(handle)) }
    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// The server libpq actually reached: after a service file (`service=name`), PG* variables
    /// and host lists, which `endpoint` alone cannot tell. Messages name this.
    public var reached: ReachedEndpoint {
        ReachedEndpoint(handle) ?? ReachedEndpoint(host: endpoint.host, port: endpoint.port, database: endpoint.database ?? "", user: endpoint.user)
    }

    public func parameterStatus(_ name: String) -> String? {
        PQparameterStatus(handle, name).map { String(cString: $0) }
    }

    // MARK: Quoting

    /// Quotes an identifier with `PQescapeIdentifier` (adds double quotes when needed... always).
    public func quoteIdentifier(_ name: String) throws -> String {
        let utf8 = Array(name.utf8)
        guard let escaped = utf8.withUnsafeBufferPointer({ buf in
            buf.withMemoryRebound(to: CChar.self) { PQescapeIdentifier(handle, $0.baseAddress, $0.count) }
        }) else { throw ClientError(lastErrorMessage) }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    /// `schema.name`, each part quoted.
    public func quoteQualified(_ schema: String, _ name: String) throws -> String {
        try "\(quoteIdentifier(schema)).\(quoteIdentifier(name))"
    }

    /// Quotes a literal with `PQescapeLiteral`. Prefer bound parameters; this is for DDL,
    /// which cannot take parameters.
    public func quoteLiteral(_ value: String) throws -> String {
        let utf8 = Array(value.utf8)
        guard let escaped = utf8.withUnsafeBufferPointer({ buf in
            buf.withMemoryRebound(to: CChar.self) { PQescapeLiteral(handle, $0.baseAddress, $0.count) }
        }) else { throw ClientError(lastErrorMessage) }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    // MARK: Queries

    /// Runs one statement with bound parameters and returns its rows.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any SQLParameter] = []) throws -> QueryResult {
        let values = parameters.map(\.sqlValue)
        let result = try withParameterArrays(values) { types, pointers, lengths, formats in
            PQexecParams(handle, sql, Int32(values.count), types, pointers, lengths, formats, 0)
        }
        return try consume(result, expecting: [PGRES_TUPLES_OK, PGRES_COMMAND_OK])
    }

    @discardableResult
    public func query(_ sql: String, _ parameters: any SQLParameter...) throws -> QueryResult {
        try query(sql, parameters)
    }

    /// Runs one or more statements without parameters (simple query protocol), e.g. DDL scripts.
    public func execute(_ sql: String) throws {
        guard PQsendQuery(handle, sql) == 1 else { throw ClientError(lastErrorMessage) }
        var firstError: Error?
        while let result = PQgetResult(handle) {
            do { _ = try consume(result, expecting: [PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY]) }
            catch { if firstError == nil { firstError = error } }
        }
        if let firstError { throw firstError }
    }

    // MARK: COPY

    /// Runs `COPY … TO STDOUT` and hands each chunk libpq returns (one row in text format, or
    /// a row's binary tuple) to `handler`, never holding the table in memory. Returns the
    /// number of bytes streamed.
    @discardableResult
    public func copyOut(_ sql: String, _ handler: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        guard let start = PQexec(handle, sql) else { throw ClientError(lastErrorMessage) }
        if PQresultStatus(start) != PGRES_COPY_OUT { _ = try consume(start, expecting: [PGRES_COPY_OUT]) }
        PQclear(start)
        var total = 0
        var handlerError: Error?
        while true {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(handle, &buffer, 0)
            if length > 0, let buffer {
                defer { PQfreemem(buffer) }
                total += Int(length)
                if handlerError == nil {
                    do { try handler(UnsafeRawBufferPointer(start: buffer, count: Int(length))) }
                    catch { handlerError = error }  // keep draining so the session stays usable
                }
            } else if length == -1 {
                break
            } else {
                throw ClientError("COPY OUT failed: \(lastErrorMessage)")
            }
        }
        while let result = PQgetResult(handle) { _ = try consume(result, expecting: [PGRES_COMMAND_OK]) }
        if let handlerError { throw handlerError }
        return total
    }

    /// Starts `COPY … FROM STDIN`; feed it with `CopyInWriter.write` and end with `finish()`.
    public func copyIn(_ sql: String) throws -> CopyInWriter {
        guard let start = PQexec(handle, sql) else { throw ClientError(lastErrorMessage) }
        if PQresultStatus(start) != PGRES_COPY_IN { _ = try consume(start, expecting: [PGRES_COPY_IN]) }
        PQclear(start)
        return CopyInWriter(connection: self)
    }

    /// Convenience: `COPY … FROM STDIN` fed by `producer`, which calls `write` for each chunk.
    @discardableResult
    public func copyIn(_ sql: String, _ producer: (CopyInWriter) throws -> Void) throws -> Int {
        let writer = try copyIn(sql)
        do { try producer(writer) } catch {
            writer.abort(reason: "\(error)")
            throw error
        }
        return try writer.finish()
    }

    fileprivate func putCopyData(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        let rc = PQputCopyData(handle, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(bytes.count))
        if rc != 1 { throw ClientError("COPY IN failed: \(lastErrorMessage)") }
    }

    fileprivate func endCopy(error: String?) throws -> Int {
        let rc = PQputCopyEnd(handle, error)
        if rc != 1 { throw ClientError("COPY IN failed: \(lastErrorMessage)") }
        var rows: Int?
        var firstError: Error?
        while let result = PQgetResult(handle) {
            do { rows = try consume(result, expecting: [PGRES_COMMAND_OK]).affectedRows ?? rows }
            catch { if firstError == nil { firstError = error } }
        }
        if let firstError { throw firstError }
        return rows ?? 0
    }

    // MARK: Internals

    var lastErrorMessage: String {
        Redaction.scrub(String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines), secrets: secrets)
    }

    func consume(_ result: OpaquePointer?, expecting statuses: [ExecStatusType]) throws -> QueryResult {
        guard let result else { throw ClientError(lastErrorMessage) }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        if !statuses.contains(status) {
            if status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR {
                func field(_ code: Int32) -> String? {
                    PQresultErrorField(result, code).map { Redaction.scrub(String(cString: $0), secrets: secrets) }
                }
                throw ServerError(
                    sqlState: field(Diag.C) ?? "XX000",
                    severity: field(Diag.V) ?? field(Diag.S) ?? "ERROR",
                    message: field(Diag.M) ?? lastErrorMessage,
                    detail: field(Diag.D),
                    hint: field(Diag.H))
            }
            throw ClientError("unexpected result status \(String(cString: PQresStatus(status))): \(lastErrorMessage)")
        }
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var rows: [Row] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 { values.append(nil); continue }
                let length = Int(PQgetlength(result, Int32(r), Int32(c)))
                let pointer = UnsafeRawPointer(PQgetvalue(result, Int32(r), Int32(c))!)
                values.append(String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self))
            }
            rows.append(Row(columns: columns, values: values))
        }
        let tuples = String(cString: PQcmdTuples(result))
        return QueryResult(columns: columns, rows: rows, affectedRows: Int(tuples))
    }

    func withParameterArrays<R>(
        _ values: [SQLValue],
        _ body: (UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R
    ) -> R {
        // Each value gets its own NUL-terminated byte buffer that lives until body returns.
        let buffers: [[UInt8]?] = values.map {
            switch $0 {
            case .null: return nil
            case .text(let s): return Array(s.utf8) + [0]
            case .bytes(let b): return b.isEmpty ? [0] : b
            }
        }
        let lengths: [Int32] = values.map {
            if case .bytes(let b) = $0 { return Int32(b.count) }
            return 0
        }
        let formats: [Int32] = values.map { if case .bytes = $0 { return 1 } else { return 0 } }
        let types: [Oid] = values.map { if case .bytes = $0 { return 17 } else { return 0 } }  // 17 = bytea
        let pointers = buffers.map { buffer -> UnsafeMutablePointer<CChar>? in
            guard let buffer else { return nil }
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: buffer.count)
            buffer.withUnsafeBytes { raw in
                _ = memcpy(p, raw.baseAddress!, buffer.count)
            }
            return p
        }
        defer { pointers.forEach { $0?.deallocate() } }
        let constPointers = pointers.map { UnsafePointer($0) }
        return types.withUnsafeBufferPointer { t in
            constPointers.withUnsafeBufferPointer { p in
                lengths.withUnsafeBufferPointer { l in
                    formats.withUnsafeBufferPointer { f in
                        body(t.baseAddress, p.baseAddress, l.baseAddress, f.baseAddress)
                    }
                }
            }
        }
    }
}

// libpq's PG_DIAG_* macros are char literals, which Swift does not import.
private enum Diag {
    static let C = Int32(UInt8(ascii: "C")), V = Int32(UInt8(ascii: "V")), S = Int32(UInt8(ascii: "S"))
    static let M = Int32(UInt8(ascii: "M")), D = Int32(UInt8(ascii: "D")), H = Int32(UInt8(ascii: "H"))
}

/// Feeds a `COPY … FROM STDIN` started with `Connection.copyIn`.
public final class CopyInWriter {
    private let connection: Connection
    private var done = false

    fileprivate init(connection: Connection) { self.connection = connection }

    public func write(_ bytes: UnsafeRawBufferPointer) throws { try connection.putCopyData(bytes) }
    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try connection.putCopyData($0) } }
    public func write(_ text: String) throws { try write(Array(text.utf8)) }

    /// Ends the COPY and returns the number of rows the server stored.
    @discardableResult
    public func finish() throws -> Int {
        done = true
        return try connection.endCopy(error: nil)
    }

    /// Ends the COPY with an error so the server rolls it back.
    public func abort(reason: String) {
        guard !done else { return }
        done = true
        _ = try? connection.endCopy(error: reason)
    }
}

/// Set from a task's cancellation handler, read by the connect loop on its Dispatch thread.
private final class CancelFlag: @unchecked Sendable {
    private var value = false
    private let lock = NSLock()
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
    defer { pointers.forEach { free($0) } }
    let constPointers = pointers.map { UnsafePointer($0) }
    return constPointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Host, port, database and user of a libpq session (PQhost, PQport, PQdb, PQuser), also of a
/// failed attempt: what libpq made of the connection string, service file and PG* variables.
public struct ReachedEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var database: String
    public var user: String?

    public init(host: String, port: Int, database: String, user: String?) {
        self.host = host; self.port = port; self.database = database; self.user = user
    }

    /// nil when libpq did not get as far as choosing a host (a malformed option, a missing service).
    init?(_ handle: OpaquePointer) {
        func text(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
            pointer.map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        guard let host = text(PQhost(handle)), let port = text(PQport(handle)).flatMap({ Int($0) }) else { return nil }
        self.init(host: host, port: port, database: text(PQdb(handle)) ?? "", user: text(PQuser(handle)))
    }

    /// `user@host:port/database`, never a password.
    public var description: String { "\(user.map { "\($0)@" } ?? "")\(host):\(port)/\(database)" }
}
