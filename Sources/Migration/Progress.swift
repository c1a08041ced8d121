import Foundation

/// Live counters shared by the workers, the progress line and the summary table.
final class ProgressTracker: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var tablesTotal = 0
    private(set) var tablesDone = 0
    private(set) var rows = 0
    private(set) var streamedBytes = 0
    private(set) var diskBytesTotal: Int64 = 0
    private(set) var diskBytesDone: Int64 = 0
    /// Bytes streamed per table currently copying (written to the store every second).
    private var copying: [String: Int] = [:]
    private var timings: [String: Double] = [:]
    private var order: [String] = []
    let started = Date()
    /// Set once, before the run: gets a line at each tenth of the bytes copied, so that a log
    /// (not a terminal) shows the percent moving even between its timed lines.
    var printer: ProgressPrinter?
    /// The percent last shown: an estimate that never goes back.
    private var shownPercent = 0.0
    private var lastTenth = -1

    /// A database's tables, when its copy starts: the percent is of the tables known so far.
    func addTables(count: Int, diskBytes: Int64) {
        lock.withLock { tablesTotal += count; diskBytesTotal += diskBytes; shownPercent = 0; lastTenth = -1 }
    }
    func tableAlreadyCopied(diskBytes: Int64) {
        milestone(lock.withLock { tablesDone += 1; diskBytesDone += diskBytes; return crossedTenth() })
    }
    func streamed(_ table: String, _ bytes: Int) {
        lock.withLock { streamedBytes += bytes; copying[table, default: 0] += bytes }
    }
    func tableDone(_ table: String, rows: Int, diskBytes: Int64) {
        milestone(lock.withLock {
            tablesDone += 1; self.rows += rows; diskBytesDone += diskBytes; copying[table] = nil
            return crossedTenth()
        })
    }

    /// The line to print when the copy just reached another tenth (under the lock).
    private func crossedTenth() -> String? {
        let tenth = Int(percentCopied() / 10)
        guard tenth > lastTenth else { return nil }
        lastTenth = tenth
        return lineLocked()
    }

    private func milestone(_ line: String?) { if let line { printer?.milestone(line) } }

    /// Percent of the source's on-disk bytes copied (of the tables when they hold none):
    /// tables in flight count by the bytes streamed (binary COPY is about the heap's size), so
    /// it moves during a big table; below 100 until every table is copied. Under the lock.
    private func percentCopied() -> Double {
        guard tablesTotal > 0 else { return 0 }
        if tablesDone >= tablesTotal { shownPercent = 100; return 100 }
        let inFlight = Int64(copying.values.reduce(0, +))
        let fraction = diskBytesTotal > 0 ? Double(diskBytesDone + inFlight) / Double(diskBytesTotal) : Double(tablesDone) / Double(tablesTotal)
        shownPercent = max(shownPercent, min(99, (fraction * 100).rounded(.down)))
        return shownPercent
    }
    func partDone(rows: Int) { lock.withLock { self.rows += rows } }
    func forget(_ table: String) { _ = lock.withLock { copying.removeValue(forKey: table) } }
    func copyingSnapshot() -> [String: Int] { lock.withLock { copying } }

    /// True until a step was timed: a run that stopped before doing anything has no summary.
    var nothingTimed: Bool { lock.withLock { timings.isEmpty } }

    /// Adds `seconds` to a summary line (cumulative across workers and databases).
    func time(_ step: String, _ seconds: Double) {
        lock.withLock {
            if timings[step] == nil { order.append(step) }
            timings[step, default: 0] += seconds
        }
    }

    /// `tables 3/10 · 42 % of 1.2 GB · rows … · streamed · rate · ETA · copying a, b`.
    func line() -> String { lock.withLock { lineLocked() } }

    private func lineLocked() -> String {
        let elapsed = max(Date().timeIntervalSince(started), 0.001)
        let percent = percentCopied()
        let fraction = percent / 100
        var eta = "?"
        if fraction > 0.01 && fraction < 1 { eta = formatSeconds(elapsed * (1 - fraction) / fraction) } else if fraction >= 1 { eta = "0s" }
        var text = "tables \(tablesDone)/\(tablesTotal) · \(Int(percent)) % of \(formatBytes(Int(diskBytesTotal))) · rows \(rows) · "
            + "\(formatBytes(streamedBytes)) streamed · \(formatBytes(Int(Double(streamedBytes) / elapsed)))/s · ETA \(eta)"
        let inFlight = copying.keys.sorted()
        if !inFlight.isEmpty {
            text += " · copying " + inFlight.prefix(3).joined(separator: ", ") + (inFlight.count > 3 ? " +\(inFlight.count - 3) more" : "")
        }
        return text
    }

    /// Summary lines in the order of the run's steps (workers start during the schema
    /// restore, so the first-timed order interleaves them); unknown lines keep their place.
    static func inRunOrder(_ steps: [String]) -> [String] {
        let ranks = ["Prerequisites", "Roles", "Create databases", "Dump schema", "Restore pre-data", "  Large objects", "  COPY (",
                     "  CREATE INDEX", "  ANALYZE", "  Verification counts", "COPY, INDEX, ANALYZE", "Post-data", "  VALIDATE",
                     "Validate foreign keys", "Reset sequences", "Verification ("]
        func rank(_ step: String) -> Int { ranks.firstIndex { step.hasPrefix($0) } ?? ranks.count }
        return steps.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }.map(\.element)
    }

    func summary(total: Double, extra: [(String, String)]) -> String {
        lock.withLock {
            var lines: [(String, String)] = Self.inRunOrder(order).map { ($0, String(format: "%.2f s", timings[$0]!)) }
            lines.append(("Total wall clock", String(format: "%.2f s", total)))
            lines += extra
            let width = max(40, (lines.map(\.0.count).max() ?? 0) + 2)
            var text = "Step".padding(toLength: width, withPad: " ", startingAt: 0) + "Duration\n"
            text += String(repeating: "-", count: width + 12) + "\n"
            for (name, value) in lines { text += name.padding(toLength: width, withPad: " ", startingAt: 0) + value + "\n" }
            return text
        }
    }
}

/// 1536 → "1.5 kB" (binary multiples, as pg_size_pretty).
public func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var value = Double(bytes), unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}

func formatSeconds(_ seconds: Double) -> String {
    if seconds < 60 { return String(format: "%.0fs", seconds) }
    if seconds < 3600 { return String(format: "%dm%02ds", Int(seconds) / 60, Int(seconds) % 60) }
    return String(format: "%dh%02dm", Int(seconds) / 3600, (Int(seconds) % 3600) / 60)
}

/// Writes progress to stderr: a redrawn line on a terminal, timestamped lines otherwise.
final class ProgressPrinter: @unchecked Sendable {
    let enabled: Bool
    let isTerminal = isatty(2) == 1
    private let lock = NSLock()
    private var lastPlain = Date.distantPast
    private var lineShown = false

    init(enabled: Bool) { self.enabled = enabled }

    func say(_ message: String) {
        guard enabled else { return }
        lock.withLock {
            if lineShown { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!); lineShown = false }
            FileHandle.standardError.write("\(Self.stamp()) \(message)\n".data(using: .utf8)!)
        }
    }

    func tick(_ line: String) { show(line, spaced: true) }

    /// A line that marks a step of the copy (another tenth of the bytes): on a terminal the
    /// live line, otherwise a timestamped line at once, whatever the time since the last.
    func milestone(_ line: String) { show(line, spaced: false) }

    /// On a terminal the live line; otherwise a timestamped line, at most one per 5 s when `spaced`.
    private func show(_ line: String, spaced: Bool) {
        guard enabled else { return }
        lock.withLock {
            if isTerminal {
                FileHandle.standardError.write("\r\u{1B}[K\(line)".data(using: .utf8)!)
                lineShown = true
            } else if !spaced || Date().timeIntervalSince(lastPlain) >= 5 {
                lastPlain = Date()
                FileHandle.standardError.write("\(Self.stamp()) \(line)\n".data(using: .utf8)!)
            }
        }
    }

    func clear() {
        guard enabled else { return }
        lock.withLock { if lineShown { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!); lineShown = false } }
    }

    static func stamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }
}
