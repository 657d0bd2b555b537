//! The annotated example config (`docs/reference/bgcloud.example.toml`) against the parser: it
//! parses, it names every key the parser accepts (set or commented out), and every key it names
//! is one the parser accepts. The accepted keys are read from the `Raw*` types themselves, by a
//! deserializer that records the fields each struct asks for.

use std::collections::BTreeSet;
use std::path::Path;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::{Config, RawConfig};

const EXAMPLE: &str = include_str!("../../docs/reference/bgcloud.example.toml");

/// Walks a `Deserialize` type and records `section.key` for every struct field it declares.
struct Recorder<'a> {
    path: String,
    keys: &'a mut BTreeSet<String>,
}

impl<'a> Recorder<'a> {
    fn at(&mut self, field: &str) -> Recorder<'_> {
        let path = if self.path.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.path)
        };
        Recorder {
            path,
            keys: self.keys,
        }
    }
}

#[derive(Debug)]
struct Stop(String);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Stop(msg.to_string())
    }
}

/// The fields of one struct, each handed a recorder one level down.
struct Fields<'r, 'a> {
    recorder: &'r mut Recorder<'a>,
    fields: std::slice::Iter<'static, &'static str>,
    next: Option<&'static str>,
}

impl<'de> MapAccess<'de> for Fields<'_, '_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match self.fields.next() {
            Some(f) => {
                self.next = Some(f);
                seed.deserialize(f.into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let field = self.next.take().expect("a key before its value");
        let below = self.recorder.at(field);
        below.keys.insert(below.path.clone());
        seed.deserialize(below)
    }
}

struct Empty;

impl<'de> de::SeqAccess<'de> for Empty {
    type Error = Stop;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        _: T,
    ) -> Result<Option<T::Value>, Stop> {
        Ok(None)
    }
}

impl<'de> MapAccess<'de> for Empty {
    type Error = Stop;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, _: K) -> Result<Option<K::Value>, Stop> {
        Ok(None)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _: V) -> Result<V::Value, Stop> {
        Err(Stop("no value".into()))
    }
}

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = Stop;

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_map(Fields {
            recorder: &mut self,
            fields: fields.iter(),
            next: None,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_str("")
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_str("")
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_i64(0)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_u64(0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_f64(0.0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_bool(false)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(Empty)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_map(Empty)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop(format!(
            "{}: a type the key recorder does not know; teach it (src/config/example.rs)",
            self.path
        )))
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u32 u128 f32 char bytes byte_buf unit unit_struct
        newtype_struct tuple tuple_struct enum identifier ignored_any
    }
}

/// Every key path the parser accepts, e.g. `backend.gates.max_5xx_rate`.
fn accepted() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    RawConfig::deserialize(Recorder {
        path: String::new(),
        keys: &mut keys,
    })
    .map(|_| ())
    .unwrap_or_else(|e| panic!("recording the config's keys: {e}"));
    keys
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
