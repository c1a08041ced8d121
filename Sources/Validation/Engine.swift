import Foundation
import PostgresClient

/// What to validate. The entry point for the CLI, the migrator and fleet scans.
public struct ValidationRequest: Sendable {
    public var source: ConnectionString
    public var target: ConnectionString
    /// nil: every source database except `ValidationEngine.excludedDatabases`.
    public var databases: [String]?
    public var mode: MigrationMode
    public var overwrite: Bool
    /// Folders of rule files, the shipped one included (see `ValidationRequest.ruleDirectories(extra:)`).
    public var ruleDirectories: [URL]
    /// Rules already loaded; when set, `ruleDirectories` is not read.
    public var rules: [Rule]?
    /// How many databases are probed at the same time.
    public var maxConcurrentDatabases: Int
    /// `statement_timeout` of every validation session.
    public var statementTimeout: String
    /// `connectivity.latency` warns when a server's median round trip is slower than this.
    public var latencyThresholdMs: Double
    /// Source database → the target database of another name it is checked against
    /// (`--target …/shop_copy`, see `DatabaseSelection.targetName`); absent: the same name.
    public var targetNames: [String: String] = [:]

    public init(source: ConnectionString, target: ConnectionString, databases: [String]? = nil, mode: MigrationMode = .offline,
                overwrite: Bool = false, ruleDirectories: [URL] = [], rules: [Rule]? = nil,
                maxConcurrentDatabases: Int = 4, statementTimeout: String = "30s", latencyThresholdMs: Double = 20) {
        self.source = source; self.target = target; self.databases = databases; self.mode = mode
        self.overwrite = overwrite; self.ruleDirectories = ruleDirectories; self.rules = rules
        self.maxConcurrentDatabases = max(1, maxConcurrentDatabases); self.statementTimeout = statementTimeout
        self.latencyThresholdMs = latencyThresholdMs
    }

    /// The shipped rules folder followed by `extra` (from `--rules DIR`).
    public static func ruleDirectories(extra: [URL]) throws -> [URL] {
        guard let shipped = RuleLoader.shippedDirectory() else {
            throw RuleLoadError(file: "rules", line: 0, message: "the shipped rules folder was not found: set PGPREFLIGHT_RULES to it")
        }
        return [shipped] + extra
    }
}

/// How much a run cost: round trips per server session.
public struct ValidationStatistics: Sendable {
    /// Queries on the maintenance sessions (facts, instance rules, connectivity checks).
    public var instanceQueries: [ServerRole: Int] = [:]
    /// Queries per database, on the source and target sessions of that database.
    public var queriesPerDatabase: [String: Int] = [:]
}

/// Validates `request` and returns every applicable rule's result.
public func validate(_ request: ValidationRequest) async throws -> ValidationRun {
    try await ValidationEngine(request: request).run().run
}

public struct ValidationOutcome: Sendable {
    public var run: ValidationRun
    public var statistics: ValidationStatistics
}

public final class ValidationEngine: @unchecked Sendable {
    /// Never selected by default: templates, the maintenance database, the platforms' own
    /// databases. Databases that do not allow connections are not selected either.
    /// (Kept for callers that have not moved to `DatabaseSelection` yet.)
    public static let excludedDatabases: Set<String> = Set(DatabaseSelection.systemDatabases.keys)

    let request: ValidationRequest
    private let counter = QueryCounter()

    public init(request: ValidationRequest) { self.request = request }

    // MARK: Run

    public func run() async throws -> ValidationOutcome {
        let startedAt = Date()
        let allRules = try request.rules ?? RuleLoader.load(directories: request.ruleDirectories)
        let rules = allRules.filter { $0.applies(to: request.mode) }

        async let sourceState = openServer(.source, endpoint: request.source)
        async let targetState = openServer(.target, endpoint: request.target)
        var servers: [ServerRole: ServerState] = [.source: await sourceState, .target: await targetState]
        defer { servers.values.forEach { $0.session?.connection.close() } }

        // Databases: given, or the default selection (DatabaseSelection: the same for every command).
        var selected: [String] = []
        var missing: [String] = []
        var refused: [DatabaseSelection.LeftOut] = []
        var notices: [String] = []
        if let facts = servers[.source]?.facts {
            let selection = DatabaseSelection(catalog: facts.databaseCatalog, given: request.databases)
            selected = selection.selected; missing = selection.missing; refused = selection.refused
            notices = selection.notices
            if let given = request.databases, !given.isEmpty {
                // Named databases are reported in the order given, missing and refused ones included.
                var listed: [String] = []
                for name in given where !listed.contains(name) { listed.append(name) }
                selected = listed
            }
        } else if let given = request.databases {
            for name in given where !selected.contains(name) { selected.append(name) }
        }

        var context = EvaluationContext(request: request, databases: selected, servers: servers)
        var results: [String: [RuleResult]] = [:]
        var databaseFailures: [(database: String, role: ServerRole, message: String, remedy: String)] = []

        // Database phase: one source session (and a target session when needed) per database.
        let databaseRules = rules.filter { $0.scope == .database && $0.builtin == nil }
        if servers[.source]?.session != nil {
            let toProbe = selected.filter { name in !missing.contains(name) && !refused.contains { $0.name == name } }
            let outcomes = await probeDatabases(toProbe, rules: databaseRules, context: context)
            for outcome in outcomes {
                for result in outcome.results { results[result.rule, default: []].append(result) }
                for (extensionName, _) in outcome.extensions {
                    servers[.source]?.facts?.installedExtensions[extensionName, default: []].append(outcome.database)
                }
                if let failure = outcome.failure { databaseFailures.append((outcome.database, failure.role, failure.message, failure.remedy)) }
            }
            if var facts = servers[.source]?.facts {
                facts.installedExtensions = facts.installedExtensions.mapValues { $0.sorted() }
                servers[.source]?.facts = facts
            }
            context.servers = servers
        }

        // Instance phase, on the maintenance sessions, after the databases so that facts
        // gathered from them ({source.extensions}) are complete. The source's and the target's
        // probes run side by side (each session runs its own one after the other).
        let instanceRules = rules.filter { $0.scope == .instance }
        let frozen = context
        async let sourceInstance = evaluateInstanceProbes(instanceRules.filter { $0.probe?.runsOn == .source }, context: frozen)
        async let targetInstance = evaluateInstanceProbes(instanceRules.filter { $0.probe?.runsOn == .target }, context: frozen)
        for result in await sourceInstance + targetInstance { results[result.rule, default: []].append(result) }
        for rule in instanceRules {
            guard let builtin = rule.builtin.flatMap(BuiltinCheck.init(rawValue:)) else { continue }
            if let result = await evaluateBuiltin(builtin, rule: rule, context: context, rules: rules) {
                results[rule.id, default: []].append(result)
            }
        }

        // A selected database the source lacks, or whose session failed: a connectivity failure
        // for that database.
        let now = Date()
        for name in missing {
            let skipped = databaseRules.count
            let names = (servers[.source]?.facts?.databases ?? []).filter { DatabaseSelection.systemDatabases[$0] == nil }
            results[BuiltinCheck.connectivitySource.rawValue, default: []].append(RuleResult(
                rule: BuiltinCheck.connectivitySource.rawValue, title: title(of: .connectivitySource, in: allRules), scope: .database,
                database: name, status: .failed,
                message: "Database \(name) does not exist on the source; \(skipped) database rule\(skipped == 1 ? " was" : "s were") skipped for it",
                remedy: "Check the name given with --database (names are case-sensitive). Databases on the source: "
                    + (names.isEmpty ? "none besides the system ones" : names.prefix(20).joined(separator: ", ")),
                objects: [name], startedAt: now, finishedAt: now))
        }
        for item in refused {
            let skipped = databaseRules.count
            results[BuiltinCheck.connectivitySource.rawValue, default: []].append(RuleResult(
                rule: BuiltinCheck.connectivitySource.rawValue, title: title(of: .connectivitySource, in: allRules), scope: .database,
                database: item.name, status: .failed,
                message: "Database \(item.name) cannot be migrated: \(item.reason); \(skipped) database rule\(skipped == 1 ? " was" : "s were") skipped for it",
                remedy: item.remedy, objects: [item.name], startedAt: now, finishedAt: now))
        }
        for failure in databaseFailures {
            let check: BuiltinCheck = failure.role == .source ? .connectivitySource : .connectivityTarget
            results[check.rawValue, default: []].append(RuleResult(
                rule: check.rawValue, title: title(of: check, in: allRules), scope: .database, database: failure.database,
                status: .failed, message: failure.message, remedy: failure.remedy, objects: [failure.database],
                startedAt: now, finishedAt: now))
        }

        // Order: the connectivity rules first, then by id; instance result before databases.
        let builtinOrder = BuiltinCheck.allCases.map(\.rawValue)
        let ordered = rules.sorted { a, b in
            let ia = builtinOrder.firstIndex(of: a.id) ?? builtinOrder.count, ib = builtinOrder.firstIndex(of: b.id) ?? builtinOrder.count
            return ia != ib ? ia < ib : a.id < b.id
        }
        var all: [RuleResult] = []
        for rule in ordered {
            let list = results[rule.id] ?? []
            all += list.filter { $0.database == nil }
            for database in selected { all += list.filter { $0.database == database } }
        }
        // Connectivity failures of a database stay in the report even when the rule set given
        // does not include the connectivity rules.
        let ruleIds = Set(rules.map(\.id))
        all += results.filter { !ruleIds.contains($0.key) }.sorted { $0.key < $1.key }.flatMap(\.value)

        let run = ValidationRun(mode: request.mode, startedAt: startedAt, finishedAt: Date(),
                                source: servers[.source]!.info, target: servers[.target]!.info,
                                databases: selected, results: all, notices: notices,
                                platform: servers[.source]?.facts?.platform, targetProfile: servers[.target]?.facts?.profile)
        return ValidationOutcome(run: run, statistics: counter.statistics)
    }

    private func title(of check: BuiltinCheck, in rules: [Rule]) -> String {
        rules.first { $0.id == check.rawValue }?.title ?? check.rawValue
    }

    // MARK: Sessions

    /// The database of the maintenance session: the one in the connection string, else postgres.
    static func maintenanceDatabase(_ endpoint: ConnectionString, role: ServerRole) -> String {
        // A target string may name the database a source database goes to: it may not exist yet.
        if role == .target, DatabaseSelection.named(in: endpoint) != nil { return "postgres" }
        if let name = endpoint.effective("dbname"), !name.isEmpty { return name }
        return "postgres"
    }

    private func openServer(_ role: ServerRole, endpoint: ConnectionString) async -> ServerState {
        let maintenance = endpoint.with(database: Self.maintenanceDatabase(endpoint, role: role))
        var state = ServerState(role: role, endpoint: maintenance)
        do {
            let session = try await openSession(maintenance, role: role, key: nil)
            state.session = session
            let reached = session.connection.reached
            state.info.host = reached.host; state.info.port = reached.port
            if let user = reached.user { state.info.user = user }
            state.info.serverVersion = session.connection.serverVersion.split(separator: " ").first.map(String.init)
            do {
                counter.add(role: role, database: nil)
                state.facts = try await session.connection.run { try ServerFacts.fetch(on: $0) }
                // "15.20 (Debian 15.20-0+deb12u1)" → "15.20"
                if let version = state.facts?.version.split(separator: " ").first { state.info.serverVersion = String(version) }
            } catch {
                state.factsError = "\(error)"
            }
        } catch let failure as ConnectionFailure {
            state.failure = failure
            if let reached = failure.reached {
                state.info.host = reached.host; state.info.port = reached.port
                if let user = reached.user { state.info.user = user }
            }
        } catch {
            state.failure = ConnectionFailure.unclassified("\(error)", endpoint: maintenance.description)
        }
        return state
    }

    /// Opens a read-only session with a statement timeout.
    private func openSession(_ endpoint: ConnectionString, role: ServerRole, key database: String?) async throws -> Session {
        let connection = try await Connection.connect(endpoint)
        counter.add(role: role, database: database)
        let timeout = request.statementTimeout
        do {
            try await connection.run { c in
                // Catalog queries with inflated estimates would pay JIT compilation (tens of ms each).
                let jit = c.serverVersionNumber >= 110000 ? "; SET jit = off" : ""
                // No parallel workers: the rules already run side by side (two source sessions and
                // the target's), so workers only compete with them for the server's cores, and a
                // preflight check should not take more of a production source than that.
                let parallel = c.serverVersionNumber >= 90600 ? "; SET max_parallel_workers_per_gather = 0" : ""
                try c.execute("SET default_transaction_read_only = on; SET statement_timeout = \(try c.quoteLiteral(timeout))\(jit)\(parallel)")
            }
        } catch {
            connection.close()
            throw ConnectionFailure.unclassified("could not configure the session: \(error)", endpoint: endpoint.description)
        }
        return Session(connection: connection, role: role, database: database, counter: counter)
    }

    private func evaluateInstanceProbes(_ rules: [Rule], context: EvaluationContext) async -> [RuleResult] {
        var results: [RuleResult] = []
        for rule in rules {
            guard let probe = rule.probe, rule.servers.allSatisfy({ context.servers[$0]?.session != nil }),
                  let session = context.servers[probe.runsOn]?.session else { continue }
            results.append(await evaluate(rule, probe: probe, session: session, database: nil, context: context))
        }
        return results
    }

    // MARK: Database phase

    struct DatabaseOutcome: Sendable {
        var database: String
        var results: [RuleResult] = []
        var extensions: [String: String] = [:]
        var failure: (role: ServerRole, message: String, remedy: String)?
    }

    private func probeDatabases(_ databases: [String], rules: [Rule], context: EvaluationContext) async -> [DatabaseOutcome] {
        var outcomes: [DatabaseOutcome] = []
        // Fewer databases than database slots: each may use a second source session.
        let lanes = databases.count * 2 <= request.maxConcurrentDatabases ? 2 : 1
        await withTaskGroup(of: DatabaseOutcome.self) { group in
            var pending = databases[...]
            for _ in 0..<min(request.maxConcurrentDatabases, databases.count) {
                let name = pending.removeFirst()
                group.addTask { await self.probeDatabase(name, rules: rules, context: context, lanes: lanes) }
            }
            for await outcome in group {
                outcomes.append(outcome)
                if let name = pending.popFirst() {
                    group.addTask { await self.probeDatabase(name, rules: rules, context: context, lanes: lanes) }
                }
            }
        }
        return outcomes
    }

    private func probeDatabase(_ database: String, rules: [Rule], context: EvaluationContext, lanes: Int) async -> DatabaseOutcome {
        var outcome = DatabaseOutcome(database: database)
        let sourceEndpoint = request.source.with(database: database)
        let source: Session
        do {
            source = try await openSession(sourceEndpoint, role: .source, key: database)
        } catch {
            let failure = error as? ConnectionFailure
                ?? ConnectionFailure.unclassified("\(error)", endpoint: sourceEndpoint.description)
            let passwords = await passwordStorage(failure, role: .source, endpoint: sourceEndpoint, context: context)
            let advice = ConnectivityAdvice.describe(failure, role: .source, endpoint: sourceEndpoint, passwords: passwords)
            outcome.failure = (.source, advice.message + "; \(rules.count) database rules were skipped for it", advice.remedy)
            return outcome
        }
        defer { source.connection.close() }

        // Extensions installed here, for {source.extensions}.
        do {
            let rows = try await source.query("SELECT extname::text, extversion FROM pg_catalog.pg_extension", [])
            for row in rows.rows { if let name = row.string(0) { outcome.extensions[name] = row.string(1) ?? "" } }
        } catch {}

        // {database.columns}: one pass over pg_attribute for every rule that asks about column
        // types, instead of one pass per rule.
        var context = context
        if rules.contains(where: { $0.probe?.allSQL.contains { $0.contains("{database.columns}") } == true }) {
            let version = context.servers[.source]?.facts?.versionNumber ?? source.connection.serverVersionNumber
            context.columnCensus = (try? await source.query(DatabaseCensus.columnsSQL(version: version), []).rows.first?.string(0)) ?? nil
        }

        // The target session: the database of the same name when the target has it, else the
        // target's maintenance session.
        var target: Session?
        var ownTarget = false
        let applicable = rules.filter { rule in rule.servers.allSatisfy { context.servers[$0]?.session != nil } }
        if applicable.contains(where: { $0.probe?.runsOn == .target }), let maintenance = context.servers[.target]?.session {
            let targetName = request.targetNames[database] ?? database
            if context.servers[.target]?.facts?.databases.contains(targetName) == true {
                let endpoint = request.target.with(database: targetName)
                do {
                    target = try await openSession(endpoint, role: .target, key: database)
                    ownTarget = true
                } catch {
                    let failure = error as? ConnectionFailure
                        ?? ConnectionFailure.unclassified("\(error)", endpoint: endpoint.description)
                    let passwords = await passwordStorage(failure, role: .target, endpoint: endpoint, context: context)
                    let advice = ConnectivityAdvice.describe(failure, role: .target, endpoint: endpoint, passwords: passwords)
                    outcome.failure = (.target, advice.message, advice.remedy)
                }
            } else {
                target = maintenance.counting(as: database)
            }
        }
        defer { if ownTarget { target?.connection.close() } }

        // The source rules run on `lanes` sessions of this database, taking the next rule as
        // each finishes, while the target rules run on the target session: a database with
        // 100 000 tables keeps both cores of the source busy instead of one.
        let sourceRules = applicable.filter { $0.probe?.runsOn == .source }
        let targetRules = target == nil ? [] : applicable.filter { $0.probe?.runsOn == .target }
        var sourceSessions = [source]
        if lanes > 1 && sourceRules.count > 1 {
            for _ in 1..<lanes {
                guard let extra = try? await openSession(sourceEndpoint, role: .source, key: database) else { break }
                sourceSessions.append(extra)
            }
        }
        defer { sourceSessions.dropFirst().forEach { $0.connection.close() } }
        let queue = RuleQueue(sourceRules)
        let frozen = context
        outcome.results += await withTaskGroup(of: [RuleResult].self) { group in
            for session in sourceSessions {
                group.addTask {
                    var results: [RuleResult] = []
                    while let rule = queue.next(), let probe = rule.probe {
                        results.append(await self.evaluate(rule, probe: probe, session: session, database: database, context: frozen))
                    }
                    return results
                }
            }
            if let target, !targetRules.isEmpty {
                group.addTask {
                    var results: [RuleResult] = []
                    for rule in targetRules {
                        guard let probe = rule.probe else { continue }
                        results.append(await self.evaluate(rule, probe: probe, session: target, database: database, context: frozen))
                    }
                    return results
                }
            }
            var all: [RuleResult] = []
            for await part in group { all += part }
            return all
        }
        return outcome
    }

    /// For a session pg_hba.conf rejected while the maintenance session of that server is open:
    /// how the server stores the user's password, so that the line proposed can check it.
    /// Read only then (two queries on the maintenance session); pg_authid only when readable.
    private func passwordStorage(_ failure: ConnectionFailure, role: ServerRole, endpoint: ConnectionString,
                                 context: EvaluationContext) async -> PasswordStorage? {
        guard failure.cause == .rejectedByHBA, let session = context.servers[role]?.session,
              let user = endpoint.user ?? context.servers[role]?.facts?.user else { return nil }
        do {
            let row = try await session.query(
                "SELECT current_setting('password_encryption'), has_table_privilege('pg_catalog.pg_authid', 'SELECT')", []).rows.first
            var storage = PasswordStorage(userHashIsMD5: nil, passwordEncryption: row?.string(0))
            if row?.bool(1) == true {
                let hash = try await session.query(
                    "SELECT COALESCE(rolpassword LIKE 'md5%', false) FROM pg_catalog.pg_authid WHERE rolname = $1", [user]).rows.first
                storage.userHashIsMD5 = hash?.bool(0) ?? false
            }
            return storage
        } catch {
            return nil
        }
    }

    // MARK: Probes

    private func evaluate(_ rule: Rule, probe: Probe, session: Session, database: String?, context: EvaluationContext) async -> RuleResult {
        let startedAt = Date()
        let server = context.servers[probe.runsOn]
        let version = server?.facts?.versionNumber ?? session.connection.serverVersionNumber
        func result(_ status: Status, _ message: String, _ remedy: String, _ objects: [String]) -> RuleResult {
            RuleResult(rule: rule.id, title: rule.title, scope: rule.scope, database: database, status: status, message: message,
                       remedy: status == .succeeded ? "" : remedy, objects: objects, documentation: rule.documentation,
                       startedAt: startedAt, finishedAt: Date())
        }
        let values = context.templateValues(database: database)
        do {
            let (sql, names) = try SQLPlaceholder.rewrite(probe.sql(forVersion: version))
            let parameters = try names.map { try context.parameter($0, database: database) }
            let queryStarted = DispatchTime.now().uptimeNanoseconds
            // The rule's id in a comment: the server's log, pg_stat_activity and
            // pg_stat_statements say which rule a query is (Benchmarks/validate-scale.sh sums
            // the server CPU per rule with it).
            let answer = try await session.query("/* pgpreflight rule \(rule.id) */\n" + sql, parameters)
            let rows = answer.rows
            let queried = DispatchTime.now().uptimeNanoseconds
            var findings: [FindingRendering.Finding] = []
            findings.reserveCapacity(rows.count)
            // A row with a `could_not_check` column says what the probe could not see with the
            // user's privileges: the result says so, with the grant of `requires`.
            var unseen: [String] = []
            let unseenColumn = answer.columns.firstIndex(of: "could_not_check")
            let statusColumn = answer.columns.firstIndex(of: "status")
            let defaultStatus = rule.status[request.mode] ?? .failed
            for row in rows {
                if let unseenColumn, let reason = row.values[unseenColumn] { unseen.append(reason); continue }
                var status = defaultStatus
                if let statusColumn, let text = row.values[statusColumn] {
                    guard let parsed = Status(rawValue: text) else {
                        return result(.failed, "could not check: the probe returned the status '\(text)'",
                                      "Fix the rule file \(rule.file): status must be Succeeded, Warning or Failed.", [])
                    }
                    status = parsed
                }
                findings.append(FindingRendering.Finding(status: status, columns: row.columns, values: row.values))
            }
            let grant = rule.requires.map { TemplatePlaceholder.render($0, values: values, firstRow: [:]) }
                ?? "Grant the \(probe.runsOn.rawValue) migration user read access to the catalogs this rule reads."
            let rendering = FindingRendering(findings: findings, messages: rule.messages, remedy: rule.remedy, values: values,
                                             unseen: unseen, grant: grant)
            let found = DispatchTime.now().uptimeNanoseconds
            let rendered = rendering.render()
            var outcome = result(rendered.status, rendered.message, rendered.remedy, rendered.objects)
            outcome.rendering = rendering
            Self.trace?("\(rule.id)\(database.map { " [\($0)]" } ?? ""): \(rows.count) rows; query (server, transfer, copy) "
                        + "\(Self.ms(queryStarted, queried)) ms, findings \(Self.ms(queried, found)) ms, "
                        + "render \(Self.ms(found, DispatchTime.now().uptimeNanoseconds)) ms")
            return outcome
        } catch let error as ServerError {
            if error.sqlState == "42501" {
                let user = values["\(probe.runsOn.rawValue).user"] ?? ""
                var grant = rule.requires.map { TemplatePlaceholder.render($0, values: values, firstRow: [:]) }
                if grant == nil {
                    grant = try? await session.connection.run { c in
                        Self.grant(for: error, user: user) { name in
                            // plain names as they are (as {source.user} in the rules' grants), others quoted
                            name.range(of: #"^[a-z_][a-z0-9_$]*$"#, options: .regularExpression) != nil
                                ? name : ((try? c.quoteIdentifier(name)) ?? name)
                        }
                    }
                }
                return result(.warning, "could not check: \(error.message)",
                              grant ?? "Grant the \(probe.runsOn.rawValue) migration user read access to the catalogs this rule reads.", [])
            }
            return result(.failed, "could not check: \(error.message)",
                          "The probe failed on the \(probe.runsOn.rawValue) (PostgreSQL \(version)); if the error persists, "
                          + "report it with the rule file \(URL(fileURLWithPath: rule.file).lastPathComponent).", [])
        } catch {
            return result(.failed, "could not check: \(error)",
                          "Check the \(probe.runsOn.rawValue) connection and run again.", [])
        }
    }

    /// The grant a permission error names, for a rule without `requires:` (a rule of the user's
    /// own, from `--rules DIR`): the predefined role the server asks for, or the privilege on
    /// the object it names; nil when the error names neither.
    static func grant(for error: ServerError, user: String, quote: (String) -> String) -> String? {
        let text = error.message + " " + (error.detail ?? "") + " " + (error.hint ?? "")
        // "must be superuser or have privileges of pg_read_all_settings …" (15),
        // "Only roles with privileges of the "pg_read_all_settings" role may …" (16+)
        if let match = text.range(of: #"pg_(read_all_settings|read_all_stats|read_all_data|read_server_files|monitor|stat_scan_tables|signal_backend)\b"#,
                                  options: .regularExpression) {
            return "GRANT \(text[match]) TO \(quote(user));"
        }
        let objects: [(prefix: String, grant: String)] = [
            ("permission denied for table ", "SELECT ON TABLE"), ("permission denied for relation ", "SELECT ON TABLE"),
            ("permission denied for view ", "SELECT ON TABLE"), ("permission denied for materialized view ", "SELECT ON TABLE"),
            ("permission denied for sequence ", "SELECT ON SEQUENCE"), ("permission denied for function ", "EXECUTE ON FUNCTION"),
            ("permission denied for schema ", "USAGE ON SCHEMA"), ("permission denied for database ", "CONNECT ON DATABASE"),
        ]
        for (prefix, privilege) in objects where error.message.hasPrefix(prefix) {
            // The server names the object unquoted.
            return "GRANT \(privilege) \(quote(String(error.message.dropFirst(prefix.count)))) TO \(quote(user));"
        }
        return nil
    }

    /// `PGPREFLIGHT_TRACE=1`: one stderr line per probe with the time of each phase (where a
    /// slow rule spends it: the query, building the findings, rendering the message and remedy).
    static let trace: (@Sendable (String) -> Void)? = {
        guard ProcessInfo.processInfo.environment["PGPREFLIGHT_TRACE"] == "1" else { return nil }
        return { line in FileHandle.standardError.write(Data(("trace: " + line + "\n").utf8)) }
    }()

    static func ms(_ from: UInt64, _ to: UInt64) -> String { String(format: "%.1f", Double(to - from) / 1_000_000) }

    // MARK: Builtins

    private func evaluateBuiltin(_ check: BuiltinCheck, rule: Rule, context: EvaluationContext, rules: [Rule]) async -> RuleResult? {
        let startedAt = Date()
        func result(_ status: Status, _ message: String, _ remedy: String, _ objects: [String]) -> RuleResult {
            RuleResult(rule: rule.id, title: rule.title, scope: .instance, database: nil, status: status, message: message,
                       remedy: status == .succeeded ? "" : remedy, objects: objects, documentation: rule.documentation,
                       startedAt: startedAt, finishedAt: Date())
        }
        switch check {
        case .connectivitySource, .connectivityTarget:
            let role: ServerRole = check == .connectivitySource ? .source : .target
            guard let state = context.servers[role] else { return nil }
            if let failure = state.failure {
                let advice = ConnectivityAdvice.describe(failure, role: role, endpoint: state.endpoint)
                let skippedRules = rules.filter { $0.builtin == nil && $0.servers.contains(role) }.map(\.id)
                let skipped = skippedRules.count
                var failed = result(.failed, advice.message + "; \(skipped) rule\(skipped == 1 ? " that needs" : "s that need") the \(role.rawValue) "
                                    + "\(skipped == 1 ? "was" : "were") skipped", advice.remedy, [failure.endpoint])
                failed.skippedRules = skippedRules
                return failed
            }
            if let factsError = state.factsError {
                return result(.failed, "Connected to the \(role.rawValue), but could not read its settings: \(factsError)",
                              "Check that \(state.endpoint.user ?? "the user") may read pg_settings and pg_roles.", [state.reachedDescription])
            }
            return result(.succeeded, "Connected to \(state.reachedDescription) (PostgreSQL \(state.info.serverVersion ?? "?"))", "", [])
        case .connectivityTLS:
            let reachable = [ServerRole.source, .target].compactMap { context.servers[$0] }.filter { $0.session != nil }
            guard !reachable.isEmpty else { return nil }
            let plain = reachable.filter { !($0.session!.connection.isEncrypted) }
            if plain.isEmpty {
                return result(.succeeded, (reachable.count == 1 ? "The connection to the \(reachable[0].role.rawValue) is" : "Both connections are")
                              + " encrypted (TLS)", "", [])
            }
            return result(.warning, (plain.count == 1 ? "The connection to the \(plain[0].role.rawValue) is" : "The connections to the source and the target are")
                          + " not encrypted",
                          "Enable SSL on \(plain.map { "the \($0.role.rawValue) (\($0.info.host):\($0.info.port))" }.joined(separator: " and ")) "
                          + "(ssl = on with a certificate), then connect with sslmode=require or stricter "
                          + "(append ?sslmode=require to the URI).",
                          plain.map { "\($0.role.rawValue) \($0.reachedDescription)" })
        case .connectivityLatency:
            let reachable = [ServerRole.source, .target].compactMap { context.servers[$0] }.filter { $0.session != nil }
            guard !reachable.isEmpty else { return nil }
            var figures: [(role: ServerRole, endpoint: String, ms: Double)] = []
            for state in reachable {
                guard let session = state.session else { continue }
                var samples: [Double] = []
                for _ in 0..<10 {
                    let started = DispatchTime.now().uptimeNanoseconds
                    do { _ = try await session.query("SELECT 1", []) } catch { continue }
                    samples.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1_000_000)
                }
                guard !samples.isEmpty else { continue }
                let sorted = samples.sorted()
                let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
                figures.append((state.role, state.reachedDescription, median))
            }
            let summary = figures.map { "\($0.role.rawValue) \(String(format: "%.1f", $0.ms)) ms" }.joined(separator: ", ")
            let threshold = request.latencyThresholdMs
            let slow = figures.filter { $0.ms > threshold }
            if slow.isEmpty {
                return result(.succeeded, "Median round trip of SELECT 1: \(summary)", "", [])
            }
            return result(.warning, "Median round trip of SELECT 1 over 10 tries: \(summary) (more than \(String(format: "%g", threshold)) ms)",
                          "Run pgpreflight (and the migration) from a machine close to the servers, e.g. a VM in the "
                          + "same region and network as the target; every round trip slows the copy.",
                          slow.map { "\($0.role.rawValue) \($0.endpoint)" })
        }
    }

}

// MARK: Supporting types

struct ServerState: Sendable {
    var role: ServerRole
    var endpoint: ConnectionString
    var session: Session?
    var failure: ConnectionFailure?
    var facts: ServerFacts?
    var factsError: String?
    var info: ServerInfo

    /// `user@host:port/database` of the open session (libpq's, after a service file), else of the string.
    var reachedDescription: String { session?.connection.reached.description ?? failure?.endpoint ?? endpoint.description }

    init(role: ServerRole, endpoint: ConnectionString) {
        self.role = role; self.endpoint = endpoint
        info = ServerInfo(host: endpoint.host, port: endpoint.port, user: endpoint.user, serverVersion: nil)
    }
}

/// A validation session: a read-only connection whose queries are counted.
final class Session: @unchecked Sendable {
    let connection: Connection
    let role: ServerRole
    let database: String?
    let counter: QueryCounter

    init(connection: Connection, role: ServerRole, database: String?, counter: QueryCounter) {
        self.connection = connection; self.role = role; self.database = database; self.counter = counter
    }

    /// The same connection, its queries counted for `database`.
    func counting(as database: String) -> Session { Session(connection: connection, role: role, database: database, counter: counter) }

    func query(_ sql: String, _ parameters: [any SQLParameter]) async throws -> QueryResult {
        counter.add(role: role, database: database)
        return try await connection.run { try $0.query(sql, parameters) }
    }
}

/// Rules handed out one at a time to the sessions that evaluate them.
final class RuleQueue: @unchecked Sendable {
    private var rules: ArraySlice<Rule>
    private let lock = NSLock()
    init(_ rules: [Rule]) { self.rules = rules[...] }
    func next() -> Rule? { lock.withLock { rules.popFirst() } }
}

final class QueryCounter: @unchecked Sendable {
    private var stats = ValidationStatistics()
    private let lock = NSLock()

    func add(role: ServerRole, database: String?) {
        lock.withLock {
            if let database { stats.queriesPerDatabase[database, default: 0] += 1 }
            else { stats.instanceQueries[role, default: 0] += 1 }
        }
    }

    var statistics: ValidationStatistics { lock.withLock { stats } }
}

struct EvaluationContext: Sendable {
    let request: ValidationRequest
    let databases: [String]
    var servers: [ServerRole: ServerState]
    /// `{database.columns}` of the database being probed (see `DatabaseCensus`).
    var columnCensus: String?

    func parameter(_ name: String, database: String?) throws -> any SQLParameter {
        switch name {
        case "mode": return request.mode.rawValue
        case "overwrite": return request.overwrite
        case "databases": return TextArray(databases)
        case "database_count": return databases.count
        case "database": return database
        case "database.columns": return columnCensus ?? "{}"
        case "knowledge.settings": return VersionKnowledge.settingsJSON
        case "knowledge.extensions": return VersionKnowledge.extensionsJSON
        default:
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2, let role = ServerRole(rawValue: parts[0]), let state = servers[role] else {
                throw PlaceholderError("unknown placeholder {\(name)}")
            }
            guard let facts = state.facts else {
                throw PlaceholderError("the \(role.rawValue)'s facts could not be read: \(state.factsError ?? "not connected")")
            }
            return facts.parameter(parts[1])
        }
    }

    func templateValues(database: String?) -> [String: String] {
        var values = ["mode": request.mode.rawValue, "database": database ?? ""]
        values["source.user"] = servers[.source]?.facts?.user ?? request.source.user ?? ""
        values["target.user"] = servers[.target]?.facts?.user ?? request.target.user ?? ""
        return values
    }
}
