import CLibPQ
import Foundation

/// Every session this process has open, so that a signal can stop them all at once
/// (`Connection.abandonAll()`), whichever part of the tool opened them.
enum OpenSessions {
    private static let lock = NSLock()
    private struct Weak { weak var connection: Connection? }
    nonisolated(unsafe) private static var sessions: [ObjectIdentifier: Weak] = [:]

    static func add(_ connection: Connection) {
        lock.withLock {
            if sessions.count > 64 { sessions = sessions.filter { $0.value.connection != nil } }
            sessions[ObjectIdentifier(connection)] = Weak(connection: connection)
        }
    }

    /// Under the registry's lock, so that `abandonAll` never touches a handle PQfinish freed.
    static func remove(_ connection: Connection, then body: () -> Void) {
        lock.withLock {
            sessions[ObjectIdentifier(connection)] = nil
            body()
        }
    }

    static func abandonAll() {
        let open = lock.withLock {
            let open = sessions.values.compactMap(\.connection)
            for connection in open { connection.shutDownSocket() }
            sessions = [:]
            return open
        }
        // PQcancel is a round trip to each server: outside the lock, all at once, and waited
        // for a few seconds only (a server that does not answer must not hold up the exit).
        let done = DispatchGroup()
        for connection in open {
            DispatchQueue.global().async(group: done) { connection.cancelQuery() }
        }
        _ = done.wait(timeout: .now() + 5)
    }
}

extension Connection {
    /// For a process about to exit on a signal: every open session's running statement is
    /// cancelled (PQcancel; a statement waiting for a lock would otherwise wait on after the
    /// process is gone) and its socket shut down, so that nothing sent later reaches the server.
    /// The sessions are unusable afterwards; their calls fail.
    public static func abandonAll() { OpenSessions.abandonAll() }

    /// Called by `OpenSessions` under its lock, while the handle is still open (the
    /// descriptor stays open: libpq's later calls fail instead of reaching another file).
    func shutDownSocket() {
        let socket = PQsocket(handle)
        if socket >= 0 { _ = shutdown(socket, Int32(SHUT_RDWR)) }
    }
}
