import Foundation
import Validation

public enum MarkdownReport {
    public static func render(_ run: ValidationRun, options: ReportOptions = ReportOptions()) -> String { "" }
}
