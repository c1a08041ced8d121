import Foundation
import Testing
import TestSupport

/// Bad input is one line and exit 2, before any server is touched.
extension CLITests {
    @Test func badInputIsOneLineAndExitTwo() throws {
        let unreachable = "host=127.0.0.1 port=1 connect_timeout=2"
        let cases: [([String], String)] = [
            (["validate", "--source", "", "--target", unreachable], "--source: empty connection string"),
            (["migrate", "m", "--source", "  ", "--target", unreachable], "--source: empty connection string"),
            (["validate", "--source", "host=127.0.0.1 port=notaport", "--target", unreachable], "invalid port \"notaport\""),
            (["validate", "--source", "postgresql://u@127.0.0.1:5740x/db", "--target", unreachable], "--source: "),
            (["validate", "--source", unreachable, "--target", unreachable, "--output", FileManager.default.temporaryDirectory.path],
             "it is a directory"),
            (["validate", "--source", unreachable, "--target", unreachable, "--output", "/nonexistent-folder/report.json"],
             "the folder /nonexistent-folder does not exist"),
        ]
        for (arguments, expected) in cases {
            let (code, output) = try pgpreflight(arguments)
            #expect(code == 2, "\(arguments): exit \(code): \(output)")
            #expect(output.contains(expected), "\(arguments): \(output)")
            #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(arguments): \(output)")
        }
    }

    /// The state-store commands take the same --state-dir and refuse bad input the same way:
    /// thrown (so that pending cleanup runs), printed as one line, exit 2.
    @Test func stateStoreCommandsRefuseBadInputInOneLine() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-no-store-\(UUID().uuidString.prefix(8))").path
        let unreachable = "host=127.0.0.1 port=1 connect_timeout=2"
        let cases: [([String], String)] = [
            (["status", "--state-dir", missing], "no state store in \(missing)"),
            (["cancel", "m", "--state-dir", missing], "no state store in \(missing)"),
            (["cutover", "m", "--state-dir", missing], "no state store in \(missing)"),
            (["migrate", "bad name!", "--source", unreachable, "--target", unreachable, "--state-dir", missing], "invalid migration name"),
            (["migrate", "m", "--source", unreachable, "--target", unreachable, "--jobs", "0", "--state-dir", missing], "--jobs must be at least 1"),
        ]
        for (arguments, expected) in cases {
            let (code, output) = try pgpreflight(arguments)
            #expect(code == 2, "\(arguments): exit \(code): \(output)")
            #expect(output.contains(expected), "\(arguments): \(output)")
            #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1, "\(arguments): \(output)")
        }
        for command in ["status", "cancel", "cutover", "migrate"] {
            let (_, help) = try pgpreflight([command, "--help"])
            #expect(help.contains("--state-dir <dir>") && help.contains("Directory of the state store."), "\(command): \(help)")
        }
    }

    /// A baseline taken while a server cannot be reached would accept everything found there later.
    @Test func baselineOfAnUnreachableServerIsRefused() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("baseline-\(UUID().uuidString).json")
        let (code, output) = try pgpreflight(["baseline", "--source", "host=127.0.0.1 port=1 connect_timeout=2",
                                              "--target", TestServers.pg18.connectionString(), "--output", file.path])
        #expect(code == 2, "\(output)")
        #expect(output.contains("no baseline written: connectivity.source"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: file.path))
    }
}
