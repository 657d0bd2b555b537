//! Every key `bgcloud.toml` accepts, with the kind of value it takes, read from the `Raw*` types
//! themselves by a deserializer that records the fields each struct asks for: the one list the
//! example's completeness test and the environment overrides ([`super::env`]) are built from,
//! so neither can fall behind the parser.

use std::collections::BTreeMap;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::RawConfig;

/// The kind of value a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Integer,
    Float,
    Bool,
    List,
    /// A section, or a table of names to values (`[backend.env]`).
    Table,
}

impl Kind {
    /// A single value that an environment variable can carry.
    pub fn is_scalar(self) -> bool {
        !matches!(self, Kind::List | Kind::Table)
    }
}

/// Every key path the parser accepts (e.g. `backend.gates.max_5xx_rate`), sections included,
/// with its kind.
pub fn accepted() -> BTreeMap<String, Kind> {
    let mut keys = BTreeMap::new();
    RawConfig::deserialize(Recorder {
        path: String::new(),
        keys: &mut keys,
    })
    .map(|_| ())
    .unwrap_or_else(|e| panic!("recording the config's keys: {e}"));
    keys
}

/// Walks a `Deserialize` type and records `section.key` for every struct field it declares, with
/// the kind of value the field takes.
struct Recorder<'a> {
    path: String,
    keys: &'a mut BTreeMap<String, Kind>,
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
        below.keys.insert(below.path.clone(), Kind::Table);
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
        self.keys.insert(self.path.clone(), Kind::Str);
        visitor.visit_str("")
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.keys.insert(self.path.clone(), Kind::Str);
        visitor.visit_str("")
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.keys.insert(self.path.clone(), Kind::Integer);
        visitor.visit_i64(0)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.keys.insert(self.path.clone(), Kind::Integer);
        visitor.visit_u64(0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.keys.insert(self.path.clone(), Kind::Float);
        visitor.visit_f64(0.0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.keys.insert(self.path.clone(), Kind::Bool);
        visitor.visit_bool(false)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.keys.insert(self.path.clone(), Kind::List);
        visitor.visit_seq(Empty)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.keys.insert(self.path.clone(), Kind::Table);
        visitor.visit_map(Empty)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop(format!(
            "{}: a type the key recorder does not know; teach it (src/config/keys.rs)",
            self.path
        )))
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u32 u128 f32 char bytes byte_buf unit unit_struct
        newtype_struct tuple tuple_struct enum identifier ignored_any
    }
}
