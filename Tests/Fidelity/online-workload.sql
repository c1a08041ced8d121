-- The write workload of the fidelity suite's online run (regression-fidelity.sh, section 4),
-- run on the source while the migrator streams: generated from the catalog, so it reaches every
-- user table whatever its shape (keyed, REPLICA IDENTITY FULL, keyless, partitioned, inherited,
-- unlogged, generated and identity columns) and every column type the regression suite made.
--
-- Per table, each statement its own transaction (psql without ON_ERROR_STOP: a statement a
-- constraint, trigger or rule of the regression suite refuses fails alone; the run counts them):
--   1. UPDATE a few rows setting the first, then the last writable column to itself;
--   2. for every writable column: UPDATE two rows setting it to another row's value, and one
--      row setting it to NULL;
--   3. TOAST-sized values (about 5 kB, incompressible) into text, varchar, bytea, json, jsonb
--      and text[] columns, then an UPDATE of another column of those rows (unchanged TOAST);
--   4. DELETE two rows;
--   5. INSERT copies of three rows (identity, serial and generated columns left to the target
--      of the INSERT: new keys, sequences move);
--   6. every 7th table: one transaction of UPDATE, a DELETE rolled back to a savepoint, INSERT;
--   7. one UPDATE of all of tenk1 in one transaction (10 000 rows: the source's
--      logical_decoding_work_mem is small, so it streams in progress and spills);
--   8. last, TRUNCATE of every 15th table (foreign keys make some refuse).
-- Writes through a partitioned table reach its partitions; an inheritance parent's UPDATE
-- and DELETE (without ONLY) reach its children.
\set QUIET on
SET client_min_messages = error;  -- not the ROLLBACKs' "no transaction in progress"
CREATE TEMP TABLE wl AS
WITH t AS (
    SELECT c.oid, c.relkind, c.relhassubclass,
           format('%I.%I', n.nspname, c.relname) AS name,
           row_number() OVER (ORDER BY n.nspname, c.relname) AS ord,
           -- ONLY for a plain table without children; partitioned and inheritance parents reach theirs.
           CASE WHEN c.relkind = 'p' OR c.relhassubclass THEN '' ELSE 'ONLY ' END AS only
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND c.relpersistence IN ('p', 'u')
),
tables AS (
    SELECT t.* FROM t JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = t.oid AND d.deptype = 'e')
),
cols AS (
    SELECT a.attrelid AS oid, a.attnum, quote_ident(a.attname) AS col, a.attnotnull,
           format_type(a.atttypid, a.atttypmod) AS type, a.atttypid, a.attidentity,
           pg_get_expr(d.adbin, d.adrelid) AS def
    FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attidentity <> 'a'
      AND a.attrelid IN (SELECT oid FROM tables)
),
-- Columns an INSERT copy leaves to their default: identity, serial (nextval) and generated.
inscols AS (
    SELECT a.attrelid AS oid, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) AS list
    FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attidentity = ''
      AND coalesce(pg_get_expr(d.adbin, d.adrelid), '') NOT LIKE 'nextval(%'
      AND a.attrelid IN (SELECT oid FROM tables)
    GROUP BY 1
),
firstlast AS (
    SELECT oid, (array_agg(col ORDER BY attnum))[1] AS first, (array_agg(col ORDER BY attnum DESC))[1] AS last FROM cols GROUP BY 1
),
big AS (SELECT 'string_agg(md5(random()::text || g), '''') FROM generate_series(1, 300) g' AS text),
stmts AS (
    -- 1. a column set to itself
    SELECT t.ord, 1 AS step, 0 AS n,
           format('UPDATE %s%s SET %s = %s WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM %s%s LIMIT 5)',
                  t.only, t.name, f.first, f.first, t.only, t.name) AS sql
    FROM tables t JOIN firstlast f USING (oid)
    UNION ALL
    SELECT t.ord, 1, 1,
           format('UPDATE %s%s SET %s = %s WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM %s%s OFFSET 5 LIMIT 5)',
                  t.only, t.name, f.last, f.last, t.only, t.name)
    FROM tables t JOIN firstlast f USING (oid) WHERE f.last <> f.first
    UNION ALL
    -- 2. every writable column: another row's value, NULL
    SELECT t.ord, 2, c.attnum * 2,
           format('UPDATE %s%s SET %s = (SELECT %s FROM %s%s OFFSET 1 LIMIT 1) WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM %s%s OFFSET 3 LIMIT 2)',
                  t.only, t.name, c.col, c.col, t.only, t.name, t.only, t.name)
    FROM tables t JOIN cols c USING (oid)
    UNION ALL
    SELECT t.ord, 2, c.attnum * 2 + 1,
           format('UPDATE %s%s SET %s = NULL WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM %s%s OFFSET 6 LIMIT 1)',
                  t.only, t.name, c.col, t.only, t.name)
    FROM tables t JOIN cols c USING (oid) WHERE NOT c.attnotnull
    UNION ALL
    -- 3. TOAST-sized values, then another column of those rows
    SELECT t.ord, 3, c.attnum * 2,
           format('UPDATE %s%s SET %s = %s WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM %s%s OFFSET 8 LIMIT 1)',
                  t.only, t.name, c.col,
                  CASE c.atttypid
                      WHEN 'bytea'::regtype THEN format('decode((SELECT %s), ''hex'')', big.text)
                      WHEN 'json'::regtype THEN format('to_json((SELECT %s))', big.text)
                      WHEN 'jsonb'::regtype THEN format('to_jsonb((SELECT %s))', big.text)
                      WHEN 'text[]'::regtype THEN format('ARRAY[(SELECT %s), NULL]', big.text)
                      ELSE format('(SELECT %s)::%s', big.text, c.type) END,
                  t.only, t.name)
    FROM tables t JOIN cols c USING (oid), big
    WHERE c.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bytea'::regtype, 'json'::regtype, 'jsonb'::regtype, 'text[]'::regtype)
    UNION ALL
    SELECT t.ord, 3, c.attnum * 2 + 1,
           format('UPDATE %s%s SET %s = %s WHERE octet_length(%s::text) > 4000',
                  t.only, t.name, o.col, o.col, c.col)
    FROM tables t JOIN cols c USING (oid)
    JOIN LATERAL (SELECT col FROM cols o WHERE o.oid = c.oid AND o.attnum <> c.attnum ORDER BY o.attnum LIMIT 1) o ON true
    WHERE c.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bytea'::regtype, 'json'::regtype, 'jsonb'::regtype, 'text[]'::regtype)
    UNION ALL
    -- 4. DELETE
    SELECT t.ord, 4, 0,
           format('DELETE FROM %s%s WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM %s%s OFFSET 10 LIMIT 2)',
                  t.only, t.name, t.only, t.name)
    FROM tables t
    UNION ALL
    -- 5. INSERT copies (from the table itself only: a parent's copies stay the parent's)
    SELECT t.ord, 5, 0,
           CASE WHEN i.list IS NULL THEN format('INSERT INTO %s SELECT FROM ONLY %s LIMIT 3', t.name, t.name)
                ELSE format('INSERT INTO %s (%s) SELECT %s FROM %s%s LIMIT 3', t.name, i.list, i.list,
                            CASE WHEN t.relkind = 'p' THEN '' ELSE 'ONLY ' END, t.name) END
    FROM tables t LEFT JOIN inscols i USING (oid)
    UNION ALL
    -- 6. several changes in one transaction, one of them rolled back to a savepoint
    SELECT t.ord, 6, 0,
           format('BEGIN; UPDATE %1$s%2$s SET %3$s = %3$s WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM %1$s%2$s LIMIT 3); '
                  || 'SAVEPOINT s; DELETE FROM %1$s%2$s; ROLLBACK TO SAVEPOINT s; '
                  || 'DELETE FROM %1$s%2$s WHERE (tableoid, ctid) IN (SELECT tableoid, ctid FROM %1$s%2$s OFFSET 20 LIMIT 1); '
                  || '%4$s; COMMIT', t.only, t.name, f.first,
                  CASE WHEN i.list IS NULL THEN format('INSERT INTO %s SELECT FROM ONLY %s LIMIT 1', t.name, t.name)
                       ELSE format('INSERT INTO %s (%s) SELECT %s FROM %s%s LIMIT 1', t.name, i.list, i.list,
                                   CASE WHEN t.relkind = 'p' THEN '' ELSE 'ONLY ' END, t.name) END)
    FROM tables t JOIN firstlast f USING (oid) LEFT JOIN inscols i USING (oid)
    WHERE t.ord % 7 = 0
    UNION ALL
    -- a statement of it refused leaves the block open (aborted): closed before the next table
    SELECT t.ord, 6, 1, 'ROLLBACK' FROM tables t WHERE t.ord % 7 = 0
    UNION ALL
    -- 7. one large transaction
    SELECT 0, 7, 0, 'UPDATE public.tenk1 SET stringu1 = stringu1, two = two' WHERE to_regclass('public.tenk1') IS NOT NULL
    UNION ALL
    -- 8. TRUNCATE, after everything else
    SELECT 100000 + t.ord, 8, 0, format('TRUNCATE %s%s', t.only, t.name)
    FROM tables t WHERE t.ord % 15 = 0
)
SELECT row_number() OVER (ORDER BY ord, step, n) AS i, ord % 100000 AS ord, sql FROM stmts;
SELECT 'workload: ' || count(*) || ' statements on ' || count(DISTINCT ord) FILTER (WHERE ord > 0) || ' tables' FROM wl \g (format=unaligned tuples_only)
SELECT sql FROM wl ORDER BY i \gexec
