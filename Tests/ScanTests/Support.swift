import Foundation
import LocalServers
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A TCP listener on 127.0.0.1 that accepts connections and never sends a byte: a hung server.
final class HungListener: @unchecked Sendable {
    let port: Int
    private let fd: Int32
    private var accepted: [Int32] = []
    private let lock = NSLock()
    private var stopped = false

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 64) == 0 else { throw TestError(description: "hung listener: cannot listen") }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                lock.withLock { if stopped { close(client) } else { accepted.append(client) } }
            }
        }
        thread.start()
    }

    func stop() {
        lock.withLock {
            stopped = true
            accepted.forEach { close($0) }
            accepted = []
        }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

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
