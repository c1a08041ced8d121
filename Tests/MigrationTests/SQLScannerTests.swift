@testable import Migration
import Testing

/// The script reader splits pg_restore's output as psql would, and never changes a statement.
struct SQLScannerTests {
    @Test func statementsEndOnlyAtTopLevelSemicolons() {
        let script = #"""
            SET client_encoding = 'UTF8';
            \restrict KEY
            --
            -- TOC entry 1 (class 1259 OID 2)
            -- Name: f; Type: FUNCTION; Schema: public; Owner: me
            --
            CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $x$ SELECT 'a;
            -- Name: fake; Type: TABLE; Schema: public; Owner: me
            \. b' $x$;
            CREATE FUNCTION public.g(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 END; SELECT 2; END;
            CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO l VALUES (1); INSERT INTO l VALUES (2));
            COMMENT ON TABLE t IS E'it''s\';\n-- x';
            SELECT "semi;colon", $1, a$b FROM t /* ; nested /* ; */ */;
            \unrestrict KEY
            """#
        let pieces = SQLScanner.pieces(script)
        let statements = pieces.compactMap { piece -> String? in if case .statement(let s) = piece { return s } else { return nil } }
        #expect(statements.count == 6)
        #expect(statements[1].hasSuffix("\\. b' $x$;"))
        #expect(statements[2].hasSuffix("SELECT 2; END;"))
        #expect(statements[3].hasSuffix("VALUES (2));"))
        #expect(statements[4] == #"COMMENT ON TABLE t IS E'it''s\';\n-- x';"#)
        #expect(pieces.filter { if case .metaCommand = $0 { return true } else { return false } }.count == 2)
    }

    @Test func entriesKeepTheirStatementsAndSessionSettings() {
        let script = #"""
            SET default_table_access_method = heap;
            --
            -- TOC entry 7 (class 1259 OID 9)
            -- Dependencies: 3 4
            -- Name: t; Type: TABLE; Schema: public; Owner: me
            --
            CREATE TABLE public.t (a int DEFAULT 1, b text DEFAULT E'\n-- Name: x; Type: TABLE; Schema: s; Owner: o');
            ALTER TABLE ONLY public.t ALTER COLUMN a SET (pg_attver=1);
            ALTER TABLE ONLY public.t ALTER COLUMN b SET (n_distinct=5, pg_attver=1);
            ALTER TABLE public.t OWNER TO me;
            """#
        let (preamble, entries) = DumpScript.entries(script)
        #expect(preamble.isEmpty)
        #expect(entries.count == 1)
        let entry = entries[0]
        #expect(entry.id == 7 && entry.dependencies == [3, 4] && entry.type == "TABLE" && entry.schema == "public" && entry.name == "t")
        #expect(entry.prefix == "SET default_table_access_method = heap;")
        #expect(entry.sql == #"""
            CREATE TABLE public.t (a int DEFAULT 1, b text DEFAULT E'\n-- Name: x; Type: TABLE; Schema: s; Owner: o');
            ALTER TABLE ONLY public.t ALTER COLUMN b SET (n_distinct=5);
            ALTER TABLE public.t OWNER TO me;
            """#)
    }
}
