import Foundation

/// A queue of blocking jobs run by N threads of their own (libpq calls block, so they stay off
/// Swift's cooperative pool). Jobs may enqueue more jobs; `run` returns when the queue is
/// empty and nothing is running, or after the first failure or a stop.
final class WorkQueue<Job>: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var running = 0
    /// While held, an empty queue with nothing running waits for more jobs instead of ending.
    private var holds = 0
    private var stopped = false
    private(set) var firstError: Error?

    init(_ initial: [Job]) { jobs = initial }

    func push(_ job: Job, front: Bool = false) {
        condition.withLock {
            if front { jobs.insert(job, at: 0) } else { jobs.append(job) }
            condition.broadcast()
        }
    }

    func stop(_ error: Error?) {
        condition.withLock {
            if firstError == nil, let error { firstError = error }
            stopped = true
            condition.broadcast()
        }
    }

    var isStopped: Bool { condition.withLock { stopped } }

    func hold() { condition.withLock { holds += 1 } }
    func release() { condition.withLock { holds -= 1; condition.broadcast() } }

    private func next() -> Job? {
        condition.withLock {
            while true {
                if stopped { return nil }
                if !jobs.isEmpty { running += 1; return jobs.removeFirst() }
                if running == 0 && holds == 0 { return nil }
                condition.wait()
            }
        }
    }

    private func done() { condition.withLock { running -= 1; condition.broadcast() } }

    /// Runs the jobs on `workers` threads; `worker` makes the per-thread state (connections),
    /// `perform` runs a job with it, `finish` cleans it up. Throws the first job error.
    func run<State>(workers: Int, makeState: @escaping @Sendable () -> State,
                    perform: @escaping @Sendable (inout State, Job) throws -> Void,
                    finish: @escaping @Sendable (inout State) -> Void) throws {
        let group = DispatchGroup()
        for index in 0..<max(1, workers) {
            group.enter()
            let thread = Thread { [self] in
                var state = makeState()
                while let job = next() {
                    do { try perform(&state, job) } catch { stop(error) }
                    done()
                }
                finish(&state)
                group.leave()
            }
            thread.name = "pgpreflight-worker-\(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        if let firstError { throw firstError }
    }
}
