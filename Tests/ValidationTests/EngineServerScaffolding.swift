import LocalServers
import TestSupport

/// Servers of their own (a distinct settings list) for the engine-level suites, so that the
/// roles and databases they create never show up in the rule examples' instance-wide results.
protocol EngineServerScaffolding {
    /// The prefix of the databases a suite creates.
    var databasePrefix: String { get }
    /// Suites whose tests list every database of a server (the default selection) need
    /// servers of their own: another suite's databases come and go meanwhile.
    var clusterName: String { get }
}

extension EngineServerScaffolding {
    var clusterName: String { "engine-tests" }

    func servers() throws -> (source: LocalServer, target: LocalServer) {
        (try ExampleServers.server(major: 15, settings: ["cluster_name = '\(clusterName)'"]),
         try ExampleServers.server(major: 18, settings: ["cluster_name = '\(clusterName)'"]))
    }

    func createDatabase(_ server: LocalServer, _ sql: String = "") throws -> String {
        let name = try TestServers.freshDatabase(on: server, prefix: databasePrefix)
        if !sql.isEmpty {
            let c = try TestServers.connect(server, database: name)
            defer { c.close() }
            try c.execute(sql)
        }
        return name
    }

    /// Drops it even when a test made it a template.
    func dropDatabase(_ server: LocalServer, _ name: String) {
        guard let c = try? TestServers.connect(server) else { return }
        defer { c.close() }
        try? c.execute("UPDATE pg_database SET datistemplate = false WHERE datname = \((try? c.quoteLiteral(name)) ?? "''")")
        try? c.execute("DROP DATABASE IF EXISTS \((try? c.quoteIdentifier(name)) ?? name) WITH (FORCE)")
    }
}
