-- What the regression suite drops at its end or never has, added to the `regression` database
-- after pg_regress (run as the superuser, ON_ERROR_STOP). Every object here names a defect of
-- issue 11 or something pg_dump/pg_dumpall carry that a migrator could forget.
-- Roles are prefixed fid_ (the comparison of globals is restricted to them).

-- Roles: attributes, settings, comments (one with a header-like line), memberships with ADMIN
-- option, in fixture roles and in predefined roles.
CREATE ROLE fid_owner LOGIN CREATEDB CONNECTION LIMIT 7;
CREATE ROLE fid_reader NOLOGIN VALID UNTIL '2099-01-01 00:00:00+00';
CREATE ROLE fid_group NOLOGIN;
CREATE ROLE fid_monitor LOGIN;
-- A password (a SCRAM verifier is stored; never printed: compared as a hash by the script).
ALTER ROLE fid_owner PASSWORD 'fidelity-fixture-only';
GRANT fid_group TO fid_reader;
GRANT fid_group TO fid_owner WITH ADMIN OPTION;
GRANT pg_monitor TO fid_monitor WITH ADMIN OPTION;
GRANT pg_read_all_data TO fid_reader;
GRANT pg_signal_backend TO fid_group;
COMMENT ON ROLE fid_owner IS 'owns the fidelity schema';
COMMENT ON ROLE fid_reader IS E'reads\n-- Name: fid_fake; Type: ROLE; Schema: -; Owner: -\n\\connect nowhere';
ALTER ROLE fid_reader SET search_path = fidelity, public;
ALTER ROLE fid_monitor IN DATABASE regression SET work_mem = '8MB';

-- Database properties that pg_dump --create carries.
ALTER DATABASE regression CONNECTION LIMIT 42;
COMMENT ON DATABASE regression IS E'PostgreSQL 15 regression database\nwith the pgpreflight fidelity fixture';
GRANT CREATE ON DATABASE regression TO fid_owner;

CREATE SCHEMA fidelity AUTHORIZATION fid_owner;
COMMENT ON SCHEMA fidelity IS 'fixture objects of the fidelity suite';
SET search_path = fidelity, public;

-- Contrib extensions present in Debian's PostgreSQL 15 and in the PostgreSQL 18 wheel.
CREATE EXTENSION hstore SCHEMA fidelity;
CREATE EXTENSION citext SCHEMA fidelity;
CREATE EXTENSION ltree SCHEMA fidelity;
CREATE EXTENSION pg_trgm SCHEMA fidelity;
CREATE EXTENSION cube SCHEMA fidelity;
CREATE TABLE fidelity.ext_values (
  id int PRIMARY KEY,
  h fidelity.hstore,
  c fidelity.citext UNIQUE,
  path fidelity.ltree,
  box fidelity.cube,
  words text
);
INSERT INTO fidelity.ext_values
SELECT g, fidelity.hstore(ARRAY['k' || g, 'v'], ARRAY[g::text, E'x\ty']), 'Name' || g,
       ('top.n' || g)::fidelity.ltree, fidelity.cube(g, g + 1), 'word' || g || ' other'
FROM generate_series(1, 200) g;
CREATE INDEX ext_values_words ON fidelity.ext_values USING gist (words fidelity.gist_trgm_ops);
CREATE INDEX ext_values_path ON fidelity.ext_values USING gist (path);

-- Function bodies with lines that start with `--` and `\` (a plain-script reader that drops
-- such lines changes or breaks them), and one that looks like a pg_dump entry header.
CREATE FUNCTION fidelity.body_with_comment_lines(x int) RETURNS int LANGUAGE plpgsql AS $body$
DECLARE
  r int := x;
BEGIN
-- this comment line starts at column 0 and belongs to the body
--
  r := r + 1;
-- Name: body_fake; Type: TABLE; Schema: fidelity; Owner: postgres
  RETURN r;
END
$body$;
COMMENT ON FUNCTION fidelity.body_with_comment_lines(int) IS 'keeps its -- lines';

CREATE FUNCTION fidelity.body_with_backslash_lines() RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT 'line one
\. is not the end of a COPY here
\connect nowhere
-- Name: literal_fake; Type: TABLE; Schema: fidelity; Owner: postgres
last line'::text
$$;

-- Literals with E'…\n-- …' in a default, a CHECK, a comment and a view.
CREATE TABLE fidelity.literals (
  id int PRIMARY KEY,
  note text DEFAULT E'default\n-- Name: x; Type: TABLE; Schema: public; Owner: postgres\n',
  CONSTRAINT note_is_not_a_header CHECK (note <> E'x\n-- Name: x; Type: TABLE; Schema: public; Owner: postgres')
);
COMMENT ON TABLE fidelity.literals IS E'comment\n-- Name: x; Type: TABLE; Schema: public; Owner: postgres\n\\. and \\connect x';
COMMENT ON COLUMN fidelity.literals.note IS E'--\n-- Data for Name: literals; Type: TABLE DATA; Schema: fidelity; Owner: -\n--';
INSERT INTO fidelity.literals VALUES (1, DEFAULT), (2, E'row\n\\.\n-- data line\n\\connect x'), (3, fidelity.body_with_backslash_lines());
CREATE VIEW fidelity.literal_view AS
  SELECT id, note || E'\n-- Name: v; Type: VIEW; Schema: fidelity; Owner: postgres' AS n FROM fidelity.literals;

-- OID-valued columns naming user objects (roles, types, relations, functions get new OIDs on
-- the target; only the text form means the same object there), in plain columns, arrays, a
-- domain and a composite; and an aclitem[] (no binary I/O).
CREATE TYPE fidelity.mood AS ENUM ('sad', 'ok', 'happy');
CREATE COLLATION fidelity.fid_coll FROM "C";
CREATE DOMAIN fidelity.relref AS regclass;
CREATE TYPE fidelity.tagged_rel AS (rel regclass, tag text);
CREATE OPERATOR fidelity.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq);
CREATE TABLE fidelity.oid_refs (
  id int PRIMARY KEY,
  rel regclass, rol regrole, typ regtype, proc regproc, procs regprocedure,
  ns regnamespace, oper regoperator, opr regoper, cfg regconfig, coll regcollation,
  rels regclass[], roles regrole[], dom fidelity.relref, comp fidelity.tagged_rel,
  acl aclitem[]
);
INSERT INTO fidelity.oid_refs VALUES
  (1, 'fidelity.literals', 'fid_reader', 'fidelity.mood', 'fidelity.body_with_backslash_lines',
   'fidelity.body_with_comment_lines(int)', 'fidelity', 'fidelity.===(int,int)', 'fidelity.===',
   'english', '"C"', ARRAY['fidelity.literals'::regclass, 'fidelity.ext_values'::regclass],
   ARRAY['fid_owner'::regrole, 'fid_group'::regrole], 'fidelity.oid_refs', ROW('fidelity.literals', 'x'),
   '{fid_reader=r/fid_owner,fid_group=arw/fid_owner,=r/fid_owner}'),
  (2, 'fidelity.ext_values', 'fid_monitor', 'fidelity.tagged_rel', 'fidelity.body_with_comment_lines', 'fidelity.hstore(text[],text[])',
   'public', '+(int,int)', '||/', 'simple', 'fidelity.fid_coll', NULL, NULL, NULL, NULL, NULL);

-- Tables without a copyable column, with rows: created empty, and all columns dropped.
CREATE TABLE fidelity.no_columns ();
INSERT INTO fidelity.no_columns DEFAULT VALUES;
INSERT INTO fidelity.no_columns DEFAULT VALUES;
INSERT INTO fidelity.no_columns DEFAULT VALUES;
CREATE TABLE fidelity.all_dropped (a int, b text);
INSERT INTO fidelity.all_dropped VALUES (1, 'x'), (2, 'y');
ALTER TABLE fidelity.all_dropped DROP COLUMN a, DROP COLUMN b;

-- A table whose only column is generated: nothing to COPY, yet it has rows.
CREATE TABLE fidelity.only_generated (g int GENERATED ALWAYS AS (42) STORED);
INSERT INTO fidelity.only_generated DEFAULT VALUES;
INSERT INTO fidelity.only_generated DEFAULT VALUES;

-- A primary key on an inheritance child over its inherited NOT NULL column (the NOT NULL must
-- stay inherited; a PK built as ADD CONSTRAINT … USING INDEX made it local).
CREATE TABLE fidelity.pk_parent (id int NOT NULL, v text);
CREATE TABLE fidelity.pk_child (w int) INHERITS (fidelity.pk_parent);
ALTER TABLE fidelity.pk_child ADD PRIMARY KEY (id);
INSERT INTO fidelity.pk_child VALUES (1, 'x', 1), (2, 'y', 2);

-- An inherited NOT NULL (must stay inherited on the child) and a populated materialized view.
CREATE TABLE fidelity.parent (id int NOT NULL, v text);
CREATE TABLE fidelity.child (extra int) INHERITS (fidelity.parent);
INSERT INTO fidelity.child VALUES (1, 'a', 10), (2, 'b', 20);
CREATE MATERIALIZED VIEW fidelity.child_summary AS SELECT count(*) AS n, sum(extra) AS total FROM fidelity.child;

-- Large objects with contents (text, binary, empty), owners, privileges and comments.
SELECT lo_from_bytea(424242, convert_to(E'fidelity large object\n-- Name: lo; Type: BLOB', 'UTF8'));
SELECT lo_from_bytea(424243, decode(repeat('00ff10', 100000), 'hex'));
SELECT lo_from_bytea(424244, ''::bytea);
ALTER LARGE OBJECT 424242 OWNER TO fid_owner;
GRANT SELECT ON LARGE OBJECT 424242 TO fid_reader;
COMMENT ON LARGE OBJECT 424242 IS E'a large object\n-- with a header-like line';
COMMENT ON LARGE OBJECT 424243 IS 'binary, 300 kB';

-- Ownership and privileges on fixture objects.
ALTER TABLE fidelity.literals OWNER TO fid_owner;
ALTER TABLE fidelity.oid_refs OWNER TO fid_owner;
GRANT SELECT ON ALL TABLES IN SCHEMA fidelity TO fid_reader;
GRANT USAGE ON SCHEMA fidelity TO fid_group;
