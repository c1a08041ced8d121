@testable import Migration
import Testing

/// The normal form deparsed SQL is compared in across majors: what PostgreSQL 15 and 18 print
/// for the same definition compares equal, a changed definition does not.
@Suite struct SQLTextTests {
    // pg_get_viewdef of the same views on 15 and on 18 (after pg_dump 18 | psql 18).
    static let pairs: [(String, String)] = [
        ("""
         SELECT o.id,
             o.customer,
             ((o.total + (1)::numeric) * (2)::numeric) AS t2
            FROM app.orders o
           WHERE (o.total > (10)::numeric)
           ORDER BY o.id;
         """, """
         SELECT id,
             customer,
             ((total + (1)::numeric) * (2)::numeric) AS t2
            FROM app.orders o
           WHERE (total > (10)::numeric)
           ORDER BY id;
         """),
        (" SELECT orders.customer,\n    sum(orders.total) AS total\n   FROM app.orders\n  GROUP BY orders.customer;",
         " SELECT customer,\n    sum(total) AS total\n   FROM app.orders\n  GROUP BY customer;"),
        ("  WHERE ((t.a IN ( SELECT t_1.a\n FROM t t_1 WHERE (t_1.b = 'q'::text))) AND (t.d @> '{\"a\": 1}'::jsonb))",
         "  WHERE ((a IN ( SELECT t_1.a\n FROM t t_1 WHERE (t_1.b = 'q'::text))) AND (d @> '{\"a\": 1}'::jsonb))"),
        ("SELECT t.\"Mixed Case\", (t.f)::bigint AS fi FROM public.t", "SELECT \"Mixed Case\", (f)::bigint AS fi FROM public.t"),
    ]

    @Test func theSameDefinitionPrintedBy15And18CompareEqual() {
        for (old, new) in Self.pairs {
            #expect(old != new)
            #expect(SQLText.sameDefinition(old, new, acrossMajors: true), "\(SQLText.normalised(old)) vs \(SQLText.normalised(new))")
            #expect(!SQLText.sameDefinition(old, new, acrossMajors: false))
        }
    }

    @Test func changedDefinitionsStayDifferent() {
        let base = " SELECT o.id\n   FROM app.orders o\n  WHERE (o.total > (10)::numeric);"
        for changed in [
            " SELECT id\n   FROM app.orders o\n  WHERE (total > (11)::numeric);",      // a literal
            " SELECT id\n   FROM other.orders o\n  WHERE (total > (10)::numeric);",    // the table's schema
            " SELECT id\n   FROM app.orders o\n  WHERE (total >= (10)::numeric);",     // an operator
            " SELECT id\n   FROM app.orders o\n  WHERE ((total > (10)::numeric) OR true);",
            " SELECT o.id\n   FROM app.orders o\n  WHERE (o.total > app.ten());",      // a function's schema
        ] {
            #expect(!SQLText.sameDefinition(base, changed, acrossMajors: true), "\(changed)")
        }
        #expect(!SQLText.sameDefinition("SELECT x.f()", "SELECT y.f()", acrossMajors: true))
    }

    @Test func stringsCommentsAndDollarQuotesAreKeptWhole() {
        // A body is one token: a line removed inside it is a difference.
        let body = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$\nBEGIN\n  -- one\n  RETURN 1;\nEND\n$fn$"
        let without = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$\nBEGIN\n  RETURN 1;\nEND\n$fn$"
        #expect(!SQLText.sameDefinition(body, without, acrossMajors: true))
        #expect(SQLText.tokens("SELECT 'a.b', E'it\\'s', $1, \"x\".\"y\" -- c\n/* d */ FROM t").map(\.text)
                == ["select", "'a.b'", ",", "E'it\\'s'", ",", "$", "1", ",", "\"x\"", ".", "\"y\"", "from", "t"])
        #expect(!SQLText.sameDefinition("SELECT 'a.b'", "SELECT 'b'", acrossMajors: true))
    }
}

/// How differences are told: the object, what differs, and never a secret's value.
@Suite struct DifferenceTextTests {
    static func listed(_ rows: [String: String]) -> [String: Verifier.Listed] { rows.mapValues { Verifier.Listed(value: $0) } }

    @Test func missingExtraAndChangedObjectsAreNamed() {
        let check = CatalogCheck(id: "verify.comments", title: "Comments match", subject: "comment") { _ in nil }
        let found = Verifier.compare(check, source: Self.listed(["app.t (table)": "orders", "app.t.c (table column)": "who"]),
                                     target: Self.listed(["app.t (table)": "Orders", "app.u (table)": "new"]), acrossMajors: true)
        #expect(found.map(\.description) == [
            "app.t (table): comment differs (source orders, target Orders)",
            "app.t.c (table column): missing on the target (source: who)",
            "app.u (table): only on the target (target: new)",
        ])
    }

    @Test func multiLineValuesShowTheFirstLineThatDiffers() {
        #expect(Verifier.describe(source: "BEGIN\n  -- one\n  RETURN 1;\nEND", target: "BEGIN\n  RETURN 1;\nEND")
                == "differs at line 2 (source `-- one`, target `RETURN 1;`)")
        #expect(Verifier.describe(source: "a\nb", target: "a\nb\nc") == "differs at line 3 (source (no line 3), target `c`)")
    }

    @Test func secretsAreComparedButNeverPrinted() {
        let check = CatalogCheck(id: "verify.user-mappings", title: "User mappings match", subject: "options", comparison: .secret) { _ in nil }
        let found = Verifier.compare(check, source: Self.listed(["for bob server s (user mapping)": "hash-a", "for ann server s (user mapping)": "hash-c"]),
                                     target: Self.listed(["for bob server s (user mapping)": "hash-b", "for eve server s (user mapping)": "hash-d"]),
                                     acrossMajors: false)
        #expect(found.map(\.description) == [
            "for ann server s (user mapping): missing on the target",
            "for bob server s (user mapping): options differ",
            "for eve server s (user mapping): only on the target",
        ])
    }
}
