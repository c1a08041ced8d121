import Foundation

/// An error the server reported for a statement, with the fields libpq exposes.
public struct ServerError: Error, CustomStringConvertible, Sendable {
    public let sqlState: String
    public let severity: String
    public let message: String
    public let detail: String?
    public let hint: String?

    public var description: String {
        var text = "\(severity): \(message) (SQLSTATE \(sqlState))"
        if let detail { text += "; detail: \(detail)" }
        if let hint { text += "; hint: \(hint)" }
        return text
    }
}

/// Why a connection could not be opened. Each cause has its own remedy in validation reports.
public enum ConnectionFailureCause: String, Sendable, CaseIterable, Codable {
    case hostNotResolved
    case connectionRefused
    case timeout
    case rejectedByHBA          // SQLSTATE 28000
    case wrongPassword          // SQLSTATE 28P01
    case sslRequired            // the server only accepts encrypted connections
    case sslUnavailable         // the client asked for SSL and the server does not offer it
    case databaseMissing        // SQLSTATE 3D000
    case tooManyConnections     // SQLSTATE 53300
    case other
}

/// A connection that could not be opened. `message` is libpq's text with any password removed;
/// `endpoint` is the redacted connection target (user@host:port/database), as libpq resolved
/// it (a service file, PG* variables) when it got that far.
public struct ConnectionFailure: Error, CustomStringConvertible, Sendable {
    public let cause: ConnectionFailureCause
    public let message: String
    public let endpoint: String
    /// Where libpq tried to connect (PQhost/PQport/PQdb/PQuser of the failed attempt); nil when
    /// it did not get that far. Remedies name these, not the connection string's defaults.
    public var reached: ReachedEndpoint?

    public init(cause: ConnectionFailureCause, message: String, endpoint: String, reached: ReachedEndpoint? = nil) {
        self.cause = cause; self.message = message; self.endpoint = endpoint; self.reached = reached
    }

    public var description: String { "could not connect to \(endpoint): \(message)" }

    /// Classifies libpq's connection error text. libpq gives no SQLSTATE before a session
    /// exists, so the cause comes from the message wording (client messages are English
    /// unless the client locale says otherwise; we force lc_messages-independent parts).
    static func classify(_ text: String) -> ConnectionFailureCause {
        let t = text.lowercased()
        if t.contains("could not translate host name") || t.contains("name or service not known")
            || t.contains("temporary failure in name resolution") || t.contains("nodename nor servname") {
            return .hostNotResolved
        }
        if t.contains("password authentication failed") || t.contains("28p01") { return .wrongPassword }
        if t.contains("does not exist") && t.contains("database") { return .databaseMissing }
        if t.contains("too many clients") || t.contains("remaining connection slots are reserved")
            || t.contains("too many connections") {
            return .tooManyConnections
        }
        if t.contains("server does not support ssl") || t.contains("ssl is not enabled on the server") {
            return .sslUnavailable
        }
        if t.contains("no pg_hba.conf entry") && t.contains("no encryption") { return .sslRequired }
        if t.contains("pg_hba.conf") { return .rejectedByHBA }
        if t.contains("connection refused") { return .connectionRefused }
        if t.contains("timeout expired") || t.contains("timed out") { return .timeout }
        return .other
    }
}

/// Misuse of the client API or a protocol problem not reported by the server.
public struct ClientError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
