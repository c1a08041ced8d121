import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import PostgresClient
import Reports
import TestSupport
import Testing
import Validation

/// The schema GitLab, Jenkins, GitHub and Azure DevOps reporters follow (kept beside the
/// repository, not in it) and our own, stricter one.
let jenkinsSchema = TestServers.projectRoot.appendingPathComponent("Tests/ReportsTests/Schemas/junit-10.xsd")  // vendored, with its licence
let ourSchema = TestServers.projectRoot.appendingPathComponent("reports/pgpreflight-junit.xsd")

func parseXML(_ xml: String) throws -> XMLDocument {
    try XMLDocument(data: Data(xml.utf8), options: [])
}

func attribute(_ node: XMLNode, _ name: String) -> String? {
    (node as? XMLElement)?.attribute(forName: name)?.stringValue
}

@Suite struct JUnitReportTests {
    @Test func validatesAgainstBothSchemas() throws {
        for strict in [false, true] {
            let xml = try JUnitReport.render(try Fixtures.realRun(), options: ReportOptions(strict: strict))
            #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: jenkinsSchema) == [])
            #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: ourSchema) == [])
        }
        let hostile = try JUnitReport.render(Fixtures.hostileRun())
        #expect(try XMLSchemaValidator.validate(xml: hostile, schemaFile: jenkinsSchema) == [])
        #expect(try XMLSchemaValidator.validate(xml: hostile, schemaFile: ourSchema) == [])
    }

    @Test func schemasRejectWhatTheyShould() throws {
        let xml = try JUnitReport.render(try Fixtures.realRun())
        // A suite without its totals is what junit-10.xsd exists to reject.
        let noTotals = xml.replacingOccurrences(of: #" tests="\d+" failures="\d+" errors="0" skipped="0""#, with: "",
                                                options: .regularExpression)
        #expect(try XMLSchemaValidator.validate(xml: noTotals, schemaFile: jenkinsSchema).contains { $0.contains("tests") })
        // Our schema is stricter: times with three decimals, rule ids as names, unique names.
        let longTime = xml.replacingOccurrences(of: #"time="(\d+)\.(\d{3})""#, with: #"time="$1.$2\1""#, options: .regularExpression)
        #expect(try XMLSchemaValidator.validate(xml: longTime, schemaFile: jenkinsSchema) == [])
        #expect(try XMLSchemaValidator.validate(xml: longTime, schemaFile: ourSchema) != [])
        let badName = xml.replacingOccurrences(of: #"name="tables.primary-key""#, with: #"name="Tables Primary Key""#)
        #expect(try XMLSchemaValidator.validate(xml: badName, schemaFile: ourSchema).contains { $0.contains("Tables Primary Key") })
        // Another test case's name in the same suite (the database's primary-key warning).
        let run = try Fixtures.realRun()
        let collisions = try #require(run.results.first { $0.rule == "tables.case-collisions" })
        let neighbour = try #require(run.results.first { $0.rule == "tables.primary-key" && $0.database == collisions.database })
        let neighbourName = neighbour.status == .warning ? "⚠ warning: tables.primary-key [\(neighbour.database!)]" : "tables.primary-key"
        let duplicate = xml.replacingOccurrences(of: #"name="tables.case-collisions""#, with: "name=\"\(neighbourName)\"")
        #expect(try XMLSchemaValidator.validate(xml: duplicate, schemaFile: ourSchema) != [])
        #expect(try XMLSchemaValidator.validate(xml: "<testsuites><oops></testsuites>", schemaFile: ourSchema) != [])
        #expect(throws: ReportError.self) {
            try XMLSchemaValidator.validate(xml: xml, schemaFile: URL(fileURLWithPath: "/nonexistent.xsd"))
        }
    }

    @Test func everySuiteCountsItsResults() throws {
        let run = try Fixtures.realRun()
        for strict in [false, true] {
            let document = try parseXML(try JUnitReport.render(run, options: ReportOptions(strict: strict)))
            let suites = try document.nodes(forXPath: "/testsuites/testsuite")
            let databaseNames = run.databases.map { "pgpreflight.source.\($0)" }
            #expect(suites.compactMap { attribute($0, "name") } == ["pgpreflight.source.instance"] + databaseNames)

            var totalTests = 0, totalFailures = 0
            for suite in suites {
                let name = try #require(attribute(suite, "name"))
                let database = name == "pgpreflight.source.instance" ? nil : String(name.dropFirst("pgpreflight.source.".count))
                let expected = run.results.filter { $0.database == database }
                let expectedFailures = expected.filter { $0.status == .failed || (strict && $0.status == .warning) }.count
                let cases = try suite.nodes(forXPath: "testcase")
                #expect(attribute(suite, "tests") == String(expected.count))
                #expect(cases.count == expected.count)
                #expect(attribute(suite, "failures") == String(expectedFailures))
                #expect(try suite.nodes(forXPath: "testcase/failure").count == expectedFailures)
                #expect(attribute(suite, "errors") == "0")
                #expect(attribute(suite, "skipped") == "0")
                #expect(attribute(suite, "hostname") == "127.0.0.1")
                #expect(attribute(suite, "timestamp")?.hasSuffix("Z") == true)
                #expect(cases.compactMap { attribute($0, "name") } == expected.map { result in
                    // A warning's name says so, with its database.
                    result.status == .warning && result.suppressed == nil ? "⚠ warning: \(result.rule)" + (result.database.map { " [\($0)]" } ?? "") : result.rule
                })
                #expect(cases.allSatisfy { attribute($0, "classname") == name })
                #expect(cases.allSatisfy { attribute($0, "time")?.range(of: #"^\d+\.\d{3}$"#, options: .regularExpression) != nil })
                let suiteTime = try #require(attribute(suite, "time").flatMap(Double.init))
                let sum = expected.reduce(0.0) { $0 + $1.finishedAt.timeIntervalSince($1.startedAt) }
                #expect(abs(suiteTime - sum) < 0.0015)
                totalTests += expected.count; totalFailures += expectedFailures
            }
            let root = try #require(document.rootElement())
            #expect(attribute(root, "tests") == String(run.results.count))
            #expect(totalTests == run.results.count)
            #expect(attribute(root, "failures") == String(totalFailures))
            #expect(attribute(root, "failures") == String(run.count(.failed) + (strict ? run.count(.warning) : 0)))
        }
    }

    @Test func failuresCarryMessageObjectsAndRemedy() throws {
        let run = try Fixtures.realRun()
        let document = try parseXML(try JUnitReport.render(run))
        let failed = try #require(run.results.first { $0.rule == "tables.case-collisions" })
        let failure = try #require(try document.nodes(forXPath: "//testcase[@name='tables.case-collisions']/failure").first)
        #expect(attribute(failure, "type") == "tables.case-collisions")
        #expect(attribute(failure, "message") == failed.message)
        let body = try #require(failure.stringValue)
        #expect(body.contains(failed.message))
        #expect(failed.objects == ["public.\"Order\"", "public.\"order\""])
        for object in failed.objects { #expect(body.contains(object)) }
        #expect(body.contains("ALTER TABLE public.\"Order\" RENAME TO"))

        // The preload check failed for real: pg_cron and pgaudit are preloaded on 15 only.
        let preload = try #require(try document.nodes(forXPath: "//testcase[@name='extensions.preload']/failure").first)
        #expect(preload.stringValue?.contains("shared_preload_libraries = '") == true)
        #expect(preload.stringValue?.contains("pg_cron") == true)
    }

    @Test func warningsPassWithTheirTextUnlessStrict() throws {
        let run = try Fixtures.realRun()
        let warning = try #require(run.results.first { $0.rule == "tables.primary-key" && $0.status == .warning })
        let path = "//testsuite[@name='pgpreflight.source.\(warning.database!)']/testcase[@name='⚠ warning: tables.primary-key [\(warning.database!)]']"

        let lenient = try parseXML(try JUnitReport.render(run))
        let testCase = try #require(try lenient.nodes(forXPath: path).first)
        #expect(try testCase.nodes(forXPath: "failure").isEmpty)
        let out = try #require(try testCase.nodes(forXPath: "system-out").first?.stringValue)
        #expect(out.hasPrefix("Warning: \(warning.message)"))
        #expect(warning.objects.contains("public.\"Audit\"") && warning.objects.contains("public.events"))
        for object in warning.objects { #expect(out.contains(object)) }
        #expect(out.contains("REPLICA IDENTITY FULL"))

        let strict = try parseXML(try JUnitReport.render(run, options: ReportOptions(strict: true)))
        let failure = try #require(try strict.nodes(forXPath: path + "/failure").first)
        #expect(attribute(failure, "message") == "Warning: " + warning.message)
        #expect(attribute(failure, "type") == "tables.primary-key")
        #expect(failure.stringValue?.contains("REPLICA IDENTITY FULL") == true)
    }

    /// `--junit-warnings failure`: each warning a failing test of type "warning" (counted in the
    /// totals, valid against both schemas), the failures as before.
    @Test func warningsAsFailuresOfTypeWarning() throws {
        let run = try Fixtures.realRun()
        let xml = try JUnitReport.render(run, options: ReportOptions(junitWarningsAsFailures: true))
        #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: jenkinsSchema) == [])
        #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: ourSchema) == [])
        let document = try parseXML(xml)
        let warnings = run.results.filter { $0.status == .warning && $0.suppressed == nil }
        #expect(!warnings.isEmpty)
        let typed = try document.nodes(forXPath: "//failure[@type='warning']")
        #expect(typed.count == warnings.count)
        #expect(typed.allSatisfy { attribute($0, "message")?.hasPrefix("Warning: ") == true })
        let root = try #require(try document.nodes(forXPath: "/testsuites").first)
        #expect(attribute(root, "failures") == String(run.count(.failed) + run.count(.warning)))
        #expect(try document.nodes(forXPath: "//failure[@type!='warning']").count == run.count(.failed))
    }

    @Test func specialCharactersAreEscaped() throws {
        let run = Fixtures.hostileRun()
        let xml = try JUnitReport.render(run)
        #expect(!xml.contains("<script>"))
        #expect(!xml.contains("\u{1}"))
        let document = try parseXML(xml)
        let failure = try #require(try document.nodes(forXPath: "//failure").first)
        // Round trip: what a CI system reads back is the message (the control character replaced).
        #expect(attribute(failure, "message") == "Bad <script>alert(\"x\")</script> & 'quotes' ünïcødé ✓ \u{FFFD}bell")
        #expect(failure.stringValue?.contains("public.\"Ü<&>\"") == true)
        #expect(failure.stringValue?.contains("-- it's \"fine\"") == true)
        let suites = try document.nodes(forXPath: "/testsuites/testsuite").compactMap { attribute($0, "name") }
        #expect(suites == ["pgpreflight.source.instance", "pgpreflight.source.café € <shop>"])
        let properties = try document.nodes(forXPath: "//property[@name='source']").compactMap { attribute($0, "value") }
        #expect(properties.first == "migr<ator>@db.example.com:5432")
    }

    @Test func aDatabaseNamedInstance() throws {
        var run = Fixtures.hostileRun()
        run.databases = ["instance"]
        for index in run.results.indices where run.results[index].database != nil { run.results[index].database = "instance" }
        let xml = try JUnitReport.render(run)
        #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: jenkinsSchema) == [])
        #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: ourSchema) == [])
        let document = try parseXML(xml)
        #expect(try document.nodes(forXPath: "//testsuite[@name='pgpreflight.source.instance']").count == 2)
        #expect(try document.nodes(forXPath: "//property[@name='database' and @value='instance']").count == 1)
    }

    @Test func serverNameAndUniqueNames() throws {
        var run = Fixtures.hostileRun()
        run.results.append(run.results[1])  // the same rule twice in one database
        let document = try parseXML(try JUnitReport.render(run, options: ReportOptions(serverName: "prod-eu")))
        let names = try document.nodes(forXPath: "//testsuite[2]/testcase").compactMap { attribute($0, "name") }
        #expect(names == ["tables.primary-key", "⚠ warning: extensions.available [café € <shop>]", "tables.primary-key#2"])
        #expect(try document.nodes(forXPath: "//testcase[@classname='pgpreflight.prod-eu.instance']").count == 1)
    }

    @Test func neverAPassword() throws {
        // The connection strings the tests use carry no password, and ServerInfo has no field
        // for one; the report must not invent one from anywhere else either.
        let xml = try JUnitReport.render(try Fixtures.realRun())
        #expect(!xml.lowercased().contains("password"))
    }
}

@Suite struct EmbeddedSchemaTests {
    @Test func embeddedSchemaIsTheShippedFile() throws {
        let file = try String(contentsOf: ourSchema, encoding: .utf8)
        #expect(JUnitReport.schema + "\n" == file)
    }

    @Test func validatesWithTheEmbeddedSchema() throws {
        let xml = try JUnitReport.render(try Fixtures.realRun(), options: ReportOptions(strict: true))
        #expect(try XMLSchemaValidator.validate(xml: xml, schemaText: JUnitReport.schema) == [])
        let broken = xml.replacingOccurrences(of: "<properties>", with: "<properties><property name=\"password\" value=\"x\"/>")
        #expect(try XMLSchemaValidator.validate(xml: broken, schemaText: JUnitReport.schema).contains { $0.contains("password") })
        #expect(throws: ReportError.self) { try XMLSchemaValidator.validate(xml: xml, schemaText: "<xs:schema") }
    }
}

extension JUnitReportTests {
    /// A server that could not be reached: the rules it kept from running are skipped test
    /// cases (a CI view shows what was not checked), counted, and the file stays valid.
    @Test func rulesAnUnreachableServerKeptFromRunningAreSkipped() async throws {
        let request = ValidationRequest(source: try ConnectionString(TestServers.pg15.connectionString()),
                                        target: try ConnectionString("host=127.0.0.1 port=1 user=postgres connect_timeout=2"),  // nothing listens on port 1
                                        databases: ["postgres"], ruleDirectories: try ValidationRequest.ruleDirectories(extra: []))
        let run = try await ValidationEngine(request: request).run().run
        let connectivity = try #require(run.results.first { $0.rule == "connectivity.target" })
        #expect(connectivity.status == .failed && !connectivity.skippedRules.isEmpty)
        let xml = try JUnitReport.render(run)
        #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: jenkinsSchema) == [])
        #expect(try XMLSchemaValidator.validate(xml: xml, schemaFile: ourSchema) == [])
        let document = try parseXML(xml)
        let skipped = try document.nodes(forXPath: "//testcase[skipped[starts-with(@message, 'not run: the target could not be reached')]]")
        #expect(Set(skipped.compactMap { attribute($0, "name") }) == Set(connectivity.skippedRules))
        let root = try #require(try document.nodes(forXPath: "/testsuites").first)
        #expect(attribute(root, "tests") == String(run.results.count + connectivity.skippedRules.count))
        let suites = try document.nodes(forXPath: "/testsuites/testsuite")
        #expect(suites.compactMap { Int(attribute($0, "skipped") ?? "") }.reduce(0, +) >= connectivity.skippedRules.count)
    }
}
