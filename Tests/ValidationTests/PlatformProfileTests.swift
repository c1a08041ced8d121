import Foundation
import LocalServers
import PostgresClient
import Testing
import TestSupport
import Validation

/// A source that looks like Azure Database for PostgreSQL: Azure's admin roles and an
/// extension named like Azure's `pgaadauth`. Its platform objects are not the user's findings,
/// and the report names the profile.
@Suite struct PlatformProfileTests {
    /// Installs a harmless extension called pgaadauth into the source's share directory (test
    /// servers only; needs write access, as root in CI).
    func installFakeAzureExtension(_ bin: URL) throws -> Bool {
        let share = try LocalServer.run([bin.appendingPathComponent("pg_config").path, "--sharedir"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let directory = URL(fileURLWithPath: share).appendingPathComponent("extension")
        let control = directory.appendingPathComponent("pgaadauth.control")
        if FileManager.default.fileExists(atPath: control.path) { return true }
        guard FileManager.default.isWritableFile(atPath: directory.path) else { return false }
        try "comment = 'stand-in for Azure AD authentication'\ndefault_version = '1.0'\nrelocatable = true\n"
            .write(to: control, atomically: true, encoding: .utf8)
        try "CREATE FUNCTION pgaadauth_stub() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
            .write(to: directory.appendingPathComponent("pgaadauth--1.0.sql"), atomically: true, encoding: .utf8)
        return true
    }

    @Test func azureLookalikeSourceHasNoFindingsOnItsPlatformObjects() async throws {
        let bin = try #require(LocalServer.binDirectory(major: 15, projectRoot: TestServers.projectRoot))
        guard try installFakeAzureExtension(bin) else {
            Issue.record("cannot write the stand-in pgaadauth extension into PostgreSQL 15's share directory")
            return
        }
        // A server of its own: Azure's roles would change the profile of every other test.
        let source = try LocalServer(major: 15, binDirectory: bin, settings: ["wal_level = logical"], name: "azure-like")
        defer { source.stop() }
        try source.psql("CREATE ROLE azure_pg_admin NOLOGIN; CREATE ROLE azure_superuser SUPERUSER NOLOGIN; CREATE ROLE app LOGIN")
        try source.psql("CREATE DATABASE app")
        try source.psql("CREATE EXTENSION pgaadauth; CREATE TABLE items (id int PRIMARY KEY)", database: "app")

        let request = ValidationRequest(
            source: try ConnectionString(source.connectionString()), target: try ConnectionString(TestServers.pg18.connectionString()),
            databases: ["app"], mode: .online, ruleDirectories: try ValidationRequest.ruleDirectories(extra: []))
        let run = try await ValidationEngine(request: request).run().run
        #expect(run.platform == "azure")
        let available = try #require(run.results.first { $0.rule == "extensions.available" && $0.database == "app" })
        #expect(available.status == .succeeded, "\(available.message)")
        for result in run.results where result.status != .succeeded {
            for object in result.objects {
                #expect(!object.contains("azure_") && !object.contains("pgaadauth"), "\(result.rule) reports \(object)")
            }
        }
    }
}
