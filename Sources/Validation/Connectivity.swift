import Foundation
import PostgresClient

/// How the server stores the user's password, for the pg_hba.conf line to propose: the
/// scram-sha-256 method cannot check a password stored as an MD5 hash (that user could no
/// longer log in), while md5 accepts both.
struct PasswordStorage: Sendable {
    /// Whether the user's stored password is an MD5 hash; nil when pg_authid cannot be read.
    var userHashIsMD5: Bool?
    /// The server's password_encryption: how passwords set from now on are stored.
    var passwordEncryption: String?
}

/// Messages and remedies for connections that could not be opened, one per cause.
enum ConnectivityAdvice {
    static func describe(_ failure: ConnectionFailure, role: ServerRole, endpoint: ConnectionString,
                         passwords: PasswordStorage? = nil) -> (message: String, remedy: String) {
        let server = role.rawValue
        // What libpq tried (a service file may name another host), else what the string says.
        let reached = failure.reached
        let host = reached?.host ?? endpoint.host, port = reached?.port ?? endpoint.port
        let user = reached?.user ?? endpoint.user ?? "the user"
        let database = reached.map(\.database).flatMap { $0.isEmpty ? nil : $0 } ?? endpoint.database ?? "postgres"
        switch failure.cause {
        case .hostNotResolved:
            return ("Cannot connect to the \(server): the host name \(host) could not be resolved (DNS)",
                    "Check the host name in the \(server) connection string, and that this machine's DNS resolves it "
                    + "(a private endpoint needs its private DNS zone, e.g. privatelink.postgres.database.azure.com, "
                    + "linked to this machine's network).")
        case .connectionRefused:
            return ("Cannot connect to the \(server): \(host):\(port) refused the connection (nothing listens there)",
                    "Check that PostgreSQL runs on \(host) port \(port), that listen_addresses includes the address this "
                    + "machine connects to (e.g. listen_addresses = '*', then restart), and that no firewall rejects "
                    + "TCP port \(port) from this machine.")
        case .timeout:
            return ("Cannot connect to the \(server): the connection to \(host):\(port) timed out",
                    "Open the network path from this machine to \(host):\(port): firewall rules, VNet peering or VPN, "
                    + "and network security group (NSG) rules that allow TCP \(port) from this machine's address.")
        case .rejectedByHBA:
            let client = firstMatch(#"host "([^"]+)""#, in: failure.message) ?? "<this machine's address>"
            let encrypted = failure.message.contains("SSL encryption") || failure.message.contains("GSS encryption")
            let mask = client.contains(":") ? "128" : "32"
            let md5 = passwords?.userHashIsMD5 == true
            let line = "\(encrypted ? "hostssl" : "host")    \(database)    \(user)    \(client)/\(mask)    \(md5 ? "md5" : "scram-sha-256")"
            let reset = "in psql, as \(user) or a superuser, SET password_encryption = 'scram-sha-256'; then \\password \(user)"
            let note: String
            if md5 {
                note = "\nThe line uses md5 because \(user)'s password is stored as an MD5 hash, which scram-sha-256 cannot check "
                    + "(md5 also accepts SCRAM passwords). To use scram-sha-256, first set \(user)'s password again as SCRAM: \(reset); "
                    + "then change md5 to scram-sha-256."
            } else if passwords?.userHashIsMD5 == false {
                note = ""
            } else if let encryption = passwords?.passwordEncryption, ["md5", "on"].contains(encryption) {
                note = "\nThe \(server) stores passwords as MD5 (password_encryption = \(encryption)), and scram-sha-256 cannot check an MD5 "
                    + "hash: if \(user)'s password is one (as a superuser: SELECT rolname FROM pg_authid WHERE rolpassword LIKE 'md5%';), "
                    + "write md5 instead of scram-sha-256, or first set the password again as SCRAM: \(reset)."
            } else {
                note = "\nscram-sha-256 checks only passwords stored as SCRAM: if \(user)'s password is an MD5 hash (as a superuser: "
                    + "SELECT rolname FROM pg_authid WHERE rolpassword LIKE 'md5%';), write md5 instead, or first set the password "
                    + "again as SCRAM: \(reset)."
            }
            if failure.message.contains("rejects connection") {
                let ssl = failure.message.contains("no encryption")
                    ? "\nIf the reject line is for unencrypted connections (hostnossl), connect with sslmode=require instead." : ""
                return ("Cannot connect to the \(server): a reject line of pg_hba.conf matches this client (\(client), user \(user), database \(database))",
                        "Add this line to the \(server)'s pg_hba.conf above the reject line, then reload (SELECT pg_reload_conf();):\n\(line)" + ssl + note)
            }
            return ("Cannot connect to the \(server): pg_hba.conf has no entry for this client (\(client), user \(user), database \(database))",
                    "Add this line to the \(server)'s pg_hba.conf, then reload (SELECT pg_reload_conf();):\n"
                    + line + note)
        case .wrongPassword:
            return ("Cannot connect to the \(server): password authentication failed for user \(user)",
                    "Check the password of \(user) (in the URI, PGPASSWORD, ~/.pgpass or a service file); on Azure, use "
                    + "the server admin login, or a Microsoft Entra access token as the password for an Entra user.")
        case .sslRequired:
            return ("Cannot connect to the \(server): it only accepts encrypted connections",
                    "Connect with sslmode=require (append ?sslmode=require to the URI, or sslmode=require to the "
                    + "connection string).")
        case .sslUnavailable:
            return ("Cannot connect to the \(server): the connection asks for SSL and the server does not offer it",
                    "Enable SSL on the \(server) (ssl = on with a certificate and key, then reload), or connect with "
                    + "sslmode=prefer.")
        case .databaseMissing:
            return ("Cannot connect to the \(server): database \(database) does not exist",
                    "Name an existing database in the \(server) connection string (its maintenance database, usually "
                    + "postgres), or create \(database).")
        case .tooManyConnections:
            return ("Cannot connect to the \(server): no connection slot is free (max_connections reached)",
                    "Close idle sessions on the \(server), or raise max_connections (restart needed); validation needs "
                    + "one session per server plus up to 4 for databases.")
        case .other where failure.message.contains("invalid database"):
            // PQescapeIdentifier's quoting (always double quotes), without a session to ask.
            let quoted = "\"" + database.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            return ("Database \(database) on the \(server) is invalid (datconnlimit = -2: a DROP DATABASE was interrupted) and cannot be connected to",
                    "Finish dropping it (its data is already partly gone): DROP DATABASE \(quoted);")
        case .other:
            return ("Cannot connect to the \(server): \(failure.message)",
                    "Try the same connection string with psql from this machine; check host, port, user, sslmode.")
        }
    }

    private static func firstMatch(_ pattern: String, in text: String) -> String? {
        guard let regex = try? NSRegularExpression(pattern: pattern),
              let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
              let range = Range(match.range(at: 1), in: text) else { return nil }
        return String(text[range])
    }
}
