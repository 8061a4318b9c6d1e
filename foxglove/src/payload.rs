//! Untyped payloads as Foxglove sees them: JSON under one schema, and back.

use base64::Engine as _;

/// The message encoding of every untyped channel.
pub const UNTYPED_ENCODING: &str = "json";

/// The schema name of every untyped channel.
pub const UNTYPED_SCHEMA_NAME: &str = "zerosmq.Untyped";

/// The JSON schema of every untyped channel: exactly one of the three fields is set.
pub const UNTYPED_SCHEMA: &str = r#"{"title":"zerosmq.Untyped","description":"An untyped zerosmq payload: a number in text as value, other UTF-8 text as text, other bytes as base64.","type":"object","properties":{"value":{"type":"number"},"text":{"type":"string"},"base64":{"type":"string","contentEncoding":"base64"}}}"#;

/// A zerosmq payload as the JSON message Foxglove decodes: `{"value": N}` for a finite number
/// in text (what original nodes send, so it plots), `{"text": "..."}` for other UTF-8, and
/// `{"base64": "..."}` for other bytes.
pub fn to_foxglove(payload: &[u8]) -> Vec<u8> {
    let value = match std::str::from_utf8(payload) {
        Ok(text) => match text.trim().parse::<f64>() {
            // NaN and infinities have no JSON form; they stay text.
            Ok(n) if n.is_finite() => serde_json::json!({ "value": n }),
            _ => serde_json::json!({ "text": text }),
        },
        Err(_) => serde_json::json!({
            "base64": base64::engine::general_purpose::STANDARD.encode(payload)
        }),
    };
    value.to_string().into_bytes()
}

/// A message a Foxglove client publishes, as the zerosmq payload: the inverse of
/// [`to_foxglove`] for a JSON object with one of its fields (a number goes out in text, as an
/// original node would send it); any other message goes out unchanged.
pub fn from_foxglove(message: &[u8]) -> Vec<u8> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(message) else {
        return message.to_vec();
    };
    if fields.len() != 1 {
        return message.to_vec();
    }
    match fields.iter().next() {
        Some((k, serde_json::Value::String(s))) if k == "text" => s.clone().into_bytes(),
        Some((k, serde_json::Value::Number(n))) if k == "value" => n.to_string().into_bytes(),
        Some((k, serde_json::Value::String(s))) if k == "base64" => {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .unwrap_or_else(|_| message.to_vec())
        }
        _ => message.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_to_json() {
        assert_eq!(to_foxglove(b"21.5"), br#"{"value":21.5}"#);
        assert_eq!(to_foxglove(b" -3\n"), br#"{"value":-3.0}"#);
        assert_eq!(to_foxglove(b"hello world"), br#"{"text":"hello world"}"#);
        assert_eq!(to_foxglove(b"NaN"), br#"{"text":"NaN"}"#);
        assert_eq!(to_foxglove(b""), br#"{"text":""}"#);
        assert_eq!(to_foxglove(&[0xff, 0x00]), br#"{"base64":"/wA="}"#);
    }

    #[test]
    fn json_to_payloads() {
        assert_eq!(from_foxglove(br#"{"text":"go"}"#), b"go");
        assert_eq!(from_foxglove(br#"{"value":2.5}"#), b"2.5");
        assert_eq!(from_foxglove(br#"{"value":7}"#), b"7");
        assert_eq!(from_foxglove(br#"{"base64":"/wA="}"#), [0xff, 0x00]);
        assert_eq!(from_foxglove(br#"{"x":1,"y":2}"#), br#"{"x":1,"y":2}"#);
        assert_eq!(from_foxglove(b"not json"), b"not json");
    }

    #[test]
    fn schema_is_json() {
        let schema: serde_json::Value = serde_json::from_str(UNTYPED_SCHEMA).unwrap();
        assert_eq!(schema["type"], "object");
    }
}
