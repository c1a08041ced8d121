import Foundation
import PostgresClient

/// What rules may need to know about one server, fetched once per run with one query
/// (and, for the source, one query per database for its installed extensions).
struct ServerFacts: Sendable {
    var versionNumber: Int
    var version: String
    var user: String
    /// jsonb text `{"name": "setting", …}`.
    var settings: String
    /// jsonb text `{"name": ["1.0", "1.1"], …}`.
    var availableExtensions: String
    var roles: [String]
    var collations: [String]
    var languages: [String]
    var databases: [String]
    /// Databases that accept connections (`datallowconn`).
    var connectableDatabases: [String]
    /// Source only: `{"extension": ["database", …]}` over the selected databases.
    var installedExtensions: [String: [String]] = [:]
    /// Every row of pg_database, for the database selection.
    var databaseCatalog: [CatalogDatabase] = []
    /// `rolsuper` of the session's user.
    var isSuperuser = false
    /// What the server was built with: jsonb text `{"lz4": true, "icu": true, "libxml": true}`.
    var build = "{}"
    /// `schema.relation` and `schema.relation.column` of every pg_catalog and information_schema
    /// relation: what views over the catalogs may use.
    var catalogColumns: [String] = []

    /// Languages that are installed with CREATE EXTENSION when the server offers them.
    static let languageExtensions = ["plpgsql", "plperl", "plperlu", "plpython3u", "plpythonu", "plpython2u", "pltcl",
                                     "pltclu", "plv8", "plls", "plcoffee", "pljava", "plr", "plsh", "pllua", "plluau"]

    static func fetch(on connection: Connection) throws -> ServerFacts {
        // current_setting(name, missing_ok) exists from 9.6; custom settings such as
        // azure.extensions are placeholders that pg_settings does not list.
        let custom = connection.serverVersionNumber >= 90600
            ? " || jsonb_strip_nulls(jsonb_build_object('azure.extensions', current_setting('azure.extensions', true)))"
            : ""
        // lz4 is an accepted value of default_toast_compression only when the server was built
        // with it (14+); initdb creates the *-x-icu collations only when it was built with ICU.
        let lz4 = connection.serverVersionNumber >= 140000
            ? "COALESCE((SELECT 'lz4' = ANY (enumvals) FROM pg_catalog.pg_settings WHERE name = 'default_toast_compression'), false)"
            : "false"
        let icu = connection.serverVersionNumber >= 100000
            ? "EXISTS (SELECT 1 FROM pg_catalog.pg_collation WHERE collprovider = 'i' AND collname LIKE '%-x-icu')"
            : "false"
        let sql = """
            SELECT current_setting('server_version_num')::int AS version_num,
                   current_setting('server_version') AS version,
                   current_user::text AS usr,
                   ((SELECT jsonb_object_agg(name, setting) FROM pg_catalog.pg_settings)\(custom))::text AS settings,
                   COALESCE((SELECT jsonb_object_agg(name, versions) FROM (
                       SELECT name, jsonb_agg(version::text ORDER BY version) AS versions
                       FROM pg_catalog.pg_available_extension_versions GROUP BY name) e), '{}')::text AS available,
                   to_jsonb(ARRAY(SELECT rolname::text FROM pg_catalog.pg_roles ORDER BY 1))::text AS roles,
                   to_jsonb(ARRAY(SELECT DISTINCT collname::text FROM pg_catalog.pg_collation ORDER BY 1))::text AS collations,
                   to_jsonb(ARRAY(SELECT lanname::text FROM pg_catalog.pg_language
                                  UNION SELECT name::text FROM pg_catalog.pg_available_extensions WHERE name = ANY($1::text[])
                                  ORDER BY 1))::text AS languages,
                   to_jsonb(ARRAY(SELECT datname::text FROM pg_catalog.pg_database ORDER BY 1))::text AS databases,
                   to_jsonb(ARRAY(SELECT datname::text FROM pg_catalog.pg_database WHERE datallowconn ORDER BY 1))::text AS connectable,
                   (SELECT jsonb_agg(jsonb_build_object('name', datname::text, 'allowconn', datallowconn, 'istemplate', datistemplate,
                                                        'connlimit', datconnlimit, 'quoted', quote_ident(datname)) ORDER BY datname)
                    FROM pg_catalog.pg_database)::text AS catalog,
                   COALESCE((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false) AS superuser,
                   jsonb_build_object('lz4', \(lz4), 'icu', \(icu))::text AS build,
                   to_jsonb(ARRAY(
                       SELECT n.nspname || '.' || c.relname || COALESCE('.' || a.attname, '')
                       FROM pg_catalog.pg_class c
                       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                       CROSS JOIN LATERAL (SELECT NULL::name AS attname
                                           UNION ALL
                                           SELECT attname FROM pg_catalog.pg_attribute
                                           WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped) a
                       WHERE n.nspname IN ('pg_catalog', 'information_schema') AND c.relkind IN ('r', 'v', 'm', 'f', 'p')))::text AS catalog_columns
            """
        guard let row = try connection.query(sql, [TextArray(languageExtensions)]).first else {
            throw ClientError("the facts query returned no row")
        }
        func list(_ column: String) -> [String] {
            guard let text = row.string(column), let data = text.data(using: .utf8),
                  let array = try? JSONDecoder().decode([String].self, from: data) else { return [] }
            return array
        }
        var facts = ServerFacts(versionNumber: row.int("version_num") ?? connection.serverVersionNumber,
                                version: row.string("version") ?? connection.serverVersion,
                                user: row.string("usr") ?? "", settings: row.string("settings") ?? "{}",
                                availableExtensions: row.string("available") ?? "{}", roles: list("roles"),
                                collations: list("collations"), languages: list("languages"), databases: list("databases"),
                                connectableDatabases: list("connectable"))
        if let text = row.string("catalog"), let data = text.data(using: .utf8) {
            facts.databaseCatalog = (try? JSONDecoder().decode([CatalogDatabase].self, from: data)) ?? []
        }
        facts.isSuperuser = row.bool("superuser") ?? false
        facts.catalogColumns = list("catalog_columns")
        // libxml: its functions raise "unsupported XML feature" on a server built without it.
        var build = (row.string("build").flatMap { $0.data(using: .utf8) }
            .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }) ?? [:]
        build["libxml"] = (try? connection.query("SELECT xml_is_well_formed_document('<a/>')").first?.bool(0)) ?? false
        facts.build = (try? JSONSerialization.data(withJSONObject: build, options: [.sortedKeys]))
            .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return facts
    }

    /// What the target is, for rules whose status and remedy depend on it: a managed platform
    /// (`azure`, `rds`, `cloudsql`), else `self-managed-superuser` when the migration user is a
    /// superuser (it restores everything a superuser owns), else `self-managed`.
    var profile: String { platform ?? (isSuperuser ? "self-managed-superuser" : "self-managed") }

    /// The managed platform the server runs on, told by the objects it puts there: Azure's
    /// two admin roles and `azure.*` settings, RDS's `rds_superuser`/`rdsadmin`, Cloud SQL's
    /// `cloudsqlsuperuser`. Its objects are never reported as the user's findings.
    var platform: String? {
        let roleSet = Set(roles)
        // Azure always has both admin roles; one of them alone is a user's role that collides.
        if (roleSet.contains("azure_pg_admin") && roleSet.contains("azure_superuser")) || settings.contains("\"azure.") {
            return "azure"
        }
        if roleSet.contains("rds_superuser") || roleSet.contains("rdsadmin") { return "rds" }
        if roleSet.contains("cloudsqlsuperuser") || roleSet.contains("cloudsqladmin") { return "cloudsql" }
        return nil
    }

    /// The bound value of `{role.name}`.
    func parameter(_ name: String) -> any SQLParameter {
        switch name {
        case "server_version_num": return versionNumber
        case "settings": return settings
        case "available_extensions": return availableExtensions
        case "roles": return TextArray(roles)
        case "collations": return TextArray(collations)
        case "languages": return TextArray(languages)
        case "user": return user
        case "platform": return platform ?? ""
        case "profile": return profile
        case "superuser": return isSuperuser
        case "build": return build
        case "catalog_columns": return TextArray(catalogColumns)
        case "extensions":
            let data = (try? JSONSerialization.data(withJSONObject: installedExtensions, options: [.sortedKeys])) ?? Data("{}".utf8)
            return String(decoding: data, as: UTF8.self)
        default: return SQLValue.null
        }
    }
}
