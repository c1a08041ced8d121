import Foundation
import Validation

/// GitLab Code Quality JSON (`--format codequality`, for `artifacts:reports:codequality`):
/// an array of findings that GitLab shows in the merge request widget and compares between
/// the base and the head pipeline by fingerprint. https://docs.gitlab.com/ci/testing/code_quality/
///
/// - one entry per Warning and Failed result; Succeeded results are left out;
/// - `severity`: Failed → `critical`; Warning → `minor` (`major` with `strict`, where it fails
///   the run); an accepted finding (suppression or baseline) → `info`, its description saying
///   why: it stays visible but no longer stands out as a problem;
/// - `check_name` is the rule id; `description` the database, the status, the message and the
///   remedy's first line (with the second when the first ends with a colon);
/// - `fingerprint`: MD5 of the rule id, the database and the sorted objects, so the same finding
///   keeps its fingerprint from run to run (and when it becomes accepted) and two findings differ;
/// - `location.path`: `postgresql://<source host>:<port>/<database>` (no database for server-wide
///   checks) and `lines.begin` 1, as a finding is in a database, not in a file of the repository.
public enum CodeQualityReport {
    struct Issue: Encodable {
        struct Location: Encodable {
            struct Lines: Encodable { let begin: Int }
            let path: String
            let lines: Lines
        }
        let description: String
        let check_name: String
        let fingerprint: String
        let severity: String
        let location: Location
    }

    public static func render(_ run: ValidationRun, options: ReportOptions = ReportOptions()) throws -> String {
        let issues = run.groups.flatMap(\.results).filter { $0.status != .succeeded }.map { result in
            Issue(description: description(result),
                  check_name: result.rule,
                  fingerprint: fingerprint(result),
                  severity: severity(result, strict: options.strict),
                  location: .init(path: path(run.source, database: result.database), lines: .init(begin: 1)))
        }
        guard !issues.isEmpty else { return "[]\n" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(issues), as: UTF8.self) + "\n"
    }

    static func severity(_ result: RuleResult, strict: Bool) -> String {
        if result.suppressed != nil { return "info" }
        switch result.status {
        case .failed: return "critical"
        case .warning: return strict ? "major" : "minor"
        case .succeeded: return "info"
        }
    }

    private static func description(_ result: RuleResult) -> String {
        var text = "\(result.status.rawValue): \(result.message)"
        if let database = result.database { text = "[\(database)] " + text }
        if let acceptance = result.suppressed {
            text += " (accepted by \(acceptance.by == .baseline ? "the baseline" : "a suppression"): \(acceptance.reason))"
        } else if let remedy = result.remedyHeadline {
            text += " — " + remedy
        }
        return text
    }

    /// The same finding gets the same fingerprint in every run; the message (counts, versions)
    /// is left out on purpose so that a rewording does not make an old finding look new.
    static func fingerprint(_ result: RuleResult) -> String {
        let key = ([result.rule, result.database ?? ""] + result.objects.sorted()).joined(separator: "\u{1F}")
        return MD5.hex(Array(key.utf8))
    }

    private static func path(_ server: ServerInfo, database: String?) -> String {
        let host = server.host.contains(":") && !server.host.hasPrefix("[") ? "[\(server.host)]" : server.host
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%")
        let base = "postgresql://\(host.addingPercentEncoding(withAllowedCharacters: .urlHostAllowed) ?? host):\(server.port)"
        guard let database else { return base }
        return base + "/" + (database.addingPercentEncoding(withAllowedCharacters: allowed) ?? database)
    }
}

/// MD5 (RFC 1321), only for Code Quality fingerprints (an identifier, not security): Foundation
/// on Linux has no digest, and no crypto package is available to the project.
enum MD5 {
    static func hex(_ message: [UInt8]) -> String {
        digest(message).map { String(format: "%02x", $0) }.joined()
    }

    static func digest(_ message: [UInt8]) -> [UInt8] {
        let shifts: [UInt32] = [7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
                                4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21]
        let constants: [UInt32] = (0..<64).map { UInt32(truncatingIfNeeded: Int64(abs(sin(Double($0 + 1))) * 4_294_967_296)) }
        var a0: UInt32 = 0x67452301, b0: UInt32 = 0xefcdab89, c0: UInt32 = 0x98badcfe, d0: UInt32 = 0x10325476

        var bytes = message
        let bitLength = UInt64(message.count) &* 8
        bytes.append(0x80)
        while bytes.count % 64 != 56 { bytes.append(0) }
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }

        for chunk in stride(from: 0, to: bytes.count, by: 64) {
            let words = (0..<16).map { i -> UInt32 in
                let at = chunk + i * 4
                return UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
            }
            var a = a0, b = b0, c = c0, d = d0
            for i in 0..<64 {
                var f: UInt32, g: Int
                switch i {
                case 0..<16: f = (b & c) | (~b & d); g = i
                case 16..<32: f = (d & b) | (~d & c); g = (5 * i + 1) % 16
                case 32..<48: f = b ^ c ^ d; g = (3 * i + 5) % 16
                default: f = c ^ (b | ~d); g = (7 * i) % 16
                }
                f = f &+ a &+ constants[i] &+ words[g]
                a = d; d = c; c = b
                b = b &+ (f << shifts[i] | f >> (32 - shifts[i]))
            }
            a0 = a0 &+ a; b0 = b0 &+ b; c0 = c0 &+ c; d0 = d0 &+ d
        }
        return [a0, b0, c0, d0].flatMap { word in (0..<4).map { UInt8(truncatingIfNeeded: word >> (8 * UInt32($0))) } }
    }
}
