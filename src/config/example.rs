//! The annotated example config (`docs/reference/bgcloud.example.toml`) against the parser: it
//! parses, it names every key the parser accepts (set or commented out), and every key it names
//! is one the parser accepts (as [`super::keys`] reads them from the `Raw*` types).

use std::collections::BTreeSet;
use std::path::Path;

use super::Config;

const EXAMPLE: &str = include_str!("../../docs/reference/bgcloud.example.toml");

/// Every key path the parser accepts, sections included.
fn accepted() -> BTreeSet<String> {
    super::keys::accepted().into_keys().collect()
}

/// The keys the example names, set or commented out (`# key = …`), as `section.key`.
fn named() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in EXAMPLE.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            section = header.to_string();
            continue;
        }
        let text = line.strip_prefix('#').map_or(line, str::trim_start);
        let Some((key, _)) = text.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            continue;
        }
        keys.insert(if section.is_empty() {
            key.to_string()
        } else {
            format!("{section}.{key}")
        });
    }
    keys
}

#[test]
fn the_example_parses() {
    Config::parse(EXAMPLE, Path::new("bgcloud.example.toml"))
        .unwrap_or_else(|e| panic!("docs/reference/bgcloud.example.toml: {e}"));
}

#[test]
fn the_example_names_every_key_the_parser_accepts_and_no_other() {
    let accepted = accepted();
    // Sections are keys of their parent too; the example names them as headers.
    let sections: BTreeSet<&str> = [
        "state",
        "backend",
        "backend.gates",
        "backend.canary",
        "backend.preview",
        "frontend",
        "notify",
    ]
    .into();
    let missing: Vec<&String> = accepted
        .iter()
        .filter(|k| !sections.contains(k.as_str()) && !named().contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/reference/bgcloud.example.toml does not name {missing:?}: add each (commented out \
         if optional) with its default and a word on what it does"
    );
    let unknown: Vec<String> = named()
        .into_iter()
        .filter(|k| !accepted.contains(k))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/reference/bgcloud.example.toml names {unknown:?}, which the parser refuses"
    );
    for s in sections {
        assert!(
            accepted.contains(s),
            "{s} is no longer a section: update this test"
        );
    }
}

#[test]
fn the_recorder_sees_a_key_added_to_a_section() {
    // The check above is only as good as the recorder: it must see nested sections' fields.
    let accepted = accepted();
    for key in [
        "app",
        "state.bucket",
        "backend.gates.max_5xx_rate",
        "backend.preview.header",
        "frontend.concurrency",
        "notify.webhook_url_env",
    ] {
        assert!(accepted.contains(key), "{key} not recorded: {accepted:?}");
    }
}
