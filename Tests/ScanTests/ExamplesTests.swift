import Foundation
import LocalServers
import Testing
import TestSupport

/// examples/kubernetes and examples/github-actions: valid manifests (kubernetes-validate, the
/// schemas of Kubernetes 1.37, strict), --shard from JOB_COMPLETION_INDEX / the matrix, a merge
/// naming every shard, and only options the tool has.
@Suite struct ExamplesTests {
    @Test func kubernetesAndGitHubActionsExamplesAreValid() throws {
        let binary = try #require(CLI.binary, "build the pgpreflight executable first")
        let root = TestServers.projectRoot
        let output = try LocalServer.run(["/usr/bin/env", "python3", root.appendingPathComponent("examples/check-examples.py").path, binary.path],
                                         environment: ProcessInfo.processInfo.environment.merging(["PYTHONPATH": root.appendingPathComponent(".deps/python").path]) { $1 })
        #expect(output.contains("examples: 5 files OK"), "\(output)")
    }
}
