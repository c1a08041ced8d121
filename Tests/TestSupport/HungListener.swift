import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP listener on 127.0.0.1 that accepts connections and never sends a byte: a hung server.
public final class HungListener: @unchecked Sendable {
    public let port: Int
    private let fd: Int32
    private var accepted: [Int32] = []
    private let lock = NSLock()
    private var stopped = false

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 64) == 0 else { throw HungListenerError() }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                lock.withLock { if stopped { close(client) } else { accepted.append(client) } }
            }
        }
        thread.start()
    }

    /// Connections accepted so far.
    public var acceptedCount: Int { lock.withLock { accepted.count + closedPeers } }
    private var closedPeers = 0

    /// Accepted connections whose client has not closed its end yet.
    public var openConnections: Int {
        lock.withLock {
            accepted.removeAll { fd in
                // Drain what the client sent (its startup packet): end of stream or a reset
                // means it closed its end; "would block" means it is still there.
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                    if n > 0 { continue }
                    if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return false }
                    close(fd)
                    closedPeers += 1
                    return true
                }
            }
            return accepted.count
        }
    }

    public func stop() {
        lock.withLock {
            stopped = true
            accepted.forEach { close($0) }
            accepted = []
        }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

struct HungListenerError: Error, CustomStringConvertible {
    var description: String { "hung listener: cannot listen on 127.0.0.1" }
}
