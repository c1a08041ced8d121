import Foundation
import PostgresClient

/// Copies roles the target lacks, and memberships.
enum Roles {
    /// Roles of managed platforms that must never be created or altered by a migration.
    static let platformRoles: Set<String> = [
        "azure_pg_admin", "azure_superuser", "azuresu", "replication", "localadmin",
        "rdsadmin", "rds_superuser", "rds_replication", "rds_iam", "rds_password", "rdstopmgr", "rds_ad",
        "cloudsqladmin", "cloudsqlsuperuser", "cloudsqlagent", "cloudsqlreplica", "cloudsqlimportexport",
        "alloydbadmin", "alloydbsuperuser",
    ]

    static let listSettings: Set<String> = ["search_path", "temp_tablespaces", "session_preload_libraries",
                                            "local_preload_libraries", "shared_preload_libraries"]

    /// `name = value` for `ALTER … SET` from a stored `name=value` setting (pg_db_role_setting),
    /// nil for a name that is not a plain setting name. List settings (search_path, …) are
    /// stored quoted element by element, as pg_dumpall writes them: each element becomes a
    /// literal of its own.
    static func setClause(_ setting: String, _ target: Connection) throws -> (name: String, sql: String)? {
        let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, parts[0].range(of: #"^[A-Za-z_][A-Za-z0-9_.]*$"#, options: .regularExpression) != nil else { return nil }
        let elements = listSettings.contains(parts[0].lowercased()) ? splitList(parts[1]) : [parts[1]]
        return (parts[0], "\(parts[0]) = " + (try elements.map { try target.quoteLiteral($0) }.joined(separator: ", ")))
    }

    /// Splits a list setting as PostgreSQL's SplitGUCList does: commas, spaces, and
    /// double-quoted elements with "" for a quote.
    static func splitList(_ text: String) -> [String] {
        var elements: [String] = []
        var current = ""
        var quoted = false
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { current.append("\""); chars.removeFirst() } else { quoted = false }
                } else { current.append(c) }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                elements.append(current); current = ""
            } else if !c.isWhitespace {
                current.append(c)
            }
        }
        elements.append(current)
        return elements.filter { !$0.isEmpty }
    }

    static func isReserved(_ name: String) -> Bool { name.hasPrefix("pg_") || platformRoles.contains(name) }

    /// Returns notes for the user (roles created without passwords, attributes dropped).
    static func copy(source: Connection, target: Connection) throws -> [String] {
        var notes: [String] = []
        let existing = Set(try target.query("SELECT rolname FROM pg_roles").rows.compactMap { $0.string(0) })
        var passwords: [String: String] = [:]
        var passwordsReadable = true
        do {
            for row in try source.query("SELECT rolname, rolpassword FROM pg_authid WHERE rolpassword IS NOT NULL").rows {
                passwords[row.string(0)!] = row.string(1)!
            }
        } catch { passwordsReadable = false }
        let roles = try source.query("""
            SELECT rolname, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls,
                   rolconnlimit, rolvaliduntil::text, rolsuper
            FROM pg_roles ORDER BY rolname
            """).rows
        var withoutPassword: [String] = []
        // ALTER ROLE … SET defaults (search_path, statement_timeout, …) of every database.
        var roleSettings: [String: [String]] = [:]
        for row in try source.query("""
            SELECT r.rolname, unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
            WHERE s.setdatabase = 0
            """).rows {
            if let role = row.string(0), let setting = row.string(1) { roleSettings[role, default: []].append(setting) }
        }
        for role in roles {
            let name = role.string(0)!
            guard !isReserved(name), !existing.contains(name) else { continue }
            var attributes = [
                role.bool(4)! ? "LOGIN" : "NOLOGIN", role.bool(1)! ? "INHERIT" : "NOINHERIT",
                role.bool(2)! ? "CREATEROLE" : "NOCREATEROLE", role.bool(3)! ? "CREATEDB" : "NOCREATEDB",
                "CONNECTION LIMIT \(role.int(7) ?? -1)",
            ]
            if let until = role.string(8) { attributes.append("VALID UNTIL \(try target.quoteLiteral(until))") }
            if let hash = passwords[name] { attributes.append("PASSWORD \(try target.quoteLiteral(hash))") }
            else if role.bool(4)! { withoutPassword.append(name) }
            let privileged = (role.bool(5)! ? ["REPLICATION"] : []) + (role.bool(6)! ? ["BYPASSRLS"] : [])
            let quoted = try target.quoteIdentifier(name)
            do {
                try target.execute("CREATE ROLE \(quoted) WITH \((attributes + privileged).joined(separator: " "))")
            } catch let error as ServerError where error.sqlState == "42501" && !privileged.isEmpty {
                try target.execute("CREATE ROLE \(quoted) WITH \(attributes.joined(separator: " "))")
                notes.append("role \(name) created without \(privileged.joined(separator: ", ")): the target user may not grant it")
            }
            if role.bool(9)! { notes.append("role \(name) is a superuser on the source; it was created without SUPERUSER") }
            for setting in roleSettings[name] ?? [] {
                guard let clause = try setClause(setting, target) else { continue }
                do { try target.execute("ALTER ROLE \(quoted) SET \(clause.sql)") }
                catch let error as ServerError { notes.append("role \(name): could not set \(clause.name) on the target: \(error.message)") }
            }
        }
        if !withoutPassword.isEmpty {
            notes.append(passwordsReadable
                ? "login roles without a password on the source: \(withoutPassword.joined(separator: ", "))"
                : "the source user cannot read pg_authid: login roles created without a password (set them with ALTER ROLE … PASSWORD): \(withoutPassword.joined(separator: ", "))")
        }
        let memberships = try source.query("""
            SELECT r.rolname, m.rolname, am.admin_option FROM pg_auth_members am
            JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
            """).rows
        let targetMemberships = Set(try target.query("""
            SELECT r.rolname || '/' || m.rolname FROM pg_auth_members am
            JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
            """).rows.compactMap { $0.string(0) })
        for row in memberships {
            let role = row.string(0)!, member = row.string(1)!
            guard !isReserved(role), !isReserved(member), !targetMemberships.contains("\(role)/\(member)") else { continue }
            let admin = row.bool(2)! ? " WITH ADMIN OPTION" : ""
            do {
                try target.execute("GRANT \(try target.quoteIdentifier(role)) TO \(try target.quoteIdentifier(member))\(admin)")
            } catch let error as ServerError {
                notes.append("could not grant role \(role) to \(member): \(error.message)")
            }
        }
        return notes
    }
}
