import Foundation

/// Checks JSON documents against a JSON Schema with Python's `jsonschema` (installed by
/// scripts/setup.sh into .deps/python when the system has none): the same validator a user's
/// pipeline would use, so a passing test means the file is valid for anyone.
public enum JSONSchemaValidator {
    /// The problems `jsonschema` finds (`path: message`, at most 20), empty when `json` is valid.
    /// Throws when Python or `jsonschema` cannot be run.
    public static func problems(_ json: String, schema: URL) throws -> [String] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-jsonschema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let document = directory.appendingPathComponent("document.json")
        try Data(json.utf8).write(to: document)
        let script = """
            import json, sys
            import jsonschema
            schema = json.load(open(sys.argv[1]))
            document = json.load(open(sys.argv[2]))
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
            errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
            for e in errors[:20]:
                print("/".join(str(p) for p in e.absolute_path) + ": " + e.message[:300])
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, schema.path, document.path]
        var environment = ProcessInfo.processInfo.environment
        let deps = TestServers.projectRoot.appendingPathComponent(".deps/python").path
        environment["PYTHONPATH"] = [deps, environment["PYTHONPATH"]].compactMap { $0 }.joined(separator: ":")
        process.environment = environment
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw JSONSchemaValidatorError(message: "python3 jsonschema failed (run scripts/setup.sh): \(errorText)")
        }
        return text.split(separator: "\n").map(String.init)
    }

    /// reports/pgpreflight-report.schema.json
    public static let reportSchema = TestServers.projectRoot.appendingPathComponent("reports/pgpreflight-report.schema.json")
    /// The SARIF 2.1.0 schema, vendored (Tests/ReportsTests/Schemas, with its licence).
    public static let sarifSchema = TestServers.projectRoot.appendingPathComponent("Tests/ReportsTests/Schemas/sarif-schema-2.1.0.json")
}

public struct JSONSchemaValidatorError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
