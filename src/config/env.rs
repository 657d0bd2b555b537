//! Environment overrides: every single-valued key of `bgcloud.toml` can be set by a variable
//! named after its path (`[backend] health_timeout` → `BGCLOUD_BACKEND_HEALTH_TIMEOUT`,
//! `[backend.gates] watch` → `BGCLOUD_BACKEND_GATES_WATCH`). The names come from [`super::keys`],
//! so every key the parser knows has one and no other name is accepted: a `BGCLOUD_*` variable
//! that is neither an override nor one bgcloud itself uses is refused (exit 2, with the closest
//! name), since a misspelled override silently ignored is a deploy with the wrong settings.
//!
//! Precedence: command-line flags over the environment over the file. The values are applied to
//! the file's TOML before it is validated, so a bad value gets the key's own message.

use std::collections::BTreeMap;

use serde::Serialize;

use super::keys::{self, Kind};
use crate::error::{Error, Result};

/// The prefix of every override, and of the variables bgcloud reads or sets itself.
const PREFIX: &str = "BGCLOUD_";

/// `BGCLOUD_*` variables that are not config overrides: read by bgcloud (`--config`,
/// `--max-attempts`) or set by it for the smoke tests and the launch script, so that a smoke test
/// that runs `bgcloud status` is not refused.
pub const NOT_OVERRIDES: &[&str] = &[
    "BGCLOUD_CONFIG",
    "BGCLOUD_MAX_ATTEMPTS",
    "BGCLOUD_COLOR",
    "BGCLOUD_IMAGE",
    "BGCLOUD_DIGEST",
    "BGCLOUD_PREVIEW_URL",
    "BGCLOUD_PREVIEW_HEADER",
    "BGCLOUD_PREVIEW_HEADER_NAME",
    "BGCLOUD_PREVIEW_HEADER_VALUE",
    "BGCLOUD_LOCK_HELD",
];

/// One value taken from the environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Override {
    pub var: String,
    /// The key's path, e.g. `backend.health_timeout`.
    pub key: String,
    pub value: String,
}

/// Keys whose value is not printed when taken from the environment: the preview header's value
/// is what keeps users off the colour being prepared.
const HIDDEN: &[&str] = &["backend.preview.value"];

impl Override {
    /// The value as a changing command logs it: quoted, or hidden.
    pub fn shown(&self) -> String {
        match HIDDEN.contains(&self.key.as_str()) {
            true => "(hidden)".into(),
            false => format!("{:?}", self.value),
        }
    }
}

/// The variable that overrides `key` (a dotted path).
pub fn var_name(key: &str) -> String {
    format!("{PREFIX}{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Every override there is: variable name → (key, kind), for each single-valued key.
pub fn table() -> BTreeMap<String, (String, Kind)> {
    keys::accepted()
        .into_iter()
        .filter(|(_, kind)| kind.is_scalar())
        .map(|(key, kind)| (var_name(&key), (key, kind)))
        .collect()
}

/// The overrides among `vars` (the process environment), or the refusal of an unknown
/// `BGCLOUD_*` name.
pub fn overrides(vars: impl IntoIterator<Item = (String, String)>) -> Result<Vec<Override>> {
    let table = table();
    let mut found = Vec::new();
    for (var, value) in vars {
        if !var.starts_with(PREFIX) || NOT_OVERRIDES.contains(&var.as_str()) {
            continue;
        }
        let Some((key, _)) = table.get(&var) else {
            return Err(unknown(&var, &table));
        };
        found.push(Override {
            var,
            key: key.clone(),
            value,
        });
    }
    found.sort_by(|a, b| a.var.cmp(&b.var));
    Ok(found)
}

fn unknown(var: &str, table: &BTreeMap<String, (String, Kind)>) -> Error {
    // Compared without the prefix they all share, which would make any two names look alike.
    let bare = |name: &str| name.trim_start_matches(PREFIX).to_string();
    let closest = table
        .keys()
        .map(String::as_str)
        .chain(NOT_OVERRIDES.iter().copied())
        .map(|known| (strsim::jaro_winkler(&bare(var), &bare(known)), known))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, known)| format!(" Did you mean {known}?"))
        .unwrap_or_default();
    Error::refused(format!(
        "{var} is set, but it is not a setting bgcloud knows.{closest} bgcloud reads every \
         BGCLOUD_* variable as a config override (BGCLOUD_<SECTION>_<KEY>; the list is in \
         docs/reference/config.md#environment-overrides): rename or unset it"
    ))
}

/// Sets each override's key in `doc` (the file's TOML), as the kind of value the key takes.
pub fn apply(doc: &mut toml::Table, found: &[Override]) -> Result<()> {
    let table = table();
    for o in found {
        let kind = table.get(&o.var).map_or(Kind::Str, |(_, k)| *k);
        let value = typed(o, kind)?;
        let mut parts: Vec<&str> = o.key.split('.').collect();
        let last = parts.pop().unwrap_or_default();
        // A section the file does not have is not made up (an organisation-wide
        // BGCLOUD_FRONTEND_* would otherwise turn on a half-configured [frontend] everywhere);
        // subsections of one it has may be.
        if let Some(top) = parts.first().filter(|t| !doc.contains_key(**t)) {
            return Err(Error::refused(format!(
                "{} sets [{}] {last}, but the config has no [{top}] section: add the section to \
                 the file, or unset {}",
                o.var,
                parts.join("."),
                o.var
            )));
        }
        let mut at = &mut *doc;
        for part in parts {
            let entry = at
                .entry(part)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            at = entry.as_table_mut().ok_or_else(|| {
                Error::refused(format!(
                    "{}: {part} is not a section in the config, so {} cannot set {}",
                    o.var, o.var, o.key
                ))
            })?;
        }
        at.insert(last.to_string(), value);
    }
    Ok(())
}

fn typed(o: &Override, kind: Kind) -> Result<toml::Value> {
    let text = o.value.trim();
    let bad = |what: &str| {
        Error::refused(format!(
            "{} = {:?} is not {what}, as {} takes: set it to e.g. {}",
            o.var,
            o.value,
            o.key,
            match kind {
                Kind::Integer => "30",
                Kind::Float => "0.05",
                _ => "true",
            }
        ))
    };
    Ok(match kind {
        Kind::Integer => toml::Value::Integer(text.parse().map_err(|_| bad("a whole number"))?),
        Kind::Float => toml::Value::Float(text.parse().map_err(|_| bad("a number"))?),
        Kind::Bool => toml::Value::Boolean(match text {
            "true" => true,
            "false" => false,
            _ => return Err(bad("true or false")),
        }),
        _ => toml::Value::String(o.value.clone()),
    })
}

/// The documentation's table of overrides (docs/reference/config.md), one row per variable.
pub fn markdown_table() -> String {
    let mut out = String::from("| variable | key | value |\n|---|---|---|\n");
    for (var, (key, kind)) in table() {
        let what = match kind {
            Kind::Integer => "whole number",
            Kind::Float => "number",
            Kind::Bool => "`true` or `false`",
            _ => "text",
        };
        let (section, name) = key.rsplit_once('.').unwrap_or(("", &key));
        let key = match section {
            "" => format!("`{name}`"),
            s => format!("`[{s}] {name}`"),
        };
        out.push_str(&format!("| `{var}` | {key} | {what} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_single_valued_key_has_one_variable_and_no_two_share_it() {
        let scalar: Vec<String> = keys::accepted()
            .into_iter()
            .filter(|(_, k)| k.is_scalar())
            .map(|(key, _)| key)
            .collect();
        assert_eq!(table().len(), scalar.len(), "two keys map to one name");
        for (var, key) in [
            ("BGCLOUD_APP", "app"),
            ("BGCLOUD_BACKEND_HEALTH_TIMEOUT", "backend.health_timeout"),
            (
                "BGCLOUD_BACKEND_GATES_MAX_5XX_RATE",
                "backend.gates.max_5xx_rate",
            ),
            (
                "BGCLOUD_FRONTEND_DISTRIBUTION_ID",
                "frontend.distribution_id",
            ),
        ] {
            assert_eq!(table()[var].0, key);
        }
        // Lists and tables cannot be one variable.
        assert!(!table().contains_key("BGCLOUD_BACKEND_SMOKE"));
        assert!(!table().contains_key("BGCLOUD_BACKEND_ENV"));
        for name in NOT_OVERRIDES {
            assert!(!table().contains_key(*name), "{name} is also a key");
        }
    }

    #[test]
    fn overrides_are_typed_by_their_key_and_unknown_names_are_refused() {
        let found = overrides(vars(&[
            ("PATH", "/bin"),
            ("BGCLOUD_CONFIG", "x.toml"),
            ("BGCLOUD_BACKEND_GATES_MAX_5XX_RATE", "0.1"),
            ("BGCLOUD_BACKEND_HEALTH_TIMEOUT", "7m"),
        ]))
        .unwrap();
        assert_eq!(found.len(), 2);
        let mut doc: toml::Table = "app = \"a\"\n[backend]\nhealth_timeout = \"1m\"\n"
            .parse()
            .unwrap();
        apply(&mut doc, &found).unwrap();
        assert_eq!(doc["backend"]["health_timeout"].as_str(), Some("7m"));
        assert_eq!(
            doc["backend"]["gates"]["max_5xx_rate"].as_float(),
            Some(0.1)
        );

        let err = overrides(vars(&[("BGCLOUD_BAKEND_HEALTH_TIMEOUT", "7m")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Did you mean BGCLOUD_BACKEND_HEALTH_TIMEOUT?"),
            "{err}"
        );
        let err = overrides(vars(&[("BGCLOUD_ROLE", "x")])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(!err.to_string().contains("Did you mean"), "{err}");

        let bad = overrides(vars(&[("BGCLOUD_BACKEND_GATES_MIN_REQUESTS", "many")])).unwrap();
        let err = apply(&mut doc, &bad).unwrap_err().to_string();
        assert!(
            err.contains("BGCLOUD_BACKEND_GATES_MIN_REQUESTS = \"many\" is not a whole number"),
            "{err}"
        );
    }

    #[test]
    fn a_section_the_file_lacks_is_not_made_up_and_the_preview_value_is_not_shown() {
        let found = overrides(vars(&[("BGCLOUD_FRONTEND_WAIT_TIMEOUT", "1m")])).unwrap();
        let mut doc: toml::Table = "app = \"a\"\n[backend]\n".parse().unwrap();
        let err = apply(&mut doc, &found).unwrap_err().to_string();
        assert!(
            err.contains("the config has no [frontend] section")
                && err.contains("unset BGCLOUD_FRONTEND_WAIT_TIMEOUT"),
            "{err}"
        );
        // A subsection of a section the file has is fine.
        let gates = overrides(vars(&[("BGCLOUD_BACKEND_GATES_WATCH", "5m")])).unwrap();
        apply(&mut doc, &gates).unwrap();
        assert_eq!(doc["backend"]["gates"]["watch"].as_str(), Some("5m"));
        let secret = overrides(vars(&[("BGCLOUD_BACKEND_PREVIEW_VALUE", "s3cret")])).unwrap();
        assert_eq!(secret[0].shown(), "(hidden)");
        assert_eq!(gates[0].shown(), "\"5m\"");
    }

    #[test]
    fn the_documented_table_is_the_generated_one() {
        let doc = include_str!("../../docs/reference/config.md");
        let table = markdown_table();
        assert!(
            doc.contains(&table),
            "docs/reference/config.md#environment-overrides is not the generated table; \
             replace it with:\n{table}"
        );
    }
}
