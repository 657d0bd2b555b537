//! `docs/reference/json.md` against the binary: each command's `--output json` result, run here
//! against the emulator, has exactly the fields (nested ones included) of its example there.
//! With `JSON_EXAMPLES_OUT=FILE` the test writes what it saw, to refresh the examples from.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::Fixture;

const DOC: &str = include_str!("../../docs/reference/json.md");

/// Every field path of `v`: `a`, `a.b`, `list[].c` (each element of an array), sorted.
fn paths(v: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, at: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, inner) in map {
                    let path = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    out.insert(path.clone());
                    walk(inner, &path, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{at}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}

/// The examples in the doc: each `### \`bgcloud …\`` heading's first ```json block.
fn examples() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut sections = DOC.split("\n### `").skip(1);
    for section in sections.by_ref() {
        let Some((name, rest)) = section.split_once('`') else {
            continue;
        };
        let Some(block) = rest.split("```json\n").nth(1) else {
            continue;
        };
        let json = block.split("\n```").next().unwrap_or_default();
        let value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("docs/reference/json.md, {name}: not JSON: {e}"));
        out.insert(name.to_string(), value);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn each_commands_json_has_the_fields_its_documented_example_shows() {
    let fx = Fixture::v1_v2().await;
    let site = |v: &str| fx.site(v);
    let (s1, s2) = (site("1"), site("2"));
    let init: Vec<String> = [
        "init",
        "--load-balancer",
        &format!("{}-alb", fx.stack.spec.name),
        "--state-bucket",
        &fx.stack.state_bucket,
        "--repository",
        &fx.stack.repository,
        "--force",
    ]
    .map(String::from)
    .to_vec();
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "bgcloud deploy --dry-run",
            vec!["deploy", "--image", "v1", "--dry-run"],
        ),
        ("bgcloud deploy", vec!["deploy", "--image", "v1"]),
        ("bgcloud status", vec!["status"]),
        (
            "bgcloud shift",
            vec!["shift", "--to", "blue", "--weight", "10"],
        ),
        ("bgcloud promote", vec!["promote"]),
        ("bgcloud rollback --dry-run", vec!["rollback", "--dry-run"]),
        ("bgcloud rollback", vec!["rollback"]),
        ("bgcloud sync --dry-run", vec!["sync", "--dry-run"]),
        ("bgcloud sync", vec!["sync"]),
        ("bgcloud history", vec!["history", "--limit", "2"]),
        ("bgcloud lock status", vec!["lock", "status"]),
        ("bgcloud lock release", vec!["lock", "release", "--force"]),
        (
            "bgcloud frontend deploy",
            vec!["frontend", "deploy", &s1, "--release-id", "r1"],
        ),
        (
            "bgcloud frontend deploy --dry-run",
            vec!["frontend", "deploy", &s2, "--release-id", "r2", "--dry-run"],
        ),
        ("bgcloud frontend releases", vec!["frontend", "releases"]),
        (
            "bgcloud frontend prune",
            vec!["frontend", "prune", "--keep", "1"],
        ),
        (
            "bgcloud idle stop --dry-run",
            vec!["idle", "stop", "--dry-run"],
        ),
        ("bgcloud idle stop", vec!["idle", "stop"]),
        ("bgcloud idle start", vec!["idle", "start"]),
        ("an error", vec!["deploy", "--image", "no-such-tag"]),
        // Last: it rewrites the config the others read.
        ("bgcloud init", init.iter().map(String::as_str).collect()),
    ];
    // The frontend rollback needs a second release first, the idle commands a second colour.
    let mut seen = BTreeMap::new();
    for (name, args) in &runs {
        if *name == "bgcloud frontend releases" {
            fx.bgcloud(&["frontend", "deploy", &s2, "--release-id", "r2"])
                .ok();
            let out = fx.bgcloud(&["frontend", "rollback"]).json();
            seen.insert("bgcloud frontend rollback".to_string(), out);
        }
        if *name == "bgcloud idle stop --dry-run" {
            // Both colours deployed: the idle one has something to stop.
            fx.bgcloud(&["deploy", "--image", "v2"]).ok();
        }
        let out = fx
            .bgcloud(&[&args[..], &["--output", "json"]].concat())
            .run();
        let value: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: not one JSON document ({e}): {}", out.stdout));
        seen.insert(name.to_string(), value);
    }
    if let Some(file) = std::env::var_os("JSON_EXAMPLES_OUT") {
        std::fs::write(file, serde_json::to_string_pretty(&seen).unwrap()).unwrap();
    }
    let documented = examples();
    let mut wrong = Vec::new();
    for (name, value) in &seen {
        match documented.get(name) {
            None => wrong.push(format!("{name}: no example (a `### \\`{name}\\`` section)")),
            Some(doc) if paths(doc) != paths(value) => {
                let (doc, real) = (paths(doc), paths(value));
                wrong.push(format!(
                    "{name}: documented but not output {:?}; output but not documented {:?}",
                    doc.difference(&real).collect::<Vec<_>>(),
                    real.difference(&doc).collect::<Vec<_>>()
                ));
            }
            Some(_) => {}
        }
    }
    for name in documented.keys().filter(|n| !seen.contains_key(*n)) {
        wrong.push(format!("{name}: documented, but this test does not run it"));
    }
    assert!(
        wrong.is_empty(),
        "docs/reference/json.md is not what the commands print (rerun with \
         JSON_EXAMPLES_OUT=/tmp/out.json to see it):\n{}",
        wrong.join("\n")
    );
}
