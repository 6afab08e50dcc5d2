//! Structs read from maps only.
//!
//! serde's derive reads a struct from a sequence too, field by field in
//! declaration order, and `serde_json` and `toml` both offer it one when the
//! input holds an array. So a body `[5]` where an object of settings is
//! expected would set the first field to 5, and `[]` would reset every field
//! to its default: a silent misreading of what the user sent. Every file and
//! body a user writes is read through this module instead, which asks the
//! format for a map wherever a struct (or a struct variant of an enum) is
//! read, at any depth, and refuses a sequence there with the format's own
//! error and position ("invalid type: sequence, expected struct Manifest at
//! line 1 column 1").
//!
//! It is a [`serde::Deserializer`] that wraps another and forwards every
//! call, wrapping in turn the visitors, accesses and seeds it hands on, so
//! that nested values are read through it too. One limit: the contents of
//! an untagged or internally tagged enum, or of a flattened field, are
//! buffered by serde itself and read back without it (none of the user
//! inputs puts a struct inside one).
//!
//! - [`from_json_str`] / [`from_json_slice`]: a whole JSON text.
//! - [`deserialize`]: any other format's deserializer (a TOML file's).

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::Deserialize;

/// Reads a `T` from a whole JSON text, structs from objects only.
pub fn from_json_str<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(Strict(&mut de))?;
    de.end()?;
    Ok(value)
}

/// Reads a `T` from a whole JSON body, structs from objects only.
pub fn from_json_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(Strict(&mut de))?;
    de.end()?;
    Ok(value)
}

/// Reads a `T` through any deserializer, structs from maps only.
pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    T::deserialize(Strict(d))
}

/// The wrapper: around a deserializer, an access or a seed.
struct Strict<X>(X);

/// A visitor passed on: `maps_only` where it reads a struct.
struct Wrapped<V> {
    visitor: V,
    maps_only: bool,
}

fn wrap<V>(visitor: V) -> Wrapped<V> {
    Wrapped {
        visitor,
        maps_only: false,
    }
}

/// Forwards `deserialize_*` methods that take only a visitor.
macro_rules! forward_visitor_only {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(wrap(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_visitor_only! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, wrap(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_newtype_struct(name, wrap(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, wrap(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple_struct(name, len, wrap(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = Wrapped {
            visitor,
            maps_only: true,
        };
        self.0.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, wrap(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Forwards `visit_*` methods that take one value.
macro_rules! forward_value {
    ($($method:ident: $ty:ty)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrapped<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_value! {
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64
        visit_i128: i128 visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64
        visit_u128: u128 visit_f32: f32 visit_f64: f64 visit_char: char
        visit_str: &str visit_borrowed_str: &'de str visit_string: String
        visit_bytes: &[u8] visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_some(Strict(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_newtype_struct(Strict(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.maps_only {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        }
        self.visitor.visit_seq(Strict(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_map(Strict(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_enum(Strict(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Strict<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Strict(d))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Strict<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0.next_element_seed(Strict(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Strict<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.0.next_key_seed(Strict(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.next_value_seed(Strict(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Strict<A> {
    type Error = A::Error;
    type Variant = Strict<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), Self::Error> {
        let (value, variant) = self.0.variant_seed(Strict(seed))?;
        Ok((value, Strict(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Strict<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.newtype_variant_seed(Strict(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.tuple_variant(len, wrap(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = Wrapped {
            visitor,
            maps_only: true,
        };
        self.0.struct_variant(fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum Kind {
        Unit,
        Wrap(Inner),
        Pair(u32, u32),
        Fields { x: u32 },
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Outer {
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
        #[serde(default)]
        by_name: BTreeMap<String, Inner>,
        #[serde(default)]
        kinds: Vec<Kind>,
        #[serde(default)]
        pair: Option<(u32, String)>,
        #[serde(default)]
        any: Option<serde_json::Value>,
    }

    /// The failure this module exists for: plain serde_json reads these
    /// arrays by position, so each assertion fails without it.
    #[test]
    fn a_struct_is_never_read_from_an_array_at_any_depth() {
        assert_eq!(
            serde_json::from_str::<Inner>("[5]").unwrap(),
            Inner { a: 5, b: None },
            "what serde_json alone does"
        );
        let cases = [
            "[5]",
            "[]",
            r#"{"inner": [5, "x"]}"#,
            r#"{"list": [{"a": 1}, [2]]}"#,
            r#"{"by_name": {"k": [3]}}"#,
            r#"{"kinds": [{"Wrap": [4]}]}"#,
            r#"{"kinds": [{"Fields": [4]}]}"#,
        ];
        for text in cases {
            let outer = text.starts_with('{');
            let e = if outer {
                from_json_str::<Outer>(text).unwrap_err().to_string()
            } else {
                from_json_str::<Inner>(text).unwrap_err().to_string()
            };
            assert!(
                e.contains("invalid type: sequence") && e.contains("line 1 column"),
                "{text}: {e}"
            );
            if outer {
                assert!(serde_json::from_str::<Outer>(text).is_ok(), "{text}");
            }
        }
    }

    #[test]
    fn everything_else_reads_as_serde_json_reads_it() {
        let text = r#"{
            "inner": {"a": 1, "b": "x"},
            "list": [{"a": 2}, {}],
            "by_name": {"k": {"b": "y"}},
            "kinds": ["Unit", {"Wrap": {"a": 3}}, {"Pair": [4, 5]}, {"Fields": {"x": 6}}],
            "pair": [7, "z"],
            "any": [1, {"q": [2]}]
        }"#;
        let strict: Outer = from_json_str(text).unwrap();
        let plain: Outer = serde_json::from_str(text).unwrap();
        assert_eq!(strict, plain);
        assert_eq!(strict.kinds[2], Kind::Pair(4, 5));
        assert_eq!(strict.pair, Some((7, "z".into())));
        assert_eq!(from_json_slice::<Inner>(br#"{"a": 9}"#).unwrap().a, 9);
    }

    #[test]
    fn the_formats_own_errors_stay() {
        for (text, says) in [
            (r#"{"a": 1} x"#, "trailing characters"),
            (r#"{"a": "1"}"#, "invalid type: string"),
            (r#"{"c": 1}"#, "unknown field `c`"),
            ("{\n\"a\": 1,\n", "EOF while parsing"),
        ] {
            let e = from_json_str::<Inner>(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
