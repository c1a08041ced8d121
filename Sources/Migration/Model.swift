import Foundation
import PostgresClient
import Validation

/// Migration states and substates, named as the managed migration service names them.
public enum MigrationState: String, Codable, Sendable {
    case inProgress = "InProgress", waitingForUserAction = "WaitingForUserAction", succeeded = "Succeeded"
    case failed = "Failed", validationFailed = "ValidationFailed", canceled = "Canceled"
    /// Stopped by SIGINT/SIGTERM: nothing rolled back, resumed by the same command.
    case interrupted = "Interrupted"

    public var isFinal: Bool { self == .succeeded || self == .canceled }
}

public enum MigrationSubstate: String, Codable, Sendable {
    case performingPreRequisiteSteps = "PerformingPreRequisiteSteps", validationInProgress = "ValidationInProgress"
    case migratingData = "MigratingData", waitingForTargetDBOverwriteConfirmation = "WaitingForTargetDBOverwriteConfirmation"
    case waitingForCutoverTrigger = "WaitingForCutoverTrigger", completingMigration = "CompletingMigration"
    case completed = "Completed"
}

public enum VerifyMode: String, Codable, Sendable, CaseIterable {
    case counts, checksums
}

/// Everything `migrate` takes from the command line.
public struct MigrationOptions: Sendable {
    public var name: String
    public var source: ConnectionString
    public var target: ConnectionString
    /// Databases to migrate; empty = every source database except the system ones.
    public var databases: [String]
    public var mode: MigrationMode
    public var jobs: Int
    public var overwrite: Bool
    public var force: Bool
    public var stateDirectory: URL
    public var verify: VerifyMode
    /// Directory holding pg_dump; nil = the newest found.
    public var pgBin: URL?
    /// A table larger than this many bytes that holds most of the data is split into ranges
    /// copied by several workers.
    public var splitThresholdBytes: Int64
    /// Progress output (stderr). Tests pass false.
    public var showProgress: Bool
    /// Split by integer key even on a 14+ source (which uses ctid ranges): the split sources
    /// older than 14 get, for tests.
    var keyRangesOnly = false
    /// A schema object the target refuses is listed and the rest restored (the run then ends
    /// Failed with the list) instead of stopping the run.
    public var continueOnError = false
    /// How long any statement (and pg_dump) waits for a lock before the run fails naming the
    /// blocker (0: forever).
    public var lockTimeoutSeconds = 300
    /// How long to queue behind another migration running against the same target before
    /// refusing (0: refuse at once).
    public var targetWaitSeconds = 0
    /// Online mode: refuse tables without a primary key or replica identity instead of
    /// streaming their INSERTs and copying them again at cutover.
    public var strictKeys = false

    public init(name: String, source: ConnectionString, target: ConnectionString, databases: [String] = [],
                mode: MigrationMode = .offline, jobs: Int = ProcessInfo.processInfo.activeProcessorCount,
                overwrite: Bool = false, force: Bool = false,
                stateDirectory: URL = URL(fileURLWithPath: ".pgpreflight"), verify: VerifyMode = .counts,
                pgBin: URL? = nil, splitThresholdBytes: Int64 = 256 << 20, showProgress: Bool = true) {
        self.name = name; self.source = source; self.target = target; self.databases = databases
        self.mode = mode; self.jobs = max(1, jobs); self.overwrite = overwrite; self.force = force
        self.stateDirectory = stateDirectory; self.verify = verify; self.pgBin = pgBin
        self.splitThresholdBytes = splitThresholdBytes; self.showProgress = showProgress
    }

    /// Names: letters, digits and `-`, not starting with `-` (as the managed service).
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.first, first != "-", name.count <= 63 else { return false }
        return name.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" }
    }
}

/// How a migration run ended.
public struct MigrationOutcome: Sendable {
    public let name: String
    public let state: MigrationState
    public let substate: MigrationSubstate
    /// One line: why it failed, what to do.
    public let message: String?
    /// The target databases this migration created (what to drop after a cancel).
    public let targetDatabases: [String]
    /// The summary table printed at the end.
    public let summary: String

    /// The signal that interrupted the run (SIGINT, SIGTERM), nil otherwise.
    public var signal: Int32? = nil

    /// 0 Succeeded, 128 + the signal when interrupted (130 SIGINT, 143 SIGTERM, as shells), 1 anything else.
    public var exitCode: Int32 {
        if state == .interrupted, let signal { return 128 + signal }
        return state == .succeeded ? 0 : 1
    }
}

/// Bad input or an unusable state store: exit code 2, one line.
public struct MigrationUsageError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// A step that failed: the message says what failed and what to do.
struct MigrationFailure: Error, CustomStringConvertible {
    let description: String
    var substate: MigrationSubstate? = nil
    var state: MigrationState = .failed
    init(_ message: String, state: MigrationState = .failed, substate: MigrationSubstate? = nil) {
        description = message; self.state = state; self.substate = substate
    }
}

struct MigrationCanceled: Error, CustomStringConvertible {
    var description: String { "the migration was canceled" }
}

