extension ConnectionFailure {
    /// A failure of another kind while opening a session (e.g. the session setup after connecting).
    public static func unclassified(_ message: String, endpoint: String) -> ConnectionFailure {
        ConnectionFailure(cause: .other, message: message, endpoint: endpoint)
    }
}
