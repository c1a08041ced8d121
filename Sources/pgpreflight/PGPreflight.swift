import ArgumentParser
import Validation

@main
struct PGPreflight: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgpreflight",
        abstract: "Tells whether a PostgreSQL database can move to a managed server, and moves it.",
        discussion: "Exit codes: 0 nothing Failed, 1 something Failed, 2 the tool could not do its job.",
        version: toolVersion,
        subcommands: [Demo.self, Migrate.self, Status.self, Cancel.self])
}
