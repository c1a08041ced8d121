import Foundation
import PostgresClient

/// Copies large objects (contents, owners, ACLs, comments, security labels) through SQL, reading the source in the
/// migration's snapshot. Runs in one target transaction, so an interrupted copy leaves nothing
/// and is redone whole on resume.
enum LargeObjects {
    static let chunk = 1 << 18

    /// Returns how many objects were copied; `notes` gets one line per label the target refused.
    static func copy(source: Connection, target: Connection, notes: inout [String]) throws -> Int {
        let objects = try source.query("SELECT oid::int8, pg_get_userbyid(lomowner) FROM pg_largeobject_metadata ORDER BY oid").rows
        guard !objects.isEmpty else { return 0 }
        let targetRoles = Set(try target.query("SELECT rolname FROM pg_roles").rows.compactMap { $0.string(0) })
        var grants: [Int: [String]] = [:]
        for row in try source.query("""
            SELECT m.oid::int8, a.grantee::int8, pg_get_userbyid(a.grantee), a.privilege_type, a.is_grantable
            FROM pg_largeobject_metadata m, aclexplode(m.lomacl) a WHERE a.grantee <> m.lomowner
            """).rows {
            let grantee: String
            if row.int(1) == 0 { grantee = "PUBLIC" } else {
                guard let name = row.string(2), targetRoles.contains(name) else { continue }
                grantee = try target.quoteIdentifier(name)
            }
            grants[row.int(0)!, default: []].append(
                "GRANT \(row.string(3)!) ON LARGE OBJECT \(row.int(0)!) TO \(grantee)\(row.bool(4) == true ? " WITH GRANT OPTION" : "")")
        }
        var comments: [Int: String] = [:]
        for row in try source.query("""
            SELECT objoid::int8, description FROM pg_description WHERE classoid = 'pg_largeobject'::regclass AND objsubid = 0
            """).rows {
            comments[row.int(0)!] = "COMMENT ON LARGE OBJECT \(row.int(0)!) IS \(try target.quoteLiteral(row.string(1)!))"
        }
        let labels = try source.query("""
            SELECT objoid::int8, provider, label FROM pg_seclabel WHERE classoid = 'pg_largeobject'::regclass AND objsubid = 0
            """).rows
        try target.execute("BEGIN")
        do {
            // Batches of 100: the first chunk of each object in one query, the rest (big
            // objects only) chunk by chunk, so memory stays bounded whatever the sizes.
            var index = 0
            while index < objects.count {
                let batch = Array(objects[index..<min(index + 100, objects.count)])
                index += batch.count
                let oids = batch.map { String($0.int(0)!) }
                let firsts = try source.query(
                    "SELECT o::int8, lo_get(o, 0, \(chunk)) FROM unnest($1::oid[]) AS o", TextArray(oids)).rows
                var script: [String] = []
                // A pg_dump older than 16 (no --no-large-objects) creates them empty in pre-data.
                try target.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = ANY($1::oid[])", TextArray(oids))
                for row in firsts {
                    let oid = row.int(0)!
                    let data = row.bytes(1) ?? []
                    try target.query("SELECT lo_from_bytea($1::oid, $2)", oid, data)
                    var offset = data.count
                    var last = data.count
                    while last == chunk {
                        let more = try source.query("SELECT lo_get($1::oid, $2::int8, \(chunk))", oid, offset).rows[0].bytes(0) ?? []
                        if !more.isEmpty { try target.query("SELECT lo_put($1::oid, $2::int8, $3)", oid, offset, more) }
                        offset += more.count
                        last = more.count
                    }
                }
                for row in batch {
                    let oid = row.int(0)!
                    if let owner = row.string(1), targetRoles.contains(owner) {
                        script.append("ALTER LARGE OBJECT \(oid) OWNER TO \(try target.quoteIdentifier(owner))")
                    }
                    script += grants[oid] ?? []
                    if let comment = comments[oid] { script.append(comment) }
                }
                if !script.isEmpty { try target.execute(script.joined(separator: ";\n")) }
            }
            try target.execute("COMMIT")
        } catch {
            try? target.execute("ROLLBACK")
            throw error
        }
        // Security labels need their provider loaded on the target: one note per label it refuses.
        for row in labels {
            let oid = row.int(0)!, provider = row.string(1)!
            do {
                try target.execute("SECURITY LABEL FOR \(try target.quoteIdentifier(provider)) ON LARGE OBJECT \(oid) IS \(try target.quoteLiteral(row.string(2)!))")
            } catch let error as ServerError {
                notes.append("security label (\(provider)) of large object \(oid) not carried: \(error.message)")
            }
        }
        return objects.count
    }
}
