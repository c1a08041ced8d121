import Foundation

/// One check, as read from a `rules/*.yaml` file (schema: rules/README.md).
public struct Rule: Sendable {
    public var id: String
    public var title: String
    public var description: String
    public var scope: RuleScope
    /// The servers the rule needs; when one of them cannot be reached the rule is left out.
    public var servers: [ServerRole]
    public var modes: [MigrationMode]
    public var documentation: String?
    /// The grant to suggest when the probe gets SQLSTATE 42501.
    public var requires: String?
    public var probe: Probe?
    public var builtin: String?
    /// Status of a row without a `status` column, per mode.
    public var status: [MigrationMode: Status]
    public var messages: [Status: String]
    public var remedy: String
    public var examples: [RuleExample]
    /// The file the rule came from (for error messages and `pgpreflight rules`).
    public var file: String

    public func applies(to mode: MigrationMode) -> Bool { modes.contains(mode) }
}

public struct Probe: Sendable {
    public struct Variant: Sendable {
        /// Used when the server's `server_version_num` is below this bound.
        public var below: Int
        public var sql: String
    }
    public var runsOn: ServerRole
    public var sql: String
    public var variants: [Variant]

    /// The SQL for a server of `versionNumber`: the first variant whose bound matches, else `sql`.
    public func sql(forVersion versionNumber: Int) -> String {
        variants.first { versionNumber < $0.below }?.sql ?? sql
    }

    public var allSQL: [String] { [sql] + variants.map(\.sql) }
}

/// An example of a rule: a database set up with SQL, and the result the rule must give.
public struct RuleExample: Sendable {
    public struct Expectation: Sendable {
        public var status: Status
        public var objects: [String]?
        public var messageContains: String?
        public var remedyContains: String?
    }
    public var name: String
    public var mode: MigrationMode = .offline
    public var overwrite = false
    public var sourceMajor = 15
    public var targetMajor = 18
    public var sourceSettings: [String] = []
    public var targetSettings: [String] = []
    /// pg_hba.conf lines put before the source server's trust lines (the example gets a server of its own).
    public var sourceHBA: [String] = []
    /// Connect to the source/target as this role (created `LOGIN` by the runner, dropped after).
    public var sourceUser: String?
    public var targetUser: String?
    /// SQL run as superuser in the fresh source database.
    public var setup: String?
    /// SQL run as superuser in a target database of the same name (created only when given).
    public var targetSetup: String?
    /// SQL run as superuser in the target's `postgres` database before the example.
    public var targetInstanceSetup: String?
    /// SQL run as superuser in the source's / target's `postgres` database after the example
    /// databases are dropped.
    public var cleanup: String?
    public var targetCleanup: String?
    /// `source` or `target`: that server is replaced by a closed port.
    public var unreachable: ServerRole?
    public var expect: Expectation
    public var line: Int
}
