import Foundation

// EmbedRulesTool OUTPUT.swift RULE.yaml…: writes `RuleLoader.embeddedFiles`, the rule files'
// names and bytes (base64, so that no text can end a literal), for the EmbedRules plugin.
let arguments = Array(CommandLine.arguments.dropFirst())
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: EmbedRulesTool OUTPUT.swift RULE.yaml…\n".utf8))
    exit(2)
}
var source = """
    // Generated at build time by the EmbedRules plugin from rules/*.yaml: do not edit.
    import Foundation

    extension RuleLoader {
        /// The shipped rule files, by file name, as they were in rules/ when the binary was built.
        static let embeddedFiles: [(name: String, base64: String)] = [

    """
for path in arguments.dropFirst() {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let name = URL(fileURLWithPath: path).lastPathComponent
    source += "        (\"\(name)\", \"\(data.base64EncodedString())\"),\n"
}
source += "    ]\n}\n"
try Data(source.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
