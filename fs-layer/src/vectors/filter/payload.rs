//! The checks a payload passes before it is stored, with their limits, and
//! Qdrant's merge of a payload into the one stored.

use serde_json::Value;

use super::parse::expected;

/// Bytes of one payload's JSON.
pub const PAYLOAD_BYTES_MAX: usize = vexfs_uapi::limits::PAYLOAD_BYTES_MAX as usize;
/// Levels of objects and arrays in one payload, the top object counted.
pub const PAYLOAD_DEPTH_MAX: usize = 32;

/// Checks a payload before it is stored: UTF-8 JSON, an object at the top,
/// within [`PAYLOAD_BYTES_MAX`] and [`PAYLOAD_DEPTH_MAX`].
pub fn parse_payload(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > PAYLOAD_BYTES_MAX {
        return Err(format!(
            "payload: {} bytes, more than PAYLOAD_BYTES_MAX ({PAYLOAD_BYTES_MAX})",
            bytes.len()
        ));
    }
    // serde_json checks UTF-8 and refuses nesting past 128 levels.
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("payload: not JSON: {e}"))?;
    if !value.is_object() {
        return Err(expected(
            "payload",
            "a JSON object at the top level",
            &value,
        ));
    }
    let depth = nesting(&value);
    if depth > PAYLOAD_DEPTH_MAX {
        return Err(format!(
            "payload: {depth} levels of objects and arrays, more than PAYLOAD_DEPTH_MAX ({PAYLOAD_DEPTH_MAX})"
        ));
    }
    Ok(value)
}

/// Levels of objects and arrays; recursion is bounded by serde_json's 128.
fn nesting(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        Value::Array(elements) => 1 + elements.iter().map(nesting).max().unwrap_or(0),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => 0,
    }
}

/// Qdrant's set_payload: each top-level key of `from` replaces that key in
/// `into`, and one whose value is `null` removes it (Qdrant's `merge_map`).
/// Both are payloads from [`parse_payload`]; the result may exceed
/// [`PAYLOAD_BYTES_MAX`], which the caller checks when it writes it.
pub fn merge_payload(into: &mut Value, from: Value) {
    let (Value::Object(into), Value::Object(from)) = (into, from) else {
        panic!("merge_payload: payloads are JSON objects, as parse_payload checks");
    };
    for (key, value) in from {
        if value.is_null() {
            into.remove(&key);
        } else {
            into.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_are_checked() {
        let value = parse_payload(br#"{"a": [1, {"b": "c"}], "d": null}"#).unwrap();
        assert_eq!(value, json!({ "a": [1, { "b": "c" }], "d": null }));

        let e = parse_payload(b"[1]").unwrap_err();
        assert_eq!(
            e,
            "payload: expected a JSON object at the top level, found a list"
        );
        let e = parse_payload(b"\"x\"").unwrap_err();
        assert_eq!(
            e,
            "payload: expected a JSON object at the top level, found \"x\""
        );
        let e = parse_payload(b"{\"a\": 1,}").unwrap_err();
        assert!(
            e.starts_with("payload: not JSON: ") && e.contains("line 1 column 9"),
            "{e}"
        );
        let e = parse_payload(b"{\"a\": \"\xc3\x28\"}").unwrap_err();
        assert!(e.starts_with("payload: not JSON: "), "{e}");
        let e = parse_payload(b"").unwrap_err();
        assert!(e.starts_with("payload: not JSON: "), "{e}");

        let mut big = b"{\"a\": \"".to_vec();
        big.resize(PAYLOAD_BYTES_MAX - 2, b'x');
        big.extend_from_slice(b"\"}");
        parse_payload(&big).unwrap();
        big.insert(7, b'x');
        let e = parse_payload(&big).unwrap_err();
        assert_eq!(
            e,
            "payload: 65537 bytes, more than PAYLOAD_BYTES_MAX (65536)"
        );

        let nest = |levels: usize| {
            let inner = "[".repeat(levels - 1) + &"]".repeat(levels - 1);
            format!("{{\"a\": {inner}}}")
        };
        parse_payload(nest(PAYLOAD_DEPTH_MAX).as_bytes()).unwrap();
        let e = parse_payload(nest(PAYLOAD_DEPTH_MAX + 1).as_bytes()).unwrap_err();
        assert_eq!(
            e,
            "payload: 33 levels of objects and arrays, more than PAYLOAD_DEPTH_MAX (32)"
        );
        let e = parse_payload(nest(200).as_bytes()).unwrap_err();
        assert!(e.starts_with("payload: not JSON: recursion limit"), "{e}");
    }

    #[test]
    fn merge_replaces_top_level_keys_and_null_removes() {
        let mut stored = json!({ "a": 1, "b": { "x": 1, "y": 2 }, "c": "keep" });
        merge_payload(
            &mut stored,
            json!({ "a": [2], "b": { "x": 3 }, "d": true, "c": null, "e": null }),
        );
        assert_eq!(stored, json!({ "a": [2], "b": { "x": 3 }, "d": true }));
        let mut empty = json!({});
        merge_payload(&mut empty, json!({}));
        assert_eq!(empty, json!({}));
    }
}
