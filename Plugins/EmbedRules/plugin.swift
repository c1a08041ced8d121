import Foundation
import PackagePlugin

/// Compiles the package's `rules/*.yaml` into the target as Swift source, so the binary carries
/// its rules wherever it is copied; `rules/` stays the only place they are written.
@main
struct EmbedRules: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let rules = context.package.directoryURL.appending(path: "rules")
        let names = try FileManager.default.contentsOfDirectory(atPath: rules.path)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        let inputs = names.map { rules.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedRules.swift")
        return [.buildCommand(displayName: "Embedding \(names.count) rules from rules/",
                              executable: try context.tool(named: "EmbedRulesTool").url,
                              arguments: [output.path] + inputs.map(\.path),
                              inputFiles: inputs, outputFiles: [output])]
    }
}
