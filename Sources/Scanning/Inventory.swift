import Foundation
import Validation
import Yams

/// The fleet a nightly scan covers, read from YAML:
///
/// ```yaml
/// servers:
///   - name: billing-prod
///     source: "host=10.0.0.5 user=migrator password=${BILLING_PASSWORD}"
///     target: "postgresql://admin@billing.postgres.database.azure.com/postgres?sslmode=require"
///     databases: [billing]        # optional: default every user database
///     mode: online                # optional: offline (default) or online
///     rules: [./team-rules]       # optional: extra rule folders, relative to the inventory
///     tags: [payments, tier-1]    # optional: labels (a team, …) the index page filters by
/// ```
/// `${VAR}` is replaced by the environment variable, so no secret needs to live in the file.
public struct Inventory: Sendable {
    public struct Server: Sendable {
        public var name: String
        /// Connection strings after `${VAR}` expansion: may hold passwords, never print them.
        public var source: String
        public var target: String
        public var databases: [String]?
        public var mode: MigrationMode
        public var ruleDirectories: [URL]
        /// Labels from `tags:` (a team, an environment): the index page filters by them.
        public var tags: [String]
        /// `file:line` of the entry, for errors found later (a malformed connection string).
        public var location: String
        /// 0-based position in the inventory: reports list servers in this order, shards too.
        public var position: Int
        /// Why this entry cannot be scanned (an unset `${VAR}`): the scan reports the server as
        /// Failed with this cause and goes on with the others.
        public var problem: String?

        public init(name: String, source: String, target: String, databases: [String]? = nil, mode: MigrationMode = .offline,
                    ruleDirectories: [URL] = [], tags: [String] = [], location: String = "", position: Int = 0, problem: String? = nil) {
            self.name = name; self.source = source; self.target = target; self.databases = databases; self.mode = mode
            self.ruleDirectories = ruleDirectories; self.tags = tags; self.location = location; self.position = position; self.problem = problem
        }
    }

    public var servers: [Server]

    public init(servers: [Server]) { self.servers = servers }

    /// The servers of shard `index` (0-based) of `count`: chosen by a hash of the server's name
    /// only, so every shard process picks the same subset, and adding or removing a server
    /// never moves another one (jump consistent hash: changing `count` moves few).
    public func shard(_ index: Int, of count: Int) -> Inventory {
        Inventory(servers: servers.filter { Self.shard(of: $0.name, count: count) == index })
    }

    public static func shard(of name: String, count: Int) -> Int {
        // FNV-1a 64 of the UTF-8 name (stable across processes and platforms, unlike Hasher).
        var key: UInt64 = 0xcbf29ce484222325
        for byte in name.utf8 { key = (key ^ UInt64(byte)) &* 0x100000001b3 }
        // Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm".
        var b: Int64 = -1, j: Int64 = 0
        while j < Int64(count) {
            b = j
            key = key &* 2862933555777941757 &+ 1
            j = Int64(Double(b + 1) * (Double(Int64(1) << 31) / Double((key >> 33) + 1)))
        }
        return Int(b)
    }

    public static func load(_ file: URL, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Inventory {
        let path = file.path
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { throw InventoryError("\(path): cannot read the inventory") }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw InventoryError("\(path): not valid YAML: \(error)") }
        func at(_ node: Node?) -> String { "\(path):\(node?.mark?.line ?? 1)" }
        guard let top = root?.mapping, let list = top["servers"]?.sequence else {
            throw InventoryError("\(at(root)): expected `servers:` with a list of servers")
        }
        for (key, _) in top where key.string != "servers" {
            throw InventoryError("\(at(key)): unknown key '\(key.string ?? "")' (servers)")
        }
        var servers: [Server] = []
        var names: Set<String> = []
        for item in list {
            guard let mapping = item.mapping else { throw InventoryError("\(at(item)): a server must be a mapping") }
            var name: String?, source: String?, target: String?, databases: [String]?, mode = MigrationMode.offline
            var rules: [URL] = []
            var tags: [String] = []
            var problem: String?
            // An unset variable fails this server only (its Failed result says why), not the scan.
            func expanded(_ value: Node) throws -> String {
                do { return try expand(value, at: at(value), environment: environment) } catch let error as UnsetVariable {
                    if problem == nil { problem = error.description }
                    return ""
                }
            }
            for (key, value) in mapping {
                switch key.string ?? "" {
                case "name": name = value.string
                case "source": source = try expanded(value)
                case "target": target = try expanded(value)
                case "databases":
                    guard let sequence = value.sequence else { throw InventoryError("\(at(value)): databases: expected a list") }
                    databases = sequence.compactMap(\.string)
                case "mode":
                    guard let parsed = value.string.flatMap(MigrationMode.init(rawValue:)) else {
                        throw InventoryError("\(at(value)): mode must be offline or online")
                    }
                    mode = parsed
                case "rules":
                    let entries = value.sequence.map { Array($0) } ?? [value]
                    rules = entries.compactMap(\.string).map { URL(fileURLWithPath: $0, relativeTo: file.deletingLastPathComponent()) }
                case "tags":
                    // Words only: the index page puts them in its URL (#tag=payments) and attributes.
                    let entries = value.sequence.map { Array($0) } ?? [value]
                    for entry in entries {
                        guard let tag = entry.string, tag.range(of: #"^[A-Za-z0-9][A-Za-z0-9._-]*$"#, options: .regularExpression) != nil else {
                            throw InventoryError("\(at(entry)): tag '\(entry.string ?? "")' must be letters, digits, '.', '_' or '-' (e.g. tags: [payments, tier-1])")
                        }
                        if !tags.contains(tag) { tags.append(tag) }
                    }
                default:
                    throw InventoryError("\(at(key)): unknown key '\(key.string ?? "")' (name, source, target, databases, mode, rules, tags)")
                }
            }
            guard let name, !name.isEmpty else { throw InventoryError("\(at(item)): a server needs a name") }
            guard name.range(of: #"^[A-Za-z0-9][A-Za-z0-9._-]*$"#, options: .regularExpression) != nil else {
                throw InventoryError("\(at(item)): server name '\(name)' must be letters, digits, '.', '_' or '-' (it names report files)")
            }
            guard !["summary", "index"].contains(name.lowercased()) else {
                throw InventoryError("\(at(item)): server name '\(name)' is reserved: the scan writes its own \(name.lowercased()).json/.html")
            }
            guard names.insert(name).inserted else { throw InventoryError("\(at(item)): server name '\(name)' is used twice") }
            guard let source else { throw InventoryError("\(at(item)): server \(name) needs a source") }
            guard let target else { throw InventoryError("\(at(item)): server \(name) needs a target") }
            servers.append(Server(name: name, source: source, target: target, databases: databases, mode: mode,
                                  ruleDirectories: rules, tags: tags, location: at(item), position: servers.count, problem: problem))
        }
        guard !servers.isEmpty else { throw InventoryError("\(at(top["servers"])): `servers:` lists no server: nothing to scan") }
        return Inventory(servers: servers)
    }

    private static func expand(_ node: Node, at location: String, environment: [String: String]) throws -> String {
        guard let text = node.string else { throw InventoryError("\(location): expected a connection string") }
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            result += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw InventoryError("\(location): unterminated ${ in a connection string")
            }
            let variable = String(rest[start.upperBound..<end])
            guard let value = environment[variable] else {
                throw UnsetVariable(description: "\(location): environment variable \(variable) is not set")
            }
            result += value
            rest = rest[rest.index(after: end)...]
        }
        return result + rest
    }
}

struct UnsetVariable: Error, CustomStringConvertible { let description: String }

public struct InventoryError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
