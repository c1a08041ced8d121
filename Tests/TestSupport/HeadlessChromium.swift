import Foundation

/// Headless Chromium (Debian's chromium-headless-shell, installed by scripts/setup.sh) on a
/// local page at a given window width: the DOM after the page's scripts ran. A page under test
/// records what it measured as attributes of <html>: `rootAttributes(of:)` reads them.
public struct HeadlessChromium: Sendable {
    public static let binary: String? = ["/usr/bin/chromium-headless-shell", "/usr/bin/chromium"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    let binary: String
    let scratch: URL

    public init(binary: String, scratch: URL) { self.binary = binary; self.scratch = scratch }

    public func dumpDOM(of page: URL, width: Int, height: Int = 900) throws -> String {
        try run(["--dump-dom"], page: page.absoluteString, width: width, height: height)
    }

    /// Chromium with `arguments` on `page` (a URL, a fragment included); its standard output.
    public func run(_ arguments: [String], page: String, width: Int, height: Int = 900) throws -> String {
        let profile = scratch.appendingPathComponent("chromium-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: profile) }
        let output = scratch.appendingPathComponent("chromium-out-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        // As root Chromium needs --no-sandbox; a profile of its own lets tests run side by side.
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                             "--user-data-dir=\(profile.path)", "--window-size=\(width),\(height)"] + arguments + [page]
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Bounded: a Chromium that hangs fails the test instead of stopping the suite.
        let watchdog = DispatchWorkItem { process.terminate() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 180, execute: watchdog)
        process.waitUntilExit()
        watchdog.cancel()
        guard process.terminationStatus == 0 else { throw Failure(description: "Chromium exited \(process.terminationStatus)") }
        return try String(contentsOf: output, encoding: .utf8)
    }

    /// The attributes of the dumped page's <html> element.
    public static func rootAttributes(of dom: String) -> [String: String] {
        guard let tag = dom.firstMatch(of: #/<html([^>]*)>/#)?.1 else { return [:] }
        var result: [String: String] = [:]
        for match in tag.matches(of: #/([a-z-]+)(?:="([^"]*)")?/#) { result[String(match.1)] = match.2.map(String.init) ?? "" }
        return result
    }
}
