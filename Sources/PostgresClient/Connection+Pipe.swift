import CLibPQ
import Foundation

/// The result of streaming one `COPY … TO STDOUT` into one `COPY … FROM STDIN`.
public struct CopyPipeResult: Sendable {
    /// Rows the source sent (its `COPY n` tag: the table as seen by the source's snapshot).
    public let sourceRows: Int
    /// Rows the target stored (its `COPY n` tag).
    public let targetRows: Int
    /// Bytes of COPY data that went through.
    public let bytes: Int
}

/// Thrown when the progress callback of `pipeCopy` asks to stop.
public struct CopyPipeStopped: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "copy stopped" }
}

extension Connection {
    /// Streams `copyOutSQL` (a `COPY … TO STDOUT` run on this session) into `copyInSQL` (a
    /// `COPY … FROM STDIN` run on `target`) chunk by chunk: nothing is buffered beyond the row
    /// libpq hands over. `progress` is called with the bytes moved since its last call (about
    /// every MB); returning false stops the copy, aborts the target COPY and throws
    /// `CopyPipeStopped` (the source session is then unusable mid-COPY: close it).
    public func pipeCopy(_ copyOutSQL: String, into target: Connection, _ copyInSQL: String,
                         progress: (Int) -> Bool) throws -> CopyPipeResult {
        let writer = try target.copyIn(copyInSQL)
        guard let start = PQexec(handle, copyOutSQL) else {
            writer.abort(reason: "source failed")
            throw ClientError(lastErrorMessage)
        }
        if PQresultStatus(start) != PGRES_COPY_OUT {
            writer.abort(reason: "source failed")
            _ = try consume(start, expecting: [PGRES_COPY_OUT])
        }
        PQclear(start)
        var bytes = 0
        var unreported = 0
        // The source sends one CopyData message per row; the target reads COPY data as a
        // stream, so rows go out in batches of about 64 kB: one message (and one libpq call)
        // instead of hundreds, which the target's COPY FROM spends less time taking apart.
        let batchCapacity = 1 << 16
        let batch = UnsafeMutablePointer<CChar>.allocate(capacity: batchCapacity)
        defer { batch.deallocate() }
        var batched = 0
        func send(_ data: UnsafePointer<CChar>, _ count: Int) throws {
            if PQputCopyData(target.handle, data, Int32(count)) != 1 {
                let message = target.lastErrorMessage
                writer.abort(reason: "write failed")
                throw ClientError("COPY into the target failed: \(message)")
            }
        }
        while true {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(handle, &buffer, 0)
            if length > 0, let buffer {
                defer { PQfreemem(buffer) }
                let count = Int(length)
                if batched + count > batchCapacity {
                    try send(batch, batched)
                    batched = 0
                }
                if count >= batchCapacity {
                    try send(buffer, count)
                } else {
                    (batch + batched).update(from: buffer, count: count)
                    batched += count
                }
                bytes += count
                unreported += count
                if unreported >= 1 << 20 {
                    if !progress(unreported) {
                        writer.abort(reason: "canceled")
                        throw CopyPipeStopped()
                    }
                    unreported = 0
                }
            } else if length == -1 {
                break
            } else {
                let message = lastErrorMessage
                writer.abort(reason: "source failed")
                throw ClientError("COPY from the source failed: \(message)")
            }
        }
        if batched > 0 { try send(batch, batched) }
        var sourceRows = 0
        var sourceError: Error?
        while let result = PQgetResult(handle) {
            do { sourceRows = try consume(result, expecting: [PGRES_COMMAND_OK]).affectedRows ?? sourceRows }
            catch { if sourceError == nil { sourceError = error } }
        }
        if let sourceError {
            writer.abort(reason: "source failed")
            throw sourceError
        }
        let targetRows = try writer.finish()
        if unreported > 0 { _ = progress(unreported) }
        return CopyPipeResult(sourceRows: sourceRows, targetRows: targetRows, bytes: bytes)
    }
}

extension ConnectionString {
    /// What a libpq command-line tool (pg_dump, psql) needs to reach this endpoint without a
    /// password on its command line (where `ps` would show it): a connection string with the
    /// password removed and `database` set, plus the environment carrying the password.
    public func toolConnection(database: String?) -> (conninfo: String, environment: [String: String]) {
        var pairs: [(String, String)] = []
        var password: String?
        var errorMessage: UnsafeMutablePointer<CChar>?
        if let options = PQconninfoParse(raw, &errorMessage) {
            var option = options
            while let keyword = option.pointee.keyword {
                if let value = option.pointee.val {
                    let key = String(cString: keyword)
                    if key == "password" { password = String(cString: value) } else { pairs.append((key, String(cString: value))) }
                }
                option = option.advanced(by: 1)
            }
            PQconninfoFree(options)
        } else if let errorMessage { PQfreemem(errorMessage) }
        for (key, value) in overrides {
            pairs.removeAll { $0.0 == key }
            if key == "password" { password = value } else { pairs.append((key, value)) }
        }
        if let database {
            pairs.removeAll { $0.0 == "dbname" }
            pairs.append(("dbname", database))
        }
        func quoted(_ value: String) -> String {
            "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        }
        let conninfo = pairs.map { "\($0.0)=\(quoted($0.1))" }.joined(separator: " ")
        var environment = ProcessInfo.processInfo.environment
        if let password { environment["PGPASSWORD"] = password }
        return (conninfo, environment)
    }
}
