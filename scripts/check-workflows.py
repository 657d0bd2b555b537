#!/usr/bin/env python3
"""Structural checks of the GitHub Actions workflows in .github/workflows/*.yml (and *.yaml), and
of the composite action in action.yml.

Run with a Python that has PyYAML, e.g. the emulator's virtualenv:

    localstack/.venv/bin/python scripts/check-workflows.py [WORKFLOW-OR-ACTION ...]

For each workflow: it parses (yaml.safe_load); it has `on` and `jobs`; every job has `runs-on`
and `steps` (or `uses`, a reusable workflow); every step has `uses` or `run`; every `needs`
names a job of the same workflow and the `needs` graph has no cycle. deploy.yml must also have
the jobs changes, security, web-build, backend, promote, rollback and frontend; release.yml the
jobs check, build and publish. action.yml is a composite action whose steps each have `uses` or
`run`, every `run` with its `shell`.

Security policy (what zizmor checks too, and what it cannot know about this project):
  - every action (and reusable workflow) is pinned to a full 40-hex commit SHA, with its release
    tag in a comment on the same line (`uses: owner/repo@<sha> # v1.2.3`); one action, one SHA;
    a `docker://` image is pinned by `@sha256:` digest;
  - every actions/checkout step sets `persist-credentials: false`;
  - the workflow-level `permissions` is `{}` or `contents: read`, and every job sets its own;
    no `write-all` / `read-all`;
  - `id-token: write` only on jobs that use aws-actions/configure-aws-credentials (and every such
    job has it) or actions/attest-build-provenance (the Sigstore signature), and those jobs run
    no package manager or toolchain set-up (npm, cargo, pip, actions/setup-*): build in a job
    without the token and hand the result on as an artifact;
  - release.yml uses no cache (an action with "cache" in its name, or a `cache:` input): what it publishes is
    built from nothing, so a poisoned cache cannot end up in a signed release;
  - no `${{ }}` expression inside a `run:` script: values go through `env:`;
  - every artifact a job downloads by name is uploaded by a job it needs (directly or not); one
    downloaded by a job behind an `environment` (an approval can wait 30 days) is kept for at
    least 31 days (`retention-days`);
  - no inline `# zizmor: ignore[...]` for unpinned-uses, artipacked or excessive-permissions
    (those are fixed, not ignored); any other inline ignore gives its reason in the same comment;
  - deploy.yml: the workflow-level concurrency group depends on `inputs.action`, so a rollback
    does not queue behind a release waiting for its approval.

Prints one line per problem, then `workflows: N passed, M failed` (action.yml counted among them);
exits 1 on any failure.
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
REQUIRED_JOBS = {
    "deploy.yml": [
        "changes",
        "security",
        "web-build",
        "backend",
        "promote",
        "rollback",
        "frontend",
    ],
    "release.yml": ["check", "build", "publish"],
}
ACTION = ROOT / "action.yml"

SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@\s]+)?@[0-9a-f]{40}$")
TAG_COMMENT = re.compile(r"^v?\d+(\.\d+){1,2}([-+][0-9A-Za-z.-]+)?$")
USES_LINE = re.compile(r"""^\s*(?:-\s+)?uses:\s*["']?([^"'\s#]+)["']?\s*(?:#\s*(.*?))?\s*$""")
ZIZMOR_IGNORE = re.compile(r"zizmor:\s*ignore\[([^\]]*)\]")
NEVER_IGNORED = {"unpinned-uses", "artipacked", "excessive-permissions"}
# Commands that run third-party code at install or build time (or set a toolchain up for it).
BUILD_COMMAND = re.compile(
    r"(^|[\s;&|(`])"
    r"(npm|npx|yarn|pnpm|bun|cargo|rustup|pip3?|pipx|uv|poetry|gem|bundle|mvn|gradle)(\s|$)"
    r"|(^|[\s;&|(`])go\s+(build|install|run|get|generate)\b"
)
OIDC_ACTION = "aws-actions/configure-aws-credentials"
ATTEST_ACTION = "actions/attest-build-provenance"
APPROVAL_WAIT_DAYS = 30


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
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        return [f"does not parse: {e}"]
    if not isinstance(doc, dict):
        return ["is not a mapping"]
    if path.resolve() == ACTION:
        return check_action(path, doc)
    problems = []

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
            if not str(job["uses"]).startswith("./") and not SHA_PIN.match(str(job["uses"])):
                problems.append(f"{where} calls {job['uses']}, not pinned to a full commit SHA")
        else:
            if "runs-on" not in job:
                problems.append(f"{where} has no `runs-on`")
            steps = job.get("steps")
            if not isinstance(steps, list) or not steps:
                problems.append(f"{where} has no `steps`")
                steps = []
            for i, step in enumerate(steps, 1):
                problems += check_step(f"{where} step {i}", step)
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

    text = path.read_text(encoding="utf-8")
    problems += check_pin_comments(text, jobs)
    problems += check_permissions(doc, jobs)
    problems += check_artifacts(jobs)
    problems += check_ignores(text)
    if path.name == "release.yml":
        for name, job in jobs.items():
            for s in job_steps(job):
                w = s.get("with") if isinstance(s.get("with"), dict) else {}
                # actions/cache, Swatinem/rust-cache, sccache-action, setup-* with `cache:`
                if "cache" in action_name(s.get("uses", "")).lower() or "cache" in w:
                    problems.append(
                        f"job {name} uses a cache: a release is built from nothing (cache poisoning)"
                    )
    if path.name == "deploy.yml":
        concurrency = doc.get("concurrency") or ""
        group = str(concurrency.get("group", "") if isinstance(concurrency, dict) else concurrency)
        if group and "inputs.action" not in group:
            problems.append(
                "the workflow-level concurrency group does not depend on inputs.action: a rollback "
                "would queue behind a release waiting for its approval"
            )
    return problems


def check_step(label, step, composite=False):
    """One step of a job or of the composite action: `uses` (pinned) or `run` (no expressions;
    in a composite action, with its `shell`)."""
    if isinstance(step, dict) and step.get("name"):
        label += f" ({step['name']})"
    if not isinstance(step, dict):
        return [f"{label} is not a mapping"]
    if ("uses" in step) == ("run" in step):
        return [f"{label} needs exactly one of `uses` and `run`"]
    if "uses" in step:
        return check_step_uses(label, step)
    problems = []
    if composite and "shell" not in step:
        problems.append(f"{label} has no `shell` (a composite action's run step needs one)")
    if "${{" in str(step["run"]):
        problems.append(
            f"{label} has a ${{{{ }}}} expression in `run:`: pass the value through `env:`"
        )
    return problems


def check_action(path, doc):
    """action.yml (parsed as `doc`): a composite action, its steps held to the workflows' rules."""
    problems = []
    for key in ("name", "description", "inputs", "runs"):
        if key not in doc:
            problems.append(f"has no `{key}`")
    runs = doc.get("runs") if isinstance(doc.get("runs"), dict) else {}
    if runs.get("using") != "composite":
        problems.append("is not a composite action (`runs.using: composite`)")
    steps = runs.get("steps")
    if not isinstance(steps, list) or not steps:
        return problems + ["has no `runs.steps`"]
    for i, step in enumerate(steps, 1):
        problems += check_step(f"step {i}", step, composite=True)
    text = path.read_text(encoding="utf-8")
    problems += check_pin_comments(text, {"action": {"steps": steps}})
    problems += check_ignores(text)
    return problems


def job_steps(job):
    steps = job.get("steps") if isinstance(job, dict) else None
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def action_name(uses):
    # owner/repo[/path]@ref -> owner/repo[/path]
    return str(uses).split("@", 1)[0]


def check_step_uses(label, step):
    problems = []
    uses = str(step["uses"])
    if uses.startswith("./"):
        return problems
    if uses.startswith("docker://"):
        if "@sha256:" not in uses:
            problems.append(f"{label} uses {uses}, not pinned by @sha256: digest")
        return problems
    if not SHA_PIN.match(uses):
        problems.append(f"{label} uses {uses}, not pinned to a full 40-hex commit SHA")
    if action_name(uses) == "actions/checkout":
        with_ = step.get("with") if isinstance(step.get("with"), dict) else {}
        if with_.get("persist-credentials") is not False:
            problems.append(
                f"{label} checks out without `persist-credentials: false` (the token would stay "
                "in .git/config for every later step)"
            )
    return problems


def check_pin_comments(text, jobs):
    # Comments are gone after yaml.safe_load: read the `uses:` lines themselves.
    problems = []
    seen = {}  # action -> (sha, comment, line)
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        m = USES_LINE.match(line)
        if not m or line.lstrip().startswith("#"):
            continue
        uses, comment = m.group(1), (m.group(2) or "").strip()
        lines.append(uses)
        if uses.startswith(("./", "docker://")):
            continue
        tag = comment.split()[0] if comment else ""
        if not TAG_COMMENT.match(tag):
            problems.append(
                f"line {number}: {uses} has no release tag comment (`# v1.2.3`) naming its SHA"
            )
        name, _, ref = uses.partition("@")
        if name in seen and (seen[name][0], seen[name][1]) != (ref, tag):
            problems.append(
                f"line {number}: {name} pinned as {ref} # {tag}, but as "
                f"{seen[name][0]} # {seen[name][1]} on line {seen[name][2]}"
            )
        seen.setdefault(name, (ref, tag, number))
    parsed = []
    for job in jobs.values():
        if isinstance(job, dict) and "uses" in job:
            parsed.append(str(job["uses"]))
        parsed += [str(s["uses"]) for s in job_steps(job) if "uses" in s]
    if sorted(parsed) != sorted(lines):
        problems.append(
            "some `uses:` are not written one per line as `uses: owner/repo@sha # vX.Y.Z` "
            "(the line check saw %d, the parser %d)" % (len(lines), len(parsed))
        )
    return problems


def check_permissions(doc, jobs):
    problems = []
    if "permissions" not in doc:
        problems.append("has no workflow-level `permissions` (set `{}` or `contents: read`)")
    elif doc["permissions"] not in ({}, {"contents": "read"}):
        problems.append(
            f"workflow-level permissions {doc['permissions']!r}: only `{{}}` or `contents: read`; "
            "jobs ask for more themselves"
        )
    for name, job in jobs.items():
        if not isinstance(job, dict):
            continue
        where = f"job {name}"
        perms = job.get("permissions")
        if perms is None:
            problems.append(f"{where} has no `permissions` of its own")
            perms = {}
        if isinstance(perms, str):
            problems.append(f"{where} has permissions {perms!r}: list each scope it needs")
            perms = {}
        steps = job_steps(job)
        uses_oidc = any(action_name(s.get("uses", "")) == OIDC_ACTION for s in steps)
        attests = any(action_name(s.get("uses", "")) == ATTEST_ACTION for s in steps)
        has_token = perms.get("id-token") == "write"
        if has_token and not (uses_oidc or attests):
            problems.append(
                f"{where} has id-token: write but uses neither {OIDC_ACTION} nor {ATTEST_ACTION}"
            )
        if uses_oidc and not has_token:
            problems.append(f"{where} uses {OIDC_ACTION} without id-token: write")
        if has_token:
            for i, s in enumerate(steps, 1):
                if "run" in s and BUILD_COMMAND.search(str(s["run"])):
                    problems.append(
                        f"{where} step {i} runs a package manager or build tool in a job that can "
                        "mint the OIDC token: build in a job without id-token and pass an artifact"
                    )
                if action_name(s.get("uses", "")).startswith("actions/setup-"):
                    problems.append(
                        f"{where} step {i} sets a toolchain up in a job that can mint the OIDC "
                        "token: build in a job without id-token and pass an artifact"
                    )
    return problems


def ancestors(jobs, name, acc=None):
    acc = set() if acc is None else acc
    job = jobs.get(name)
    for need in as_list(job.get("needs") if isinstance(job, dict) else None):
        if need in jobs and need not in acc:
            acc.add(need)
            ancestors(jobs, need, acc)
    return acc


def check_artifacts(jobs):
    problems = []
    uploads = {}  # artifact name -> [(job, retention-days)]
    for name, job in jobs.items():
        for s in job_steps(job):
            if action_name(s.get("uses", "")) == "actions/upload-artifact":
                w = s.get("with") if isinstance(s.get("with"), dict) else {}
                uploads.setdefault(str(w.get("name", "artifact")), []).append(
                    (name, w.get("retention-days"))
                )
    for name, job in jobs.items():
        if not isinstance(job, dict):
            continue
        before = ancestors(jobs, name)
        for s in job_steps(job):
            if action_name(s.get("uses", "")) != "actions/download-artifact":
                continue
            w = s.get("with") if isinstance(s.get("with"), dict) else {}
            if "name" not in w:
                continue  # downloads everything: nothing to match by name
            art = str(w["name"])
            sources = [(j, r) for j, r in uploads.get(art, []) if j in before]
            if not sources:
                problems.append(
                    f"job {name} downloads artifact {art!r}, which no job it needs uploads"
                )
                continue
            if job.get("environment"):
                for j, r in sources:
                    if not isinstance(r, int) or r <= APPROVAL_WAIT_DAYS:
                        problems.append(
                            f"job {name} (environment {job['environment']!r}: an approval can "
                            f"wait {APPROVAL_WAIT_DAYS} days) downloads {art!r}, which job {j} "
                            f"keeps {r if r is not None else 'the default'} days: set "
                            f"retention-days above {APPROVAL_WAIT_DAYS}"
                        )
    return problems


def check_ignores(text):
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for m in ZIZMOR_IGNORE.finditer(line):
            rules = {r.strip() for r in m.group(1).split(",") if r.strip()}
            for rule in sorted(rules & NEVER_IGNORED):
                problems.append(f"line {number}: zizmor finding {rule} is ignored: fix it instead")
            comment = line[line.index("#"):] if "#" in line else ""
            reason = re.sub(r"[^A-Za-z]", "", comment.replace(m.group(0), "").replace("zizmor", ""))
            if len(reason) < 10:
                problems.append(
                    f"line {number}: zizmor ignore without a reason in the same comment"
                )
    return problems


def main(argv):
    if argv:
        paths = [Path(a) for a in argv]
    else:
        paths = sorted(list(WORKFLOWS.glob("*.yml")) + list(WORKFLOWS.glob("*.yaml"))) + [ACTION]
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
