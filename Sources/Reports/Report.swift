import Foundation
import Validation

/// Every output format of a validation run. Each format is a pure function of the run, in a
/// file of its own.
public enum ReportFormat: String, CaseIterable, Sendable {
    case console, json, junit, markdown, html
}

public struct ReportOptions: Sendable {
    /// Warnings count as failures (JUnit marks them as failures too).
    public var strict: Bool
    /// ANSI colours in the console format (when the output is a terminal).
    public var color: Bool
    public init(strict: Bool = false, color: Bool = false) { self.strict = strict; self.color = color }
}

public enum Reports {
    public static func render(_ run: ValidationRun, as format: ReportFormat, options: ReportOptions = ReportOptions()) throws -> String {
        switch format {
        case .json: return try JSONReport.render(run)
        case .console: return ConsoleReport.render(run, options: options)
        case .junit, .markdown, .html:
            throw ReportError("the \(format.rawValue) format is not available yet")
        }
    }
}

public struct ReportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
