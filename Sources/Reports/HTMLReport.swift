import Foundation
import Validation

public enum HTMLReport {
    public static func render(_ run: ValidationRun, options: ReportOptions = ReportOptions()) -> String { "" }
}
