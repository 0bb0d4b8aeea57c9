//! Key paths into a payload, in Qdrant's syntax (`K` in the grammar of the
//! filter module's documentation): `a.b[].c`, `a[2]`, `"x.y"`. Parsed into
//! steps once, then walked for each point without allocating.

use serde_json::{Map, Value};

use super::parse::{expected, quote};
use super::FILTER_KEY_STEPS_MAX;

/// A key path: the payload's top-level key, then steps down from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct KeyPath {
    first: String,
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    Each,
}

impl KeyPath {
    /// Parses a key path in Qdrant's syntax (see the module documentation).
    pub(super) fn parse(value: &Value, path: &str) -> Result<KeyPath, String> {
        let Value::String(text) = value else {
            return Err(expected(path, "a key path", value));
        };
        let bad = |why: &str| format!("{path}: {} is not a key path: {why}", quote(text));
        let mut rest = text.as_str();
        let first = take_key(&mut rest).ok_or_else(|| bad("it must start with a key"))?;
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if steps.len() + 1 >= FILTER_KEY_STEPS_MAX {
                return Err(bad(&format!(
                    "more than FILTER_KEY_STEPS_MAX ({FILTER_KEY_STEPS_MAX}) steps"
                )));
            }
            if let Some(after) = rest.strip_prefix('.') {
                rest = after;
                steps.push(Step::Key(
                    take_key(&mut rest).ok_or_else(|| bad("a key must follow '.'"))?,
                ));
            } else if let Some(after) = rest.strip_prefix("[]") {
                rest = after;
                steps.push(Step::Each);
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(|| bad("'[' without ']'"))?;
                let digits = &after[..end];
                if !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("an index is decimal digits"));
                }
                let index = digits
                    .parse::<usize>()
                    .map_err(|_| bad("an index too large"))?;
                steps.push(Step::Index(index));
                rest = &after[end + 1..];
            } else {
                return Err(bad("a key is letters, digits, '_' and '-', or quoted"));
            }
        }
        Ok(KeyPath { first, steps })
    }

    /// Whether `f` holds for some value the path reaches; stops at the first.
    pub(super) fn any_value(
        &self,
        fields: Option<&Map<String, Value>>,
        f: &mut impl FnMut(&Value) -> bool,
    ) -> bool {
        match fields.and_then(|fields| fields.get(&self.first)) {
            Some(value) => any_at(&self.steps, value, f),
            None => false,
        }
    }
}

fn any_at(steps: &[Step], value: &Value, f: &mut impl FnMut(&Value) -> bool) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return f(value);
    };
    match (step, value) {
        (Step::Key(key), Value::Object(map)) => map.get(key).is_some_and(|v| any_at(rest, v, f)),
        (Step::Index(index), Value::Array(elements)) => {
            elements.get(*index).is_some_and(|v| any_at(rest, v, f))
        }
        (Step::Each, Value::Array(elements)) => elements.iter().any(|v| any_at(rest, v, f)),
        // A key into an array, an index into an object, anything into a
        // scalar: Qdrant's path reaches nothing there.
        _ => false,
    }
}

/// Takes one key, bare or in double quotes, from the front of `rest`.
fn take_key(rest: &mut &str) -> Option<String> {
    if let Some(after) = rest.strip_prefix('"') {
        // As in Qdrant, a quoted key has no escapes: it ends at the next quote.
        let end = after.find(['"', '\\'])?;
        if !after[end..].starts_with('"') {
            return None;
        }
        let key = after[..end].to_string();
        *rest = &after[end + 1..];
        return Some(key);
    }
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    let key = rest[..end].to_string();
    *rest = &rest[end..];
    Some(key)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::FILTER_KEY_STEPS_MAX;
    use crate::vectors::filter::tests::{holds, matching, parse, refused};

    #[test]
    fn key_paths() {
        let city = |key: &str| matching(key, json!({ "value": "Paris" }));
        let nested = json!({ "address": { "city": "Paris" } });
        assert!(holds(city("address.city"), nested.clone()));
        assert!(!holds(city("address.town"), nested.clone()));
        assert!(!holds(city("address"), nested));

        // Qdrant's paths do not look into arrays unless told to with [].
        let listed = json!({ "places": [{ "city": "Rome" }, { "city": "Paris" }] });
        assert!(!holds(city("places.city"), listed.clone()));
        assert!(holds(city("places[].city"), listed.clone()));
        assert!(holds(city("places[1].city"), listed.clone()));
        assert!(!holds(city("places[0].city"), listed.clone()));
        assert!(!holds(city("places[2].city"), listed.clone()));
        assert!(!holds(city("places[]"), listed));

        let deep = json!({ "a": [{ "b": [{ "c": 1 }] }, { "b": [{ "c": 2 }, { "c": 3 }] }] });
        assert!(holds(
            matching("a[].b[].c", json!({ "value": 3 })),
            deep.clone()
        ));
        assert!(!holds(matching("a[].b[].c", json!({ "value": 4 })), deep));
        // [] on a scalar reaches nothing; on an array of arrays, the inner arrays.
        assert!(!holds(
            matching("t[]", json!({ "value": 1 })),
            json!({ "t": 1 })
        ));
        assert!(holds(
            matching("t[]", json!({ "value": 1 })),
            json!({ "t": [[0, 1]] })
        ));

        assert!(holds(city("\"x.y\""), json!({ "x.y": "Paris" })));
        assert!(holds(
            city("a.\"b c\".d-e_f"),
            json!({ "a": { "b c": { "d-e_f": "Paris" } } })
        ));
        assert!(holds(city("größe"), json!({ "größe": "Paris" })));
    }

    #[test]
    fn key_paths_refused() {
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "a[",
            "a[x]",
            "a b",
            "a]",
            "\"a",
            "\"a\\\"\"",
            "a[-1]",
        ] {
            let e = refused(&json!({ "must": [matching(bad, json!({ "value": 1 }))] }));
            assert!(e.starts_with("filter.must[0].key: "), "{bad}: {e}");
            assert!(e.contains("is not a key path"), "{bad}: {e}");
        }
        let e = refused(&json!({ "must": [{ "key": 1, "match": { "value": 1 } }] }));
        assert_eq!(e, "filter.must[0].key: expected a key path, found 1");
        let longest = vec!["k"; FILTER_KEY_STEPS_MAX].join(".");
        parse(&json!({ "must": [matching(&longest, json!({ "value": 1 }))] }));
        let e =
            refused(&json!({ "must": [matching(&format!("{longest}.k"), json!({ "value": 1 }))] }));
        assert!(e.contains("FILTER_KEY_STEPS_MAX"), "{e}");
    }
}
