import Foundation
import PostgresClient

/// One entry of pg_dump's table of contents, as pg_restore prints it with `--verbose -f -`:
/// the `-- TOC entry N`, `-- Dependencies:` and `-- Name: …; Type: …; Schema: …; Owner: …`
/// header, and the statements that follow it, byte for byte.
struct DumpEntry: Sendable {
    let id: Int
    let name: String
    let type: String
    let schema: String?
    let owner: String?
    let dependencies: [Int]
    /// Session settings in force where the entry stands (`SET default_table_access_method`,
    /// `SET default_tablespace`): what a session of its own must run first.
    let prefix: String
    /// The entry's statements, joined by newlines, unchanged.
    let sql: String
    var key: String { "\(type)|\(schema ?? "-")|\(name)" }
    /// What runs the entry on any session: its session settings, then its statements.
    var executable: String { prefix.isEmpty ? sql : prefix + "\n" + sql }
    /// "TABLE public.t", for messages.
    var label: String { "\(type) \(schema.map { "\($0)." } ?? "")\(name)" }
}

/// pg_restore's script of one section of a pg_dump archive, split into entries with
/// `SQLScanner` (never line by line: a literal or a function body may hold anything).
enum DumpScript {
    /// Statements that set the session for the entries after them (pg_restore writes them
    /// between entries): kept as each entry's `prefix`, by the setting they change.
    static let sessionSettings = ["SET default_tablespace ", "SET default_table_access_method ",
                                  "SET SESSION AUTHORIZATION ", "RESET SESSION AUTHORIZATION"]

    /// Splits a script into its preamble (the SET commands before the first entry) and entries.
    /// Removes psql meta-commands (pg_restore ≥ 17.6 writes `\restrict KEY` / `\unrestrict KEY`)
    /// and the `pg_attver` attribute options of `privateAttributeOptions`.
    static func entries(_ script: String) -> (preamble: String, entries: [DumpEntry]) {
        var preamble: [String] = []
        var entries: [DumpEntry] = []
        var settings: [(key: String, statement: String)] = []
        struct Header { var id = 0; var name = ""; var type = "UNKNOWN"; var schema: String?; var owner: String?; var dependencies: [Int] = []; var named = false; var prefix = "" }
        var header: Header?
        var statements: [String] = []
        var inHeader = false  // between the header's first comment line and its first statement
        func prefixNow() -> String { settings.map(\.statement).joined(separator: "\n") }
        func flush() {
            if let header, header.named, !statements.isEmpty {
                entries.append(DumpEntry(id: header.id, name: header.name, type: header.type, schema: header.schema, owner: header.owner,
                                         dependencies: header.dependencies, prefix: header.prefix, sql: statements.joined(separator: "\n")))
            }
            statements = []
        }
        for piece in SQLScanner.pieces(script) {
            switch piece {
            case .metaCommand:
                continue
            case .comment(let text):
                if text.hasPrefix("-- TOC entry ") {
                    flush()
                    let number = text.dropFirst(13).prefix { $0.isNumber }
                    header = Header(id: Int(number) ?? 0, prefix: prefixNow())
                    inHeader = true
                } else if text.hasPrefix("-- Dependencies: "), inHeader {
                    header?.dependencies = text.dropFirst(17).split(separator: " ").compactMap { Int($0) }
                } else if text.hasPrefix("-- Name: "), text.contains("; Type: ") {
                    if !inHeader {  // a script written without --verbose: no TOC entry line
                        flush()
                        header = Header(prefix: prefixNow())
                        inHeader = true
                    }
                    let fields = parseHeader(text)
                    header?.name = fields.name; header?.type = fields.type; header?.schema = fields.schema
                    header?.owner = fields.owner; header?.named = true
                }
            case .statement(let text):
                inHeader = false
                if let setting = sessionSettings.first(where: { text.hasPrefix($0) }) {
                    let key = setting.hasSuffix("AUTHORIZATION") || setting.hasSuffix("AUTHORIZATION ") ? "authorization" : setting
                    settings.removeAll { $0.key == key }
                    settings.append((key, text))
                    continue
                }
                if header == nil { preamble.append(text); continue }
                if let kept = withoutPrivateAttributeOptions(text) { statements.append(kept) }
            }
        }
        flush()
        return (preamble.joined(separator: "\n"), entries)
    }

    /// `-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: app`
    static func parseHeader(_ line: String) -> (name: String, type: String, schema: String?, owner: String?) {
        let text = String(line.dropFirst(9))
        // The name may contain "; " itself: take the fields from the right.
        guard let typeRange = text.range(of: "; Type: ", options: .backwards) else { return (text, "UNKNOWN", nil, nil) }
        let name = String(text[..<typeRange.lowerBound])
        let fields = text[typeRange.upperBound...].components(separatedBy: "; ")
        var schema: String?, owner: String?
        for field in fields.dropFirst() {
            if field.hasPrefix("Schema: ") { let v = String(field.dropFirst(8)); schema = v == "-" ? nil : v }
            if field.hasPrefix("Owner: ") { owner = String(field.dropFirst(7)) }
        }
        return (name, fields.first ?? "UNKNOWN", schema, owner)
    }

    /// Some PostgreSQL builds (Debian's 15.20 among them) tag every column with a private
    /// `pg_attver` attribute option that pg_dump carries and no other server accepts. Only the
    /// exact statement pg_dump writes for attribute options is touched:
    /// `ALTER TABLE ONLY <table> ALTER COLUMN <column> SET (<name>=<value>, …);` loses its
    /// `pg_attver` option (the whole statement when that is its only one). Returns nil to drop
    /// the statement, else the statement (unchanged unless it was that one).
    static func withoutPrivateAttributeOptions(_ statement: String) -> String? {
        guard statement.hasPrefix("ALTER TABLE ONLY "), statement.hasSuffix(");"), statement.contains(" ALTER COLUMN "),
              let open = statement.range(of: " SET (", options: .backwards) else { return statement }
        let list = statement[open.upperBound..<statement.index(statement.endIndex, offsetBy: -2)]
        let options = list.components(separatedBy: ", ")
        // Plain name=value pairs only: anything quoted or nested is not pg_dump's option list.
        guard options.allSatisfy({ $0.range(of: #"^[a-z_][a-z0-9_]*=[A-Za-z0-9_.+-]+$"#, options: .regularExpression) != nil }),
              options.contains(where: { $0.hasPrefix("pg_attver=") }) else { return statement }
        let kept = options.filter { !$0.hasPrefix("pg_attver=") }
        if kept.isEmpty { return nil }
        return statement[..<open.upperBound] + kept.joined(separator: ", ") + ");"
    }
}

extension PgDump {
    /// The pg_restore beside this pg_dump.
    var restorePath: String { URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("pg_restore").path }

    /// Dumps the schema (pre-data and post-data sections: no table data, no sequence values,
    /// no large objects; the migrator copies those) at `snapshot` into a custom-format archive.
    func dumpArchive(_ endpoint: ConnectionString, database: String, snapshot: String, applicationName: String, to file: URL,
                     lockTimeoutSeconds: Int = 0) throws {
        let tool = try endpoint.with("application_name", applicationName).toolConnection(database: database)
        defer { tool.remove() }
        // No tablespaces (given to pg_restore too, which writes the scripts): a managed target
        // has none of the source's (validation's objects.tablespaces warns); everything lands
        // in the target database's default one.
        var arguments = [path, "--format=custom", "--compress=0", "--section=pre-data", "--section=post-data",
                         "--snapshot=\(snapshot)", "--no-sync", "--no-tablespaces", "--file=\(file.path)", "-d", tool.conninfo]
        if major >= 16 { arguments.append("--no-large-objects") }  // large objects are copied by the migrator
        if lockTimeoutSeconds > 0 { arguments.append("--lock-wait-timeout=\(lockTimeoutSeconds)s") }
        let result = try Self.runCapturing(arguments, environment: tool.environment)
        guard result.status == 0 else {
            throw MigrationFailure("pg_dump of \(database) failed: \(result.errors.suffix(1500))")
        }
    }

    /// pg_restore's script of one section of `archive`, with the TOC headers (`--verbose`).
    func script(of archive: URL, section: String, options: [String] = []) throws -> String {
        // --no-tablespaces here: pg_dump ignores it for archives (see dumpArchive for why).
        let result = try Self.runCapturing([restorePath, "--verbose", "--no-tablespaces", "--section=\(section)", "--file=-"] + options + [archive.path],
                                           environment: [:])
        guard result.status == 0 else {
            throw MigrationFailure("pg_restore --section=\(section) could not read the schema archive: \(result.errors.suffix(1500))")
        }
        return result.output
    }
}

/// One section's script: the preamble (session settings before the first entry) and entries.
struct DumpSection: Sendable {
    let preamble: String
    let entries: [DumpEntry]

    init(preamble: String, entries: [DumpEntry]) { self.preamble = preamble; self.entries = entries }
    init(_ parsed: (preamble: String, entries: [DumpEntry])) { self.init(preamble: parsed.preamble, entries: parsed.entries) }
}
