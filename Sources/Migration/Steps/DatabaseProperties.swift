import Foundation
import PostgresClient
import Validation

/// The target database itself: created with the source's owner, encoding, locale (provider),
/// connection limit, privileges, settings, comment and security labels (what pg_dump carries
/// only with --create, and pg_dumpall with the roles).
extension Migrator {
    /// Creates the target database unless a previous run did.
    func createTargetDatabase(_ database: String) throws {
        let name = options.name
        if try !store.isDone(name, database, .createDatabase) {
            let exists = try !targetAdmin.query("SELECT 1 FROM pg_database WHERE datname = $1", database).rows.isEmpty
            if !exists { try timed("Create databases") { try createDatabase(database) } }
            try store.markDone(name, database, .createDatabase)
        }
    }

    func createDatabase(_ database: String) throws {
        let version = sourceAdmin.serverVersionNumber
        let provider = version >= 150000 ? "datlocprovider::text" : "'c'"
        let providerLocale = version >= 170000 ? "datlocale" : version >= 150000 ? "daticulocale" : "NULL::text"
        let info = try sourceAdmin.query("""
            SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype, oid::int8,
                   datacl IS NOT NULL, shobj_description(oid, 'pg_database'), datconnlimit::int8, datistemplate,
                   \(provider), \(providerLocale)
            FROM pg_database WHERE datname = $1
            """, database).rows[0]
        let quoted = try targetAdmin.quoteIdentifier(database)
        let targetRoles = Set(try targetAdmin.query("SELECT rolname FROM pg_roles").rows.compactMap { $0.string(0) })
        var owner = ""
        if let name = info.string(0), targetRoles.contains(name) { owner = " OWNER \(try targetAdmin.quoteIdentifier(name))" }
        let encoding = " ENCODING \(try targetAdmin.quoteLiteral(info.string(1)!))"
        let collate = info.string(2)!, ctype = info.string(3)!
        let connectionLimit = (info.int(7) ?? -1) >= 0 ? " CONNECTION LIMIT \(info.int(7)!)" : ""
        // The locale provider (ICU or builtin) where the source database uses one and the
        // target supports it; else libc with a note.
        var localeProvider = ""
        if let kind = info.string(9), kind != "c", let locale = info.string(10), targetAdmin.serverVersionNumber >= 150000 {
            if kind == "i" { localeProvider = " LOCALE_PROVIDER icu ICU_LOCALE \(try targetAdmin.quoteLiteral(locale))" }
            if kind == "b" && targetAdmin.serverVersionNumber >= 170000 { localeProvider = " LOCALE_PROVIDER builtin BUILTIN_LOCALE \(try targetAdmin.quoteLiteral(locale))" }
        }
        var created = false
        for (c, t) in Self.localeCandidates(collate, ctype) {
            do {
                let create = "CREATE DATABASE \(quoted)\(owner)\(encoding) LC_COLLATE \(try targetAdmin.quoteLiteral(c)) LC_CTYPE \(try targetAdmin.quoteLiteral(t))\(connectionLimit) TEMPLATE template0"
                if !localeProvider.isEmpty {
                    do {
                        try targetAdmin.execute(create + localeProvider)
                        if c != collate || t != ctype { note("database \(database): collation \(collate)/\(ctype) mapped to \(c)/\(t) on the target") }
                        created = true
                        break
                    } catch let error as ServerError {
                        note("database \(database): its locale provider (\(info.string(9) == "i" ? "ICU" : "builtin") \(info.string(10) ?? "")) was refused by the target (\(error.message)); created with libc")
                        localeProvider = ""
                    }
                }
                try targetAdmin.execute(create)
                if c != collate || t != ctype { note("database \(database): collation \(collate)/\(ctype) mapped to \(c)/\(t) on the target") }
                created = true
                break
            } catch let error as ServerError where error.sqlState == "22023" || error.sqlState == "42809" || error.sqlState == "XX000" {
                continue
            }
        }
        if !created {
            try targetAdmin.execute("CREATE DATABASE \(quoted)\(owner)\(encoding)\(connectionLimit) TEMPLATE template0")
            note("database \(database): the target has no locale \(collate)/\(ctype); created with the target's default locale")
        }
        // Database privileges and settings (pg_dump carries them only with --create).
        if info.bool(5) == true {
            let acl = try sourceAdmin.query("""
                SELECT a.grantee::int8, pg_get_userbyid(a.grantee), a.privilege_type, a.is_grantable
                FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1 AND a.grantee <> d.datdba
                """, database).rows
            var script = ["REVOKE ALL ON DATABASE \(quoted) FROM PUBLIC"]
            for row in acl {
                let grantee: String
                if row.int(0) == 0 { grantee = "PUBLIC" } else {
                    guard let role = row.string(1), targetRoles.contains(role) else { continue }
                    grantee = try targetAdmin.quoteIdentifier(role)
                }
                script.append("GRANT \(row.string(2)!) ON DATABASE \(quoted) TO \(grantee)\(row.bool(3) == true ? " WITH GRANT OPTION" : "")")
            }
            try targetAdmin.execute(script.joined(separator: ";\n"))
        }
        // Settings of the database (ALTER DATABASE … SET) and of roles in it (ALTER ROLE … IN
        // DATABASE … SET), and its comment.
        for row in try sourceAdmin.query("""
            SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, unnest(s.setconfig)
            FROM pg_db_role_setting s WHERE s.setdatabase = $1::oid
            """, info.int(4)!).rows {
            guard let setting = row.string(1), let clause = try Roles.setClause(setting, targetAdmin) else { continue }
            let role = row.string(0)
            if let role, !targetRoles.contains(role) {
                note("database \(database): setting \(clause.name) of role \(role) not carried: the role does not exist on the target")
                continue
            }
            let statement = try role.map { "ALTER ROLE \(try targetAdmin.quoteIdentifier($0)) IN DATABASE \(quoted) SET \(clause.sql)" }
                ?? "ALTER DATABASE \(quoted) SET \(clause.sql)"
            do { try targetAdmin.execute(statement) }
            catch { note("database \(database): setting \(clause.name)\(role.map { " of role \($0)" } ?? "") not carried: \(error)") }
        }
        if let comment = info.string(6) {
            try targetAdmin.execute("COMMENT ON DATABASE \(quoted) IS \(try targetAdmin.quoteLiteral(comment))")
        }
        if info.bool(8) == true { try targetAdmin.execute("ALTER DATABASE \(quoted) IS_TEMPLATE true") }
        for row in try sourceAdmin.query("""
            SELECT provider, label FROM pg_shseclabel WHERE classoid = 'pg_database'::regclass AND objoid = $1::oid
            """, info.int(4)!).rows {
            let provider = row.string(0)!
            do { try targetAdmin.execute("SECURITY LABEL FOR \(try targetAdmin.quoteIdentifier(provider)) ON DATABASE \(quoted) IS \(try targetAdmin.quoteLiteral(row.string(1)!))") }
            catch let error as ServerError { note("database \(database): security label (\(provider)) not carried: \(error.message)") }
        }
    }

    /// The source's locale, then spellings other platforms use for it (en_US.utf8 ↔
    /// en_US.UTF-8, fr-FR → fr_FR).
    static func localeCandidates(_ collate: String, _ ctype: String) -> [(String, String)] {
        func variants(_ locale: String) -> [String] {
            var result = [locale]
            let parts = locale.split(separator: ".", maxSplits: 1).map(String.init)
            let language = parts[0].replacingOccurrences(of: "-", with: "_")
            for suffix in ["UTF-8", "utf8"] { result.append("\(language).\(suffix)") }
            if parts.count == 1 { result.append(language) }
            var seen = Set<String>()
            return result.filter { seen.insert($0).inserted }
        }
        let c = variants(collate), t = variants(ctype)
        return (0..<max(c.count, t.count)).map { (c[min($0, c.count - 1)], t[min($0, t.count - 1)]) }
    }
}
