#!/usr/bin/env python3
"""Structural checks of the GitHub Actions workflows in .github/workflows/*.yml (and *.yaml).

Run with a Python that has PyYAML, e.g. the emulator's virtualenv:

    localstack/.venv/bin/python scripts/check-workflows.py [WORKFLOW ...]

For each workflow: it parses (yaml.safe_load); it has `on` and `jobs`; every job has `runs-on`
and `steps` (or `uses`, a reusable workflow); every step has `uses` or `run`; every `needs`
names a job of the same workflow and the `needs` graph has no cycle; every action is pinned
with @ref. deploy.yml must also have the jobs backend, promote, frontend and security.

Prints one line per problem, then `workflows: N passed, M failed`; exits 1 on any failure.
"""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
REQUIRED_JOBS = {"deploy.yml": ["backend", "promote", "frontend", "security"]}


def trigger(doc):
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    if "on" in doc:
        return doc["on"]
    return doc.get(True)


def as_list(value):
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def check(path):
    problems = []
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        return [f"does not parse: {e}"]
    if not isinstance(doc, dict):
        return ["is not a mapping"]

    if "on" not in doc and True not in doc:
        problems.append("has no `on`")
    elif not trigger(doc):
        problems.append("has an empty `on`")

    jobs = doc.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        return problems + ["has no `jobs`"]

    for name, job in jobs.items():
        where = f"job {name}"
        if not isinstance(job, dict):
            problems.append(f"{where} is not a mapping")
            continue
        if "uses" in job:  # a reusable workflow call: no runs-on, no steps
            if "steps" in job:
                problems.append(f"{where} has both `uses` and `steps`")
        else:
            if "runs-on" not in job:
                problems.append(f"{where} has no `runs-on`")
            steps = job.get("steps")
            if not isinstance(steps, list) or not steps:
                problems.append(f"{where} has no `steps`")
                steps = []
            for i, step in enumerate(steps, 1):
                label = f"{where} step {i}"
                if isinstance(step, dict) and step.get("name"):
                    label += f" ({step['name']})"
                if not isinstance(step, dict):
                    problems.append(f"{label} is not a mapping")
                elif ("uses" in step) == ("run" in step):
                    problems.append(f"{label} needs exactly one of `uses` and `run`")
                elif "uses" in step:
                    uses = str(step["uses"])
                    if not uses.startswith(("./", "docker://")) and "@" not in uses:
                        problems.append(f"{label} uses {uses} without a pinned @ref")
        for need in as_list(job.get("needs")):
            if need not in jobs:
                problems.append(f"{where} needs {need!r}, which is not a job here")

    # The needs graph must be acyclic.
    state = {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            problems.append("needs cycle: " + " -> ".join(trail + [name]))
            return
        state[name] = "open"
        job = jobs.get(name)
        for need in as_list(job.get("needs") if isinstance(job, dict) else None):
            if need in jobs:
                visit(need, trail + [name])
        state[name] = "done"

    for name in jobs:
        visit(name, [])

    for name in REQUIRED_JOBS.get(path.name, []):
        if name not in jobs:
            problems.append(f"has no job {name!r}")
    return problems


def main(argv):
    if argv:
        paths = [Path(a) for a in argv]
    else:
        paths = sorted(list(WORKFLOWS.glob("*.yml")) + list(WORKFLOWS.glob("*.yaml")))
    if not paths:
        print(f"no workflows found in {WORKFLOWS}")
        print("workflows: 0 passed, 1 failed")
        return 1
    passed = failed = 0
    for path in paths:
        try:
            shown = path.resolve().relative_to(ROOT)
        except ValueError:
            shown = path
        problems = check(path)
        if problems:
            failed += 1
            for p in problems:
                print(f"FAIL {shown}: {p}")
        else:
            passed += 1
            print(f"ok   {shown}")
    print(f"workflows: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
