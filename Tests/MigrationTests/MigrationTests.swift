import Foundation
import LocalServers
@testable import Migration
import PostgresClient
import Testing
import TestSupport

/// Migrations from PostgreSQL 15 to 18 on real servers. Serialized: one active migration per
/// target is the rule under test, and every test migrates into the same target server.
@Suite(.serialized)
struct MigrationTests {
    /// Catalog listings that must be identical on both sides after a migration.
    static let listings: [String] = [
        // tables and columns (types, defaults, nullability, identity, generated expressions)
        """
        SELECT c.relname, c.relkind, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
        WHERE n.nspname IN ('app', 'public') ORDER BY 1, 3
        """,
        "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname IN ('app', 'public') ORDER BY 1, 2, 3",
        """
        SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace IN ('app'::regnamespace, 'public'::regnamespace) AND contype <> 'n' ORDER BY 1, 2  -- 18 lists NOT NULL as constraints
        """,
        // owners and ACLs of relations, schemas, types, functions
        """
        SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner),
               regexp_replace(c.relacl::text, 'm/', '/', 'g'), -- 17+ adds MAINTAIN (m) to owners' default privileges
               obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('app', 'public') ORDER BY 1, 2
        """,
        "SELECT nspname, pg_get_userbyid(nspowner), nspacl::text FROM pg_namespace WHERE nspname IN ('app', 'public') ORDER BY 1",
        "SELECT p.proname, pg_get_userbyid(p.proowner), pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.pronamespace = 'app'::regnamespace ORDER BY 1",
        "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2",
        "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY 1 ORDER BY 1",
        "SELECT inhrelid::regclass::text, inhparent::regclass::text, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits JOIN pg_class c ON c.oid = inhrelid ORDER BY 1, 2",
        "SELECT schemaname, viewname FROM pg_views WHERE schemaname = 'app' UNION ALL SELECT schemaname, matviewname || ' populated=' || ispopulated FROM pg_matviews ORDER BY 1, 2",
        // sequence values
        "SELECT schemaname, sequencename, last_value FROM pg_sequences WHERE schemaname IN ('app', 'public') ORDER BY 1, 2",
        // large objects: owner, ACL, contents
        "SELECT oid, pg_get_userbyid(lomowner), lomacl::text, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY 1",
        // rows, order-independent: md5 of every table's sorted rows, and the views' results
        """
        SELECT 'customers', count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM app.customers t
        UNION ALL SELECT 'orders', count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM app.orders t
        UNION ALL SELECT 'events', count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM app.events t
        UNION ALL SELECT 'audit', count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM app.audit t
        UNION ALL SELECT 'plain', count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM public.plain t
        UNION ALL SELECT 'refunds', count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM app.refunds t
        UNION ALL SELECT 'big_orders', count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM app.big_orders t
        UNION ALL SELECT 'order_totals', count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM app.order_totals t
        """,
    ]

    @Test func migratesEveryObjectAndRowIdentically() async throws {
        let database = try Fixtures.makeSource(Fixtures.rich, prefix: "mig_rich")
        let state = Fixtures.stateDirectory()
        let migrator = try Migrator(Fixtures.options("rich-\(database.replacingOccurrences(of: "_", with: "-"))", database: database, stateDirectory: state))
        let outcome = await migrator.run()
        #expect(outcome.state == .succeeded, "\(outcome.message ?? "")")
        #expect(outcome.targetDatabases == [database])
        for sql in Self.listings {
            let source = try Fixtures.listing(Fixtures.source, database, sql)
            let target = try Fixtures.listing(Fixtures.target, database, sql)
            #expect(!source.isEmpty, "empty listing: \(sql.prefix(60))")
            #expect(source == target, "differs: \(sql.prefix(80))")
        }
        // `pgpreflight verify` agrees: every catalog listing, owner, privilege, sequence and
        // checksum is the same.
        let endpoints = try Fixtures.options("v", database: database, stateDirectory: state)
        let verification = await Verifier(source: endpoints.source, target: endpoints.target, checksums: true).verify(database: database)
        #expect(verification.count == Verifier.catalogChecks.count + 2)  // + row counts and checksums
        #expect(verification.first { $0.rule == "verify.large-objects" }?.message.hasPrefix("2 identical") == true)
        for result in verification where result.status != .succeeded {
            Issue.record("verify: \(result.rule): \(result.message) \(result.objects.prefix(5))")
        }
        // The database itself: owner and encoding as on the source; roles carried without SUPERUSER.
        let dbInfo = "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '\(database)'"
        #expect(try Fixtures.listing(Fixtures.source, "postgres", dbInfo) == Fixtures.listing(Fixtures.target, "postgres", dbInfo))
        // Its settings, and those of roles in it.
        let dbSettings = """
            SELECT coalesce(pg_get_userbyid(nullif(s.setrole, 0)), '-'), array_to_string(s.setconfig, ';')
            FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '\(database)' ORDER BY 1
            """
        let sourceDbSettings = try Fixtures.listing(Fixtures.source, "postgres", dbSettings)
        #expect(sourceDbSettings.count == 2)
        // And its privileges (owner aside: the target's owner may differ in name only).
        let dbPrivileges = """
            SELECT coalesce(pg_get_userbyid(nullif(a.grantee, 0)), 'PUBLIC'), a.privilege_type, a.is_grantable
            FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = '\(database)' AND a.grantee <> d.datdba ORDER BY 1, 2
            """
        let sourcePrivileges = try Fixtures.listing(Fixtures.source, "postgres", dbPrivileges)
        #expect(sourcePrivileges.contains("mig_owner | CREATE | t") && sourcePrivileges.contains("PUBLIC | CONNECT | f"), "\(sourcePrivileges)")
        #expect(try Fixtures.listing(Fixtures.target, "postgres", dbPrivileges) == sourcePrivileges)
        #expect(try Fixtures.listing(Fixtures.target, "postgres", dbSettings) == sourceDbSettings)
        let roles = "SELECT rolname, rolcanlogin, rolsuper, rolpassword IS NOT NULL FROM pg_authid WHERE rolname LIKE 'mig\\_%' ORDER BY 1"
        #expect(try Fixtures.listing(Fixtures.source, "postgres", roles) == Fixtures.listing(Fixtures.target, "postgres", roles))
        let members = "SELECT roleid::regrole::text, member::regrole::text FROM pg_auth_members WHERE member::regrole::text LIKE 'mig\\_%' ORDER BY 1, 2"
        #expect(try Fixtures.listing(Fixtures.target, "postgres", members) == ["mig_reader | mig_app"])
        let settings = "SELECT array_to_string(setconfig, ';') FROM pg_db_role_setting WHERE setrole = 'mig_app'::regrole AND setdatabase = 0"
        let (targetSettings, sourceSettings) = (try Fixtures.listing(Fixtures.target, "postgres", settings), try Fixtures.listing(Fixtures.source, "postgres", settings))
        #expect(targetSettings == sourceSettings, "target \(targetSettings), source \(sourceSettings)")

        // The store says so, in the JSON shape of the design.
        let status = try #require(try migrator.store.status(migrator.options.name))
        #expect(status.state == "Succeeded" && status.substate == "Completed")
        #expect(status.databases.count == 1 && status.databases[0].tables.copied == 7 && status.databases[0].tables.total == 7)
        #expect(status.databases[0].rowsCopied == 500 + 3000 + 2000 + 3000 + 100 + 301)  // audit: 3000 rows from the trigger on the source, none from the copy
        // Foreign keys: validated as on the source (the constraint listing above compares their
        // definitions, where NOT VALID shows), the one NOT VALID on the source left so.
        let foreignKeys = "SELECT conrelid::regclass::text, conname, convalidated FROM pg_constraint WHERE contype = 'f' AND conparentid = 0 ORDER BY 1, 2"
        let targetKeys = try Fixtures.listing(Fixtures.target, database, foreignKeys)
        #expect(targetKeys == (try Fixtures.listing(Fixtures.source, database, foreignKeys)))
        #expect(targetKeys.contains("refunds | refunds_customer | f") && targetKeys.contains("refunds | refunds_order_id_fkey | t"), "\(targetKeys)")
        #expect(outcome.summary.contains("VALIDATE (cumulative)"), "\(outcome.summary)")  // the validated keys went through VALIDATE

        // Rerunning a Succeeded migration does nothing.
        let again = await migrator.run()
        #expect(again.state == .succeeded)
    }

    @Test func verificationNamesTablesThatDiffer() async throws {
        let database = try Fixtures.makeSource("CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, 'v' || g FROM generate_series(1, 200) g; CREATE TABLE b (id int); INSERT INTO b SELECT generate_series(1, 50);", prefix: "mig_verify")
        let options = try Fixtures.options("verify-\(database.replacingOccurrences(of: "_", with: "-"))", database: database, stateDirectory: Fixtures.stateDirectory())
        #expect(try await Migrator(options).run().state == .succeeded)
        #expect(try TableVerifier.verify(source: options.source, target: options.target, database: database, mode: .checksums).isEmpty)
        try Fixtures.target.psql("UPDATE a SET v = 'changed' WHERE id = 7; DELETE FROM b WHERE id = 3", database: database)
        let checksums = try TableVerifier.verify(source: options.source, target: options.target, database: database, mode: .checksums)
        #expect(checksums.map(\.table) == ["public.a", "public.b"])
        #expect(checksums.first { $0.table == "public.b" }?.targetRows == 49)
        let counts = try TableVerifier.verify(source: options.source, target: options.target, database: database, mode: .counts)
        #expect(counts.map(\.table) == ["public.b"])  // a count cannot see the changed row
    }

    @Test func overwriteGuardStopsUnlessAsked() async throws {
        let database = try Fixtures.makeSource("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);", prefix: "mig_guard")
        try Fixtures.target.psql("CREATE DATABASE \(database)")
        try Fixtures.target.psql("CREATE TABLE precious (id int); INSERT INTO precious VALUES (42);", database: database)
        let state = Fixtures.stateDirectory()
        let name = "guard-\(database.replacingOccurrences(of: "_", with: "-"))"
        let stopped = try await Migrator(Fixtures.options(name, database: database, stateDirectory: state)).run()
        #expect(stopped.state == .waitingForUserAction)
        #expect(stopped.substate == .waitingForTargetDBOverwriteConfirmation)
        #expect(stopped.message?.contains("--overwrite") == true)
        #expect(try Fixtures.listing(Fixtures.target, database, "SELECT id FROM precious") == ["42"])
        let overwritten = try await Migrator(Fixtures.options(name, database: database, stateDirectory: state, overwrite: true)).run()
        #expect(overwritten.state == .succeeded, "\(overwritten.message ?? "")")
        #expect(try Fixtures.listing(Fixtures.target, database, "SELECT count(*) FROM pg_class WHERE relname = 'precious'") == ["0"])
        #expect(try Fixtures.listing(Fixtures.target, database, "SELECT id FROM t ORDER BY 1") == ["1", "2"])
    }

    @Test func offlineRefusesWhileClientsAreConnected() async throws {
        let database = try Fixtures.makeSource("CREATE TABLE t (id int);", prefix: "mig_busy")
        let client = try TestServers.connect(Fixtures.source, database: database)
        defer { client.close() }
        let name = "busy-\(database.replacingOccurrences(of: "_", with: "-"))"
        let refused = try await Migrator(Fixtures.options(name, database: database, stateDirectory: Fixtures.stateDirectory())).run()
        #expect(refused.state == .failed)
        #expect(refused.message?.contains("--force") == true)
        let forced = try await Migrator(Fixtures.options(name + "-f", database: database, stateDirectory: Fixtures.stateDirectory(), force: true)).run()
        #expect(forced.state == .succeeded, "\(forced.message ?? "")")
    }

    @Test func foreignKeysAreAddedNotValidThenValidated() {
        let entry = """
            ALTER TABLE ONLY app.refunds
                ADD CONSTRAINT refunds_order_id_fkey FOREIGN KEY (order_id) REFERENCES app.orders(id) ON DELETE CASCADE DEFERRABLE;
            """
        #expect(Migrator.addingNotValid(entry) == """
            ALTER TABLE ONLY app.refunds
                ADD CONSTRAINT refunds_order_id_fkey FOREIGN KEY (order_id) REFERENCES app.orders(id) ON DELETE CASCADE DEFERRABLE NOT VALID;
            """)
        #expect(Migrator.addingNotValid("ALTER TABLE ONLY t ADD CONSTRAINT k FOREIGN KEY (a) REFERENCES u(a) NOT VALID;") == nil)
        #expect(Migrator.addingNotValid("ALTER TABLE ONLY t ADD CONSTRAINT k FOREIGN KEY (a) REFERENCES u(a);\nCOMMENT ON CONSTRAINT k ON t IS 'x';") == nil)
        #expect(Migrator.addingNotValid("CREATE TRIGGER x AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();") == nil)
    }

    @Test func badInputIsRejected() throws {
        let state = Fixtures.stateDirectory()
        for name in ["-x", "a_b", "", "a b"] {
            #expect(throws: MigrationUsageError.self) { try Migrator(Fixtures.options(name, database: "x", stateDirectory: state)) }
        }
        var online = try Fixtures.options("ok-name", database: "x", stateDirectory: state)
        online.mode = .online
        #expect(throws: Never.self) { try Migrator(online) }  // online mode exists (OnlineMigrationTests)
    }

    @Test func resumesAfterKill9MidCopy() async throws {
        let database = try Fixtures.makeSource(Fixtures.big, prefix: "mig_kill")
        let state = Fixtures.stateDirectory()
        let name = "kill-\(database.replacingOccurrences(of: "_", with: "-"))"
        let arguments = ["migrate", name, "--source", Fixtures.source.connectionString(), "--target", Fixtures.target.connectionString(),
                         "--database", database, "--state-dir", state.path, "--jobs", "2", "--verify", "checksums"] + Fixtures.targetWait
        let log = state.appendingPathExtension("log")
        let pid = Fixtures.spawn(arguments, output: log)
        defer { kill(pid, SIGKILL) }  // never left running to block the other tests' target
        let store = try waitForStore(state)
        let copying = try Fixtures.waitUntil {
            (try store.status(name)?.databases.first?.tables.copying ?? 0) > 0
        }
        #expect(copying)
        usleep(50_000)
        kill(pid, SIGKILL)
        _ = LocalServer.wait(pid)
        let killed = try #require(try store.status(name))
        #expect(killed.state == "Interrupted")  // the record says InProgress; its process is gone
        #expect(killed.databases[0].tables.copied < killed.databases[0].tables.total)

        // `status` from another terminal, in the design's JSON shape.
        let json = try LocalServer.run([Fixtures.binary, "status", name, "--state-dir", state.path, "--format", "json"])
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(Set(decoded.keys).isSuperset(of: ["name", "state", "substate", "mode", "startedAt", "databases"]))
        let firstDatabase = try #require((decoded["databases"] as? [[String: Any]])?.first)
        #expect(Set(firstDatabase.keys) == ["name", "state", "tables", "rowsCopied", "bytesCopied", "bytesTotal", "percentCopied", "tablesInFlight",
                                            "latencySeconds", "pendingBytes"])
        #expect(Set((firstDatabase["tables"] as? [String: Any])?.keys ?? [:].keys) == ["total", "queued", "copying", "copied", "errors"])

        // Killed again at other moments of resumed runs (copy, index build, post-data, verification).
        for delay in [700_000, 1_500_000] as [useconds_t] {
            let again = Fixtures.spawn(arguments, output: log)
            usleep(delay)
            kill(again, SIGKILL)
            _ = LocalServer.wait(again)
        }

        // Rerun the same command: resumes and verifies.
        let resumed = Fixtures.spawn(arguments, output: log)
        let exit = LocalServer.wait(resumed)
        #expect(exit == 0, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        let done = try #require(try store.status(name))
        #expect(done.state == "Succeeded")
        #expect(done.databases[0].tables.copied == 3)
        let rows = "SELECT count(*), sum(length(body)), count(DISTINCT id) FROM big"
        #expect(try Fixtures.listing(Fixtures.source, database, rows) == Fixtures.listing(Fixtures.target, database, rows))
        let indexes = "SELECT indexname FROM pg_indexes WHERE tablename = 'big' ORDER BY 1"
        #expect(try Fixtures.listing(Fixtures.target, database, indexes) == ["big_body", "big_pkey"])
    }

    /// `keyed` holds most of the data (relative to the tiny threshold used here) and is copied
    /// in ranges: ctid page ranges (a 14+ source), or ranges of its integer key (what older
    /// sources get), with negative keys and a hole in the middle.
    @Test(arguments: [false, true])
    func splitTablesAreCopiedByRangesExactly(byKey: Bool) async throws {
        let database = try Fixtures.makeSource("""
            CREATE TABLE keyed (id int PRIMARY KEY, v text);
            INSERT INTO keyed SELECT g, repeat('k', g % 50) FROM generate_series(-5000, 150000) g;
            DELETE FROM keyed WHERE id BETWEEN 40000 AND 70000;
            CREATE TABLE heap (v text, n numeric);
            INSERT INTO heap SELECT md5(g::text), g / 7.0 FROM generate_series(1, 10000) g;
            DELETE FROM heap WHERE n::int % 11 = 0;
            """, prefix: "mig_split")
        var options = try Fixtures.options("split-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                           stateDirectory: Fixtures.stateDirectory(), verify: .checksums)
        options.splitThresholdBytes = 256 << 10
        options.keyRangesOnly = byKey
        let outcome = try await Migrator(options).run()
        #expect(outcome.state == .succeeded, "\(outcome.message ?? "")")
        let rows = "SELECT (SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM keyed t), (SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM heap t)"
        #expect(try Fixtures.listing(Fixtures.source, database, rows) == Fixtures.listing(Fixtures.target, database, rows))
        let status = try #require(try Migrator(options).store.status(options.name))
        #expect(status.databases[0].tables.copied == 2)
        let sourceRows = try Fixtures.listing(Fixtures.source, database, "SELECT (SELECT count(*) FROM keyed) + (SELECT count(*) FROM heap)")
        #expect(["\(status.databases[0].rowsCopied)"] == sourceRows)
    }

    /// A big table is created first and copied while the 150 small tables, its sequence, the
    /// column default, a view over it and a comment are restored: those statements wait for
    /// its copy (which holds the table from TRUNCATE to COMMIT), nothing deadlocks, and the
    /// copy really ran before the rest of the schema existed. With pg_dump 18 and with the
    /// source's own pg_dump 15, whose pre-data creates the large objects (empty).
    @Test(arguments: [false, true])
    func bigTablesAreCopiedWhileTheRestOfTheSchemaIsRestored(sourcePgDump: Bool) async throws {
        let database = try Fixtures.makeSource("""
            CREATE TYPE mood AS ENUM ('calm', 'busy');
            CREATE TABLE big (id serial PRIMARY KEY, body text NOT NULL, state mood NOT NULL DEFAULT 'calm', note text);
            INSERT INTO big (body, state) SELECT repeat(md5(g::text), 4), CASE WHEN g % 3 = 0 THEN 'busy'::mood ELSE 'calm' END
            FROM generate_series(1, 150000) g;
            COMMENT ON COLUMN big.note IS 'free text';
            CREATE VIEW big_busy AS SELECT id, body FROM big WHERE state = 'busy';
            DO $$ BEGIN
              FOR i IN 1..150 LOOP
                EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, v text)', i);
                EXECUTE format('INSERT INTO t_%s SELECT g, md5(g::text) FROM generate_series(1, %s) g', i, i);
              END LOOP;
            END $$;
            SELECT lo_from_bytea(0, convert_to(repeat('lo ' || g, 1000), 'UTF8')) FROM generate_series(1, 5) g;
            """, prefix: "mig_early")
        var options = try Fixtures.options("early-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                           stateDirectory: Fixtures.stateDirectory(), verify: .checksums)
        if sourcePgDump { options.pgBin = Fixtures.source.binDirectory }
        let outcome = try await Migrator(options).run()
        #expect(outcome.state == .succeeded, "\(outcome.message ?? "")")
        let catalog = """
            SELECT (SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'big'::regclass AND adnum = 1),
                   col_description('big'::regclass, 4), (SELECT count(*) FROM big_busy),
                   (SELECT last_value FROM big_id_seq), (SELECT count(*) FROM pg_tables WHERE tablename LIKE 't\\_%'),
                   (SELECT string_agg(md5(lo_get(oid)), ',' ORDER BY oid) FROM pg_largeobject_metadata)
            """
        #expect(try Fixtures.listing(Fixtures.target, database, catalog) == Fixtures.listing(Fixtures.source, database, catalog))
        // Transaction ids are handed out in order: the copy of `big` wrote before the schema
        // restore set its column default (pg_dump's last pre-data step, after the small tables);
        // a copy started after the restore would have a later one.
        let order = """
            SELECT (SELECT xmin::text::bigint FROM big LIMIT 1)
                   < (SELECT xmin::text::bigint FROM pg_attrdef WHERE adrelid = 'big'::regclass AND adnum = 1)
            """
        #expect(try Fixtures.listing(Fixtures.target, database, order) == ["t"])
    }

    /// The schema restore fails (a view the target cannot create) after a big table was
    /// copied early. Once the source is fixed, the same command redoes the schema from an
    /// empty database and copies that table again: nothing is skipped on the strength of a
    /// copy into the dropped database.
    @Test func aFailedSchemaRestoreAfterAnEarlyCopyIsRedoneWhole() async throws {
        let database = try Fixtures.makeSource("""
            CREATE TABLE big (id int PRIMARY KEY, body text NOT NULL);
            INSERT INTO big SELECT g, repeat(md5(g::text), 2) FROM generate_series(1, 60000) g;
            DO $$ BEGIN
              FOR i IN 1..1000 LOOP
                EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, v text)', i);
              END LOOP;
            END $$;
            -- restored after the small tables (pg_dump sorts by name); PostgreSQL 17 removed the column
            CREATE VIEW zz_checkpoints AS SELECT buffers_checkpoint FROM pg_stat_bgwriter;
            """, prefix: "mig_redo")
        let options = try Fixtures.options("redo-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                           stateDirectory: Fixtures.stateDirectory(), verify: .checksums)
        let failed = try await Migrator(options).run()
        #expect(failed.state == .failed)
        #expect(failed.message?.contains("buffers_checkpoint") == true, "\(failed.message ?? "")")
        let store = try Migrator(options).store
        // The precondition of this test: `big` was copied before the restore failed.
        #expect(try store.status(options.name)?.databases.first?.tables.copied == 1)

        try Fixtures.source.psql("DROP VIEW zz_checkpoints", database: database)
        let resumed = try await Migrator(options).run()
        #expect(resumed.state == .succeeded, "\(resumed.message ?? "")")
        let rows = "SELECT count(*), md5(string_agg(body, '' ORDER BY id)) FROM big"
        #expect(try Fixtures.listing(Fixtures.target, database, rows) == Fixtures.listing(Fixtures.source, database, rows))
    }

    /// Objects in a source tablespace the target does not have land in the target's default
    /// tablespace (as validation's objects.tablespaces says), instead of failing the restore.
    @Test func objectsInCustomTablespacesLandInTheDefaultOne() async throws {
        let name = "ts_\(UUID().uuidString.prefix(8).lowercased())"
        let location = Fixtures.source.dataDirectory.deletingLastPathComponent().appendingPathComponent(name)
        try FileManager.default.createDirectory(at: location, withIntermediateDirectories: true)
        if LocalServer.isRoot { _ = try LocalServer.run(["/bin/chown", "postgres:postgres", location.path]) }
        try Fixtures.source.psql("CREATE TABLESPACE \(name) LOCATION '\(location.path)'")
        let database = try Fixtures.makeSource("""
            CREATE TABLE placed (id int PRIMARY KEY USING INDEX TABLESPACE \(name), v text) TABLESPACE \(name);
            INSERT INTO placed SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
            CREATE INDEX placed_v ON placed (v) TABLESPACE \(name);
            CREATE MATERIALIZED VIEW placed_count TABLESPACE \(name) AS SELECT count(*) FROM placed;
            """, prefix: "mig_ts")
        let options = try Fixtures.options("ts-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                           stateDirectory: Fixtures.stateDirectory())
        let outcome = try await Migrator(options).run()
        #expect(outcome.state == .succeeded, "\(outcome.message ?? "")")
        let placement = "SELECT relname, reltablespace FROM pg_class WHERE relname LIKE 'placed%' ORDER BY 1"
        #expect(try Fixtures.listing(Fixtures.target, database, placement)
                == ["placed | 0", "placed_count | 0", "placed_pkey | 0", "placed_v | 0"])
        let rows = "SELECT (SELECT count(*) FROM placed), (SELECT * FROM placed_count)"
        #expect(try Fixtures.listing(Fixtures.target, database, rows) == ["1000 | 1000"])
    }

    @Test func manySmallTablesAreCreatedInParallelAndCopiedInGroups() async throws {
        // 150 tables (created by parallel sessions, copied in groups), one of which uses
        // another table's row type: the parallel creation falls back to pg_dump's order.
        let database = try Fixtures.makeSource("""
            DO $$ BEGIN
              FOR i IN 1..150 LOOP
                EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, v text DEFAULT %L)', i, 'd' || i);
                EXECUTE format('INSERT INTO t_%s SELECT g, md5(g::text) FROM generate_series(1, %s) g', i, i);
              END LOOP;
            END $$;
            CREATE TABLE t_9999 (x t_10, note text);  -- t_10 and t_9999 fall to different sessions
            INSERT INTO t_9999 SELECT t, 'row' FROM t_10 t;
            """, prefix: "mig_many")
        let options = try Fixtures.options("many-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                           stateDirectory: Fixtures.stateDirectory(), verify: .checksums)
        let outcome = try await Migrator(options).run()
        #expect(outcome.state == .succeeded, "\(outcome.message ?? "")")
        let listing = """
            SELECT c.relname, pg_get_userbyid(c.relowner), (SELECT string_agg(pg_get_indexdef(i.indexrelid), ';') FROM pg_index i WHERE i.indrelid = c.oid)
            FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' ORDER BY 1
            """
        let source = try Fixtures.listing(Fixtures.source, database, listing)
        #expect(source.count == 151)
        #expect(source == (try Fixtures.listing(Fixtures.target, database, listing)))
        let rows = "SELECT sum(hashtext(t::text)) FROM t_150 t UNION ALL SELECT sum(hashtext(t::text)) FROM t_9999 t"
        #expect(try Fixtures.listing(Fixtures.source, database, rows) == Fixtures.listing(Fixtures.target, database, rows))
    }

    @Test func resumesAfterTheTargetRestartsMidCopy() async throws {
        // A target of its own, so that restarting it disturbs no other test.
        let bin = try #require(LocalServer.binDirectory(major: 18, projectRoot: TestServers.projectRoot))
        let target = try LocalServer(major: 18, binDirectory: bin, name: "mig-restart")
        defer { target.stop() }
        let database = try Fixtures.makeSource(Fixtures.big, prefix: "mig_restart")
        var options = try Fixtures.options("restart-\(database.replacingOccurrences(of: "_", with: "-"))", database: database,
                                           stateDirectory: Fixtures.stateDirectory(), verify: .counts)
        options.target = try ConnectionString(target.connectionString())
        let migrator = try Migrator(options)
        let running = Task { await migrator.run() }
        #expect(try Fixtures.waitUntil { (try migrator.store.status(options.name)?.databases.first?.tables.copying ?? 0) > 0 })
        try target.restart()
        let interrupted = await running.value
        #expect(interrupted.state == .failed)
        #expect(interrupted.message?.isEmpty == false)

        let resumed = try await Migrator(options).run()
        #expect(resumed.state == .succeeded, "\(resumed.message ?? "")")
        let rows = "SELECT count(*), sum(length(body)) FROM big"
        let conn = try Connection.open(try ConnectionString(target.connectionString(database: database)))
        let targetRows = try conn.query(rows).rows.map { $0.values.map { $0 ?? "" }.joined(separator: " | ") }
        conn.close()
        #expect(try Fixtures.listing(Fixtures.source, database, rows) == targetRows)
    }

    @Test func cancelStopsTheRunAndOneMigrationPerTarget() async throws {
        let database = try Fixtures.makeSource(Fixtures.big, prefix: "mig_cancel")
        let state = Fixtures.stateDirectory()
        let name = "cancel-\(database.replacingOccurrences(of: "_", with: "-"))"
        let migrator = try Migrator(Fixtures.options(name, database: database, stateDirectory: state))
        let running = Task { await migrator.run() }
        #expect(try Fixtures.waitUntil { (try migrator.store.status(name)?.databases.first?.tables.copying ?? 0) > 0 })

        // A second migration to the same target while the first runs is refused.
        let other = try TestServers.freshDatabase(on: Fixtures.source, prefix: "mig_second")
        var secondOptions = try Fixtures.options("second-\(other.replacingOccurrences(of: "_", with: "-"))", database: other,
                                                 stateDirectory: Fixtures.stateDirectory())
        secondOptions.targetWaitSeconds = 0
        let second = try await Migrator(secondOptions).run()
        #expect(second.state == .failed)
        #expect(second.message?.contains("another migration (\(name))") == true, "\(second.message ?? "")")

        // One queued with a wait (--wait-for-target) starts once the first ends.
        let queued = Task { await (try Migrator(Fixtures.options("third-\(other.replacingOccurrences(of: "_", with: "-"))", database: other,
                                                                  stateDirectory: Fixtures.stateDirectory()))).run() }

        // `pgpreflight cancel NAME` from another process.
        let output = try LocalServer.run([Fixtures.binary, "cancel", name, "--state-dir", state.path])
        #expect(output.contains("Canceled"))
        #expect(output.contains(database))
        let outcome = await running.value
        #expect(outcome.state == .canceled)
        #expect(outcome.message?.contains(database) == true)
        #expect(try migrator.store.status(name)?.state == "Canceled")
        // Nothing rolled back: the target database is still there.
        #expect(try Fixtures.listing(Fixtures.target, "postgres", "SELECT count(*) FROM pg_database WHERE datname = '\(database)'") == ["1"])
        // And the target is free again: the queued migration ran.
        let third = try await queued.value
        #expect(third.state == .succeeded, "\(third.message ?? "")")
    }

    private func waitForStore(_ directory: URL) throws -> StateStore {
        _ = Fixtures.waitUntil { FileManager.default.fileExists(atPath: directory.appendingPathComponent("migrations.sqlite").path) }
        usleep(100_000)
        return try StateStore(directory: directory)
    }
}
