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
        lock.withLock {
            for connection in sessions.values.compactMap(\.connection) { connection.abandon() }
            sessions = [:]
        }
    }
}

extension Connection {
    /// For a process about to exit on a signal: every open session's running statement is
    /// cancelled (PQcancel; a statement waiting for a lock would otherwise wait on after the
    /// process is gone) and its socket shut down, so that nothing sent later reaches the server.
    /// The sessions are unusable afterwards; their calls fail.
    public static func abandonAll() { OpenSessions.abandonAll() }

    /// Called by `OpenSessions` under its lock, while the handle is still open.
    func abandon() {
        let socket = PQsocket(handle)
        if socket >= 0 { _ = shutdown(socket, Int32(SHUT_RDWR)) }
        cancelQuery()
    }
}
