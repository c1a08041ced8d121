import Foundation
import PostgresClient

/// One table to copy, as the source's catalog describes it at the snapshot.
struct SourceTable: Sendable {
    let oid: Int
    let schema: String
    let name: String
    /// libpq-quoted `schema.name`.
    let qualified: String
    let bytes: Int64
    let pages: Int64
    /// libpq-quoted column names, generated columns left out.
    let columns: [String]
    /// ` (a, b)` for COPY, or nothing for a table without a column to copy (`CREATE TABLE t ()`,
    /// every column dropped or generated): COPY then moves its rows, as pg_dump does.
    var columnList: String { columns.isEmpty ? "" : " (\(columns.joined(separator: ", ")))" }
    /// Every column has a built-in type with binary send/receive: binary COPY is safe.
    let binary: Bool
    /// A single-column integer primary key (quoted), usable to split the table in ranges.
    let integerKey: String?
    var key: String { qualified }
}

/// An index or PK/UNIQUE/EXCLUDE constraint, with the table it belongs to.
struct TableIndex: Sendable {
    let schema: String
    let table: String
    let tableOid: Int
    /// The name pg_dump prints in its entry header: the index name, or "table constraint".
    let dumpName: String
    let dumpType: String  // INDEX or CONSTRAINT
    /// For PK/UNIQUE on plain tables: build the index, then attach it (`USING INDEX`), which
    /// avoids holding ACCESS EXCLUSIVE on the table while the index builds.
    let usingIndexSQL: String?
}

enum Catalog {
    static let userSchemaFilter = """
        n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
        AND n.nspname NOT LIKE 'pg\\_temp\\_%'
        """

    /// A type whose binary COPY format means the same on both servers: a built-in base, range
    /// or multirange type with binary I/O. Not the OID-valued `reg*` types (their binary form
    /// is the source's OID, which names nothing or another object on the target: their text
    /// form is the object's name), not composites (their binary form carries column type
    /// OIDs), not types without binary I/O (aclitem), not extension or user types (their OIDs
    /// and binary formats are the source's).
    static func binarySafe(_ type: String) -> String {
        "(\(type).oid < 16384 AND \(type).typtype IN ('b', 'r', 'm') AND \(type).typsend <> 0 AND \(type).typreceive <> 0 AND \(type).typname !~ '^_?reg')"
    }

    /// Plain tables and leaf partitions holding data (extension-owned tables are left to their
    /// extension), largest first.
    static func tables(_ conn: Connection) throws -> [SourceTable] {
        let generated = conn.serverVersionNumber >= 120000 ? "AND a.attgenerated = ''" : ""
        let rows = try conn.query("""
            SELECT c.oid::int8, n.nspname, c.relname, pg_relation_size(c.oid) AS bytes, c.relpages::int8
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND \(userSchemaFilter) AND c.relpersistence <> 't'
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
            ORDER BY 4 DESC, 2, 3
            """).rows
        var columns: [Int: [(String, Bool)]] = [:]
        for row in try conn.query("""
            SELECT a.attrelid::int8, a.attname, \(binarySafe("t")) AND (t.typelem = 0 OR \(binarySafe("e"))) AS binary_ok
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type e ON e.oid = t.typelem
                 JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND \(userSchemaFilter) AND a.attnum > 0 AND NOT a.attisdropped \(generated)
            ORDER BY a.attrelid, a.attnum
            """).rows {
            columns[row.int(0)!, default: []].append((row.string(1)!, row.bool(2) ?? false))
        }
        var keys: [Int: String] = [:]
        for row in try conn.query("""
            SELECT con.conrelid::int8, a.attname FROM pg_constraint con
            JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
            WHERE con.contype = 'p' AND array_length(con.conkey, 1) = 1 AND a.atttypid IN (20, 21, 23)
            """).rows {
            keys[row.int(0)!] = try conn.quoteIdentifier(row.string(1)!)
        }
        return try rows.map { row in
            let oid = row.int(0)!
            let cols = columns[oid] ?? []
            return SourceTable(oid: oid, schema: row.string(1)!, name: row.string(2)!,
                               qualified: try conn.quoteQualified(row.string(1)!, row.string(2)!),
                               bytes: Int64(row.int(3) ?? 0), pages: Int64(row.int(4) ?? 0),
                               columns: try cols.map { try conn.quoteIdentifier($0.0) },
                               binary: cols.allSatisfy { $0.1 }, integerKey: keys[oid])
        }
    }

    /// Indexes and PK/UNIQUE/EXCLUDE constraints of plain tables and partitions: built by the
    /// workers as soon as their table is copied.
    static func tableIndexes(_ conn: Connection) throws -> [TableIndex] {
        let rows = try conn.query("""
            SELECT n.nspname, t.relname, t.oid::int8, i.relname AS index_name, con.conname, con.contype,
                   con.condeferrable, pg_get_indexdef(i.oid) AS indexdef,
                   EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = t.oid) AS inherits
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            LEFT JOIN pg_constraint con ON con.conindid = i.oid AND con.conrelid = t.oid AND con.contype IN ('p', 'u', 'x')
            WHERE t.relkind = 'r' AND \(userSchemaFilter)
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = t.oid AND d.deptype = 'e')
            """).rows
        return try rows.map { row in
            let schema = row.string(0)!, table = row.string(1)!
            if let constraint = row.string(4) {
                var usingIndex: String?
                let type = row.string(5)!
                // Not on an inheritance child: attaching the index makes the NOT NULL it
                // inherits a local one (PostgreSQL 18); pg_dump's ADD CONSTRAINT keeps it inherited.
                if (type == "p" || type == "u") && row.bool(6) == false && row.bool(8) == false, let indexdef = row.string(7) {
                    let kind = type == "p" ? "PRIMARY KEY" : "UNIQUE"
                    usingIndex = "\(indexdef);\nALTER TABLE ONLY \(try conn.quoteQualified(schema, table)) ADD CONSTRAINT \(try conn.quoteIdentifier(constraint)) \(kind) USING INDEX \(try conn.quoteIdentifier(row.string(3)!));"
                }
                return TableIndex(schema: schema, table: table, tableOid: row.int(2)!, dumpName: "\(table) \(constraint)",
                                  dumpType: "CONSTRAINT", usingIndexSQL: usingIndex)
            }
            return TableIndex(schema: schema, table: table, tableOid: row.int(2)!, dumpName: row.string(3)!,
                              dumpType: "INDEX", usingIndexSQL: nil)
        }
    }

    /// A validated foreign key of a plain table (the ones added NOT VALID, then validated in
    /// parallel): its pg_dump entry key and the quoted names VALIDATE CONSTRAINT needs.
    struct ForeignKey: Sendable {
        let dumpKey: String
        let qualifiedTable: String
        let quotedName: String
        var validateSQL: String { "ALTER TABLE ONLY \(qualifiedTable) VALIDATE CONSTRAINT \(quotedName)" }
    }

    static func validatedForeignKeys(_ conn: Connection) throws -> [ForeignKey] {
        // A partition's copy of its parent's key is not dumped on its own (PostgreSQL 11+).
        let own = conn.serverVersionNumber >= 110000 ? "AND con.conparentid = 0" : ""
        return try conn.query("""
            SELECT n.nspname, c.relname, con.conname
            FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE con.contype = 'f' AND con.convalidated AND c.relkind = 'r' AND \(userSchemaFilter) \(own)
            """).rows.map { row in
            let schema = row.string(0)!, table = row.string(1)!, name = row.string(2)!
            return ForeignKey(dumpKey: "FK CONSTRAINT|\(schema)|\(table) \(name)", qualifiedTable: try conn.quoteQualified(schema, table),
                              quotedName: try conn.quoteIdentifier(name))
        }
    }

    /// Sequences with their current value.
    static func sequences(_ conn: Connection) throws -> [(qualified: String, lastValue: String, isCalled: Bool)] {
        let names = try conn.query("""
            SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'S' AND \(userSchemaFilter)
            """).rows
        return try names.map { row in
            let qualified = try conn.quoteQualified(row.string(0)!, row.string(1)!)
            let value = try conn.query("SELECT last_value::text, is_called FROM \(qualified)").rows[0]
            return (qualified, value.string(0)!, value.bool(1)!)
        }
    }

    /// True when the database holds anything a user created (tables, views, sequences,
    /// functions, types, schemas beyond public, extensions beyond plpgsql, large objects).
    static func hasUserObjects(_ conn: Connection) throws -> Bool {
        let row = try conn.query("""
            SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE \(userSchemaFilter))
                OR EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE \(userSchemaFilter))
                OR EXISTS (SELECT 1 FROM pg_namespace n WHERE \(userSchemaFilter) AND n.nspname <> 'public')
                OR EXISTS (SELECT 1 FROM pg_extension WHERE extname <> 'plpgsql')
                OR EXISTS (SELECT 1 FROM pg_largeobject_metadata)
            """).rows[0]
        return row.bool(0) ?? false
    }
}
