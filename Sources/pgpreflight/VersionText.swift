import PostgresClient
import Validation

/// What `--version` and `-V` print: `pgpreflight 0.1.0 (commit 3aa610d, libpq 17.2)`.
var versionText: String { "\(toolName) \(toolVersion) (commit \(buildCommit), libpq \(LibPQ.version))" }
