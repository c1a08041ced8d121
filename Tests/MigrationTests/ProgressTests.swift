@testable import Migration
import Testing

/// The progress line's figures: percent of the source's bytes, total size, tables in flight.
@Suite struct ProgressTests {
    @Test func theLineNamesTheTablesInFlightAndThePercentOfBytesNeverGoesBack() {
        let tracker = ProgressTracker()
        tracker.addTables(count: 4, diskBytes: 4 << 20)
        tracker.tableDone("public.small", rows: 10, diskBytes: 1 << 20)
        #expect(tracker.line().hasPrefix("tables 1/4 · 25 % of 4.0 MB · "), "\(tracker.line())")
        tracker.streamed("public.big", 3 << 20)  // more than its size: the estimate stops below 100
        tracker.streamed("app.other", 1)
        let busy = tracker.line()
        #expect(busy.contains(" · 99 % of 4.0 MB · "), "\(busy)")
        #expect(busy.hasSuffix(" · copying app.other, public.big"), "\(busy)")
        tracker.tableDone("public.big", rows: 10, diskBytes: 1 << 20)  // the estimate was high: shown as before
        #expect(tracker.line().contains(" · 99 % of "), "\(tracker.line())")
        tracker.tableDone("app.other", rows: 1, diskBytes: 1 << 20)
        tracker.tableDone("public.last", rows: 1, diskBytes: 1 << 20)
        #expect(tracker.line().contains("tables 4/4 · 100 % of 4.0 MB · "), "\(tracker.line())")
        #expect(!tracker.line().contains("copying"))
    }
}
