import Foundation
import LocalServers
@testable import Migration
import PostgresClient
import TestSupport

/// A source database exercising what a migration must carry: identity and serial columns,
/// generated columns, an enum, a partitioned table, views and a materialized view, functions
/// and triggers, foreign keys, check constraints, expression and partial indexes, unicode,
/// NULLs, bytea, arrays, jsonb, large objects, objects owned by a non-default role and granted
/// to another, a standalone sequence, comments.
enum Fixtures {
    static let roles = """
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mig_owner') THEN CREATE ROLE mig_owner LOGIN PASSWORD 'owner-secret'; END IF;
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mig_reader') THEN CREATE ROLE mig_reader NOLOGIN; END IF;
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mig_app') THEN CREATE ROLE mig_app LOGIN; END IF;
        END $$;
        GRANT mig_reader TO mig_app;
        ALTER ROLE mig_app SET statement_timeout = '5min';
        ALTER ROLE mig_app SET search_path = app, public;
        """

    static let rich = """
        CREATE SCHEMA app AUTHORIZATION mig_owner;
        CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE app.customers (
          id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          email text NOT NULL UNIQUE,
          name text,
          mood app.mood,
          score numeric(10,2) CHECK (score >= 0),
          tags text[],
          profile jsonb,
          avatar bytea,
          created timestamptz DEFAULT now(),
          name_upper text GENERATED ALWAYS AS (upper(name)) STORED
        );
        ALTER TABLE app.customers OWNER TO mig_owner;
        CREATE TABLE app.orders (
          id serial PRIMARY KEY,
          customer_id int NOT NULL REFERENCES app.customers(id),
          amount numeric NOT NULL,
          note text,
          placed date NOT NULL
        );
        ALTER TABLE app.orders OWNER TO mig_owner;
        CREATE INDEX orders_lower_note ON app.orders (lower(note));
        CREATE INDEX orders_customer ON app.orders (customer_id) WHERE amount > 10;
        CREATE TABLE app.events (id bigint NOT NULL, at date NOT NULL, payload text, customer_id int REFERENCES app.customers(id),
                                 PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        CREATE INDEX events_payload ON app.events (payload);
        CREATE TABLE app.audit (id bigserial PRIMARY KEY, what text, at timestamptz DEFAULT now());
        CREATE FUNCTION app.audit_order() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN INSERT INTO app.audit (what) VALUES ('order ' || NEW.id); RETURN NEW; END $f$;
        CREATE TRIGGER orders_audit AFTER INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.audit_order();
        INSERT INTO app.customers (email, name, mood, score, tags, profile, avatar)
        SELECT 'user' || g || '@example.com', CASE WHEN g % 7 = 0 THEN NULL ELSE 'Ünïcødé 名前 ' || g END,
               (ARRAY['sad','ok','happy'])[1 + g % 3]::app.mood, g * 1.5, ARRAY['a' || g, NULL, 'b'],
               jsonb_build_object('n', g, 'x', ARRAY[g, g+1]),
               CASE WHEN g % 5 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END
        FROM generate_series(1, 500) g;
        INSERT INTO app.orders (customer_id, amount, note, placed)
        SELECT 1 + g % 500, g % 100, CASE WHEN g % 3 = 0 THEN NULL ELSE 'Note ' || g END, date '2025-01-01' + g % 700
        FROM generate_series(1, 3000) g;
        INSERT INTO app.events SELECT g, date '2025-01-01' + g % 700, 'payload ' || g, 1 + g % 500 FROM generate_series(1, 2000) g;
        -- foreign keys: one validated (added NOT VALID then validated by the migrator), one left
        -- NOT VALID on the source over a row that breaks it (must stay so, not be validated)
        CREATE TABLE app.refunds (id int PRIMARY KEY, order_id int NOT NULL REFERENCES app.orders(id) ON DELETE CASCADE, customer_id int);
        INSERT INTO app.refunds SELECT g, 1 + g * 7, 1 + g % 500 FROM generate_series(1, 300) g;
        INSERT INTO app.refunds VALUES (301, 1, 99999);
        ALTER TABLE app.refunds ADD CONSTRAINT refunds_customer FOREIGN KEY (customer_id) REFERENCES app.customers(id) NOT VALID;
        CREATE VIEW app.big_orders AS SELECT o.id, c.email, o.amount FROM app.orders o JOIN app.customers c ON c.id = o.customer_id WHERE o.amount > 90;
        CREATE MATERIALIZED VIEW app.order_totals AS SELECT customer_id, sum(amount) AS total, count(*) AS n FROM app.orders GROUP BY customer_id;
        CREATE UNIQUE INDEX order_totals_customer ON app.order_totals (customer_id);
        ALTER MATERIALIZED VIEW app.order_totals OWNER TO mig_owner;
        GRANT USAGE ON SCHEMA app TO mig_reader;
        GRANT SELECT ON app.customers, app.orders, app.big_orders TO mig_reader;
        GRANT INSERT ON app.orders TO mig_app;
        CREATE SEQUENCE app.invoice_no START 1000;
        SELECT nextval('app.invoice_no') FROM generate_series(1, 17);
        CREATE TABLE public.plain (k text, v int);
        INSERT INTO public.plain SELECT 'k' || g, g FROM generate_series(1, 100) g;
        SELECT lo_from_bytea(0, convert_to(repeat('large object ', 50000), 'UTF8'));
        SELECT lo_from_bytea(0, '\\x00010203'::bytea);
        DO $$ DECLARE o oid; BEGIN
          SELECT min(oid) INTO o FROM pg_largeobject_metadata;
          EXECUTE format('ALTER LARGE OBJECT %s OWNER TO mig_owner', o);
          EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO mig_reader', o);
        END $$;
        COMMENT ON TABLE app.orders IS 'orders placed';
        DO $$ BEGIN
          EXECUTE format('ALTER DATABASE %I SET work_mem = %L', current_database(), '8MB');
          EXECUTE format('ALTER DATABASE %I SET search_path = app, "$user", public', current_database());
          EXECUTE format('ALTER ROLE mig_app IN DATABASE %I SET statement_timeout = %L', current_database(), '5s');
          EXECUTE format('COMMENT ON DATABASE %I IS %L', current_database(), 'the shop''s data');
          EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
          EXECUTE format('GRANT CREATE ON DATABASE %I TO mig_owner WITH GRANT OPTION', current_database());
        END $$;
        """

    /// One table big enough (about 150 MB) that its copy takes a while, plus small ones.
    static let big = """
        CREATE TABLE big (id bigint PRIMARY KEY, body text NOT NULL);
        INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 1000000) g;
        CREATE TABLE small1 AS SELECT g AS id FROM generate_series(1, 1000) g;
        CREATE TABLE small2 AS SELECT g AS id, g::text AS t FROM generate_series(1, 1000) g;
        CREATE INDEX big_body ON big (body);
        """

    /// Servers of their own: one migration runs against a target server at a time (and the
    /// validation suites' command-line tests migrate into pg18), and the locks these tests hold
    /// on the source would hold up the online suites' slot creation on pg15.
    static let source = TestServers.dedicated(major: 15, name: "migration-source")
    static let target = TestServers.dedicated(major: 18, name: "migration-target")

    static func makeSource(_ sql: String, prefix: String) throws -> String {
        let database = try TestServers.freshDatabase(on: source, prefix: prefix)
        try source.psql(roles)
        try source.psql(sql, database: database)
        return database
    }

    /// Queue behind another migration to the same target rather than fail (a test's own
    /// earlier run, killed, may still hold it for a moment).
    static let targetWait = ["--wait-for-target", "600"]

    static func options(_ name: String, database: String, stateDirectory: URL, verify: VerifyMode = .checksums,
                        overwrite: Bool = false, force: Bool = false) throws -> MigrationOptions {
        var options = MigrationOptions(name: name, source: try ConnectionString(source.connectionString()),
                         target: try ConnectionString(target.connectionString()), databases: [database],
                         jobs: 2, overwrite: overwrite, force: force, stateDirectory: stateDirectory, verify: verify,
                         showProgress: false)
        options.targetWaitSeconds = 600
        return options
    }

    static func stateDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-state-\(UUID().uuidString.prefix(8))")
    }

    /// The built command-line tool (`swift build --build-tests` builds it).
    static var binary: String {
        TestServers.projectRoot.appendingPathComponent(".build/debug/pgpreflight").path
    }

    /// Rows of `sql` on a server, one line per row, for comparing listings.
    static func listing(_ server: LocalServer, _ database: String, _ sql: String) throws -> [String] {
        let conn = try TestServers.connect(server, database: database)
        defer { conn.close() }
        try conn.execute("SET extra_float_digits = 1; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'")
        return try conn.query(sql).rows.map { $0.values.map { $0 ?? "∅" }.joined(separator: " | ") }
    }

    /// Starts the tool as a child process, its output into `output`; returns its pid.
    static func spawn(_ arguments: [String], output: URL) -> pid_t {
        do { return try LocalServer.spawnAttached([binary] + arguments, output: output) }
        catch { preconditionFailure("could not start \(binary): run swift build first (\(error))") }
    }

    /// Polls until `condition` holds (or `seconds` pass).
    static func waitUntil(seconds: Double = 300, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(50_000)
        }
        return false
    }
}
