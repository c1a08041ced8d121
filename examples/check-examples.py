#!/usr/bin/env python3
"""Checks the fleet-scan examples: the Kubernetes manifests against the Kubernetes schemas
(kubernetes-validate, offline, --strict), that the Indexed Jobs turn JOB_COMPLETION_INDEX into
--shard I/N with N = completions and the merge names every shard, that the GitHub Actions
matrix does the same, and that every option they pass exists in `pgpreflight scan --help`.

usage: check-examples.py PGPREFLIGHT_BINARY   (PYTHONPATH must reach kubernetes_validate)
Prints one line per problem and exits 1 if any, else prints "examples: N files OK".
"""
import glob, os, re, subprocess, sys
import yaml

here = os.path.dirname(os.path.abspath(__file__))
binary = sys.argv[1]
problems = []

manifests = sorted(glob.glob(os.path.join(here, "kubernetes", "*.yaml")))
validate = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", *manifests],
                          capture_output=True, text=True)
if validate.returncode != 0:
    problems.append("kubernetes-validate: " + (validate.stdout + validate.stderr).strip().replace("\n", " | "))

def jobs(document):
    if document.get("kind") == "Job":
        yield document["metadata"]["name"], document["spec"]
    elif document.get("kind") == "CronJob":
        yield document["metadata"]["name"], document["spec"]["jobTemplate"]["spec"]

commands = []
for path in manifests:
    for document in yaml.safe_load_all(open(path)):
        for name, spec in jobs(document or {}):
            args = " ".join(" ".join(c.get("args", []) + c.get("command", [])) for c in spec["template"]["spec"]["containers"])
            commands.append(args)
            if "scan merge" in args:
                shards = len(re.findall(r"shard-\d", args))
                if shards != 4:
                    problems.append(f"{path}: {name}: the merge names {shards} shard folders, not 4")
            elif "pgpreflight scan" in args:
                if spec.get("completionMode") != "Indexed":
                    problems.append(f"{path}: {name}: completionMode is not Indexed")
                if "backoffLimitPerIndex" not in spec:
                    problems.append(f"{path}: {name}: no backoffLimitPerIndex")
                m = re.search(r'--shard "\$\{JOB_COMPLETION_INDEX\}/(\d+)"', args)
                if not m:
                    problems.append(f"{path}: {name}: --shard does not come from JOB_COMPLETION_INDEX")
                elif int(m.group(1)) != spec.get("completions") or spec.get("parallelism", 1) > spec.get("completions"):
                    problems.append(f"{path}: {name}: --shard .../{m.group(1)} but completions is {spec.get('completions')}")

workflow_path = os.path.join(here, "github-actions", "nightly-scan.yml")
workflow = yaml.safe_load(open(workflow_path))
matrix = workflow["jobs"]["scan"]["strategy"]["matrix"]["shard"]
scan_run = " ".join(step.get("run", "") for step in workflow["jobs"]["scan"]["steps"])
merge_run = " ".join(step.get("run", "") for step in workflow["jobs"]["merge"]["steps"])
m = re.search(r"--shard \$\{\{ matrix.shard \}\}/(\d+)", scan_run)
if not m or int(m.group(1)) != len(matrix) or matrix != list(range(len(matrix))):
    problems.append(f"{workflow_path}: the matrix {matrix} does not match --shard I/N")
if len(re.findall(r"shard-\d", merge_run)) != len(matrix):
    problems.append(f"{workflow_path}: the merge does not name every shard")
if workflow["jobs"]["merge"].get("needs") != "scan":
    problems.append(f"{workflow_path}: the merge does not wait for the scan")
commands += [scan_run, merge_run]

helps = {}
for sub in (["scan", "run"], ["scan", "merge"]):
    helps[" ".join(sub).replace("scan run", "scan")] = subprocess.run([binary, *sub, "--help"], capture_output=True, text=True).stdout
for command in commands:
    which = "scan merge" if "scan merge" in command else "scan"
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", command):
        if flag not in helps[which]:
            problems.append(f"`pgpreflight {which}` has no option {flag}")

for problem in problems:
    print(problem)
if problems:
    sys.exit(1)
print(f"examples: {len(manifests) + 1} files OK")
