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
        var created = Set<String>()
        return try copy(source: source, target: target, created: &created)
    }

    /// As `copy`, and `created` gets the names of the roles it created on the target.
    static func copy(source: Connection, target: Connection, created: inout Set<String>) throws -> [String] {
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
        let targetIsSuperuser = try target.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").first?.bool(0) == true
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
            // SUPERUSER as on the source where the target's login may grant it (a self-managed
            // target, as pg_dumpall restores it); a managed target's admin may not: then a note,
            // and verification names the role.
            let privileged = (role.bool(9)! && targetIsSuperuser ? ["SUPERUSER"] : [])
                + (role.bool(5)! ? ["REPLICATION"] : []) + (role.bool(6)! ? ["BYPASSRLS"] : [])
            let quoted = try target.quoteIdentifier(name)
            do {
                try target.execute("CREATE ROLE \(quoted) WITH \((attributes + privileged).joined(separator: " "))")
            } catch let error as ServerError where error.sqlState == "42501" && !privileged.isEmpty {
                try target.execute("CREATE ROLE \(quoted) WITH \(attributes.joined(separator: " "))")
                notes.append("role \(name) created without \(privileged.joined(separator: ", ")): the target user may not grant it")
            }
            created.insert(name)
            if role.bool(9)!, !targetIsSuperuser { notes.append("role \(name) is a superuser on the source; it was created without SUPERUSER") }
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
        try copyMemberships(source: source, target: target, notes: &notes)
        // Comments and security labels of the roles the source has (pg_dumpall carries them).
        let targetRoles = Set(try target.query("SELECT rolname FROM pg_roles").rows.compactMap { $0.string(0) })
        for row in try source.query("""
            SELECT r.rolname, d.description FROM pg_shdescription d JOIN pg_roles r ON r.oid = d.objoid
            WHERE d.classoid = 'pg_authid'::regclass
            """).rows {
            let name = row.string(0)!
            guard !isReserved(name), targetRoles.contains(name), !existing.contains(name) else { continue }
            try target.execute("COMMENT ON ROLE \(try target.quoteIdentifier(name)) IS \(try target.quoteLiteral(row.string(1)!))")
        }
        for row in try source.query("""
            SELECT r.rolname, l.provider, l.label FROM pg_shseclabel l JOIN pg_roles r ON r.oid = l.objoid
            WHERE l.classoid = 'pg_authid'::regclass
            """).rows {
            let name = row.string(0)!, provider = row.string(1)!
            guard !isReserved(name), targetRoles.contains(name), !existing.contains(name) else { continue }
            do {
                try target.execute("SECURITY LABEL FOR \(try target.quoteIdentifier(provider)) ON ROLE \(try target.quoteIdentifier(name)) IS \(try target.quoteLiteral(row.string(2)!))")
            } catch let error as ServerError {
                notes.append("role \(name): security label (\(provider)) not carried: \(error.message)")
            }
        }
        return notes
    }

    /// Memberships as pg_dumpall writes them: in predefined roles too (pg_monitor,
    /// pg_read_all_data, … where the target has them), with the ADMIN option, and on 16+
    /// sources the INHERIT and SET options and the grantor (where the target takes them).
    /// A membership the target refuses is a note, never silently dropped.
    static func copyMemberships(source: Connection, target: Connection, notes: inout [String]) throws {
        let sixteen = source.serverVersionNumber >= 160000
        let memberships = try source.query("""
            SELECT r.rolname, m.rolname, am.admin_option, \(sixteen ? "am.inherit_option, am.set_option" : "NULL::bool, NULL::bool"),
                   g.rolname
            FROM pg_auth_members am
            JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member LEFT JOIN pg_roles g ON g.oid = am.grantor
            ORDER BY 1, 2
            """).rows
        let targetRoles = Set(try target.query("SELECT rolname FROM pg_roles").rows.compactMap { $0.string(0) })
        let targetMemberships = Set(try target.query("""
            SELECT r.rolname || '/' || m.rolname FROM pg_auth_members am
            JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
            """).rows.compactMap { $0.string(0) })
        let targetSixteen = target.serverVersionNumber >= 160000
        for row in memberships {
            let role = row.string(0)!, member = row.string(1)!
            // A predefined role may be granted; a platform role, or a membership of one, is the platform's.
            guard !platformRoles.contains(role), !isReserved(member), !targetMemberships.contains("\(role)/\(member)") else { continue }
            guard targetRoles.contains(role) else {
                notes.append("membership of \(member) in \(role) not carried: the target has no role \(role)")
                continue
            }
            var options: [String] = []
            if row.bool(2)! { options.append(targetSixteen ? "ADMIN TRUE" : "ADMIN OPTION") }
            if targetSixteen, let inherit = row.bool(3) { options.append("INHERIT \(inherit ? "TRUE" : "FALSE")") }
            if targetSixteen, let set = row.bool(4) { options.append("SET \(set ? "TRUE" : "FALSE")") }
            var grant = "GRANT \(try target.quoteIdentifier(role)) TO \(try target.quoteIdentifier(member))"
            if !options.isEmpty { grant += targetSixteen ? " WITH " + options.joined(separator: ", ") : " WITH ADMIN OPTION" }
            var grantedBy = ""
            if let grantor = row.string(5), !isReserved(grantor), targetRoles.contains(grantor) {
                grantedBy = " GRANTED BY \(try target.quoteIdentifier(grantor))"
            }
            do {
                try target.execute(grant + grantedBy)
            } catch let error as ServerError where !grantedBy.isEmpty {
                do { try target.execute(grant) }
                catch let error as ServerError { notes.append("could not grant role \(role) to \(member): \(error.message)"); continue }
                notes.append("role \(role) granted to \(member) by the migration's user: the target refused GRANTED BY \(row.string(5)!) (\(error.message))")
            } catch let error as ServerError {
                notes.append("could not grant role \(role) to \(member): \(error.message)")
            }
        }
    }
}
