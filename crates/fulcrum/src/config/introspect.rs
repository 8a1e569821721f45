//! Asks serde which field names a struct accepts, so unknown-field errors can
//! suggest the closest real one without a hand-kept list that could drift.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The field names `T`'s derived `Deserialize` passes to `deserialize_struct`.
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldCatcher {
        fields: &mut fields,
    });
    fields
}

struct FieldCatcher<'a> {
    fields: &'a mut &'static [&'static str],
}

#[derive(Debug)]
struct Caught;

impl std::fmt::Display for Caught {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names caught")
    }
}
impl std::error::Error for Caught {}
impl de::Error for Caught {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Caught
    }
}

impl<'de> Deserializer<'de> for FieldCatcher<'_> {
    type Error = Caught;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Caught> {
        *self.fields = fields;
        Err(Caught)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Caught> {
        Err(Caught)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Sample {
        alpha: u32,
        #[serde(rename = "type")]
        kind: String,
    }

    #[test]
    fn catches_declared_names_including_renames() {
        assert_eq!(fields_of::<Sample>(), &["alpha", "type"]);
    }
}
