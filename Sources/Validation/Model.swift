import Foundation

/// A check's outcome, exactly as the managed migration service names them.
public enum Status: String, Codable, Sendable, Comparable, CaseIterable {
    case succeeded = "Succeeded"
    case warning = "Warning"
    case failed = "Failed"

    private var rank: Int { switch self { case .succeeded: 0; case .warning: 1; case .failed: 2 } }
    public static func < (lhs: Status, rhs: Status) -> Bool { lhs.rank < rhs.rank }
}

public enum MigrationMode: String, Codable, Sendable, CaseIterable {
    case offline, online
}

public enum RuleScope: String, Codable, Sendable {
    case instance, database
}

public enum ServerRole: String, Codable, Sendable {
    case source, target
}

/// One rule's result for one scope unit (the instance, or one database).
public struct RuleResult: Codable, Sendable, Equatable {
    public var rule: String
    public var title: String
    public var scope: RuleScope
    /// nil for instance-scope results.
    public var database: String?
    public var status: Status
    public var message: String
    /// Empty for Succeeded results.
    public var remedy: String
    /// Offending objects, schema-qualified and quoted as PostgreSQL would quote them.
    public var objects: [String]
    public var documentation: String?
    public var startedAt: Date
    public var finishedAt: Date
    /// Set when a suppression or the baseline accepts this finding: it keeps its status in
    /// every report but does not count toward the exit code.
    public var suppressed: Acceptance?
    /// What the message and remedy were rendered from (probe results only; not encoded): lets a
    /// policy `exclude` render them again without the excluded objects.
    public var rendering: FindingRendering?
    /// A connectivity result of a server that could not be reached: the rules that did not run
    /// because of it (JUnit lists them as skipped test cases). Not encoded.
    public var skippedRules: [String] = []

    enum CodingKeys: String, CodingKey {
        case rule, title, scope, database, status, message, remedy, objects, documentation, startedAt, finishedAt, suppressed
    }

    public var durationMs: Int { Int((finishedAt.timeIntervalSince(startedAt) * 1000).rounded()) }

    /// The status that decides the exit code: Succeeded when the finding was accepted.
    public var blockingStatus: Status { suppressed == nil ? status : .succeeded }

    public init(rule: String, title: String, scope: RuleScope, database: String?, status: Status, message: String,
                remedy: String, objects: [String], documentation: String? = nil, startedAt: Date, finishedAt: Date,
                suppressed: Acceptance? = nil) {
        self.rule = rule; self.title = title; self.scope = scope; self.database = database; self.status = status
        self.message = message; self.remedy = remedy; self.objects = objects; self.documentation = documentation
        self.startedAt = startedAt; self.finishedAt = finishedAt; self.suppressed = suppressed
    }
}

/// Why a finding is accepted.
public struct Acceptance: Codable, Sendable, Equatable {
    public enum Source: String, Codable, Sendable { case suppression, baseline }
    public var by: Source
    public var reason: String
    public init(by: Source, reason: String) { self.by = by; self.reason = reason }
}

/// What a report says about one server (never a password).
public struct ServerInfo: Codable, Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String?
    public var serverVersion: String?
    public init(host: String, port: Int, user: String?, serverVersion: String?) {
        self.host = host; self.port = port; self.user = user; self.serverVersion = serverVersion
    }
}

/// A whole validation run: the input of every report format.
public struct ValidationRun: Codable, Sendable {
    public var mode: MigrationMode
    public var startedAt: Date
    public var finishedAt: Date
    public var source: ServerInfo
    public var target: ServerInfo
    public var databases: [String]
    public var results: [RuleResult]
    /// Things the run must say that are not rule results (an expired suppression, …).
    public var notices: [String]
    /// The managed platform detected on the source (`azure`, `rds`, `cloudsql`), if any.
    public var platform: String?
    /// What the target is: `azure`, `rds`, `cloudsql`, `self-managed-superuser` (the migration
    /// user is a superuser) or `self-managed`; nil when the target could not be read.
    public var targetProfile: String?

    public init(mode: MigrationMode, startedAt: Date, finishedAt: Date, source: ServerInfo, target: ServerInfo,
                databases: [String], results: [RuleResult], notices: [String] = [], platform: String? = nil,
                targetProfile: String? = nil) {
        self.mode = mode; self.startedAt = startedAt; self.finishedAt = finishedAt; self.source = source
        self.target = target; self.databases = databases; self.results = results
        self.notices = notices; self.platform = platform; self.targetProfile = targetProfile
    }

    /// The worst status of all results that were not accepted (Succeeded when there are none):
    /// what the exit code follows.
    public var status: Status { results.map(\.blockingStatus).max() ?? .succeeded }
    public var durationMs: Int { Int((finishedAt.timeIntervalSince(startedAt) * 1000).rounded()) }
    public func count(_ status: Status) -> Int { results.filter { $0.status == status }.count }
}

public let toolName = "pgpreflight"
public let toolVersion = "0.1.0"
