import Foundation
import LocalServers
import Migration
import PostgresClient
import Testing
import TestSupport
import Validation

/// The suites that change roles on the shared servers run one at a time: `verify` compares the
/// cluster's roles, which a test running beside it would be creating.
@Suite(.serialized) struct RoleChangingSuites {}

/// `verify` on a real 15 → 18 copy made with pg_dump, before and after changes made on purpose.
extension RoleChangingSuites { @Suite struct VerifierTests {
    @Test func findsARowASequenceValueAndAGrantChangedOnTheTarget() async throws {
        let database = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "verify")
        let role = "verify_reader_\(ProcessInfo.processInfo.processIdentifier)"
        let source = try TestServers.connect(TestServers.pg15, database: database)
        defer { source.close() }
        try source.execute("""
            DO $$ BEGIN CREATE ROLE \(role); EXCEPTION WHEN duplicate_object THEN NULL; END $$;
            CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, total numeric(10,2), tags text[], doc jsonb,
                                 placed timestamptz DEFAULT '2026-01-01 10:00+00');
            CREATE INDEX orders_customer ON orders (lower(customer));
            CREATE TABLE lines (order_id int REFERENCES orders, qty int CHECK (qty > 0), price float8);
            INSERT INTO orders (customer, total, tags, doc) SELECT 'c' || g, g * 1.5, ARRAY['a', 'b'], jsonb_build_object('g', g)
              FROM generate_series(1, 500) g;
            INSERT INTO lines SELECT g, g % 5 + 1, g / 3.0 FROM generate_series(1, 500) g;
            CREATE FUNCTION order_total(int) RETURNS numeric LANGUAGE sql AS 'SELECT total FROM orders WHERE id = $1';
            CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
            GRANT SELECT ON orders TO \(role);
            SELECT lo_from_bytea(0, 'hello');
            """)
        // Copy it to 18 with PostgreSQL 18's own pg_dump, as a DBA would.
        let target = TestServers.pg18
        let admin18 = try TestServers.connect(target)
        defer { admin18.close() }
        try admin18.execute("DO $$ BEGIN CREATE ROLE \(role); EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        try admin18.execute("CREATE DATABASE \(database)")
        let bin = target.binDirectory.path
        let dumpFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(database).sql")
        defer { try? FileManager.default.removeItem(at: dumpFile) }
        try LocalServer.run(["\(bin)/pg_dump", "-h", "127.0.0.1", "-p", "\(TestServers.pg15.port)", "-U", "postgres", "-f", dumpFile.path, database])
        // Debian's 15.20 stores `pg_attver` attribute options on every column; PostgreSQL 18
        // rejects them, so a plain dump does not restore as is.
        let dump = try String(contentsOf: dumpFile, encoding: .utf8)
        try dump.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("SET (pg_attver=") }
            .joined(separator: "\n").write(to: dumpFile, atomically: true, encoding: .utf8)
        try LocalServer.run(["\(bin)/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(target.port)", "-U", "postgres",
                             "-d", database, "-f", dumpFile.path])

        let verifier = Verifier(source: try ConnectionString(TestServers.pg15.connectionString()),
                                target: try ConnectionString(target.connectionString()), checksums: true)
        let clean = await verifier.verify(database: database)
        for result in clean where result.status != .succeeded { Issue.record("\(result.rule): \(result.message) \(result.objects)") }
        #expect(clean.contains { $0.rule == "verify.checksums" && $0.status == .succeeded })
        #expect(clean.contains { $0.rule == "verify.large-objects" && $0.message.hasPrefix("1 identical") })

        let target18 = try TestServers.connect(target, database: database)
        defer { target18.close() }
        try target18.execute("""
            UPDATE lines SET price = price + 0.5 WHERE order_id = 7;
            SELECT setval('orders_id_seq', 9000);
            REVOKE SELECT ON orders FROM \(role);
            """)
        let changed = await verifier.verify(database: database)
        func result(_ id: String) -> RuleResult? { changed.first { $0.rule == id } }
        #expect(result("verify.checksums")?.status == .failed)
        #expect(result("verify.checksums")?.objects == ["public.lines"])
        #expect(result("verify.row-counts")?.status == .succeeded)
        #expect(result("verify.sequences")?.status == .failed)
        #expect(result("verify.sequences")?.objects.first?.hasPrefix("public.orders_id_seq: differs (source 500, target 9000)") == true)
        #expect(result("verify.privileges")?.status == .failed)
        #expect(result("verify.privileges")?.objects.first?.hasPrefix("public.orders") == true)
        #expect(result("verify.tables")?.status == .succeeded)

        try target18.execute("DELETE FROM lines WHERE order_id = 8")
        let fewer = await verifier.verify(database: database)
        #expect(fewer.first { $0.rule == "verify.row-counts" }?.objects == ["public.lines: 500 rows on the source, 499 on the target"])
    }
}
}
