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

    /// Languages that are installed with CREATE EXTENSION when the server offers them.
    static let languageExtensions = ["plpgsql", "plperl", "plperlu", "plpython3u", "plpythonu", "plpython2u", "pltcl",
                                     "pltclu", "plv8", "plls", "plcoffee", "pljava", "plr", "plsh", "pllua", "plluau"]

    static func fetch(on connection: Connection) throws -> ServerFacts {
        // current_setting(name, missing_ok) exists from 9.6; custom settings such as
        // azure.extensions are placeholders that pg_settings does not list.
        let custom = connection.serverVersionNumber >= 90600
            ? " || jsonb_strip_nulls(jsonb_build_object('azure.extensions', current_setting('azure.extensions', true), "
              + "'cron.database_name', current_setting('cron.database_name', true)))"
            : ""
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
                   to_jsonb(ARRAY(SELECT datname::text FROM pg_catalog.pg_database WHERE datallowconn ORDER BY 1))::text AS connectable
            """
        guard let row = try connection.query(sql, [TextArray(languageExtensions)]).first else {
            throw ClientError("the facts query returned no row")
        }
        func list(_ column: String) -> [String] {
            guard let text = row.string(column), let data = text.data(using: .utf8),
                  let array = try? JSONDecoder().decode([String].self, from: data) else { return [] }
            return array
        }
        return ServerFacts(versionNumber: row.int("version_num") ?? connection.serverVersionNumber,
                           version: row.string("version") ?? connection.serverVersion,
                           user: row.string("usr") ?? "", settings: row.string("settings") ?? "{}",
                           availableExtensions: row.string("available") ?? "{}", roles: list("roles"),
                           collations: list("collations"), languages: list("languages"), databases: list("databases"),
                           connectableDatabases: list("connectable"))
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
        case "extensions":
            let data = (try? JSONSerialization.data(withJSONObject: installedExtensions, options: [.sortedKeys])) ?? Data("{}".utf8)
            return String(decoding: data, as: UTF8.self)
        default: return SQLValue.null
        }
    }
}
