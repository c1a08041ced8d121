import Foundation
import PostgresClient

/// One row of the source's pg_database, as the database selection needs it.
public struct CatalogDatabase: Sendable, Codable, Equatable {
    public var name: String
    public var allowsConnections: Bool
    public var isTemplate: Bool
    /// `datconnlimit`; -2 marks a database an interrupted DROP DATABASE left invalid (PostgreSQL 15.4, 16+).
    public var connectionLimit: Int
    /// The name as the server's quote_ident quotes it, for remedies.
    public var quotedName: String
    public var isInvalid: Bool { connectionLimit == -2 }

    public init(name: String, allowsConnections: Bool, isTemplate: Bool, connectionLimit: Int, quotedName: String) {
        self.name = name; self.allowsConnections = allowsConnections; self.isTemplate = isTemplate
        self.connectionLimit = connectionLimit; self.quotedName = quotedName
    }

    enum CodingKeys: String, CodingKey {
        case name, allowsConnections = "allowconn", isTemplate = "istemplate", connectionLimit = "connlimit", quotedName = "quoted"
    }
}

/// The databases a command works on, the same for validate, migrate, verify and scan: the
/// ones named with --database, else every database of the source that accepts connections,
/// is valid, is not a template and is not the maintenance or a platform's own database.
/// Every database left out has a reason, for the notices of the report.
///
/// ```swift
/// // on a source Connection (inside connection.run { … } for the async wrapper)
/// let selection = try DatabaseSelection.read(from: connection, given: options.databases)  // [] or nil: the default
/// for name in selection.selected { … }
/// for problem in selection.refused { throw … problem.reason / problem.remedy }   // named but not migratable
/// if !selection.missing.isEmpty { … }                                              // named but not on the source
/// notes += selection.notices                                                       // every database left out, and why
/// ```
public struct DatabaseSelection: Sendable, Equatable {
    public enum Reason: String, Sendable, Codable {
        /// `postgres`: the maintenance database.
        case maintenance
        /// template0 / template1.
        case systemTemplate
        /// azure_maintenance, azure_sys, rdsadmin, cloudsqladmin: the platform's own.
        case platform
        /// A user-made template (`datistemplate`).
        case template
        /// `datallowconn = false`: no session can read it.
        case connectionsNotAllowed
        /// `datconnlimit = -2`: left invalid by an interrupted DROP DATABASE.
        case invalid
        /// Left out by the caller (`excluding:`).
        case excluded
    }

    public struct LeftOut: Sendable, Equatable {
        public var name: String
        public var why: Reason
        /// Why, in a sentence that can follow "Database x is left out: ".
        public var reason: String
        /// What to run to migrate it (or to get rid of it), empty when nothing is needed.
        public var remedy: String
    }

    /// The databases to work on, in the order given (by name for the default selection).
    public var selected: [String]
    /// Databases of the source the default selection leaves out (empty when names were given,
    /// except `refused` ones).
    public var leftOut: [LeftOut]
    /// Names given that the source does not have.
    public var missing: [String]
    /// Names given that the source has but that cannot be read: invalid, or not accepting connections.
    public var refused: [LeftOut]

    /// The platforms' and PostgreSQL's own databases, never selected by default.
    public static let systemDatabases: [String: Reason] = [
        "postgres": .maintenance, "template0": .systemTemplate, "template1": .systemTemplate,
        "azure_maintenance": .platform, "azure_sys": .platform, "rdsadmin": .platform, "cloudsqladmin": .platform,
    ]

    /// The catalog query (one row per database) that `read` runs; `init(catalog:…)` takes its rows.
    public static let catalogQuery = """
        SELECT datname::text, datallowconn, datistemplate, datconnlimit, quote_ident(datname) FROM pg_catalog.pg_database ORDER BY datname
        """

    /// Reads pg_database on `connection` (the source) and selects.
    public static func read(from connection: Connection, given: [String]?, excluding: [String] = []) throws -> DatabaseSelection {
        let rows = try connection.query(catalogQuery).rows
        let catalog = rows.compactMap { row -> CatalogDatabase? in
            guard let name = row.string(0) else { return nil }
            return CatalogDatabase(name: name, allowsConnections: row.bool(1) ?? true, isTemplate: row.bool(2) ?? false,
                                   connectionLimit: row.int(3) ?? -1, quotedName: row.string(4) ?? name)
        }
        return DatabaseSelection(catalog: catalog, given: given, excluding: excluding)
    }

    /// Selects among `catalog`. `given` nil or empty: the default selection.
    public init(catalog: [CatalogDatabase], given: [String]?, excluding: [String] = []) {
        selected = []; leftOut = []; missing = []; refused = []
        let byName = Dictionary(catalog.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        if let given, !given.isEmpty {
            for name in given where !selected.contains(name) && !missing.contains(name) && !refused.contains(where: { $0.name == name }) {
                guard let database = byName[name] else { missing.append(name); continue }
                if database.isInvalid || !database.allowsConnections {
                    refused.append(Self.leftOut(database, why: database.isInvalid ? .invalid : .connectionsNotAllowed))
                } else {
                    selected.append(name)
                }
            }
            return
        }
        for database in catalog.sorted(by: { $0.name < $1.name }) {
            let why: Reason?
            if database.isInvalid { why = .invalid }
            else if let system = Self.systemDatabases[database.name] { why = system }
            else if excluding.contains(database.name) { why = .excluded }
            else if !database.allowsConnections { why = .connectionsNotAllowed }
            else if database.isTemplate { why = .template }
            else { why = nil }
            if let why { leftOut.append(Self.leftOut(database, why: why)) } else { selected.append(database.name) }
        }
    }

    static func leftOut(_ database: CatalogDatabase, why: Reason) -> LeftOut {
        let name = database.name
        let quoted = database.quotedName
        switch why {
        case .maintenance:
            return LeftOut(name: name, why: why, reason: "the maintenance database (name it with --database to migrate it)", remedy: "")
        case .systemTemplate:
            return LeftOut(name: name, why: why, reason: "a template of the server (every target has its own)", remedy: "")
        case .platform:
            return LeftOut(name: name, why: why, reason: "the managed platform's own database", remedy: "")
        case .excluded:
            return LeftOut(name: name, why: why, reason: "excluded", remedy: "")
        case .template:
            return LeftOut(name: name, why: why,
                           reason: "a template database (datistemplate); name it with --database to migrate it as an ordinary database",
                           remedy: "ALTER DATABASE \(quoted) IS_TEMPLATE false;  -- or name it with --database")
        case .connectionsNotAllowed:
            return LeftOut(name: name, why: why,
                           reason: "it does not allow connections (datallowconn = false), so its data cannot be read or migrated",
                           remedy: "ALTER DATABASE \(quoted) ALLOW_CONNECTIONS true;  -- to migrate it; or drop it if it is no longer needed: DROP DATABASE \(quoted);")
        case .invalid:
            return LeftOut(name: name, why: why,
                           reason: "it is invalid (datconnlimit = -2: a DROP DATABASE was interrupted) and cannot be connected to",
                           remedy: "DROP DATABASE \(quoted);  -- finishes the interrupted drop; its data is already partly gone")
        }
    }

    /// The names the default selection always leaves out (postgres, templates, the platforms' databases).
    private var routine: [LeftOut] { leftOut.filter { [.maintenance, .systemTemplate, .platform].contains($0.why) } }

    /// One notice for the routine ones, one per other database left out, one per refused name.
    public var notices: [String] {
        var notices: [String] = []
        if !routine.isEmpty {
            notices.append("Databases left out as always: " + routine.map { "\($0.name) (\($0.reason))" }.joined(separator: ", "))
        }
        for item in leftOut where !routine.contains(item) {
            notices.append("Database \(item.name) is left out: \(item.reason)" + (item.remedy.isEmpty ? "" : ". \(item.remedy)"))
        }
        for item in refused {
            notices.append("Database \(item.name) was named but cannot be migrated: \(item.reason). \(item.remedy)")
        }
        return notices
    }
}

// MARK: A connection string that names a database

extension DatabaseSelection {
    /// The database a connection string names (`postgresql://host/shop`, `dbname=shop`), as psql
    /// and pg_dump read it, unless it is one the server keeps for itself (postgres, template1, a
    /// platform's): those only say where to connect. PGDATABASE does not count, so that the
    /// environment never narrows a run silently.
    public static func named(in endpoint: ConnectionString) -> String? {
        guard let name = endpoint.value("dbname"), !name.isEmpty, !name.contains("="), !name.contains("://"),
              systemDatabases[name] == nil else { return nil }
        return name
    }

    /// What the commands select: `--database` when given, else the database the source string
    /// names, else nil (the default selection).
    public static func given(_ databases: [String], source: ConnectionString) -> [String]? {
        if !databases.isEmpty { return databases }
        return named(in: source).map { [$0] }
    }

    /// The target database compared with (or probed for) the source database `database`: the one
    /// the target string names when the source string names `database` and no `--database` was
    /// given (`--source …/shop --target …/shop_copy`), else the same name.
    public static func targetName(for database: String, databases: [String], source: ConnectionString, target: ConnectionString) -> String {
        guard databases.isEmpty, named(in: source) == database, let named = named(in: target) else { return database }
        return named
    }
}
