import Foundation
import LocalServers
@testable import Migration
import PostgresClient
import Testing
import TestSupport

/// Shapes the line-based restore and the binary COPY got wrong: the target must be one that
/// pg_dump cannot tell from the source (beyond the version change).
extension MigrationTests {
    static let tricky = #"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fid_monitor') THEN CREATE ROLE fid_monitor LOGIN; END IF;
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fid_group') THEN CREATE ROLE fid_group NOLOGIN; END IF;
        END $$;
        GRANT pg_monitor TO fid_monitor WITH ADMIN OPTION;
        GRANT fid_group TO fid_monitor;
        COMMENT ON ROLE fid_monitor IS 'watches
        -- Name: x; Type: ROLE';
        CREATE TYPE mood AS ENUM ('ok', 'meh');
        CREATE DOMAIN class_ref AS regclass;
        CREATE TYPE pair AS (t regclass, n int);
        -- Bodies and literals that a line-based reader of the script would change.
        CREATE FUNCTION plbody() RETURNS int LANGUAGE plpgsql AS $body$
        BEGIN
        -- a comment line inside the body
        -- Name: fake; Type: TABLE; Schema: public; Owner: nobody
          RETURN 1;
        END $body$;
        CREATE FUNCTION sqlbody() RETURNS text LANGUAGE sql AS $$
        SELECT '
        \. a line starting with a backslash
        \restrict not a meta-command
        -- not a comment'
        $$;
        CREATE FUNCTION atomic_body(a int) RETURNS int LANGUAGE sql
        BEGIN ATOMIC
          SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END;
          SELECT a + 1;
        END;
        CREATE TABLE literals (
          id int PRIMARY KEY,
          note text DEFAULT E'first\n-- Name: x; Type: TABLE; Schema: public; Owner: y\n\\. done',
          CHECK (note <> E'\n-- never')
        );
        COMMENT ON TABLE literals IS E'line one\n-- Name: fake; Type: TABLE; Schema: public; Owner: x\n\\unrestrict key';
        CREATE VIEW literal_view AS SELECT id, E'a\n-- b' AS text FROM literals;
        CREATE TABLE log (id int, msg text);
        CREATE RULE log_twice AS ON INSERT TO literals DO ALSO (INSERT INTO log VALUES (NEW.id, 'one'); INSERT INTO log VALUES (NEW.id, 'two'));
        INSERT INTO literals (id) VALUES (1), (2);
        -- OID-valued columns: the target must see the same names, not the source's OIDs.
        CREATE TABLE refs (
          id int PRIMARY KEY, c regclass, r regrole, t regtype, p regproc, pp regprocedure, o regoper, oo regoperator,
          n regnamespace, cfg regconfig, dict regdictionary, coll regcollation, cs regclass[], d class_ref, pr pair,
          acl aclitem[], m mood
        );
        INSERT INTO refs VALUES (1, 'literals', 'fid_monitor', 'mood', 'plbody', 'atomic_body(int)', '||/', '+(int4,int4)',
                                 'public', 'english', 'simple', '"C"', '{literals,refs}', 'refs', ROW('log', 3),
                                 '{fid_monitor=r/postgres,fid_group=arw/fid_monitor}', 'meh');
        INSERT INTO refs (id) VALUES (2);
        -- Tables without a column to copy, with rows.
        CREATE TABLE nothing ();
        INSERT INTO nothing DEFAULT VALUES; INSERT INTO nothing DEFAULT VALUES; INSERT INTO nothing DEFAULT VALUES;
        CREATE TABLE all_dropped (a int, b text);
        INSERT INTO all_dropped VALUES (1, 'x'), (2, 'y');
        ALTER TABLE all_dropped DROP COLUMN a; ALTER TABLE all_dropped DROP COLUMN b;
        CREATE TABLE only_generated (g int GENERATED ALWAYS AS (7) STORED);
        INSERT INTO only_generated DEFAULT VALUES;
        -- An inheritance child with a primary key: its NOT NULL stays inherited.
        CREATE TABLE parent (id int NOT NULL, v text);
        CREATE TABLE child (extra int) INHERITS (parent);
        ALTER TABLE child ADD PRIMARY KEY (id);
        INSERT INTO child VALUES (1, 'a', 2);
        -- Text-format values whose rendering depends on session settings.
        CREATE TABLE rendered (id int PRIMARY KEY, at timestamptz, d date, i interval, f float8, r real, b bytea);
        INSERT INTO rendered VALUES (1, '2025-03-04 05:06:07.891011+05:30', '2025-12-31', '1 year 2 mons -3 days 04:05:06.7',
                                     0.1 + 0.2, 1.17549435e-38, '\x00ff');
        SELECT lo_from_bytea(0, 'large object body');
        DO $$ BEGIN
          EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', (SELECT max(oid) FROM pg_largeobject_metadata), 'the LO''s comment');
          EXECUTE format('ALTER DATABASE %I CONNECTION LIMIT 42', current_database());
        END $$;
        """#

    /// pg_dump 18's script of a database (schema and data), without what only tells the two
    /// servers apart: the "Dumped from" version line, and Debian 15.20's private `pg_attver`
    /// attribute options (which no other server has).
    static func dump(_ server: LocalServer, _ database: String, _ options: [String] = []) throws -> [String] {
        let bin = TestServers.pg18.binDirectory.path
        let text = try LocalServer.run(["\(bin)/pg_dump", "-h", "127.0.0.1", "-p", "\(server.port)", "-U", "postgres",
                                        "--restrict-key=fidelity", "--no-tablespaces"] + options + [database])
        return text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            .filter { !$0.hasPrefix("-- Dumped from database version") && !$0.contains(" SET (pg_attver=") }
    }

    /// `pg_dump | psql` of a source database into a new target database (what the migration is
    /// measured against); returns its name. Without ON_ERROR_STOP, as a DBA runs it: psql
    /// reports the `pg_attver` statements the target rejects and goes on.
    static func pgDumpPsql(_ database: String) throws -> String {
        let bin = TestServers.pg18.binDirectory.path
        let baseline = database + "_dump"
        try Fixtures.target.psql("DROP DATABASE IF EXISTS \(baseline)")
        try Fixtures.target.psql("CREATE DATABASE \(baseline)")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(database)-\(UUID().uuidString.prefix(6)).sql")
        defer { try? FileManager.default.removeItem(at: file) }
        try LocalServer.run(["\(bin)/pg_dump", "-h", "127.0.0.1", "-p", "\(Fixtures.source.port)", "-U", "postgres", "-f", file.path, database])
        try LocalServer.run(["\(bin)/psql", "-X", "-q", "-h", "127.0.0.1", "-p", "\(Fixtures.target.port)", "-U", "postgres",
                             "-d", baseline, "-f", file.path])
        return baseline
    }

    static func rolesDump(_ server: LocalServer) throws -> [String] {
        let bin = TestServers.pg18.binDirectory.path
        return try LocalServer.run(["\(bin)/pg_dumpall", "-h", "127.0.0.1", "-p", "\(server.port)", "-U", "postgres", "--roles-only",
                                    "--restrict-key=fidelity"])
            .split(separator: "\n").map(String.init).filter { $0.contains("fid_") }
    }

    @Test func targetIsWhatPgDumpCannotTellFromTheSource() async throws {
        let database = try Fixtures.makeSource(Self.tricky, prefix: "mig_fidelity")
        let migrator = try Migrator(Fixtures.options("fidelity-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                                     stateDirectory: Fixtures.stateDirectory()))
        let outcome = await migrator.run()
        #expect(outcome.state == .succeeded, "\(outcome.message ?? "")")

        // Schema: every definition, comment and privilege, bodies and literals byte for byte:
        // the same as `pg_dump | psql` of the source gives on the same target (PostgreSQL 18
        // prints some definitions differently: that is the version change, not the copy).
        let baseline = try Self.pgDumpPsql(database)
        let baselineSchema = try Self.dump(Fixtures.target, baseline, ["--schema-only"])
        let targetSchema = try Self.dump(Fixtures.target, database, ["--schema-only"])
        #expect(baselineSchema.count > 100)
        let difference = targetSchema.difference(from: baselineSchema)
        #expect(difference.isEmpty, "schema differs from pg_dump | psql's: \(difference.map { "\($0)" }.prefix(20))")
        #expect(targetSchema.contains("-- a comment line inside the body"))
        #expect(targetSchema.contains("\\. a line starting with a backslash"))

        // Data: each table's rows as the target reads them, in the same session settings.
        let tables = ["literals", "log", "refs", "nothing", "all_dropped", "only_generated", "parent", "child", "rendered"]
        let rows = tables.map { "SELECT '\($0)', count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \($0) t" }
            .joined(separator: " UNION ALL ") + " ORDER BY 1"
        #expect(try Fixtures.listing(Fixtures.source, database, rows) == Fixtures.listing(Fixtures.target, database, rows))
        let names = "SELECT c::text, r::text, t::text, p::text, pp::text, o::text, oo::text, n::text, cfg::text, coll::text, cs::text, d::text, pr::text, acl::text FROM refs WHERE id = 1"
        #expect(try Fixtures.listing(Fixtures.target, database, names)
                == ["literals | fid_monitor | mood | plbody | atomic_body(integer) | ||/ | +(integer,integer) | public | english | \"C\" | {literals,refs} | refs | (log,3) | {fid_monitor=r/postgres,fid_group=arw/fid_monitor}"])
        #expect(try Fixtures.listing(Fixtures.target, database, "SELECT count(*) FROM nothing") == ["3"])

        // What pg_dumpall and the database carry: the role's comment, its memberships (in a
        // predefined role, with ADMIN), the large object's comment, the connection limit.
        let sourceRoles = try Self.rolesDump(Fixtures.source), targetRoles = try Self.rolesDump(Fixtures.target)
        for line in sourceRoles where !line.hasPrefix("GRANT ") { #expect(targetRoles.contains(line), "role line lost: \(line)") }
        #expect(targetRoles.contains { $0.hasPrefix("GRANT pg_monitor TO fid_monitor WITH ADMIN OPTION") })
        #expect(targetRoles.contains { $0.hasPrefix("GRANT fid_group TO fid_monitor") })
        #expect(try Fixtures.listing(Fixtures.target, database, "SELECT obj_description(oid, 'pg_largeobject'), md5(lo_get(oid)) FROM pg_largeobject_metadata")
                == Fixtures.listing(Fixtures.source, database, "SELECT obj_description(oid, 'pg_largeobject'), md5(lo_get(oid)) FROM pg_largeobject_metadata"))
        #expect(try Fixtures.listing(Fixtures.target, "postgres", "SELECT datconnlimit FROM pg_database WHERE datname = '\(database)'") == ["42"])
    }

    @Test func refusedObjectsAreNamedAndListed() async throws {
        // The PostgreSQL 18 wheel is built without ICU and lz4: an ICU collation and an lz4
        // column are refused.
        let sql = """
            CREATE TABLE kept (id int PRIMARY KEY, v text);
            INSERT INTO kept VALUES (1, 'one');
            CREATE COLLATION german (provider = icu, locale = 'de-DE');
            CREATE TABLE packed (id int, body text COMPRESSION lz4);
            CREATE VIEW kept_view AS SELECT id FROM kept;
            """
        let database = try Fixtures.makeSource(sql, prefix: "mig_refused")
        // Default: the run stops at the first refused object and names it.
        let first = try await Migrator(Fixtures.options("refused-a-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                                        stateDirectory: Fixtures.stateDirectory())).run()
        #expect(first.state == .failed)
        #expect(first.message?.contains("the target refused COLLATION public.german") == true, "\(first.message ?? "")")
        #expect(first.message?.contains("--continue-on-error") == true)

        // --continue-on-error: everything else is restored and copied; the run ends Failed with the list.
        var options = try Fixtures.options("refused-b-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                           stateDirectory: Fixtures.stateDirectory(), overwrite: true)
        options.continueOnError = true
        let all = await (try Migrator(options)).run()
        #expect(all.state == .failed)
        let message = all.message ?? ""
        #expect(message.contains("refused 2 schema object(s)"), "\(message)")
        #expect(message.contains("COLLATION public.german") && message.contains("TABLE public.packed"), "\(message)")
        #expect(message.contains("ICU") && message.contains("lz4"), "\(message)")
        #expect(try Fixtures.listing(Fixtures.target, database, "SELECT v FROM kept") == ["one"])
        #expect(try Fixtures.listing(Fixtures.target, database, "SELECT count(*) FROM kept_view") == ["1"])
    }
}

extension MigrationTests {
    /// The dry run lists what `pg_dump | psql` of the same source reports as errors on the same
    /// target (each object once, a consequence named as such), writes nothing but its scratch
    /// database, and drops it.
    @Test func schemaDryRunListsWhatTheTargetRefuses() async throws {
        let database = try Fixtures.makeSource("""
            CREATE TABLE kept (id int PRIMARY KEY);
            ALTER TABLE kept OWNER TO mig_owner;
            CREATE COLLATION german (provider = icu, locale = 'de-DE');
            CREATE TABLE packed (id int, body text COMPRESSION lz4);
            CREATE VIEW packed_ids AS SELECT id FROM packed;
            """, prefix: "mig_dry")
        let before = try Fixtures.listing(Fixtures.target, "postgres", "SELECT datname FROM pg_database ORDER BY 1")
        let result = SchemaDryRun.run(source: try ConnectionString(Fixtures.source.connectionString()),
                                      target: try ConnectionString(Fixtures.target.connectionString()), database: database)
        #expect(result.status == .failed, "\(result.message)")
        #expect(result.objects.count == 3, "\(result.objects)")
        #expect(result.objects.contains { $0.hasPrefix("COLLATION public.german: ") && $0.contains("ICU") })
        #expect(result.objects.contains { $0.hasPrefix("TABLE public.packed: ") && $0.contains("lz4") })
        #expect(result.objects.contains { $0.hasPrefix("VIEW public.packed_ids: ") && $0.contains("depends on TABLE public.packed") })
        #expect(try Fixtures.listing(Fixtures.target, "postgres", "SELECT datname FROM pg_database ORDER BY 1") == before)

        // pg_dump | psql of the same source on the same target: the same three errors (beyond
        // Debian 15.20's private pg_attver options, which every dump of it carries).
        let bin = TestServers.pg18.binDirectory.path
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(database).sql")
        defer { try? FileManager.default.removeItem(at: file) }
        try LocalServer.run(["\(bin)/pg_dump", "-s", "-h", "127.0.0.1", "-p", "\(Fixtures.source.port)", "-U", "postgres", "-f", file.path, database])
        try Fixtures.target.psql("DROP DATABASE IF EXISTS \(database)_psql")
        try Fixtures.target.psql("CREATE DATABASE \(database)_psql")
        let output = try LocalServer.run(["\(bin)/psql", "-X", "-q", "-h", "127.0.0.1", "-p", "\(Fixtures.target.port)", "-U", "postgres",
                                          "-d", "\(database)_psql", "-f", file.path])
        // Each error psql reports that is not a consequence of another ("… does not exist": an
        // object refused before, or a role the migration creates first) is in the dry run's list.
        let causes = output.split(separator: "\n").compactMap { line -> String? in
            guard let range = line.range(of: "ERROR:  "), !line.contains("pg_attver") else { return nil }
            let message = String(line[range.upperBound...])
            return message.hasSuffix("does not exist") ? nil : message
        }
        #expect(causes.count == 2, "\(causes)")
        for cause in causes { #expect(result.objects.contains { $0.hasSuffix(": " + cause) }, "\(cause) not in \(result.objects)") }
    }
}

extension MigrationTests {
    /// A migration to an older major stops before it writes anything on the target.
    @Test func migrationToAnOlderMajorTouchesNothing() async throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg18, prefix: "mig_older")
        try TestServers.pg18.psql("CREATE TABLE t (id int)", database: database)
        let options = MigrationOptions(name: "older-\(database.replacingOccurrences(of: "_", with: "-"))",
                                       source: try ConnectionString(TestServers.pg18.connectionString()),
                                       target: try ConnectionString(TestServers.pg15.connectionString()), databases: [database],
                                       jobs: 2, stateDirectory: Fixtures.stateDirectory(), showProgress: false)
        let outcome = await (try Migrator(options)).run()
        #expect(outcome.state == .failed)
        #expect(outcome.message?.contains("older than the source") == true, "\(outcome.message ?? "")")
        #expect(try Fixtures.listing(TestServers.pg15, "postgres", "SELECT count(*) FROM pg_database WHERE datname = '\(database)'") == ["0"])
    }
}
