import CLibPQ
import Foundation

/// A libpq connection string or URI, as psql takes it, plus keyword overrides applied on top
/// (a database name, `replication=database`, …). libpq still applies PG* variables, `.pgpass`
/// and service files for whatever the string leaves out.
///
/// `description` is the redacted endpoint (`user@host:port/database`): it never contains a
/// password, so it is what errors and reports print.
public struct ConnectionString: Sendable, CustomStringConvertible {
    /// The text the user gave. Contains the password if the user wrote one: never print it.
    let raw: String
    private(set) var overrides: [(key: String, value: String)] = []
    private let parsed: [String: String]

    /// Parses `text` with libpq; a malformed string throws a `ClientError` whose message is
    /// libpq's reason, without the string itself.
    public init(_ text: String) throws {
        // libpq takes "" for localhost:5432: an unset variable ($SOURCE_URI in CI) would
        // silently mean the local default server.
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ClientError("empty connection string: give a URI (postgresql://user@host:port/db) or key=value pairs")
        }
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(text, &errorMessage) else {
            var reason = "invalid connection string"
            if let errorMessage {
                reason = String(cString: errorMessage).trimmingCharacters(in: .whitespacesAndNewlines)
                PQfreemem(errorMessage)
            }
            throw ClientError("malformed connection string: \(Redaction.scrub(reason, secrets: []))")
        }
        defer { PQconninfoFree(options) }
        var values: [String: String] = [:]
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { values[String(cString: keyword)] = String(cString: value) }
            option = option.advanced(by: 1)
        }
        // libpq reports a bad port only when connecting, and its default (5432) then shows in
        // messages: a port list must be numbers (one per host, or one for all).
        if let port = values["port"], !port.isEmpty,
           !port.split(separator: ",", omittingEmptySubsequences: false).allSatisfy({ $0.isEmpty || (UInt16($0) != nil && UInt16($0)! > 0) }) {
            throw ClientError("invalid port \"\(port)\": a number from 1 to 65535 (or a comma-separated list, one per host)")
        }
        raw = text
        parsed = values
    }

    /// Returns a copy whose `key` is set to `value`, whatever the original string says.
    public func with(_ key: String, _ value: String) -> ConnectionString {
        var copy = self
        copy.overrides.removeAll { $0.key == key }
        copy.overrides.append((key, value))
        return copy
    }

    public func with(database: String) -> ConnectionString { with("dbname", database) }

    public func value(_ key: String) -> String? {
        overrides.last(where: { $0.key == key })?.value ?? parsed[key]
    }

    private static let environmentFallback = ["host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE"]

    /// The value libpq would use for `key`: the string, then the PG* variable.
    public func effective(_ key: String) -> String? {
        if let v = value(key), !v.isEmpty { return v }
        if let env = Self.environmentFallback[key], let v = ProcessInfo.processInfo.environment[env], !v.isEmpty { return v }
        return nil
    }

    public var host: String { effective("host") ?? "localhost" }
    public var port: Int { Int(effective("port") ?? "") ?? 5432 }
    public var user: String? { effective("user") }
    public var database: String? { effective("dbname") ?? effective("user") }

    /// A failover list (`host=a,b`, `postgresql://a,b/db`, PGHOST=a,b).
    var listsSeveralHosts: Bool {
        [effective("host"), value("hostaddr") ?? ProcessInfo.processInfo.environment["PGHOSTADDR"]].contains { $0?.contains(",") == true }
    }

    /// The failover list as one keyword set per host, in order (host, hostaddr and port of
    /// that entry; one port for all when one is given), to override the string's lists with;
    /// `load_balance_hosts=random` shuffles it as libpq would. nil when the list has an empty
    /// entry or its counts do not match.
    var failoverHosts: [[(String, String)]]? {
        func list(_ text: String?) -> [String] { text.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) } ?? [] }
        let hosts = list(effective("host"))
        let addresses = list(value("hostaddr") ?? ProcessInfo.processInfo.environment["PGHOSTADDR"])
        let ports = list(effective("port"))
        let count = max(hosts.count, addresses.count)
        guard count > 1, hosts.isEmpty || hosts.count == count, addresses.isEmpty || addresses.count == count,
              ports.count <= 1 || ports.count == count, !(hosts + addresses + ports).contains(where: \.isEmpty) else { return nil }
        var entries = (0..<count).map { i -> [(String, String)] in
            var entry: [(String, String)] = []
            if !hosts.isEmpty { entry.append(("host", hosts[i])) }
            if !addresses.isEmpty { entry.append(("hostaddr", addresses[i])) }
            if !ports.isEmpty { entry.append(("port", ports.count == 1 ? ports[0] : ports[i])) }
            return entry
        }
        if value("load_balance_hosts") == "random" { entries.shuffle() }
        return entries
    }

    /// Secrets to strip from any message derived from this connection.
    var secrets: [String] {
        [value("password"), ProcessInfo.processInfo.environment["PGPASSWORD"]].compactMap { $0 }.filter { !$0.isEmpty }
    }

    public var description: String {
        let userPart = user.map { "\($0)@" } ?? ""
        // A service file names the host: before connecting only its name is known (an open
        // session's `reached` says where libpq went), not localhost:5432.
        if effective("host") == nil, let service = value("service") ?? ProcessInfo.processInfo.environment["PGSERVICE"], !service.isEmpty {
            return "\(userPart)service=\(service)/\(database ?? "")"
        }
        return "\(userPart)\(host):\(port)/\(database ?? "")"
    }

    /// Keyword/value arrays for PQconnectdbParams: our defaults, then the user's string
    /// (expanded by libpq), then the overrides. Later entries win.
    func keywordsAndValues(defaults: [(String, String)]) -> [(String, String)] {
        var pairs = defaults
        pairs.append(("dbname", raw))
        pairs.append(contentsOf: overrides.map { ($0.key, $0.value) })
        return pairs
    }
}

enum Redaction {
    /// Removes passwords from a message: the known secrets, `password=…` keywords and the
    /// password part of URIs.
    static func scrub(_ text: String, secrets: [String]) -> String {
        var result = text
        for secret in secrets where secret.count >= 3 { // shorter ones would mangle the text
            result = result.replacingOccurrences(of: secret, with: "********")
        }
        result = result.replacingOccurrences(
            of: #"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)"#, with: "$1********", options: .regularExpression)
        result = result.replacingOccurrences(
            of: #"(?i)(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@"#, with: "$1********@", options: .regularExpression)
        return result
    }
}
