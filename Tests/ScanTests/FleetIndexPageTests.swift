import Foundation
import LocalServers
import PostgresClient
import Scanning
import Testing
import TestSupport
import Validation

/// The scan's index page as a person sees it: rendered by headless Chromium (Debian's
/// chromium-headless-shell, installed by scripts/setup.sh) at desktop and phone widths,
/// filtered by status and team tag through the URL fragment.
@Suite struct FleetIndexPageTests {
    /// A real scan of four tagged entries: two payments databases (one with a keyless table:
    /// Warning), a CRM database, and a CRM server that is down (Failed).
    func scanTaggedFleet(in directory: URL) async throws -> URL {
        let keyed = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "idx_keyed")
        let keyless = try TestServers.freshDatabase(on: TestServers.pg15, prefix: "idx_keyless")
        let crm = try TestServers.freshDatabase(on: TestServers.pg18, prefix: "idx_crm")
        for (server, database, sql) in [(TestServers.pg15, keyed, "CREATE TABLE payments (id int PRIMARY KEY)"),
                                        (TestServers.pg15, keyless, "CREATE TABLE ledger (amount numeric)"),
                                        (TestServers.pg18, crm, "CREATE TABLE contacts (id int PRIMARY KEY)")] {
            let connection = try TestServers.connect(server, database: database)
            defer { connection.close() }
            try connection.execute(sql)
        }
        let closedPort = try LocalServer.freePort()
        let file = directory.appendingPathComponent("inventory.yaml")
        try """
            servers:
              - name: pay-prod
                source: "\(TestServers.pg15.connectionString())"
                target: "\(TestServers.pg18.connectionString())"
                databases: [\(keyed)]
                tags: [payments, tier-1]
              - name: pay-legacy
                source: "\(TestServers.pg15.connectionString())"
                target: "\(TestServers.pg18.connectionString())"
                databases: [\(keyless)]
                tags: payments
              - name: crm-prod
                source: "\(TestServers.pg18.connectionString())"
                target: "\(TestServers.pg18.connectionString())"
                databases: [\(crm)]
                tags: [crm]
              - name: crm-old
                source: "host=127.0.0.1 port=\(closedPort) user=postgres connect_timeout=2"
                target: "\(TestServers.pg18.connectionString())"
                tags: [crm, legacy]
            """.write(to: file, atomically: true, encoding: .utf8)
        let inventory = try Inventory.load(file, environment: [:])
        let rules = try RuleLoader.load(directories: [try CLI.rules(in: directory, ["connectivity.source", "connectivity.target", "tables.primary-key"])])
        let summary = try await FleetScan(inventory: inventory, reportsDirectory: directory.appendingPathComponent("reports"), parallel: 2, metricsFile: nil) { server in
            try! await ValidationEngine(request: ValidationRequest(source: try! ConnectionString(server.source), target: try! ConnectionString(server.target),
                                                                   databases: server.databases, rules: rules)).run().run
        }.run()
        #expect(summary.servers.map(\.status) == [.succeeded, .warning, .succeeded, .failed])
        return URL(fileURLWithPath: summary.directory)
    }

    @Test func theIndexFiltersByStatusAndTagAndFitsAPhone() async throws {
        let chromium = try #require(Chromium.binary, "headless Chromium is missing: run scripts/setup.sh (apt package chromium-headless-shell)")
        let directory = try temporaryDirectory("scan-index")
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try await scanTaggedFleet(in: directory)

        // The tags are in summary.json, per server.
        let servers = try #require(try CLI.summary(run)["servers"] as? [[String: Any]])
        #expect(servers.map { $0["tags"] as? [String] ?? ["missing"] } == [["payments", "tier-1"], ["payments"], ["crm"], ["crm", "legacy"]])

        // Self-contained: nothing the page loads from anywhere (the server files are relative links).
        let index = run.appendingPathComponent("index.html")
        let html = try String(contentsOf: index, encoding: .utf8)
        for reference in ["http:", "https:", "<link", " src=", "url(", "@import", "<iframe", "<img"] {
            #expect(!html.contains(reference), "the index references \(reference)")
        }

        let page = Chromium(binary: chromium, page: index, scratch: directory)
        let all = ["pay-prod", "pay-legacy", "crm-prod", "crm-old"]
        let unfiltered = try page.dom(width: 1280)
        #expect(unfiltered.visibleServers == all)
        #expect(unfiltered.root["data-filter-status"] == "all" && unfiltered.root["data-shown"] == "4")
        #expect(unfiltered.root["data-overflow"] == "no")

        let payments = try page.dom(width: 1280, fragment: "tag=payments")
        #expect(payments.visibleServers == ["pay-prod", "pay-legacy"])
        #expect(payments.root["data-filter-tag"] == "payments")
        #expect(payments.text.contains("showing 2 of 4 servers"))
        #expect(try page.dom(width: 1280, fragment: "status=Failed&tag=crm").visibleServers == ["crm-old"])
        #expect(try page.dom(width: 1280, fragment: "status=Warning").visibleServers == ["pay-legacy"])
        let none = try page.dom(width: 1280, fragment: "status=Failed&tag=payments")
        #expect(none.visibleServers.isEmpty)
        #expect(none.text.contains("No server matches this filter."))

        // A phone: every server, nothing wider than the screen; and the filter works there too.
        let phone = try page.dom(width: 390)
        #expect(phone.root["data-width"] == "390")
        #expect(phone.root["data-overflow"] == "no", "the page is wider than a 390 px screen")
        #expect(phone.visibleServers == all)
        let phoneCRM = try page.dom(width: 390, fragment: "tag=crm")
        #expect(phoneCRM.visibleServers == ["crm-prod", "crm-old"])
        #expect(phoneCRM.root["data-overflow"] == "no")

        // Screenshots, to look at (PGPREFLIGHT_SCREENSHOTS=DIR keeps them).
        let keep = ProcessInfo.processInfo.environment["PGPREFLIGHT_SCREENSHOTS"].map { URL(fileURLWithPath: $0) }
        for (width, fragment, name) in [(1280, nil, "fleet-index-desktop.png"), (390, nil, "fleet-index-phone.png"),
                                         (390, "status=Failed&tag=crm", "fleet-index-phone-failed-crm.png")] {
            let png = (keep ?? directory).appendingPathComponent(name)
            try page.screenshot(width: width, fragment: fragment, to: png)
            let bytes = try Data(contentsOf: png)
            #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]), "\(name) is not a PNG")
            // IHDR: the width is the big-endian 32-bit number at byte 16.
            #expect(bytes.count > 24 && bytes[16..<20].reduce(0) { $0 << 8 | Int($1) } == width)
        }
    }

    @Test func aTagMustBeOneWord() throws {
        let directory = try temporaryDirectory("scan-tags")
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("inventory.yaml")
        try "servers:\n  - name: a\n    source: s\n    target: t\n    tags: [payments, \"team billing\"]\n".write(to: file, atomically: true, encoding: .utf8)
        #expect { try Inventory.load(file, environment: [:]) } throws: {
            "\($0)".hasPrefix("\(file.path):5: tag 'team billing' must be letters, digits")
        }
        try "servers:\n  - name: a\n    source: s\n    target: t\n    tags: [payments, payments, tier-1]\n".write(to: file, atomically: true, encoding: .utf8)
        #expect(try Inventory.load(file, environment: [:]).servers[0].tags == ["payments", "tier-1"])
    }
}

/// Headless Chromium on a local page: the DOM after its scripts ran, or a screenshot.
struct Chromium {
    static let binary = HeadlessChromium.binary

    let binary: String
    let page: URL
    let scratch: URL

    struct DOM {
        let text: String
        /// Attributes of <html>, where the page's script records what it did.
        let root: [String: String]
        /// The servers whose row in the servers table is shown, in page order.
        let visibleServers: [String]
    }

    func dom(width: Int, fragment: String? = nil) throws -> DOM {
        let text = try run(["--dump-dom"], width: width, fragment: fragment)
        func attributes(_ tag: Substring) -> [String: String] {
            var result: [String: String] = [:]
            for match in tag.matches(of: #/([a-z-]+)(?:="([^"]*)")?/#) { result[String(match.1)] = match.2.map(String.init) ?? "" }
            return result
        }
        let root = HeadlessChromium.rootAttributes(of: text)
        let visible = text.matches(of: #/<tr ([^>]*)>/#).map { attributes($0.1) }
            .filter { $0["class"] == "server" && $0["hidden"] == nil }.compactMap { $0["data-server"] }
        return DOM(text: text, root: root, visibleServers: visible)
    }

    func screenshot(width: Int, fragment: String?, to file: URL) throws {
        _ = try run(["--screenshot=\(file.path)"], width: width, fragment: fragment)
        guard FileManager.default.fileExists(atPath: file.path) else { throw TestError(description: "Chromium wrote no screenshot") }
    }

    private func run(_ arguments: [String], width: Int, fragment: String?) throws -> String {
        try HeadlessChromium(binary: binary, scratch: scratch).run(arguments, page: page.absoluteString + (fragment.map { "#\($0)" } ?? ""), width: width)
    }
}
