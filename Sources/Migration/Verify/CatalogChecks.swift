import Foundation

/// What the SQL of a check may depend on: the server it runs on and both servers' versions
/// (some columns are compared only when both servers have them).
struct VerifyContext: Sendable {
    let version: Int
    let sourceVersion: Int
    let targetVersion: Int
    /// Both servers can read pg_authid (role password hashes).
    var passwordsReadable = false

    func both(atLeast version: Int) -> Bool { sourceVersion >= version && targetVersion >= version }
    var acrossMajors: Bool { sourceVersion / 10000 != targetVersion / 10000 }
    /// PostgreSQL 17 added MAINTAIN (`m`): a 17+ target grants it to owners and with ALL, an
    /// older source has none. Left out of ACLs on both sides when only the target has it.
    var ignoresMaintain: Bool { sourceVersion < 170000 && targetVersion >= 170000 }
    /// PostgreSQL 16 records options and grantors of memberships (INHERIT, SET, GRANTED BY).
    var comparesMembershipGrantors: Bool { both(atLeast: 160000) }
}

/// One catalog comparison: a query that returns rows of (object, value) — and, for role
/// checks, the role the row belongs to — run on both servers. An object missing, extra or
/// with another value is a difference.
struct CatalogCheck: Sendable {
    enum Comparison: Sendable {
        /// Values must be equal.
        case exact
        /// Values hold deparsed SQL: across majors they are compared in `SQLText` normal form.
        case definition
        /// Values must be equal but are never printed (password hashes, user-mapping options).
        case secret
    }
    enum TargetOnly: Sendable {
        /// An object only on the target is a difference.
        case reported
        /// Only objects of the source are compared (roles: the target may have more).
        case ignored
    }

    let id: String
    let title: String
    /// What a value is, for messages: "comment", "definition", … ("" to say just "differs").
    let subject: String
    var comparison: Comparison = .exact
    var targetOnly: TargetOnly = .reported
    /// The query has a third column, a role name: rows of roles that are predefined, of the
    /// platform, or (on the target) not on the source are left out.
    var roleScoped = false
    /// nil when the check does not apply to these servers.
    let sql: @Sendable (VerifyContext) -> String?
}

/// The SQL of every catalog comparison. Each is one query per server whatever the number of
/// objects; `Verifier` sends all of a database's checks as a single UNION ALL.
///
/// Objects are named as pg_identify_object names them (schema-qualified, quoted, with their
/// kind), never by OID (but large objects, whose OID is their name). Left out everywhere:
/// system schemas, temporary objects, members of extensions (their extension is compared),
/// objects of OIDs below 16384 (built in). What is only the version change is not a difference:
/// - deparsed SQL of views, rules, policies and SQL-standard function bodies is compared in
///   `SQLText` normal form when the majors differ (16+ print single-relation queries without
///   table prefixes); `verify.view-dependencies` still compares, version-independently, the
///   user objects each view reads;
/// - MAINTAIN (17+) is left out of ACLs and default ACLs when only the target has it;
/// - NOT NULL constraints as catalog rows (17+ domains, 18+ tables) are compared as the
///   not-null flags both versions have; Debian 15's private `pg_attver` column option is ignored;
/// - a membership a 16+ target makes by itself (the CREATEROLE creator of a role as its admin,
///   granted by the bootstrap superuser) is not a difference from a source older than 16; the
///   INHERIT and SET options of a pre-16 membership are those pg_dumpall's GRANT gives on 16+
///   (the member's inherit flag, SET true), and grantors are compared when both are 16+;
/// - catalog columns only one version has (compression, ICU rules, multiranges, …) are
///   compared when both servers have them; a NULL ACL is the kind's default ACL for the owner;
/// - tablespaces are not compared: the migration puts everything in the target's default one;
/// - across majors, names quoted only because a server's keyword list says so (`"json"` on
///   16+) are the same names; `UPDATE t AS a` / `DELETE FROM t AS a` as 18 prints them (no AS);
///   an extension at its server's default version (CREATE EXTENSION without a version, what
///   pg_dump writes) is at "the server's default"; a collation for any encoding and one for
///   the database's encoding are the same in that database;
/// - foreign keys PostgreSQL derives on partitions are named by the constraint they derive
///   from and the relation they reference (their own names depend on the order of creation);
///   shell operators (no function: pg_dump has none) are left out.
enum CatalogChecks {
    static let userSchemas = Catalog.userSchemaFilter
    static let firstUserOid = 16384

    static func notExtensionMember(_ catalog: String, _ oid: String) -> String {
        "NOT EXISTS (SELECT FROM pg_depend xd WHERE xd.classid = '\(catalog)'::regclass AND xd.objid = \(oid) AND xd.deptype = 'e')"
    }

    /// An ACL (NULL meaning the kind's default for the owner) as sorted
    /// `grantee:privilege[*]:grantor` lines; MAINTAIN left out when only the target has it.
    static func acl(_ column: String, kind: String, owner: String, _ context: VerifyContext) -> String {
        let maintain = context.ignoresMaintain ? "WHERE a.privilege_type <> 'MAINTAIN'" : ""
        return """
            coalesce((SELECT string_agg(g, ',' ORDER BY g) FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
                        || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END || ':' || quote_ident(pg_get_userbyid(a.grantor)) AS g
                      FROM aclexplode(coalesce(\(column), acldefault('\(kind)', \(owner)))) a \(maintain)) acl), 'none')
            """
    }

    /// `identity (type)` of an object, as pg_identify_object names it (schema-qualified, quoted).
    static func identity(_ classid: String, _ objid: String, _ subid: String = "0") -> String {
        "(SELECT i.identity || ' (' || i.type || ')' FROM pg_identify_object(\(classid), \(objid), \(subid)) i)"
    }

    static let relationKind = """
        CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
          WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'composite type' WHEN 'S' THEN 'sequence' WHEN 'i' THEN 'index'
          WHEN 'I' THEN 'partitioned index' ELSE c.relkind::text END
        """
    static let relationKey = "format('%I.%I', n.nspname, c.relname) || ' (' || \(relationKind) || ')'"

    static func regproc(_ column: String) -> String { "nullif(\(column)::oid, 0)::regprocedure::text" }

    /// Functions, procedures and aggregates: pg_get_functiondef (or the aggregate's parts).
    /// `sqlBodies`: only those with a SQL-standard body (BEGIN ATOMIC / RETURN, PostgreSQL 14+),
    /// which the server deparses, so their text is compared in normal form across majors; the
    /// others (bodies kept as written) are compared exactly.
    static func functions(_ c: VerifyContext, sqlBodies: Bool) -> String? {
        let bodyFilter: String
        if sqlBodies {
            guard c.both(atLeast: 140000) else { return nil }
            bodyFilter = "AND p.prosqlbody IS NOT NULL"
        } else {
            bodyFilter = c.version >= 140000 ? "AND p.prosqlbody IS NULL" : ""
        }
        let kind = c.version >= 110000 ? "p.prokind" : "CASE WHEN p.proisagg THEN 'a' WHEN p.proiswindow THEN 'w' ELSE 'f' END"
        let finalModify = c.both(atLeast: 110000) ? "'final modify ' || a.aggfinalmodify::text, 'moving final modify ' || a.aggmfinalmodify::text," : ""
        return """
            SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) || ' ('
                     || CASE \(kind) WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'window function' END || ')',
                   CASE WHEN \(kind) = 'a' THEN (SELECT concat_ws(E'\\n', 'aggregate ' || pg_get_function_arguments(p.oid), 'kind ' || a.aggkind::text,
                          'state ' || a.aggtransfn::oid::regprocedure::text || ' ' || format_type(a.aggtranstype, NULL),
                          'final ' || \(regproc("a.aggfinalfn")), 'final extra ' || a.aggfinalextra, 'combine ' || \(regproc("a.aggcombinefn")),
                          'serial ' || \(regproc("a.aggserialfn")), 'deserial ' || \(regproc("a.aggdeserialfn")),
                          'moving ' || \(regproc("a.aggmtransfn")), 'moving inverse ' || \(regproc("a.aggminvtransfn")),
                          'moving final ' || \(regproc("a.aggmfinalfn")), \(finalModify)
                          'initial ' || a.agginitval, 'moving initial ' || a.aggminitval, 'sort ' || nullif(a.aggsortop::oid, 0)::regoperator::text,
                          'parallel ' || p.proparallel::text, 'transition space ' || a.aggtransspace)
                        FROM pg_aggregate a WHERE a.aggfnoid = p.oid)
                     ELSE pg_get_functiondef(p.oid) END
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE \(userSchemas) AND \(notExtensionMember("pg_proc", "p.oid")) \(bodyFilter)
            """
    }

    // MARK: Per database

    static let database: [CatalogCheck] = [
        CatalogCheck(id: "verify.database", title: "Database properties match", subject: "") { c in
            let provider = c.version >= 150000 ? "d.datlocprovider::text" : "'c'"
            let locale = c.version >= 170000 ? "d.datlocale" : c.version >= 150000 ? "d.daticulocale" : "NULL"
            let rules = c.both(atLeast: 160000) ? "'icu rules ' || d.daticurules," : ""
            return """
                SELECT 'encoding', pg_encoding_to_char(d.encoding) FROM pg_database d WHERE d.datname = current_database()
                UNION ALL SELECT 'locale', concat_ws(E'\\n', 'provider ' || \(provider), 'collate ' || d.datcollate, 'ctype ' || d.datctype,
                                                     'locale ' || \(locale), \(rules) NULL)
                  FROM pg_database d WHERE d.datname = current_database()
                UNION ALL SELECT 'connection limit', d.datconnlimit::text FROM pg_database d WHERE d.datname = current_database()
                UNION ALL SELECT 'allow connections', d.datallowconn::text FROM pg_database d WHERE d.datname = current_database()
                UNION ALL SELECT 'is template', d.datistemplate::text FROM pg_database d WHERE d.datname = current_database()
                UNION ALL SELECT 'owner', quote_ident(pg_get_userbyid(d.datdba)) FROM pg_database d WHERE d.datname = current_database()
                UNION ALL SELECT 'privileges', \(acl("d.datacl", kind: "d", owner: "d.datdba", c)) FROM pg_database d WHERE d.datname = current_database()
                UNION ALL SELECT 'setting ' || split_part(s.setting, '=', 1) || coalesce(' for role ' || quote_ident(r.rolname), ''),
                                 substr(s.setting, strpos(s.setting, '=') + 1)
                  FROM (SELECT setrole, unnest(setconfig) AS setting FROM pg_db_role_setting
                        WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())) s
                  LEFT JOIN pg_roles r ON r.oid = s.setrole
                """
        },
        CatalogCheck(id: "verify.extensions", title: "Extensions, versions and schemas match", subject: "") { _ in
            // An extension at its server's default version is what CREATE EXTENSION gives there
            // (pg_dump names no version): on a newer major that is a newer version, not a difference.
            """
            SELECT quote_ident(e.extname) || ' (extension)',
                   'version ' || CASE WHEN e.extversion = a.default_version THEN 'the server''s default' ELSE e.extversion END
                   || ' schema ' || quote_ident(n.nspname)
            FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace LEFT JOIN pg_available_extensions a ON a.name = e.extname
            """
        },
        CatalogCheck(id: "verify.schemas", title: "Schemas match", subject: "") { _ in
            "SELECT quote_ident(n.nspname) || ' (schema)', 'schema' FROM pg_namespace n WHERE \(userSchemas) AND \(notExtensionMember("pg_namespace", "n.oid"))"
        },
        CatalogCheck(id: "verify.tables", title: "Tables, views and their columns match", subject: "") { c in
            let generated = c.version >= 120000 ? "a.attgenerated <> ''" : "false"
            let compression = c.both(atLeast: 140000) ? "|| CASE WHEN a.attcompression::text <> '' THEN ' compression ' || a.attcompression::text ELSE '' END" : ""
            let accessMethod = c.version >= 120000 ? "CASE WHEN c.relkind IN ('r', 'm') THEN 'access method ' || am.amname END," : ""
            let amJoin = c.version >= 120000 ? "LEFT JOIN pg_am am ON am.oid = c.relam" : ""
            return """
                SELECT \(relationKey), concat_ws(E'\\n',
                  'persistence ' || c.relpersistence::text,
                  \(accessMethod)
                  -- not the tablespace: the migration puts everything in the target's default one
                  -- (managed targets have no other; validation's objects.tablespaces says so)
                  'options ' || array_to_string(ARRAY(SELECT o FROM unnest(c.reloptions) o ORDER BY 1), ','),
                  CASE WHEN c.relkind IN ('r', 'p', 'm') THEN 'replica identity ' || c.relreplident::text END,
                  CASE WHEN c.relrowsecurity THEN 'row security enabled' END,
                  CASE WHEN c.relforcerowsecurity THEN 'row security forced' END,
                  CASE WHEN c.relkind = 'm' THEN CASE WHEN c.relispopulated THEN 'populated' ELSE 'not populated' END END,
                  CASE WHEN c.relkind = 'p' THEN 'partition key ' || pg_get_partkeydef(c.oid) END,
                  CASE WHEN c.relispartition THEN 'partition ' || pg_get_expr(c.relpartbound, c.oid) END,
                  (SELECT 'inherits ' || string_agg(format('%I.%I', pn.nspname, p.relname), ', ' ORDER BY i.inhseqno)
                     FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace WHERE i.inhrelid = c.oid),
                  CASE WHEN c.reloftype <> 0 THEN 'of type ' || format_type(c.reloftype, NULL) END,
                  (SELECT 'server ' || quote_ident(s.srvname) || coalesce(' options ' || array_to_string(ft.ftoptions, ','), '')
                     FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver WHERE ft.ftrelid = c.oid),
                  (SELECT string_agg(format('column %I %s', a.attname, format_type(a.atttypid, a.atttypmod))
                        || CASE WHEN a.attcollation <> t.typcollation THEN ' collate ' ||
                             (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
                           ELSE '' END
                        || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                        || CASE WHEN \(generated) THEN ' generated ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
                                WHEN ad.adbin IS NOT NULL THEN ' default ' || pg_get_expr(ad.adbin, ad.adrelid) ELSE '' END
                        || CASE a.attidentity WHEN 'a' THEN ' identity always' WHEN 'd' THEN ' identity by default' ELSE '' END
                        || CASE WHEN a.attstorage::text <> t.typstorage::text THEN ' storage ' || a.attstorage::text ELSE '' END
                        \(compression)
                        || CASE WHEN coalesce(a.attstattarget, -1) <> -1 THEN ' statistics ' || a.attstattarget ELSE '' END
                        || coalesce(' options ' || (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg\\_attver=%'), '')
                        || coalesce(' fdw options ' || array_to_string(a.attfdwoptions, ','), '')
                        || CASE WHEN NOT a.attislocal THEN ' inherited' ELSE '' END, E'\\n' ORDER BY a.attnum)
                   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                   LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace \(amJoin)
                WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND c.relpersistence <> 't' AND \(userSchemas)
                  AND \(notExtensionMember("pg_class", "c.oid"))
                """
        },
        CatalogCheck(id: "verify.views", title: "View and materialized view definitions match", subject: "definition", comparison: .definition) { _ in
            """
            SELECT \(relationKey), pg_get_viewdef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('v', 'm') AND \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
            """
        },
        CatalogCheck(id: "verify.view-dependencies", title: "Views read the same objects", subject: "objects read") { _ in
            // Version-independent: the user objects (tables, columns, functions, types, …) each
            // view's query depends on, as the catalog records them.
            """
            SELECT \(relationKey), coalesce((SELECT string_agg(o, E'\\n' ORDER BY o) FROM (
                     SELECT DISTINCT i.type || ' ' || i.identity AS o
                     FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid,
                          pg_identify_object(d.refclassid, d.refobjid, d.refobjsubid) i
                     WHERE r.ev_class = c.oid AND d.refobjid >= \(firstUserOid)
                       AND NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid)) deps), '')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('v', 'm') AND \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
            """
        },
        CatalogCheck(id: "verify.indexes", title: "Indexes match", subject: "definition") { _ in
            """
            SELECT \(relationKey), concat_ws(E'\\n', pg_get_indexdef(i.indexrelid), CASE WHEN i.indisclustered THEN 'clustered' END,
                     CASE WHEN i.indisreplident THEN 'replica identity' END)
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace
            WHERE \(userSchemas) AND \(notExtensionMember("pg_class", "i.indrelid"))
            """
        },
        CatalogCheck(id: "verify.constraints", title: "Constraints match", subject: "definition") { c in
            // NOT NULL constraints (contype 'n': PostgreSQL 17+ for domains, 18+ for tables, with
            // their names and whether they are inherited) are compared when both servers have
            // them; otherwise as the columns' and domains' not-null flags (verify.tables, verify.types).
            let notNull = "(co.contype <> 'n'" + (c.both(atLeast: 170000) ? " OR co.contypid <> 0" : "")
                + (c.both(atLeast: 180000) ? " OR co.conrelid <> 0" : "") + ")"
            // A foreign key PostgreSQL derives from a partitioned table's (on each partition, and
            // one per partition of the referenced table) gets a generated name that depends on
            // the order of creation: it is named by the constraint it derives from at the top
            // (with that one's table) and the relation it references.
            let name = c.both(atLeast: 110000)
                ? """
                  CASE WHEN co.conparentid <> 0 AND co.contype = 'f' THEN
                    (WITH RECURSIVE up(oid, parent) AS (
                       SELECT pc.oid, pc.conparentid FROM pg_constraint pc WHERE pc.oid = co.conparentid
                       UNION ALL SELECT pc.oid, pc.conparentid FROM pg_constraint pc JOIN up ON pc.oid = up.parent)
                     SELECT quote_ident(pc.conname) || ' of ' || pc.conrelid::regclass::text FROM up JOIN pg_constraint pc ON pc.oid = up.oid
                     WHERE up.parent = 0 LIMIT 1) || ' → ' || co.confrelid::regclass::text
                  ELSE quote_ident(co.conname) END
                  """
                : "quote_ident(co.conname)"
            return """
            SELECT format('%I.%I', n.nspname, coalesce(cl.relname, t.typname)) || ' ' || \(name)
                     || CASE WHEN co.contypid <> 0 THEN ' (domain constraint)' ELSE ' (constraint)' END,
                   pg_get_constraintdef(co.oid) || CASE WHEN co.conislocal THEN '' ELSE E'\\ninherited' END
            FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
            LEFT JOIN pg_class cl ON cl.oid = co.conrelid LEFT JOIN pg_type t ON t.oid = co.contypid
            WHERE \(userSchemas) AND \(notNull) AND \(notExtensionMember("pg_class", "co.conrelid"))
              AND \(notExtensionMember("pg_type", "co.contypid"))
            """
        },
        CatalogCheck(id: "verify.functions", title: "Function and procedure definitions match", subject: "definition") { c in
            functions(c, sqlBodies: false)
        },
        CatalogCheck(id: "verify.sql-functions", title: "Definitions of functions with SQL-standard bodies match", subject: "definition",
                     comparison: .definition) { c in
            functions(c, sqlBodies: true)
        },
        CatalogCheck(id: "verify.triggers", title: "Triggers match", subject: "definition") { _ in
            """
            SELECT format('%I.%I', n.nspname, c.relname) || ' ' || quote_ident(t.tgname) || ' (trigger)',
                   pg_get_triggerdef(t.oid) || E'\\nenabled ' || t.tgenabled::text
            FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT t.tgisinternal AND \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
            """
        },
        CatalogCheck(id: "verify.policies", title: "Row security policies match", subject: "definition", comparison: .definition) { c in
            let permissive = c.version >= 100000 ? "CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END" : "'permissive'"
            return """
                SELECT format('%I.%I', n.nspname, c.relname) || ' ' || quote_ident(p.polname) || ' (policy)',
                       concat_ws(E'\\n', 'for ' || p.polcmd::text, \(permissive),
                         'to ' || (SELECT string_agg(g, ',' ORDER BY g) FROM (SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END AS g
                                    FROM unnest(p.polroles) r) roles),
                         'using ' || pg_get_expr(p.polqual, p.polrelid), 'with check ' || pg_get_expr(p.polwithcheck, p.polrelid))
                FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
                """
        },
        CatalogCheck(id: "verify.rules", title: "Rules match", subject: "definition", comparison: .definition) { _ in
            """
            SELECT format('%I.%I', n.nspname, c.relname) || ' ' || quote_ident(r.rulename) || ' (rule)',
                   pg_get_ruledef(r.oid) || E'\\nenabled ' || r.ev_enabled::text
            FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE r.rulename <> '_RETURN' AND \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
            """
        },
        CatalogCheck(id: "verify.types", title: "Types and domains match", subject: "definition") { c in
            let multirange = c.both(atLeast: 140000) ? "'multirange ' || format_type(r.rngmultitypid, NULL)," : ""
            let subscripting = c.both(atLeast: 140000) ? "'subscript ' || \(regproc("t.typsubscript"))," : ""
            return """
                SELECT format('%I.%I', n.nspname, t.typname) || ' (' || CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'r' THEN 'range type' WHEN 'd' THEN 'domain'
                         WHEN 'b' THEN 'base type' WHEN 'p' THEN 'shell type' ELSE t.typtype::text END || ')',
                       CASE t.typtype
                         WHEN 'e' THEN (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
                         WHEN 'r' THEN (SELECT concat_ws(E'\\n', 'subtype ' || format_type(r.rngsubtype, NULL),
                                  'collation ' || (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = r.rngcollation),
                                  'operator class ' || (SELECT format('%I.%I', on_.nspname, oc.opcname) FROM pg_opclass oc JOIN pg_namespace on_ ON on_.oid = oc.opcnamespace WHERE oc.oid = r.rngsubopc),
                                  \(multirange) 'canonical ' || \(regproc("r.rngcanonical")), 'subtype diff ' || \(regproc("r.rngsubdiff")))
                                FROM pg_range r WHERE r.rngtypid = t.oid)
                         WHEN 'd' THEN concat_ws(E'\\n', 'base ' || format_type(t.typbasetype, t.typtypmod), CASE WHEN t.typnotnull THEN 'not null' END,
                                  'default ' || pg_get_expr(t.typdefaultbin, 0),
                                  CASE WHEN t.typcollation <> (SELECT b.typcollation FROM pg_type b WHERE b.oid = t.typbasetype) THEN 'collation ' ||
                                    (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END)
                         WHEN 'b' THEN concat_ws(E'\\n', 'input ' || \(regproc("t.typinput")), 'output ' || \(regproc("t.typoutput")),
                                  'receive ' || \(regproc("t.typreceive")), 'send ' || \(regproc("t.typsend")), 'modifier input ' || \(regproc("t.typmodin")),
                                  'modifier output ' || \(regproc("t.typmodout")), 'analyze ' || \(regproc("t.typanalyze")), \(subscripting)
                                  'length ' || t.typlen, 'by value ' || t.typbyval, 'alignment ' || t.typalign::text, 'storage ' || t.typstorage::text,
                                  'category ' || t.typcategory::text, 'preferred ' || t.typispreferred, 'delimiter ' || t.typdelim::text,
                                  'element ' || CASE WHEN t.typelem <> 0 THEN format_type(t.typelem, NULL) END, 'default ' || t.typdefault)
                         ELSE '' END
                FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                WHERE t.typtype IN ('e', 'r', 'd', 'b', 'p') AND t.typrelid = 0 AND \(userSchemas)
                  AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)
                  AND \(notExtensionMember("pg_type", "t.oid"))
                """
        },
        CatalogCheck(id: "verify.sequence-definitions", title: "Sequence definitions match", subject: "definition") { c in
            guard c.both(atLeast: 100000) else { return nil }
            return """
                SELECT \(relationKey), concat_ws(E'\\n', 'type ' || format_type(s.seqtypid, NULL), 'start ' || s.seqstart, 'increment ' || s.seqincrement,
                         'minimum ' || s.seqmin, 'maximum ' || s.seqmax, 'cache ' || s.seqcache, CASE WHEN s.seqcycle THEN 'cycle' END,
                         'persistence ' || c.relpersistence::text,
                         (SELECT 'owned by ' || format('%I.%I.%I', tn.nspname, tc.relname, a.attname) || CASE d.deptype WHEN 'i' THEN ' (identity)' ELSE '' END
                            FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                            JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                            WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
                              AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 LIMIT 1))
                FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
                """
        },
        CatalogCheck(id: "verify.statistics-objects", title: "Extended statistics match", subject: "definition") { c in
            guard c.both(atLeast: 100000) else { return nil }
            let target = c.both(atLeast: 130000) ? "|| CASE WHEN coalesce(s.stxstattarget, -1) <> -1 THEN E'\\nstatistics ' || s.stxstattarget ELSE '' END" : ""
            return """
                SELECT format('%I.%I', n.nspname, s.stxname) || ' (statistics object)', pg_get_statisticsobjdef(s.oid) \(target)
                FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
                WHERE \(userSchemas) AND \(notExtensionMember("pg_statistic_ext", "s.oid"))
                """
        },
        CatalogCheck(id: "verify.collations", title: "Collations match", subject: "definition") { c in
            let locale = c.version >= 170000 ? "co.colllocale" : c.version >= 150000 ? "co.colliculocale" : "NULL"
            let rules = c.both(atLeast: 160000) ? "'icu rules ' || co.collicurules," : ""
            return """
                SELECT format('%I.%I', n.nspname, co.collname) || ' (collation)',
                       concat_ws(E'\\n', 'provider ' || co.collprovider::text, 'collate ' || co.collcollate, 'ctype ' || co.collctype,
                                 'locale ' || \(locale), \(rules) 'deterministic ' || co.collisdeterministic, 'encoding ' || CASE WHEN co.collencoding IN (-1, (SELECT encoding FROM pg_database WHERE datname = current_database()))
                                 THEN 'any, or the database''s' ELSE pg_encoding_to_char(co.collencoding) END)
                FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
                WHERE \(userSchemas) AND \(notExtensionMember("pg_collation", "co.oid"))
                """
        },
        CatalogCheck(id: "verify.operators", title: "Operators, operator classes and families match", subject: "definition") { _ in
            """
            SELECT o.oid::regoperator::text || ' (operator)',
                   concat_ws(E'\\n', 'result ' || format_type(o.oprresult, NULL), 'function ' || \(regproc("o.oprcode")),
                             'commutator ' || nullif(o.oprcom::oid, 0)::regoperator::text, 'negator ' || nullif(o.oprnegate::oid, 0)::regoperator::text,
                             'restrict ' || \(regproc("o.oprrest")), 'join ' || \(regproc("o.oprjoin")),
                             CASE WHEN o.oprcanmerge THEN 'merges' END, CASE WHEN o.oprcanhash THEN 'hashes' END)
            FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
            WHERE \(userSchemas) AND \(notExtensionMember("pg_operator", "o.oid")) AND o.oprcode <> 0  -- not shell operators: pg_dump has none
            UNION ALL
            SELECT \(identity("'pg_opclass'::regclass", "oc.oid")),
                   concat_ws(E'\\n', 'type ' || format_type(oc.opcintype, NULL), CASE WHEN oc.opcdefault THEN 'default' END,
                             'family ' || (SELECT i.identity FROM pg_identify_object('pg_opfamily'::regclass, oc.opcfamily, 0) i),
                             'storage ' || CASE WHEN oc.opckeytype <> 0 THEN format_type(oc.opckeytype, NULL) END)
            FROM pg_opclass oc JOIN pg_namespace n ON n.oid = oc.opcnamespace
            WHERE \(userSchemas) AND \(notExtensionMember("pg_opclass", "oc.oid"))
            UNION ALL
            SELECT \(identity("'pg_opfamily'::regclass", "f.oid")),
                   coalesce((SELECT string_agg(m, E'\\n' ORDER BY m) FROM (
                     SELECT 'operator ' || ao.amopstrategy || ' ' || ao.amopopr::oid::regoperator::text || ' ' || ao.amoppurpose::text
                              || coalesce(' order by ' || (SELECT i.identity FROM pg_identify_object('pg_opfamily'::regclass, nullif(ao.amopsortfamily, 0), 0) i), '') AS m
                       FROM pg_amop ao WHERE ao.amopfamily = f.oid
                     UNION ALL
                     SELECT 'function ' || ap.amprocnum || ' (' || format_type(ap.amproclefttype, NULL) || ', ' || format_type(ap.amprocrighttype, NULL) || ') '
                              || ap.amproc::oid::regprocedure::text
                       FROM pg_amproc ap WHERE ap.amprocfamily = f.oid) members), '')
            FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace
            WHERE \(userSchemas) AND \(notExtensionMember("pg_opfamily", "f.oid"))
            """
        },
        CatalogCheck(id: "verify.casts", title: "Casts, conversions and access methods match", subject: "definition") { _ in
            """
            SELECT 'cast (' || format_type(ca.castsource, NULL) || ' AS ' || format_type(ca.casttarget, NULL) || ')',
                   concat_ws(' ', 'context ' || ca.castcontext::text, 'method ' || ca.castmethod::text, 'function ' || \(regproc("ca.castfunc")))
            FROM pg_cast ca WHERE ca.oid >= \(firstUserOid) AND \(notExtensionMember("pg_cast", "ca.oid"))
            UNION ALL
            SELECT format('%I.%I', n.nspname, cv.conname) || ' (conversion)',
                   pg_encoding_to_char(cv.conforencoding) || ' to ' || pg_encoding_to_char(cv.contoencoding) || ' function ' || \(regproc("cv.conproc"))
                     || CASE WHEN cv.condefault THEN ' default' ELSE '' END
            FROM pg_conversion cv JOIN pg_namespace n ON n.oid = cv.connamespace
            WHERE \(userSchemas) AND \(notExtensionMember("pg_conversion", "cv.oid"))
            UNION ALL
            SELECT quote_ident(am.amname) || ' (access method)', 'type ' || am.amtype::text || ' handler ' || \(regproc("am.amhandler"))
            FROM pg_am am WHERE am.oid >= \(firstUserOid) AND \(notExtensionMember("pg_am", "am.oid"))
            UNION ALL
            SELECT quote_ident(l.lanname) || ' (language)',
                   concat_ws(' ', CASE WHEN l.lanpltrusted THEN 'trusted' END, 'handler ' || \(regproc("l.lanplcallfoid")),
                             'inline ' || \(regproc("l.laninline")), 'validator ' || \(regproc("l.lanvalidator")))
            FROM pg_language l WHERE l.lanispl AND l.oid >= \(firstUserOid) AND \(notExtensionMember("pg_language", "l.oid"))
            """
        },
        CatalogCheck(id: "verify.text-search", title: "Text search configurations and dictionaries match", subject: "definition") { _ in
            """
            SELECT format('%I.%I', n.nspname, cfg.cfgname) || ' (text search configuration)',
                   concat_ws(E'\\n', 'parser ' || (SELECT format('%I.%I', pn.nspname, p.prsname) FROM pg_ts_parser p JOIN pg_namespace pn ON pn.oid = p.prsnamespace WHERE p.oid = cfg.cfgparser),
                     (SELECT string_agg('token ' || m.maptokentype || ': ' || m.dicts, E'\\n' ORDER BY m.maptokentype) FROM (
                        SELECT mp.maptokentype, string_agg(format('%I.%I', dn.nspname, d.dictname), ', ' ORDER BY mp.mapseqno) AS dicts
                        FROM pg_ts_config_map mp JOIN pg_ts_dict d ON d.oid = mp.mapdict JOIN pg_namespace dn ON dn.oid = d.dictnamespace
                        WHERE mp.mapcfg = cfg.oid GROUP BY mp.maptokentype) m))
            FROM pg_ts_config cfg JOIN pg_namespace n ON n.oid = cfg.cfgnamespace
            WHERE \(userSchemas) AND \(notExtensionMember("pg_ts_config", "cfg.oid"))
            UNION ALL
            SELECT format('%I.%I', n.nspname, d.dictname) || ' (text search dictionary)',
                   'template ' || (SELECT format('%I.%I', tn.nspname, tm.tmplname) FROM pg_ts_template tm JOIN pg_namespace tn ON tn.oid = tm.tmplnamespace WHERE tm.oid = d.dicttemplate)
                     || coalesce(' options ' || d.dictinitoption, '')
            FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace
            WHERE \(userSchemas) AND \(notExtensionMember("pg_ts_dict", "d.oid"))
            UNION ALL
            SELECT format('%I.%I', n.nspname, p.prsname) || ' (text search parser)',
                   concat_ws(' ', \(regproc("p.prsstart")), \(regproc("p.prstoken")), \(regproc("p.prsend")), \(regproc("p.prsheadline")), \(regproc("p.prslextype")))
            FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace
            WHERE \(userSchemas) AND \(notExtensionMember("pg_ts_parser", "p.oid"))
            UNION ALL
            SELECT format('%I.%I', n.nspname, tm.tmplname) || ' (text search template)', concat_ws(' ', \(regproc("tm.tmplinit")), \(regproc("tm.tmpllexize")))
            FROM pg_ts_template tm JOIN pg_namespace n ON n.oid = tm.tmplnamespace
            WHERE \(userSchemas) AND \(notExtensionMember("pg_ts_template", "tm.oid"))
            """
        },
        CatalogCheck(id: "verify.event-triggers", title: "Event triggers match", subject: "definition") { _ in
            """
            SELECT quote_ident(e.evtname) || ' (event trigger)',
                   concat_ws(E'\\n', 'on ' || e.evtevent, 'function ' || \(regproc("e.evtfoid")), 'enabled ' || e.evtenabled::text,
                             'tags ' || (SELECT string_agg(tag, ', ' ORDER BY tag) FROM unnest(e.evttags) tag))
            FROM pg_event_trigger e WHERE \(notExtensionMember("pg_event_trigger", "e.oid"))
            """
        },
        CatalogCheck(id: "verify.foreign-data", title: "Foreign-data wrappers and servers match", subject: "definition") { _ in
            """
            SELECT quote_ident(w.fdwname) || ' (foreign-data wrapper)',
                   concat_ws(' ', 'handler ' || \(regproc("w.fdwhandler")), 'validator ' || \(regproc("w.fdwvalidator")),
                             'options ' || array_to_string(ARRAY(SELECT o FROM unnest(w.fdwoptions) o ORDER BY 1), ','))
            FROM pg_foreign_data_wrapper w WHERE \(notExtensionMember("pg_foreign_data_wrapper", "w.oid"))
            UNION ALL
            SELECT quote_ident(s.srvname) || ' (server)',
                   concat_ws(' ', 'wrapper ' || quote_ident(w.fdwname), 'type ' || s.srvtype, 'version ' || s.srvversion,
                             'options ' || array_to_string(ARRAY(SELECT o FROM unnest(s.srvoptions) o ORDER BY 1), ','))
            FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
            WHERE \(notExtensionMember("pg_foreign_server", "s.oid"))
            """
        },
        CatalogCheck(id: "verify.user-mappings", title: "User mappings match", subject: "options", comparison: .secret) { _ in
            // Options can hold passwords: compared, never printed. pg_user_mappings (not the
            // catalog, which only superusers may read) shows them to those allowed to see them.
            """
            SELECT 'for ' || CASE WHEN u.umuser = 0 THEN 'PUBLIC' ELSE quote_ident(u.usename) END || ' server ' || quote_ident(u.srvname) || ' (user mapping)',
                   md5(coalesce(array_to_string(ARRAY(SELECT o FROM unnest(u.umoptions) o ORDER BY 1), ','), ''))
            FROM pg_user_mappings u
            """
        },
        CatalogCheck(id: "verify.publications", title: "Publications match", subject: "definition") { c in
            let viaRoot = c.both(atLeast: 130000) ? "'via root ' || p.pubviaroot," : ""
            let rowFilter = c.both(atLeast: 150000) ? "|| coalesce(' where ' || pg_get_expr(pr.prqual, pr.prrelid), '')" : ""
            return """
                SELECT quote_ident(p.pubname) || ' (publication)',
                       concat_ws(E'\\n', 'all tables ' || p.puballtables, 'insert ' || p.pubinsert, 'update ' || p.pubupdate, 'delete ' || p.pubdelete,
                                 'truncate ' || p.pubtruncate, \(viaRoot)
                                 (SELECT string_agg('table ' || format('%I.%I', tn.nspname, tc.relname) \(rowFilter), E'\\n' ORDER BY tn.nspname, tc.relname)
                                    FROM pg_publication_rel pr JOIN pg_class tc ON tc.oid = pr.prrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                                    WHERE pr.prpubid = p.oid))
                FROM pg_publication p WHERE p.pubname NOT LIKE 'pgpreflight\\_%'
                """
        },
        CatalogCheck(id: "verify.owners", title: "Owners match", subject: "owner") { _ in
            """
            SELECT \(identity("'pg_class'::regclass", "c.oid")), quote_ident(pg_get_userbyid(c.relowner))
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND c.relpersistence <> 't' AND \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
            UNION ALL
            SELECT \(identity("'pg_proc'::regclass", "p.oid")), quote_ident(pg_get_userbyid(p.proowner))
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE \(userSchemas) AND \(notExtensionMember("pg_proc", "p.oid"))
            UNION ALL
            SELECT \(identity("'pg_type'::regclass", "t.oid")), quote_ident(pg_get_userbyid(t.typowner))
            FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE t.typrelid = 0 AND t.typtype <> 'm' AND \(userSchemas) AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)
              AND \(notExtensionMember("pg_type", "t.oid"))
            UNION ALL
            SELECT quote_ident(n.nspname) || ' (schema)', quote_ident(pg_get_userbyid(n.nspowner))
            FROM pg_namespace n WHERE \(userSchemas) AND \(notExtensionMember("pg_namespace", "n.oid"))
            UNION ALL
            SELECT \(identity("'pg_collation'::regclass", "x.oid")), quote_ident(pg_get_userbyid(x.collowner))
            FROM pg_collation x JOIN pg_namespace n ON n.oid = x.collnamespace WHERE \(userSchemas) AND \(notExtensionMember("pg_collation", "x.oid"))
            UNION ALL
            SELECT \(identity("'pg_conversion'::regclass", "x.oid")), quote_ident(pg_get_userbyid(x.conowner))
            FROM pg_conversion x JOIN pg_namespace n ON n.oid = x.connamespace WHERE \(userSchemas) AND \(notExtensionMember("pg_conversion", "x.oid"))
            UNION ALL
            SELECT \(identity("'pg_operator'::regclass", "x.oid")), quote_ident(pg_get_userbyid(x.oprowner))
            FROM pg_operator x JOIN pg_namespace n ON n.oid = x.oprnamespace WHERE \(userSchemas) AND \(notExtensionMember("pg_operator", "x.oid")) AND x.oprcode <> 0
            UNION ALL
            SELECT \(identity("'pg_opclass'::regclass", "x.oid")), quote_ident(pg_get_userbyid(x.opcowner))
            FROM pg_opclass x JOIN pg_namespace n ON n.oid = x.opcnamespace WHERE \(userSchemas) AND \(notExtensionMember("pg_opclass", "x.oid"))
            UNION ALL
            SELECT \(identity("'pg_opfamily'::regclass", "x.oid")), quote_ident(pg_get_userbyid(x.opfowner))
            FROM pg_opfamily x JOIN pg_namespace n ON n.oid = x.opfnamespace WHERE \(userSchemas) AND \(notExtensionMember("pg_opfamily", "x.oid"))
            UNION ALL
            SELECT \(identity("'pg_ts_config'::regclass", "x.oid")), quote_ident(pg_get_userbyid(x.cfgowner))
            FROM pg_ts_config x JOIN pg_namespace n ON n.oid = x.cfgnamespace WHERE \(userSchemas) AND \(notExtensionMember("pg_ts_config", "x.oid"))
            UNION ALL
            SELECT \(identity("'pg_ts_dict'::regclass", "x.oid")), quote_ident(pg_get_userbyid(x.dictowner))
            FROM pg_ts_dict x JOIN pg_namespace n ON n.oid = x.dictnamespace WHERE \(userSchemas) AND \(notExtensionMember("pg_ts_dict", "x.oid"))
            UNION ALL
            SELECT \(identity("'pg_statistic_ext'::regclass", "x.oid")), quote_ident(pg_get_userbyid(x.stxowner))
            FROM pg_statistic_ext x JOIN pg_namespace n ON n.oid = x.stxnamespace WHERE \(userSchemas) AND \(notExtensionMember("pg_statistic_ext", "x.oid"))
            UNION ALL
            SELECT quote_ident(x.evtname) || ' (event trigger)', quote_ident(pg_get_userbyid(x.evtowner)) FROM pg_event_trigger x
            WHERE \(notExtensionMember("pg_event_trigger", "x.oid"))
            UNION ALL
            SELECT quote_ident(x.lanname) || ' (language)', quote_ident(pg_get_userbyid(x.lanowner)) FROM pg_language x
            WHERE x.lanispl AND x.oid >= \(firstUserOid) AND \(notExtensionMember("pg_language", "x.oid"))
            UNION ALL
            SELECT quote_ident(x.fdwname) || ' (foreign-data wrapper)', quote_ident(pg_get_userbyid(x.fdwowner)) FROM pg_foreign_data_wrapper x
            WHERE \(notExtensionMember("pg_foreign_data_wrapper", "x.oid"))
            UNION ALL
            SELECT quote_ident(x.srvname) || ' (server)', quote_ident(pg_get_userbyid(x.srvowner)) FROM pg_foreign_server x
            WHERE \(notExtensionMember("pg_foreign_server", "x.oid"))
            UNION ALL
            SELECT quote_ident(x.pubname) || ' (publication)', quote_ident(pg_get_userbyid(x.pubowner)) FROM pg_publication x
            WHERE x.pubname NOT LIKE 'pgpreflight\\_%'
            UNION ALL
            SELECT quote_ident(x.extname) || ' (extension)', quote_ident(pg_get_userbyid(x.extowner)) FROM pg_extension x
            """
        },
        CatalogCheck(id: "verify.privileges", title: "Privileges match", subject: "privileges") { c in
            """
            SELECT \(relationKey), \(acl("c.relacl", kind: "r", owner: "c.relowner", c))
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relpersistence <> 't' AND \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
            UNION ALL
            SELECT \(relationKey), \(acl("c.relacl", kind: "s", owner: "c.relowner", c))
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'S' AND \(userSchemas) AND \(notExtensionMember("pg_class", "c.oid"))
            UNION ALL
            SELECT format('%I.%I.%I', n.nspname, c.relname, a.attname) || ' (column)', \(acl("a.attacl", kind: "c", owner: "c.relowner", c))
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE a.attacl IS NOT NULL AND cardinality(a.attacl) > 0 AND a.attnum > 0 AND NOT a.attisdropped AND \(userSchemas)
              AND \(notExtensionMember("pg_class", "c.oid"))
            UNION ALL
            SELECT \(identity("'pg_proc'::regclass", "p.oid")), \(acl("p.proacl", kind: "f", owner: "p.proowner", c))
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE \(userSchemas) AND \(notExtensionMember("pg_proc", "p.oid"))
            UNION ALL
            SELECT \(identity("'pg_type'::regclass", "t.oid")), \(acl("t.typacl", kind: "T", owner: "t.typowner", c))
            FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE (t.typrelid = 0 OR EXISTS (SELECT FROM pg_class r WHERE r.oid = t.typrelid AND r.relkind = 'c')) AND t.typtype <> 'm' AND \(userSchemas) AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)
              AND \(notExtensionMember("pg_type", "t.oid"))
            UNION ALL
            SELECT quote_ident(n.nspname) || ' (schema)', \(acl("n.nspacl", kind: "n", owner: "n.nspowner", c))
            FROM pg_namespace n WHERE \(userSchemas) AND \(notExtensionMember("pg_namespace", "n.oid"))
            UNION ALL
            SELECT quote_ident(x.lanname) || ' (language)', \(acl("x.lanacl", kind: "l", owner: "x.lanowner", c)) FROM pg_language x
            WHERE x.lanispl AND \(notExtensionMember("pg_language", "x.oid"))
            UNION ALL
            SELECT quote_ident(x.fdwname) || ' (foreign-data wrapper)', \(acl("x.fdwacl", kind: "F", owner: "x.fdwowner", c)) FROM pg_foreign_data_wrapper x
            WHERE \(notExtensionMember("pg_foreign_data_wrapper", "x.oid"))
            UNION ALL
            SELECT quote_ident(x.srvname) || ' (server)', \(acl("x.srvacl", kind: "S", owner: "x.srvowner", c)) FROM pg_foreign_server x
            WHERE \(notExtensionMember("pg_foreign_server", "x.oid"))
            """
        },
        CatalogCheck(id: "verify.default-privileges", title: "Default privileges match", subject: "privileges") { c in
            let maintain = c.ignoresMaintain ? "WHERE a.privilege_type <> 'MAINTAIN'" : ""
            return """
                SELECT 'for role ' || quote_ident(pg_get_userbyid(d.defaclrole)) || coalesce(' in schema ' || quote_ident(n.nspname), '') || ' on '
                         || CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions' WHEN 'T' THEN 'types'
                              WHEN 'n' THEN 'schemas' WHEN 'L' THEN 'large objects' ELSE d.defaclobjtype::text END || ' (default privileges)',
                       coalesce((SELECT string_agg(g, ',' ORDER BY g) FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
                                  || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END AS g
                                FROM aclexplode(d.defaclacl) a \(maintain)) acl), 'none')
                FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
                """
        },
        CatalogCheck(id: "verify.comments", title: "Comments match", subject: "comment") { _ in
            // Every object kind, named by pg_identify_object (never by OID, except large objects,
            // whose OID is their name); objects of extensions carry their extension's comments.
            """
            SELECT i.identity || ' (' || i.type || ')', d.description
            FROM pg_description d, pg_identify_object(d.classoid, d.objoid, d.objsubid) i
            WHERE d.objoid >= \(firstUserOid) AND i.identity IS NOT NULL
              AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = d.classoid AND e.objid = d.objoid AND e.deptype = 'e')
              AND coalesce(i.schema NOT IN ('pg_catalog', 'information_schema') AND i.schema NOT LIKE 'pg\\_toast%' AND i.schema NOT LIKE 'pg\\_temp\\_%', true)
            UNION ALL
            SELECT 'this database (database)', d.description FROM pg_shdescription d
            WHERE d.classoid = 'pg_database'::regclass AND d.objoid = (SELECT oid FROM pg_database WHERE datname = current_database())
            """
        },
        CatalogCheck(id: "verify.security-labels", title: "Security labels match", subject: "security label") { _ in
            """
            SELECT i.identity || ' (' || i.type || ') provider ' || s.provider, s.label
            FROM pg_seclabel s, pg_identify_object(s.classoid, s.objoid, s.objsubid) i
            WHERE s.objoid >= \(firstUserOid) AND i.identity IS NOT NULL
              AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = s.classoid AND e.objid = s.objoid AND e.deptype = 'e')
            UNION ALL
            SELECT 'this database (database) provider ' || s.provider, s.label FROM pg_shseclabel s
            WHERE s.classoid = 'pg_database'::regclass AND s.objoid = (SELECT oid FROM pg_database WHERE datname = current_database())
            """
        },
        CatalogCheck(id: "verify.large-objects", title: "Large objects match", subject: "owner and privileges") { c in
            "SELECT m.oid::text, quote_ident(pg_get_userbyid(m.lomowner)) || ' ' || \(acl("m.lomacl", kind: "L", owner: "m.lomowner", c)) FROM pg_largeobject_metadata m"
        },
    ]

    // MARK: Cluster (roles)

    static let platformRoleList = "ARRAY[" + Roles.platformRoles.sorted().map { "'\($0)'" }.joined(separator: ", ") + "]::name[]"

    static let cluster: [CatalogCheck] = [
        CatalogCheck(id: "verify.roles", title: "Roles and their attributes match", subject: "attributes", targetOnly: .ignored, roleScoped: true) { _ in
            """
            SELECT quote_ident(r.rolname) || ' (role)',
                   concat_ws(E'\\n', 'superuser ' || r.rolsuper, 'inherit ' || r.rolinherit, 'create role ' || r.rolcreaterole,
                             'create database ' || r.rolcreatedb, 'login ' || r.rolcanlogin, 'replication ' || r.rolreplication,
                             'bypass row security ' || r.rolbypassrls, 'connection limit ' || r.rolconnlimit,
                             'valid until ' || coalesce(r.rolvaliduntil::text, 'forever')),
                   r.rolname
            FROM pg_roles r WHERE r.rolname !~ '^pg_'
            """
        },
        CatalogCheck(id: "verify.role-passwords", title: "Role passwords match", subject: "password", comparison: .secret,
                     targetOnly: .ignored, roleScoped: true) { c in
            guard c.passwordsReadable else { return nil }
            return "SELECT quote_ident(a.rolname) || ' (role)', coalesce(md5(a.rolpassword), 'none'), a.rolname FROM pg_authid a WHERE a.rolname !~ '^pg_'"
        },
        CatalogCheck(id: "verify.role-memberships", title: "Role memberships match", subject: "membership", roleScoped: true) { c in
            // Memberships of the source's roles, in any role (predefined ones included). Before
            // 16 a membership had no INHERIT/SET options: on a 16+ target pg_dumpall's GRANT
            // gives INHERIT the member's own inherit flag and SET true, as the source meant.
            let options: String
            if c.version >= 160000 && c.targetVersion >= 160000 && c.sourceVersion >= 160000 {
                options = "'admin ' || m.admin_option || ' inherit ' || m.inherit_option || ' set ' || m.set_option"
            } else if c.targetVersion >= 160000 {
                options = c.version >= 160000
                    ? "'admin ' || m.admin_option || ' inherit ' || m.inherit_option || ' set ' || m.set_option"
                    : "'admin ' || m.admin_option || ' inherit ' || u.rolinherit || ' set true'"
            } else {
                options = "'admin ' || m.admin_option"
            }
            let grantor = c.comparesMembershipGrantors ? " || ' granted by ' || quote_ident(pg_get_userbyid(m.grantor))" : ""
            // A 16+ server makes the creator of a role (a non-superuser with CREATEROLE) its
            // admin, granted by the bootstrap superuser: not something a 15 source can have.
            let creatorGrant = c.version >= 160000 && c.sourceVersion < 160000
                ? "AND NOT (m.grantor = 10 AND m.admin_option AND EXISTS (SELECT FROM pg_roles cr WHERE cr.oid = m.member AND cr.rolcreaterole AND NOT cr.rolsuper))"
                : ""
            return """
                SELECT quote_ident(u.rolname) || ' in ' || quote_ident(g.rolname)\(grantor) || ' (role membership)',
                       string_agg(\(options), '; ' ORDER BY \(options)), u.rolname
                FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
                WHERE u.rolname !~ '^pg_' AND NOT g.rolname = ANY (\(platformRoleList)) \(creatorGrant)
                GROUP BY 1, u.rolname
                """
        },
        CatalogCheck(id: "verify.role-settings", title: "Role settings match", subject: "setting", roleScoped: true) { _ in
            """
            SELECT quote_ident(r.rolname) || ' setting ' || split_part(s.setting, '=', 1) || ' (role)',
                   substr(s.setting, strpos(s.setting, '=') + 1), r.rolname
            FROM (SELECT setrole, unnest(setconfig) AS setting FROM pg_db_role_setting WHERE setdatabase = 0) s
            JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname !~ '^pg_'
            """
        },
        CatalogCheck(id: "verify.role-comments", title: "Role comments and security labels match", subject: "comment", roleScoped: true) { _ in
            """
            SELECT quote_ident(r.rolname) || ' (role)', d.description, r.rolname
            FROM pg_shdescription d JOIN pg_roles r ON r.oid = d.objoid WHERE d.classoid = 'pg_authid'::regclass AND r.rolname !~ '^pg_'
            UNION ALL
            SELECT quote_ident(r.rolname) || ' (role) security label provider ' || s.provider, s.label, r.rolname
            FROM pg_shseclabel s JOIN pg_roles r ON r.oid = s.objoid WHERE s.classoid = 'pg_authid'::regclass AND r.rolname !~ '^pg_'
            """
        },
        CatalogCheck(id: "verify.parameter-privileges", title: "Privileges on parameters match", subject: "privileges") { c in
            guard c.both(atLeast: 150000) else { return nil }
            // SET on session_replication_role granted to the login that verifies (and the bootstrap
            // superuser's own entries, which any grant writes out):
            // what a target admin that is not a superuser needs for an online migration's apply.
            return """
                SELECT p.parname || ' (parameter)', \(acl("p.paracl", kind: "p", owner: "10", c)) FROM pg_parameter_acl p
                WHERE NOT (p.parname = 'session_replication_role' AND NOT EXISTS (
                    SELECT FROM aclexplode(p.paracl) a WHERE a.grantee NOT IN (10, (SELECT oid FROM pg_roles WHERE rolname = current_user))))
                """
        },
    ]
}
