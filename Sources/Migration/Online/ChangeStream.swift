import Foundation
import PostgresClient

/// Streams one source database's changes from its logical slot into a `ChangeApplier` until
/// told to stop. Blocking: run it on a thread of its own.
public final class ChangeStream {
    public struct Progress: Sendable {
        public var appliedLSN: LSN
        public var receivedLSN: LSN
        public var appliedTransactions: Int
        public var appliedChanges: Int
        /// Source transactions whose COMMIT the stream delivered in this run (those already on
        /// the target before it started left out): at cutover every one must be applied.
        public var receivedTransactions: Int
        /// How far the last applied commit is behind the source's clock; 0 when caught up.
        public var latencySeconds: Double
        /// How long the oldest transaction of the last applied batch waited (source commit →
        /// target commit).
        public var lastBatchDelaySeconds: Double
        /// True when everything received so far is applied and the stream is idle: the
        /// target then holds every source transaction committed before `receivedLSN`.
        public var caughtUp: Bool
        /// Up to where everything the source committed is on the target: when caught up,
        /// everything received; otherwise the end of the last applied transaction.
        public var appliedPosition: LSN { caughtUp ? max(appliedLSN, receivedLSN) : appliedLSN }
    }

    /// The slot's output plugin: pgoutput (PostgreSQL 10+) with a publication, or wal2json.
    public enum Format: Sendable {
        case pgoutput(publication: String)
        case wal2json
    }

    private let replication: ReplicationConnection
    private let applier: ChangeApplier
    private let slot: String
    private let format: Format
    private let wal2json = Wal2JSONDecoder()
    private var receivedLSN: LSN = .zero
    private var lastFeedback = Date.distantPast
    private var lastDurableCheck = Date.distantPast
    private var lastProgress = Date.distantPast
    /// COMMITs received of transactions not yet on the target when the run started.
    private var receivedTransactions = 0
    private var countingTransaction = false
    private var alreadyApplied: LSN = .zero
    /// False when the source's wal2json is older than 2.6 (no `numeric-data-types-as-string`):
    /// it then sends NaN and ±Infinity of float and numeric columns as null.
    public private(set) var exactNumerics = true

    public convenience init(replication: ReplicationConnection, applier: ChangeApplier, slot: String, publication: String) {
        self.init(replication: replication, applier: applier, slot: slot, format: .pgoutput(publication: publication))
    }

    public init(replication: ReplicationConnection, applier: ChangeApplier, slot: String, format: Format) {
        self.replication = replication
        self.applier = applier
        self.slot = slot
        self.format = format
    }

    /// Streams until `shouldStop(progress)` returns true (checked after each idle moment and
    /// each applied batch). `consistentPoint` is the slot's: streaming starts after whatever
    /// the target already has.
    public func run(consistentPoint: LSN, onProgress: (Progress) throws -> Void = { _ in },
                    shouldStop: (Progress) -> Bool) throws {
        let start = applier.startPosition(consistentPoint: consistentPoint)
        alreadyApplied = applier.appliedLSN
        receivedLSN = start
        switch format {
        case .pgoutput(let publication):
            // 14+: large transactions arrive while still in progress (protocol 2) and wait in
            // a spill file of ours, not in memory, until their commit.
            if replication.serverVersionNumber >= 140000 {
                try replication.startReplication(slot: slot, start: start, options: [("proto_version", "2"), ("publication_names", publication),
                                                                                      ("streaming", "on")])
            } else {
                try replication.startReplication(slot: slot, start: start, options: [("proto_version", "1"), ("publication_names", publication)])
            }
        case .wal2json:
            do {
                try replication.startReplication(slot: slot, start: start, options: Wal2JSONDecoder.options + [Wal2JSONDecoder.numericsAsStrings])
            } catch let error as ClientError where "\(error)".contains("unknown") || "\(error)".contains("unrecognized") {
                exactNumerics = false
                try replication.startReplication(slot: slot, start: start, options: Wal2JSONDecoder.options)
            }
        }
        defer {
            try? applier.collect()  // a batch still in flight: its outcome is known before the stream ends
            replication.stopStreaming()
            for spill in spills.values { spill.remove() }
            spills.removeAll()
            streamXid = nil
            try? FileManager.default.removeItem(at: SpillFile.directory(slot: slot))
        }
        var lastServerTime = Date()
        while true {
            // A batch in flight is confirmed at the next idle moment: come back soon for it.
            let message = try replication.next(timeout: applier.hasInFlight ? 0.02 : 0.2)
            switch message {
            case .data(_, let end, let serverTime, let payload)?:
                receivedLSN = max(receivedLSN, end)
                lastServerTime = serverTime
                let batchesBefore = applier.appliedTransactions
                switch format {
                case .pgoutput: try handlePgOutput(payload)
                case .wal2json: for decoded in try wal2json.decode(payload) { try applyWithRetry(decoded) }
                }
                // A full batch was committed (or a second passed inside a large transaction):
                // report progress even while the stream is busy.
                if applier.appliedTransactions == batchesBefore && Date().timeIntervalSince(lastProgress) < 1 { continue }
            case .keepalive(let end, let serverTime, let replyRequested)?:
                lastServerTime = serverTime
                // The walsender has decoded up to `end`: nothing before it is outstanding.
                receivedLSN = max(receivedLSN, end)
                if replyRequested { try flushAndReport(force: true) }
            case nil:
                break
            }
            // Commit what is complete and tell the source. Unless the stream is idle (nothing
            // arrived within the timeout), a batch in flight is left to the target and the next
            // one keeps growing: waiting for it here would stop decoding while the target
            // applies (the batch after it is sent at a COMMIT once full or `batchDelay` old, or
            // at the next idle moment). A keepalive is no sign of idleness: a PostgreSQL 15
            // walsender sends one about every transaction while it works through a backlog,
            // and flushing at each kept catch-up batches at 2–3 source transactions.
            var busy = true
            if case nil = message { busy = false }
            try flushAndReport(force: false, busy: busy)
            let caughtUp = !applier.hasPending && !applier.inTransaction
            let latency: Double
            if caughtUp {
                latency = 0
            } else {
                latency = max(0, lastServerTime.timeIntervalSince(applier.lastAppliedCommitTime ?? lastServerTime))
            }
            let progress = Progress(appliedLSN: applier.appliedLSN, receivedLSN: receivedLSN,
                                    appliedTransactions: applier.appliedTransactions, appliedChanges: applier.appliedChanges,
                                    receivedTransactions: receivedTransactions, latencySeconds: latency, lastBatchDelaySeconds: applier.lastBatchDelaySeconds, caughtUp: caughtUp)
            lastProgress = Date()
            try onProgress(progress)
            if shouldStop(progress) { return }
        }
    }

    /// A position that covers every transaction committed on the source so far, even with
    /// `synchronous_commit = off`: the insert position, once the WAL is flushed that far
    /// (logical decoding only sees flushed WAL). Cutover streams until the slot passes it.
    public static func endOfCommittedWAL(_ source: Connection, timeout: TimeInterval = 30) throws -> LSN {
        guard let insert = try source.query("SELECT pg_current_wal_insert_lsn()::text").first?.string(0).flatMap(LSN.init) else {
            throw ChangeStreamError("could not read the source's WAL position")
        }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let flush = try source.query("SELECT pg_current_wal_flush_lsn()::text").first?.string(0).flatMap(LSN.init), flush >= insert {
                return flush
            }
            if Date() > deadline { throw ChangeStreamError("the source's WAL was not flushed to \(insert) within \(Int(timeout)) s") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    // MARK: Streamed transactions (pgoutput protocol 2)

    /// The transaction whose stream block is open (between STREAM START and STREAM STOP).
    private var streamXid: UInt32?
    private var spills: [UInt32: SpillFile] = [:]

    private func handlePgOutput(_ payload: [UInt8]) throws {
        if let xid = streamXid {
            if payload.first == UInt8(ascii: "E") { streamXid = nil; return }  // STREAM STOP
            if spills[xid] == nil { spills[xid] = try SpillFile(slot: slot, xid: xid) }
            try spills[xid]!.append(payload)
            return
        }
        let message = try PgOutputMessage.decode(payload)
        switch message {
        case .streamStart(let xid, _):
            streamXid = xid
        case .streamAbort(let xid, let subxid):
            if subxid == xid || subxid == 0 {
                spills.removeValue(forKey: xid)?.remove()
            } else {
                spills[xid]?.aborted.insert(subxid)
            }
        case .streamCommit(let xid, let commitLSN, let endLSN, let commitTime):
            // Applied like any transaction, from the spill file; its RELATION messages are for
            // it alone (pgoutput tracks what it sent per streamed transaction).
            let cache = applier.relationCache()
            defer { applier.restore(cache) }
            let spill = spills.removeValue(forKey: xid)
            defer { spill?.remove() }
            try applyWithRetry(.begin(finalLSN: commitLSN, commitTime: commitTime, xid: xid))
            try spill?.forEach { stored in
                let (change, subxid) = try PgOutputMessage.decode(stored, inStream: true)
                if let subxid, spill!.aborted.contains(subxid) { return }
                try applyWithRetry(change)
                try keepAlive()
            }
            try applyWithRetry(.commit(commitLSN: commitLSN, endLSN: endLSN, commitTime: commitTime))
        default:
            try applyWithRetry(message)
        }
    }

    private func applyWithRetry(_ message: PgOutputMessage) throws {
        // Counted as the applier decides what to skip: a transaction that ends before what the
        // target had at the start was applied by an earlier run.
        switch message {
        case .begin(let finalLSN, _, _): countingTransaction = finalLSN >= alreadyApplied
        case .commit: if countingTransaction { receivedTransactions += 1; countingTransaction = false }
        default: break
        }
        do { try applier.handle(message) } catch {
            // A divergence gives the same on every try: the stream ends.
            guard applier.canRetry, !(error is ApplyDivergence) else { try? applier.recover(); throw explained(error) }
            try applier.recover()
            try applier.handle(message)
        }
    }

    /// A divergence with a wal2json older than 2.6: a row holding NaN or ±Infinity, sent as
    /// null, is not found.
    private func explained(_ error: Error) -> Error {
        guard var divergence = error as? ApplyDivergence, !exactNumerics else { return error }
        divergence.cause = "the source's wal2json is older than 2.6 and sends NaN and ±Infinity of float and numeric columns as null, "
            + "so a row holding one is not found (upgrade wal2json on the source, or migrate offline)"
        return divergence
    }

    /// While a long transaction is applied nothing is read from the walsender: a status
    /// message (nothing newly confirmed) every few seconds keeps it from ending the stream at
    /// wal_sender_timeout.
    private func keepAlive() throws {
        guard Date().timeIntervalSince(lastFeedback) > 5 else { return }
        try replication.sendStatus(written: receivedLSN, flushed: applier.durableLSN, applied: applier.durableLSN)
        lastFeedback = Date()
    }

    private func flushAndReport(force: Bool, busy: Bool = false) throws {
        func retrying<T>(_ body: () throws -> T) throws -> T {
            do { return try body() } catch {
                guard applier.canRetry, !(error is ApplyDivergence) else { try? applier.recover(); throw explained(error) }
                try applier.recover()
                try applier.flush()
                return try body()
            }
        }
        if applier.hasPending && !(busy && applier.hasInFlight) { try retrying { try applier.flush() } }
        if force || Date().timeIntervalSince(lastFeedback) > 1 {
            // Only what is durable on the target may be confirmed: the slot then frees the WAL
            // (the apply commits with synchronous_commit = off). With nothing pending and all
            // of it durable, everything received is applied (or was not ours to apply).
            // Asking waits for the batch in flight: while busy, every few seconds only.
            let ask = !(busy && applier.hasInFlight) || Date().timeIntervalSince(lastDurableCheck) > 5
            let durable = ask ? try retrying { try applier.durablePosition() } : applier.durableLSN
            if ask { lastDurableCheck = Date() }
            let idle = !applier.hasPending && !applier.inTransaction && durable >= applier.appliedLSN
            let confirmed = idle ? max(durable, receivedLSN) : durable
            try replication.sendStatus(written: max(confirmed, receivedLSN), flushed: confirmed, applied: confirmed)
            lastFeedback = Date()
        }
    }
}

/// The changes of one streamed transaction, on disk until its STREAM COMMIT: each message
/// as a 4-byte length and its bytes, written in 1 MB blocks.
final class SpillFile {
    let url: URL
    private let handle: FileHandle
    private var buffer = Data()
    /// Subtransactions rolled back (STREAM ABORT with a subxid): their changes are skipped.
    var aborted: Set<UInt32> = []

    /// One directory per process and slot (each database streams on a thread of its own).
    static func directory(slot: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("pgpreflight-spill-\(getpid())-\(slot)", isDirectory: true)
    }

    init(slot: String, xid: UInt32) throws {
        let directory = Self.directory(slot: slot)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        url = directory.appendingPathComponent("\(xid)")
        guard FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: url.path) else {
            throw ChangeStreamError("cannot create the spill file \(url.path) for a large transaction")
        }
        self.handle = handle
    }

    func append(_ payload: [UInt8]) throws {
        withUnsafeBytes(of: UInt32(payload.count).bigEndian) { buffer.append(contentsOf: $0) }
        buffer.append(contentsOf: payload)
        if buffer.count >= 1 << 20 { try flush() }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    func forEach(_ body: ([UInt8]) throws -> Void) throws {
        try flush()
        guard let reader = FileHandle(forReadingAtPath: url.path) else { throw ChangeStreamError("cannot read the spill file \(url.path)") }
        defer { try? reader.close() }
        var block = Data()
        var offset = 0
        func take(_ count: Int) throws -> Data? {
            while block.count - offset < count {
                let more = try reader.read(upToCount: max(1 << 20, count)) ?? Data()
                if more.isEmpty { return nil }
                block = block.subdata(in: offset..<block.count) + more
                offset = 0
            }
            defer { offset += count }
            return block.subdata(in: offset..<offset + count)
        }
        while let header = try take(4) {
            let length = header.reduce(0) { $0 << 8 | Int($1) }
            guard let payload = try take(length) else { throw ChangeStreamError("the spill file \(url.path) is truncated") }
            try body([UInt8](payload))
        }
    }

    func remove() {
        try? handle.close()
        try? FileManager.default.removeItem(at: url)
    }
}
