//! Typed topics' payloads as JSON: a postcard payload decoded with its topic's schema (a
//! postcard-schema `OwnedNamedType`, which the master hands out), and a JSON Schema derived from
//! it, so that MCAP readers and Foxglove decode typed channels (message encoding `json`).

use postcard_schema::schema::owned::{
    OwnedDataModelType as Ty, OwnedDataModelVariant as Variant, OwnedNamedType,
};
use serde_json::{json, Map, Value};

pub use postcard_schema::schema::owned::OwnedNamedType as Schema;

/// Why a schema or a payload cannot be shown as JSON.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypedError {
    /// The schema bytes are not a postcard-schema type.
    #[error("schema is not a postcard-schema type: {0}")]
    Schema(postcard::Error),
    /// The type has a part JSON decoding does not support.
    #[error("type {0} cannot be decoded to JSON ({1})")]
    Unsupported(String, &'static str),
    /// The payload does not decode as the topic's type.
    #[error("payload does not decode as {ty}: {reason}")]
    Payload { ty: String, reason: String },
}

/// Decodes postcard payloads of one type to JSON.
#[derive(Debug, Clone)]
pub struct JsonDecoder {
    schema: OwnedNamedType,
}

impl JsonDecoder {
    /// A decoder for `schema`. Refuses types the decoder cannot walk safely: `char` and nested
    /// schemas (postcard-dyn does not decode them), and sequences or maps of values that take no
    /// bytes (a payload could claim billions of them).
    pub fn new(schema: OwnedNamedType) -> Result<Self, TypedError> {
        check(&schema.ty).map_err(|why| TypedError::Unsupported(schema.name.clone(), why))?;
        Ok(JsonDecoder { schema })
    }

    /// A decoder for schema bytes as the master keeps them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TypedError> {
        Self::new(postcard::from_bytes(bytes).map_err(TypedError::Schema)?)
    }

    /// The type's schema.
    pub fn schema(&self) -> &OwnedNamedType {
        &self.schema
    }

    /// `payload` (postcard of the type, nothing after it) as JSON.
    pub fn decode(&self, payload: &[u8]) -> Result<Value, TypedError> {
        postcard_dyn::from_slice_dyn(&self.schema, payload).map_err(|e| TypedError::Payload {
            ty: self.schema.name.clone(),
            reason: format!("{e:?}"),
        })
    }

    /// The type as a JSON Schema (draft 2020-12) describing what [`decode`](Self::decode) gives.
    pub fn json_schema(&self) -> Value {
        let mut schema = json_schema(&self.schema.ty);
        if let Value::Object(map) = &mut schema {
            map.insert(
                "$schema".into(),
                "https://json-schema.org/draft/2020-12/schema".into(),
            );
            map.insert("title".into(), self.schema.name.clone().into());
        }
        schema
    }
}

/// Why a type cannot be decoded, if it cannot.
fn check(ty: &Ty) -> Result<(), &'static str> {
    match ty {
        Ty::Char => Err("char is not supported"),
        Ty::Schema => Err("nested schemas are not supported"),
        Ty::Option(nt) | Ty::NewtypeStruct(nt) => check(&nt.ty),
        Ty::Seq(nt) => {
            if takes_no_bytes(&nt.ty) {
                return Err("a sequence of empty values");
            }
            check(&nt.ty)
        }
        Ty::Map { key, val } => {
            if takes_no_bytes(&key.ty) && takes_no_bytes(&val.ty) {
                return Err("a map of empty values");
            }
            check(&key.ty).and(check(&val.ty))
        }
        Ty::Tuple(nts) | Ty::TupleStruct(nts) => nts.iter().try_for_each(|nt| check(&nt.ty)),
        Ty::Struct(nvs) => nvs.iter().try_for_each(|nv| check(&nv.ty.ty)),
        Ty::Enum(vars) => vars.iter().try_for_each(|v| match &v.ty {
            Variant::UnitVariant => Ok(()),
            Variant::NewtypeVariant(nt) => check(&nt.ty),
            Variant::TupleVariant(nts) => nts.iter().try_for_each(|nt| check(&nt.ty)),
            Variant::StructVariant(nvs) => nvs.iter().try_for_each(|nv| check(&nv.ty.ty)),
        }),
        _ => Ok(()),
    }
}

/// Whether a value of `ty` can be encoded in zero bytes.
fn takes_no_bytes(ty: &Ty) -> bool {
    match ty {
        Ty::Unit | Ty::UnitStruct => true,
        Ty::NewtypeStruct(nt) => takes_no_bytes(&nt.ty),
        Ty::Tuple(nts) | Ty::TupleStruct(nts) => nts.iter().all(|nt| takes_no_bytes(&nt.ty)),
        Ty::Struct(nvs) => nvs.iter().all(|nv| takes_no_bytes(&nv.ty.ty)),
        _ => false,
    }
}

fn json_schema(ty: &Ty) -> Value {
    let integer = |min: Option<i128>, max: Option<u128>| {
        let mut m = Map::new();
        m.insert("type".into(), "integer".into());
        if let Some(min) = min {
            m.insert("minimum".into(), json!(min as f64));
        }
        if let Some(max) = max {
            m.insert("maximum".into(), json!(max as f64));
        }
        Value::Object(m)
    };
    match ty {
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::I8 => integer(Some(i8::MIN.into()), Some(i8::MAX as u128)),
        Ty::I16 => integer(Some(i16::MIN.into()), Some(i16::MAX as u128)),
        Ty::I32 => integer(Some(i32::MIN.into()), Some(i32::MAX as u128)),
        Ty::I64 | Ty::I128 | Ty::Isize => integer(None, None),
        Ty::U8 => integer(Some(0), Some(u8::MAX.into())),
        Ty::U16 => integer(Some(0), Some(u16::MAX.into())),
        Ty::U32 => integer(Some(0), Some(u32::MAX.into())),
        Ty::U64 | Ty::U128 | Ty::Usize => integer(Some(0), None),
        Ty::F32 | Ty::F64 => json!({ "type": "number" }),
        Ty::Char | Ty::String => json!({ "type": "string" }),
        Ty::ByteArray => {
            json!({ "type": "array", "items": { "type": "integer", "minimum": 0, "maximum": 255 } })
        }
        Ty::Option(nt) => json!({ "anyOf": [json_schema(&nt.ty), { "type": "null" }] }),
        Ty::Unit | Ty::UnitStruct => json!({ "type": "null" }),
        Ty::NewtypeStruct(nt) => json_schema(&nt.ty),
        Ty::Seq(nt) => json!({ "type": "array", "items": json_schema(&nt.ty) }),
        Ty::Tuple(nts) | Ty::TupleStruct(nts) => match nts.as_slice() {
            [] => json!({ "type": "null" }),
            // postcard-dyn gives a one-element tuple as its element.
            [nt] => json_schema(&nt.ty),
            many => json!({
                "type": "array",
                "prefixItems": many.iter().map(|nt| json_schema(&nt.ty)).collect::<Vec<_>>(),
                "items": false,
            }),
        },
        Ty::Map { val, .. } => {
            json!({ "type": "object", "additionalProperties": json_schema(&val.ty) })
        }
        Ty::Struct(nvs) => {
            let props: Map<String, Value> = nvs
                .iter()
                .map(|nv| (nv.name.clone(), json_schema(&nv.ty.ty)))
                .collect();
            let required: Vec<&str> = nvs.iter().map(|nv| nv.name.as_str()).collect();
            json!({ "type": "object", "properties": props, "required": required })
        }
        Ty::Enum(vars) => {
            let one_of: Vec<Value> = vars
                .iter()
                .map(|v| {
                    let inner = match &v.ty {
                        Variant::UnitVariant => return json!({ "const": v.name }),
                        Variant::NewtypeVariant(nt) => json_schema(&nt.ty),
                        Variant::TupleVariant(nts) => json_schema(&Ty::Tuple(nts.clone())),
                        Variant::StructVariant(nvs) => json_schema(&Ty::Struct(nvs.clone())),
                    };
                    json!({
                        "type": "object",
                        "properties": { v.name.clone(): inner },
                        "required": [v.name],
                    })
                })
                .collect();
            json!({ "oneOf": one_of })
        }
        Ty::Schema => json!({}),
    }
}

/// The numeric value at a dotted `path` in a decoded payload (`accel.x`; array elements by
/// index, `cov.0`); `None` when there is none or it is not a number (booleans count as 0/1).
pub fn number_at(value: &Value, path: &[&str]) -> Option<f64> {
    let mut at = value;
    for key in path {
        at = match at {
            Value::Object(map) => map.get(*key)?,
            Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match at {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postcard_schema::schema::owned::OwnedNamedValue;

    fn named(name: &str, ty: Ty) -> OwnedNamedType {
        OwnedNamedType {
            name: name.into(),
            ty,
        }
    }

    fn vec3() -> OwnedNamedType {
        let f = |n: &str| OwnedNamedValue {
            name: n.into(),
            ty: named("f32", Ty::F32),
        };
        named("Vec3", Ty::Struct(vec![f("x"), f("y"), f("z")]))
    }

    #[test]
    fn payloads_decode_to_json_and_fields_by_path() {
        let d = JsonDecoder::new(vec3()).unwrap();
        let payload = [1.5f32, -2.0, 0.25]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect::<Vec<u8>>();
        let v = d.decode(&payload).unwrap();
        assert_eq!(v, json!({ "x": 1.5, "y": -2.0, "z": 0.25 }));
        assert_eq!(number_at(&v, &["y"]), Some(-2.0));
        assert_eq!(number_at(&v, &["w"]), None);
        assert!(d.decode(&payload[..5]).is_err());
        assert_eq!(
            d.json_schema()["properties"]["x"],
            json!({ "type": "number" })
        );
        assert_eq!(d.json_schema()["title"], "Vec3");
    }

    #[test]
    fn types_that_cannot_be_walked_safely_are_refused() {
        let units = named("Units", Ty::Seq(Box::new(named("()", Ty::Unit))));
        assert!(JsonDecoder::new(units).is_err());
        assert!(JsonDecoder::new(named("c", Ty::Char)).is_err());
        assert!(JsonDecoder::from_bytes(&[0xff, 0xff]).is_err());
        // Any bytes as a payload of an accepted type: an error or a value, never a panic.
        let d = JsonDecoder::new(named("Opt", Ty::Option(Box::new(vec3())))).unwrap();
        for len in 0..20u8 {
            let _ = d.decode(&(0..len).collect::<Vec<u8>>());
        }
    }
}
