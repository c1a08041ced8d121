import Foundation

/// What changed between PostgreSQL major versions that a migration to a newer major meets:
/// settings renamed or removed, extensions no longer shipped. Rules read it through the
/// `{knowledge.settings}` and `{knowledge.extensions}` placeholders (jsonb arrays).
public enum VersionKnowledge {
    public struct Setting: Sendable, Encodable {
        /// The setting's name (lower case, as pg_settings lists it).
        public var name: String
        /// The first major version without it.
        public var removedIn: Int
        /// The setting that replaces it, when there is one.
        public var replacement: String?
        /// What to do instead, for the remedy.
        public var note: String

        enum CodingKeys: String, CodingKey { case name, removedIn = "removed_in", replacement, note }
    }

    public struct Extension: Sendable, Encodable {
        public var name: String
        public var removedIn: Int
        public var note: String

        enum CodingKeys: String, CodingKey { case name, removedIn = "removed_in", note }
    }

    /// From the release notes' "Migration to Version N" sections.
    public static let settings: [Setting] = [
        Setting(name: "checkpoint_segments", removedIn: 10, replacement: "max_wal_size", note: "max_wal_size is in bytes (MB): about (3 × checkpoint_segments + 1) × 16MB"),
        Setting(name: "min_parallel_relation_size", removedIn: 10, replacement: "min_parallel_table_scan_size", note: "renamed in PostgreSQL 10"),
        Setting(name: "sql_inheritance", removedIn: 10, replacement: nil, note: "child tables are always included; use ONLY where they must not be"),
        Setting(name: "replacement_sort_tuples", removedIn: 11, replacement: nil, note: "removed in PostgreSQL 11: nothing replaces it"),
        Setting(name: "default_with_oids", removedIn: 12, replacement: nil, note: "tables WITH OIDS are gone in PostgreSQL 12"),
        Setting(name: "wal_keep_segments", removedIn: 13, replacement: "wal_keep_size", note: "wal_keep_size is in MB: wal_keep_segments × 16MB"),
        Setting(name: "operator_precedence_warning", removedIn: 14, replacement: nil, note: "removed in PostgreSQL 14: nothing replaces it"),
        Setting(name: "vacuum_cleanup_index_scale_factor", removedIn: 14, replacement: nil, note: "removed in PostgreSQL 14: nothing replaces it"),
        Setting(name: "stats_temp_directory", removedIn: 15, replacement: nil, note: "statistics live in shared memory from PostgreSQL 15"),
        Setting(name: "force_parallel_mode", removedIn: 16, replacement: "debug_parallel_query", note: "renamed in PostgreSQL 16"),
        Setting(name: "promote_trigger_file", removedIn: 16, replacement: nil, note: "use pg_ctl promote or pg_promote()"),
        Setting(name: "vacuum_defer_cleanup_age", removedIn: 16, replacement: nil, note: "use hot_standby_feedback or a replication slot"),
        Setting(name: "db_user_namespace", removedIn: 17, replacement: nil, note: "removed in PostgreSQL 17: nothing replaces it"),
        Setting(name: "old_snapshot_threshold", removedIn: 17, replacement: nil, note: "removed in PostgreSQL 17: nothing replaces it"),
        Setting(name: "trace_recovery_messages", removedIn: 17, replacement: nil, note: "removed in PostgreSQL 17: use log_min_messages"),
    ]

    public static let extensions: [Extension] = [
        Extension(name: "tsearch2", removedIn: 10, note: "full text search is built in; use its core functions and types"),
        Extension(name: "chkpass", removedIn: 11, note: "store password hashes with pgcrypto's crypt() instead"),
        Extension(name: "adminpack", removedIn: 17, note: "its file functions are gone; use pg_read_file / pg_ls_dir, or tools outside the database"),
        Extension(name: "old_snapshot", removedIn: 17, note: "old_snapshot_threshold itself is gone in PostgreSQL 17"),
    ]

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }

    static let settingsJSON = json(settings)
    static let extensionsJSON = json(extensions)
}

/// Per-database facts read once for every rule that needs them: `{database.columns}` is jsonb
/// `{"types": [type oid, …], "compression": ["l", …]}` over the columns of every relation the
/// user created (oid ≥ 16384, attnum > 0, not dropped). A rule gates its own pass over pg_attribute on it, so that a
/// database without xml, lz4 or catalog row-type columns costs one pass, not one per rule.
enum DatabaseCensus {
    static func columnsSQL(version: Int) -> String {
        let compression = version >= 140000 ? "a.attcompression::text" : "''"
        return """
            WITH used AS MATERIALIZED (
              SELECT a.atttypid, \(compression) AS compression
              FROM pg_catalog.pg_attribute a
              WHERE a.attrelid >= 16384 AND a.attnum > 0 AND NOT a.attisdropped   -- user relations only
              GROUP BY 1, 2
            )
            SELECT jsonb_build_object(
                     'types', COALESCE((SELECT jsonb_agg(DISTINCT atttypid::int) FROM used), '[]'::jsonb),
                     'compression', COALESCE((SELECT jsonb_agg(DISTINCT compression) FROM used WHERE compression <> ''), '[]'::jsonb))::text
            """
    }
}
