import Foundation
import LocalServers
import Testing
import TestSupport

/// Runs the `pgpreflight` executable built next to the tests.
enum CLI {
    static let binary: URL? = {
        // PGPREFLIGHT_BINARY: run these tests against another build (an older one, to see them fail).
        if let path = ProcessInfo.processInfo.environment["PGPREFLIGHT_BINARY"] { return URL(fileURLWithPath: path) }
        let candidates = [Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("pgpreflight"),
                          Bundle.main.bundleURL.appendingPathComponent("pgpreflight")]
            + ProcessInfo.processInfo.arguments.prefix(1).map { URL(fileURLWithPath: $0).deletingLastPathComponent().appendingPathComponent("pgpreflight") }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    /// Starts the tool; `wait` gives its exit code and output (stdout and stderr together).
    final class Running: @unchecked Sendable {
        let process = Process()
        let output: URL
        init(_ arguments: [String], environment: [String: String]) throws {
            let binary = try #require(CLI.binary, "build the pgpreflight executable first (swift build)")
            output = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-out-\(UUID().uuidString)")
            FileManager.default.createFile(atPath: output.path, contents: nil)
            let handle = try FileHandle(forWritingTo: output)
            process.executableURL = binary
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }
        func wait() -> (code: Int, output: String) {
            process.waitUntilExit()
            defer { try? FileManager.default.removeItem(at: output) }
            return (Int(process.terminationStatus), (try? String(contentsOf: output, encoding: .utf8)) ?? "")
        }
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (code: Int, output: String) {
        try Running(arguments, environment: environment).wait()
    }

    /// A rules folder with only the given shipped rules, so results do not depend on what
    /// other tests do on the shared servers (active connections, latency).
    static func rules(in parent: URL, _ ids: [String]) throws -> URL {
        let directory = parent.appendingPathComponent("rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let shipped = TestServers.projectRoot.appendingPathComponent("rules")
        for id in ids {
            try FileManager.default.copyItem(at: shipped.appendingPathComponent("\(id).yaml"), to: directory.appendingPathComponent("\(id).yaml"))
        }
        return directory
    }

    static func summary(_ runDirectory: URL) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(contentsOf: runDirectory.appendingPathComponent("summary.json"))) as? [String: Any])
    }

    /// The run folder the tool printed ("reports: DIR").
    static func reportsLine(_ output: String) throws -> URL {
        let line = try #require(output.split(separator: "\n").last { $0.hasPrefix("reports: ") }, "no reports line in: \(output)")
        return URL(fileURLWithPath: String(line.dropFirst("reports: ".count)))
    }
}

func temporaryDirectory(_ prefix: String) throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

struct TestError: Error, CustomStringConvertible { let description: String }
