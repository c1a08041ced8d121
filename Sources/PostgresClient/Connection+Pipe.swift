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

/// How a libpq command-line tool (pg_dump) reaches an endpoint with no secret on its command
/// line (where `ps` shows it to every local user) nor in its environment (readable in
/// /proc by the same user, and inherited by its children): the password goes to a private
/// password file (PGPASSFILE), `sslpassword` and the other secrets to a private service file
/// (PGSERVICEFILE), both 0600 in a 0700 directory that `remove()` deletes once the tool ended.
public final class ToolConnection: @unchecked Sendable {
    public let conninfo: String
    public let environment: [String: String]
    private let directory: URL?

    init(conninfo: String, environment: [String: String], directory: URL?) {
        self.conninfo = conninfo; self.environment = environment; self.directory = directory
    }

    /// Deletes the secret files (call it when the tool has exited).
    public func remove() { if let directory { try? FileManager.default.removeItem(at: directory) } }

    /// Keywords whose values are secrets.
    static let secretKeywords: Set<String> = ["password", "sslpassword"]
}

extension ConnectionString {
    /// What a libpq command-line tool needs to reach this endpoint (see `ToolConnection`), with
    /// `database` set. The caller removes it after the tool ended.
    public func toolConnection(database: String?) throws -> ToolConnection {
        var pairs: [(String, String)] = []
        var secrets: [(String, String)] = []
        var errorMessage: UnsafeMutablePointer<CChar>?
        if let options = PQconninfoParse(raw, &errorMessage) {
            var option = options
            while let keyword = option.pointee.keyword {
                if let value = option.pointee.val {
                    let key = String(cString: keyword)
                    if ToolConnection.secretKeywords.contains(key) { secrets.append((key, String(cString: value))) } else { pairs.append((key, String(cString: value))) }
                }
                option = option.advanced(by: 1)
            }
            PQconninfoFree(options)
        } else if let errorMessage { PQfreemem(errorMessage) }
        for (key, value) in overrides {
            pairs.removeAll { $0.0 == key }
            secrets.removeAll { $0.0 == key }
            if ToolConnection.secretKeywords.contains(key) { secrets.append((key, value)) } else { pairs.append((key, value)) }
        }
        if let database {
            pairs.removeAll { $0.0 == "dbname" }
            pairs.append(("dbname", database))
        }
        var environment = ProcessInfo.processInfo.environment
        // A password in our own environment reaches the tool through the file too.
        if let password = environment.removeValue(forKey: "PGPASSWORD"), !password.isEmpty, !secrets.contains(where: { $0.0 == "password" }) {
            secrets.append(("password", password))
        }
        func quoted(_ value: String) -> String {
            "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        }
        guard !secrets.isEmpty else {
            return ToolConnection(conninfo: pairs.map { "\($0.0)=\(quoted($0.1))" }.joined(separator: " "), environment: environment, directory: nil)
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        func write(_ text: String, _ name: String) throws -> String {
            let file = directory.appendingPathComponent(name)
            guard FileManager.default.createFile(atPath: file.path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw ConnectionFailure(cause: .other, message: "could not write a private file in \(directory.path)", endpoint: description)
            }
            return file.path
        }
        if let password = secrets.first(where: { $0.0 == "password" })?.1 {
            // host:port:database:user:password, any of each; ':' and '\' escaped.
            let escaped = password.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:")
            environment["PGPASSFILE"] = try write("*:*:*:*:\(escaped)\n", "pgpass")
        }
        let others = secrets.filter { $0.0 != "password" }
        if !others.isEmpty {
            guard !pairs.contains(where: { $0.0 == "service" }) else {
                try? FileManager.default.removeItem(at: directory)
                throw ConnectionFailure(cause: .other, message: "sslpassword together with service=: put sslpassword in that service's entry of the service file instead",
                                        endpoint: description)
            }
            // A service file's values may hold anything up to the end of the line but a newline.
            guard !others.contains(where: { $0.1.contains("\n") }) else {
                try? FileManager.default.removeItem(at: directory)
                throw ConnectionFailure(cause: .other, message: "sslpassword may not contain a newline", endpoint: description)
            }
            environment["PGSERVICEFILE"] = try write("[pgpreflight]\n" + others.map { "\($0.0)=\($0.1)\n" }.joined(), "pg_service.conf")
            pairs.append(("service", "pgpreflight"))
        }
        return ToolConnection(conninfo: pairs.map { "\($0.0)=\(quoted($0.1))" }.joined(separator: " "), environment: environment, directory: directory)
    }
}
