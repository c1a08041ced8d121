import CLibPQ
import Foundation

/// Statements sent in one round trip with libpq's pipeline mode: the change-stream applier
/// sends a whole batch of prepared INSERT/UPDATE/DELETE without waiting for each answer (its
/// COMMIT follows once their affected-row counts were checked).
public final class PipelineBatch {
    fileprivate enum Item {
        case prepare(name: String, sql: String, types: [UInt32])
        case execute(name: String, values: [SQLValue])
        case statement(sql: String, values: [SQLValue])
    }
    fileprivate var items: [Item] = []

    /// `types`: the parameters' type OIDs (0 or none: inferred by the server).
    public func prepare(_ name: String, _ sql: String, types: [UInt32] = []) { items.append(.prepare(name: name, sql: sql, types: types)) }
    public func execute(_ name: String, _ values: [SQLValue]) { items.append(.execute(name: name, values: values)) }
    public func statement(_ sql: String, _ values: [SQLValue] = []) { items.append(.statement(sql: sql, values: values)) }
    public var count: Int { items.count }
}

extension Connection {
    /// Sends every statement the batch holds in pipeline mode, then waits for all results.
    /// Throws the first error; statements after it were skipped by the server.
    /// Returns the affected-row counts of the statements, in order (nil for prepares).
    @discardableResult
    public func pipeline(_ build: (PipelineBatch) throws -> Void) throws -> [Int?] {
        try pipelineSend(build)
        return try pipelineCollect()
    }

    /// The first half of `pipeline`: sends the batch (and a sync) and returns without waiting
    /// for the server, which works through it meanwhile. `pipelineCollect` must follow before
    /// anything else is sent on the connection.
    public func pipelineSend(_ build: (PipelineBatch) throws -> Void) throws {
        let batch = PipelineBatch()
        try build(batch)
        guard PQenterPipelineMode(handle) == 1 else { throw ClientError("could not enter pipeline mode: \(lastErrorMessage)") }
        do {
            for item in batch.items {
                let sent: Int32
                switch item {
                case .prepare(let name, let sql, let types):
                    sent = types.withUnsafeBufferPointer { PQsendPrepare(handle, name, sql, Int32(types.count), $0.baseAddress) }
                case .execute(let name, let values):
                    sent = withParameterArrays(values) { _, pointers, lengths, formats in
                        PQsendQueryPrepared(handle, name, Int32(values.count), pointers, lengths, formats, 0)
                    }
                case .statement(let sql, let values):
                    sent = withParameterArrays(values) { types, pointers, lengths, formats in
                        PQsendQueryParams(handle, sql, Int32(values.count), types, pointers, lengths, formats, 0)
                    }
                }
                guard sent == 1 else { throw ClientError("pipeline send failed: \(lastErrorMessage)") }
            }
            guard PQpipelineSync(handle) == 1 else { throw ClientError("pipeline sync failed: \(lastErrorMessage)") }
        } catch {
            PQexitPipelineMode(handle)
            throw error
        }
    }

    /// The second half of `pipeline`: waits for every result of the batch `pipelineSend`
    /// sent, leaves pipeline mode. Throws the first error; statements after it were skipped.
    @discardableResult
    public func pipelineCollect() throws -> [Int?] {
        defer { PQexitPipelineMode(handle) }
        var counts: [Int?] = []
        var firstError: Error?
        // Each statement yields its result(s) then a NULL; the sync yields PGRES_PIPELINE_SYNC.
        while true {
            guard let result = PQgetResult(handle) else {
                if PQstatus(handle) != CONNECTION_OK { throw ClientError("connection lost in pipeline: \(lastErrorMessage)") }
                continue
            }
            let status = PQresultStatus(result)
            if status == PGRES_PIPELINE_SYNC { PQclear(result); break }
            if status == PGRES_PIPELINE_ABORTED { PQclear(result); counts.append(nil); continue }
            do {
                let consumed = try consume(result, expecting: [PGRES_COMMAND_OK, PGRES_TUPLES_OK])
                counts.append(consumed.affectedRows)
            } catch {
                if firstError == nil { firstError = error }
                counts.append(nil)
            }
        }
        if let firstError { throw firstError }
        return counts
    }
}
