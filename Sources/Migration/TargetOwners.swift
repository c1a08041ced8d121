import Foundation
import PostgresClient

/// A target login that is not a superuser may give an object only to a role it may become
/// (SET ROLE): the restore's `ALTER … OWNER TO` of any other fails halfway through the schema.
/// Checked before anything is written, naming each object and its owner.
extension Migrator {
    /// The objects of a source database, each with its owner, as pg_dump restores them with
    /// `OWNER TO` (extension members and system schemas left out, as pg_dump leaves them out).
    static let ownedObjectsSQL = """
        WITH user_ns AS (
            SELECT oid, nspname FROM pg_namespace
            WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp)'
        ), ext AS (
            SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
        ), owned(kind, name, owner, classid, objid) AS (
            SELECT 'database', quote_ident(datname), datdba, 'pg_database'::regclass, oid FROM pg_database WHERE datname = current_database()
            UNION ALL
            SELECT 'schema', quote_ident(n.nspname), n.nspowner, 'pg_namespace'::regclass, n.oid FROM pg_namespace n JOIN user_ns USING (oid)
            UNION ALL
            SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                                  WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'type' ELSE 'table' END,
                   format('%I.%I', n.nspname, c.relname), c.relowner, 'pg_class'::regclass, c.oid
            FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
              -- a sequence owned by a column goes with its table (pg_dump gives it the table's owner)
              AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                                   AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
            UNION ALL
            SELECT CASE p.prokind WHEN 'a' THEN 'aggregate' WHEN 'p' THEN 'procedure' ELSE 'function' END,
                   format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), p.proowner, 'pg_proc'::regclass, p.oid
            FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace
            -- not the constructors of a range type (they go with it)
            WHERE NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'i')
            UNION ALL
            SELECT 'type', format('%I.%I', n.nspname, t.typname), t.typowner, 'pg_type'::regclass, t.oid
            FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
            WHERE t.typtype IN ('b', 'd', 'e', 'r', 'm') AND t.typcategory <> 'A'
              AND NOT EXISTS (SELECT FROM pg_range r WHERE r.rngmultitypid = t.oid)
            UNION ALL
            SELECT 'collation', format('%I.%I', n.nspname, o.collname), o.collowner, 'pg_collation'::regclass, o.oid
            FROM pg_collation o JOIN user_ns n ON n.oid = o.collnamespace
            UNION ALL
            SELECT 'conversion', format('%I.%I', n.nspname, o.conname), o.conowner, 'pg_conversion'::regclass, o.oid
            FROM pg_conversion o JOIN user_ns n ON n.oid = o.connamespace
            UNION ALL
            SELECT 'operator', o.oid::regoperator::text, o.oprowner, 'pg_operator'::regclass, o.oid
            FROM pg_operator o JOIN user_ns n ON n.oid = o.oprnamespace
            UNION ALL
            SELECT 'operator class', format('%I.%I', n.nspname, o.opcname), o.opcowner, 'pg_opclass'::regclass, o.oid
            FROM pg_opclass o JOIN user_ns n ON n.oid = o.opcnamespace
            UNION ALL
            SELECT 'operator family', format('%I.%I', n.nspname, o.opfname), o.opfowner, 'pg_opfamily'::regclass, o.oid
            FROM pg_opfamily o JOIN user_ns n ON n.oid = o.opfnamespace
            UNION ALL
            SELECT 'text search configuration', format('%I.%I', n.nspname, o.cfgname), o.cfgowner, 'pg_ts_config'::regclass, o.oid
            FROM pg_ts_config o JOIN user_ns n ON n.oid = o.cfgnamespace
            UNION ALL
            SELECT 'text search dictionary', format('%I.%I', n.nspname, o.dictname), o.dictowner, 'pg_ts_dict'::regclass, o.oid
            FROM pg_ts_dict o JOIN user_ns n ON n.oid = o.dictnamespace
            UNION ALL
            SELECT 'foreign-data wrapper', quote_ident(fdwname), fdwowner, 'pg_foreign_data_wrapper'::regclass, oid FROM pg_foreign_data_wrapper
            UNION ALL
            SELECT 'server', quote_ident(srvname), srvowner, 'pg_foreign_server'::regclass, oid FROM pg_foreign_server
            UNION ALL
            SELECT 'event trigger', quote_ident(evtname), evtowner, 'pg_event_trigger'::regclass, oid FROM pg_event_trigger
            UNION ALL
            SELECT 'large object', oid::text, lomowner, 'pg_largeobject'::regclass, oid FROM pg_largeobject_metadata
        )
        SELECT o.kind, o.name, r.rolname::text
        FROM owned o JOIN pg_roles r ON r.oid = o.owner
        WHERE NOT EXISTS (SELECT FROM ext WHERE ext.classid = o.classid AND ext.objid = o.objid)
          AND r.rolname !~ '^pg_'
        ORDER BY 3, 1, 2
        """

    /// A target login that is not a superuser: every owner of a source object must be a role it
    /// may become on the target (or one the migration creates and it then may become: 16+ with
    /// CREATEROLE and createrole_self_grant holding `set`). Otherwise refuses before anything is
    /// written, naming each object, its owner, and the remedy.
    func checkTargetOwners(_ databases: [String]) throws {
        let login = try targetAdmin.query("SELECT current_user::text, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user").first
        guard let login, login.bool(1) != true else { return }
        let user = login.string(0) ?? ""
        let version = targetAdmin.serverVersionNumber
        // What the login may become: SET (16+) or membership.
        let mayBecome = Set(try targetAdmin.query("""
            SELECT rolname::text FROM pg_roles WHERE pg_has_role(current_user, oid, '\(version >= 160000 ? "SET" : "MEMBER")')
            """).rows.compactMap { $0.string(0) })
        let targetRoles = Set(try targetAdmin.query("SELECT rolname::text FROM pg_roles").rows.compactMap { $0.string(0) })
        let superusers = Set(try targetAdmin.query("SELECT rolname::text FROM pg_roles WHERE rolsuper").rows.compactMap { $0.string(0) })
        // A role the migration creates: the login becomes it only by createrole_self_grant (16+).
        let selfGrant = version >= 160000 ? (try targetAdmin.query("SELECT current_setting('createrole_self_grant')").first?.string(0) ?? "") : ""
        let becomesCreated = login.bool(2) == true && selfGrant.lowercased().contains("set")
        var blocked: [(database: String, kind: String, name: String, owner: String)] = []
        for database in databases {
            let conn = try open(options.source.with(database: database), what: "source database \(database)")
            defer { conn.close() }
            for row in try conn.query(Self.ownedObjectsSQL).rows {
                guard let owner = row.string(2), owner != user, !mayBecome.contains(owner) else { continue }
                if !targetRoles.contains(owner), !Roles.isReserved(owner), becomesCreated { continue }
                blocked.append((database, row.string(0) ?? "", row.string(1) ?? "", owner))
            }
        }
        guard !blocked.isEmpty else { return }
        let owners = Array(Set(blocked.map(\.owner))).sorted()
        let quotedUser = try targetAdmin.quoteIdentifier(user)
        let quotedOwners = try owners.map { try targetAdmin.quoteIdentifier($0) }.joined(separator: ", ")
        let shown = blocked.prefix(30).map { "\($0.database): \($0.kind) \($0.name) (owner \($0.owner))" }
            + (blocked.count > 30 ? ["… and \(blocked.count - 30) more"] : [])
        let why = owners.map { owner -> String in
            if !targetRoles.contains(owner) {
                return version >= 160000
                    ? "\(owner) is not on the target: the migration would create it, but \(user) could not then become it (it needs CREATEROLE and createrole_self_grant = 'set, inherit': ALTER ROLE \(quotedUser) SET createrole_self_grant = 'set, inherit')"
                    : "\(owner) is not on the target: the migration would create it, but \(user) could not then become it (create it on the target first and GRANT it to \(user))"
            }
            return "\(user) may not SET ROLE \(owner) on the target\(superusers.contains(owner) ? " (a superuser there)" : "")"
        }
        throw MigrationFailure("the target login \(user) is not a superuser and may not give objects to their owners on the source: "
            + why.joined(separator: "; ") + ". Nothing was changed on the target. Objects:\n  " + shown.joined(separator: "\n  ")
            + "\nOn the source, give them to a role \(user) may become (e.g. ALTER TABLE … OWNER TO app_owner), or migrate with a "
            + "target login that may become \(owners.joined(separator: ", ")) (a superuser, or GRANT \(quotedOwners) TO \(quotedUser) "
            + "where the target allows it); then rerun the same command")
    }
}
