import Foundation
import LocalServers
import Testing
import TestSupport

/// A URI that names a database means that database, as psql and pg_dump read it: verify
/// compares exactly the two databases the URIs name, validate selects the one the source names,
/// and migrate (which copies a database under its own name) refuses a target naming another.
extension CLITests {
    @Test func aURINamingADatabaseMeansThatDatabase() throws {
        let server = TestServers.pg15
        let shop = try TestServers.freshDatabase(on: server, prefix: "named_shop")
        let copy = try TestServers.freshDatabase(on: server, prefix: "named_copy")
        let other = try TestServers.freshDatabase(on: server, prefix: "named_other")
        let table = "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g;"
        for database in [shop, copy, other] { try server.psql(table, database: database) }
        try server.psql("INSERT INTO items VALUES (51, 'only here')", database: other)

        let same = try pgpreflight(["verify", "--source", server.uri(database: shop), "--target", server.uri(database: copy), "--format", "json"])
        #expect(same.code == 0, "\(same.output)")
        #expect(same.output.contains(shop) && !same.output.contains(other), "\(same.output)")

        let differs = try pgpreflight(["verify", "--source", server.uri(database: shop), "--target", server.uri(database: other), "--format", "json"])
        #expect(differs.code == 1, "\(differs.output)")
        #expect(differs.output.contains("items"), "\(differs.output)")

        // --database still selects (and wins over the URI's database): shop against shop is identical.
        let given = try pgpreflight(["verify", "--source", server.uri(database: shop), "--target", server.uri(database: other),
                                     "--database", shop, "--format", "json"])
        #expect(given.code == 0, "\(given.output)")

        let rules = try connectivityOnlyRules()
        let validated = try pgpreflight(["validate", "--source", server.uri(database: shop), "--target", server.uri(database: copy),
                                         "--format", "json"], environment: ["PGPREFLIGHT_RULES": rules.path, "GITHUB_ACTIONS": "false"])
        let json = try #require(validated.output.data(using: .utf8).flatMap { try? JSONSerialization.jsonObject(with: $0) } as? [String: Any],
                                "\(validated.output)")
        #expect(json["databases"] as? [String] == [shop], "\(validated.output)")

        let state = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-named-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: state) }
        let migrate = try pgpreflight(["migrate", "named-\(UUID().uuidString.prefix(8).lowercased())", "--source", server.uri(database: shop),
                                       "--target", TestServers.pg18.uri(database: copy), "--state-dir", state.path])
        #expect(migrate.code == 2, "\(migrate.output)")
        #expect(migrate.output.contains("--target names database \(copy)"), "\(migrate.output)")
        #expect(migrate.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(migrate.output)")
    }
}
