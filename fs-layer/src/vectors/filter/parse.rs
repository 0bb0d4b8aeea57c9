//! Parsing a filter's JSON into its compiled form: the clauses, the
//! conditions that are not on a field's values, the limits counted over the
//! whole filter, and the checks of Qdrant's keys; every error names its
//! place, as in `filter.must[2].range.gt: expected a number, found "x"`.

use serde_json::{Map, Value};

use super::key_path::KeyPath;
use super::{Condition, Filter, FILTER_CONDITIONS_MAX, FILTER_DEPTH_MAX, FILTER_VALUES_MAX};

/// Characters of a payload or filter string quoted back in an error.
const ERROR_QUOTE_CHARS_MAX: usize = 40;

/// Counts against the limits over a whole filter while it is parsed.
#[derive(Default)]
pub(super) struct Parser {
    conditions: usize,
    values: usize,
}

pub(super) const FILTER_KEYS: &str = "\"must\", \"should\" or \"must_not\"";
const CONDITION_KEYS: &str = "a condition (\"key\", \"has_id\", \"is_empty\", \"is_null\") \
     or a filter (\"must\", \"should\", \"must_not\")";

/// Qdrant's keys this module knows and refuses, with what they would do.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("min_should", "at least N of the conditions"),
    ("nested", "conditions on objects in an array"),
    ("has_vector", "presence of a named vector"),
    ("slice", "a slice of the id space"),
    ("geo_radius", "geo filter"),
    ("geo_bounding_box", "geo filter"),
    ("geo_polygon", "geo filter"),
    ("values_count", "count of values"),
    ("text", "full-text match"),
    ("text_any", "full-text match"),
    ("phrase", "full-text phrase match"),
    ("prefix", "keyword prefix match"),
];

impl Parser {
    /// `expected` says what else the object could have been, for errors.
    pub(super) fn filter(
        &mut self,
        value: &Value,
        path: &str,
        depth: usize,
        expected: &str,
    ) -> Result<Filter, String> {
        let fields = as_object(value, path, "a filter object")?;
        check_keys(fields, path, &["must", "should", "must_not"], expected)?;
        // Checked before the clauses are walked: each level is a stack frame.
        if depth > FILTER_DEPTH_MAX {
            return Err(format!(
                "{path}: filters nested deeper than FILTER_DEPTH_MAX ({FILTER_DEPTH_MAX})"
            ));
        }
        let must = self.clause(fields, "must", path, depth)?;
        let should = self.clause(fields, "should", path, depth)?;
        let must_not = self.clause(fields, "must_not", path, depth)?;
        Ok(Filter {
            must: must.unwrap_or_default(),
            should,
            must_not: must_not.unwrap_or_default(),
            source: Box::default(),
        })
    }

    /// One clause: absent, one condition, or a list of them (Qdrant takes all three).
    fn clause(
        &mut self,
        fields: &Map<String, Value>,
        name: &str,
        path: &str,
        depth: usize,
    ) -> Result<Option<Vec<Condition>>, String> {
        let path = format!("{path}.{name}");
        match present(fields, name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.condition(item, &format!("{path}[{i}]"), depth))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(item @ Value::Object(_)) => Ok(Some(vec![self.condition(item, &path, depth)?])),
            Some(other) => Err(expected(
                &path,
                "a condition or a list of conditions",
                other,
            )),
        }
    }

    fn condition(&mut self, value: &Value, path: &str, depth: usize) -> Result<Condition, String> {
        self.conditions += 1;
        if self.conditions > FILTER_CONDITIONS_MAX {
            return Err(format!(
                "{path}: more than FILTER_CONDITIONS_MAX ({FILTER_CONDITIONS_MAX}) conditions in the filter"
            ));
        }
        let fields = as_object(value, path, "a condition object")?;
        if fields.contains_key("key") {
            return self.field(fields, path);
        }
        for (name, is_null) in [("is_empty", false), ("is_null", true)] {
            if let Some(inner) = present(fields, name) {
                check_keys(fields, path, &[name], &format!("only \"{name}\""))?;
                let inner_path = format!("{path}.{name}");
                let inner_fields = as_object(inner, &inner_path, "an object with \"key\"")?;
                check_keys(inner_fields, &inner_path, &["key"], "\"key\"")?;
                let key = inner_fields
                    .get("key")
                    .ok_or_else(|| format!("{inner_path}: \"key\" is missing"))?;
                let key = KeyPath::parse(key, &format!("{inner_path}.key"))?;
                return Ok(if is_null {
                    Condition::IsNull(key)
                } else {
                    Condition::IsEmpty(key)
                });
            }
        }
        if let Some(ids) = present(fields, "has_id") {
            check_keys(fields, path, &["has_id"], "only \"has_id\"")?;
            return self.has_id(ids, &format!("{path}.has_id"));
        }
        // What is left is a filter, `{}` included (Qdrant reads it as one that
        // holds), or a condition this module refuses; the filter names which.
        let filter = self.filter(value, path, depth + 1, CONDITION_KEYS)?;
        Ok(Condition::Filter(Box::new(filter)))
    }

    fn has_id(&mut self, value: &Value, path: &str) -> Result<Condition, String> {
        let items = as_array(value, path, "a list of point ids")?;
        self.count_values(items.len(), path)?;
        let mut ids = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_u64() {
                Some(id) => ids.push(id),
                None if item.is_string() => {
                    return Err(expected(
                        &format!("{path}[{i}]"),
                        "an unsigned integer id (UUID ids are not supported)",
                        item,
                    ))
                }
                None => {
                    return Err(expected(
                        &format!("{path}[{i}]"),
                        "an unsigned integer id",
                        item,
                    ))
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(Condition::HasId(ids))
    }

    pub(super) fn count_values(&mut self, count: usize, path: &str) -> Result<(), String> {
        self.values = self.values.saturating_add(count);
        if self.values > FILTER_VALUES_MAX {
            return Err(format!(
                "{path}: more than FILTER_VALUES_MAX ({FILTER_VALUES_MAX}) values in the filter's lists"
            ));
        }
        Ok(())
    }
}

/// A key whose value is `null` is absent, as with Qdrant's optional fields.
pub(super) fn present<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|v| !v.is_null())
}

/// Refuses any key not in `allowed`, naming it; a key Qdrant knows and this
/// module refuses is let pass when `null`, as Qdrant reads it as absent.
pub(super) fn check_keys(
    fields: &Map<String, Value>,
    path: &str,
    allowed: &[&str],
    expected: &str,
) -> Result<(), String> {
    for (name, value) in fields {
        if allowed.contains(&name.as_str()) {
            continue;
        }
        let unsupported = UNSUPPORTED.iter().find(|(known, _)| known == name);
        return Err(match unsupported {
            // An optional field of Qdrant's that a client wrote as unset.
            Some(_) if value.is_null() => continue,
            Some((_, what)) => format!("{path}: \"{name}\" ({what}) is not supported"),
            None => format!("{path}: unknown key {}; expected {expected}", quote(name)),
        });
    }
    Ok(())
}

pub(super) fn as_object<'a>(
    value: &'a Value,
    path: &str,
    what: &str,
) -> Result<&'a Map<String, Value>, String> {
    value.as_object().ok_or_else(|| expected(path, what, value))
}

pub(super) fn as_array<'a>(
    value: &'a Value,
    path: &str,
    what: &str,
) -> Result<&'a Vec<Value>, String> {
    value.as_array().ok_or_else(|| expected(path, what, value))
}

pub(super) fn expected(path: &str, what: &str, found: &Value) -> String {
    let found = match found {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "an object".to_string(),
    };
    format!("{path}: expected {what}, found {found}")
}

/// A string as JSON writes it, cut short: errors quote input, never all of it.
pub(super) fn quote(s: &str) -> String {
    match s.char_indices().nth(ERROR_QUOTE_CHARS_MAX) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::vectors::filter::tests::{matching, parse, refused};
    use crate::vectors::filter::{
        FILTER_BYTES_MAX, FILTER_CONDITIONS_MAX, FILTER_DEPTH_MAX, FILTER_VALUES_MAX,
    };

    #[test]
    fn has_id_refused() {
        let e = refused(&json!({ "must": { "has_id": ["5f0c6a4e-0000-0000-0000-000000000000"] } }));
        assert!(
            e.starts_with("filter.must.has_id[0]: expected an unsigned integer id (UUID"),
            "{e}"
        );
        let e = refused(&json!({ "must": [{}, { "has_id": [1, -1] }] }));
        assert_eq!(
            e,
            "filter.must[1].has_id[1]: expected an unsigned integer id, found -1"
        );
        let e = refused(&json!({ "must": { "has_id": 1 } }));
        assert_eq!(
            e,
            "filter.must.has_id: expected a list of point ids, found 1"
        );
        let e = refused(&json!({ "must": { "has_id": [1], "key": "a" } }));
        assert!(e.starts_with("filter.must: unknown key \"has_id\""), "{e}");
        let e = refused(&json!({ "must": { "has_id": [1], "is_null": { "key": "a" } } }));
        assert!(
            e.starts_with("filter.must: unknown key \"has_id\"; expected only \"is_null\""),
            "{e}"
        );
    }

    #[test]
    fn is_empty_and_is_null_refused() {
        let e = refused(&json!({ "must": { "is_empty": "a" } }));
        assert_eq!(
            e,
            "filter.must.is_empty: expected an object with \"key\", found \"a\""
        );
        let e = refused(&json!({ "must": { "is_null": {} } }));
        assert_eq!(e, "filter.must.is_null: \"key\" is missing");
        let e = refused(&json!({ "must": { "is_null": { "key": "a", "k": 1 } } }));
        assert!(
            e.starts_with("filter.must.is_null: unknown key \"k\""),
            "{e}"
        );
        let e = refused(&json!({ "must": { "key": "a", "is_empty": true } }));
        assert!(
            e.starts_with("filter.must: \"is_empty\" beside \"key\" is not supported"),
            "{e}"
        );
    }

    #[test]
    fn limits() {
        let e = Filter::parse(&vec![b' '; FILTER_BYTES_MAX + 1]).unwrap_err();
        assert_eq!(
            e,
            format!(
                "filter: {} bytes, more than FILTER_BYTES_MAX (65536)",
                FILTER_BYTES_MAX + 1
            )
        );

        let nest = |levels: usize| (1..levels).fold(json!({}), |inner, _| json!({ "must": inner }));
        assert!(parse(&nest(FILTER_DEPTH_MAX)).is_empty());
        let e = refused(&nest(FILTER_DEPTH_MAX + 1));
        assert!(
            e.ends_with("filters nested deeper than FILTER_DEPTH_MAX (16)"),
            "{e}"
        );
        assert!(
            e.starts_with(&format!("filter{}:", ".must".repeat(FILTER_DEPTH_MAX))),
            "{e}"
        );

        parse(&json!({ "must": vec![json!({}); FILTER_CONDITIONS_MAX] }));
        let e = refused(&json!({ "must": vec![json!({}); FILTER_CONDITIONS_MAX + 1] }));
        assert_eq!(
            e,
            "filter.must[1024]: more than FILTER_CONDITIONS_MAX (1024) conditions in the filter"
        );
        let e =
            refused(&json!({ "must": [{}, { "should": vec![json!({}); FILTER_CONDITIONS_MAX] }] }));
        assert!(
            e.starts_with("filter.must[1].should[1022]: more than FILTER_CONDITIONS_MAX"),
            "{e}"
        );

        // FILTER_BYTES_MAX keeps a filter's JSON under FILTER_VALUES_MAX values
        // (each takes two bytes or more); the parsed value is checked alone.
        let half = FILTER_VALUES_MAX / 2;
        let ids: Vec<u64> = (0..half as u64).collect();
        let strings: Vec<String> = (0..half).map(|i| i.to_string()).collect();
        let within =
            json!({ "must": [{ "has_id": ids }, matching("a", json!({ "any": strings }))] });
        Filter::from_value(&within).unwrap();
        let over = json!({ "must": [
            { "has_id": ids },
            matching("a", json!({ "except": (0..=half as i64).collect::<Vec<_>>() }))
        ] });
        let e = Filter::from_value(&over).unwrap_err();
        assert_eq!(
            e,
            "filter.must[1].match.except: more than FILTER_VALUES_MAX (65536) values in the filter's lists"
        );
    }

    #[test]
    fn malformed_filters_name_the_place() {
        let e = Filter::parse(b"{\"must\": [").unwrap_err();
        assert!(
            e.starts_with("filter: not JSON: ") && e.contains("line 1"),
            "{e}"
        );
        let e = Filter::parse(b"{\"must\": {\"key\": \"\xff\"}}").unwrap_err();
        assert!(e.starts_with("filter: not JSON: "), "{e}");
        let e = Filter::parse(b"[]").unwrap_err();
        assert_eq!(e, "filter: expected a filter object, found a list");
        let e = Filter::parse(b"null").unwrap_err();
        assert_eq!(e, "filter: expected a filter object, found null");

        let cases = [
            (json!({ "must": 5 }), "filter.must: expected a condition or a list of conditions, found 5"),
            (json!({ "should": [{}, "x"] }), "filter.should[1]: expected a condition object, found \"x\""),
            (json!({ "filter": {} }), "filter: unknown key \"filter\"; expected \"must\", \"should\" or \"must_not\""),
            (
                json!({ "must": [matching("a", json!({ "value": "x" })), matching("a", json!({ "text": "x" }))] }),
                "filter.must[1].match: \"text\" (full-text match) is not supported",
            ),
            (
                json!({ "must_not": [matching("a", json!({ "prefix": "x" }))] }),
                "filter.must_not[0].match: \"prefix\" (keyword prefix match) is not supported",
            ),
            (
                json!({ "min_should": { "conditions": [], "min_count": 1 } }),
                "filter: \"min_should\" (at least N of the conditions) is not supported",
            ),
            (
                json!({ "must": [{ "key": "loc", "geo_radius": { "center": { "lat": 0, "lon": 0 }, "radius": 1 } }] }),
                "filter.must[0]: \"geo_radius\" (geo filter) is not supported",
            ),
            (
                json!({ "must": [{ "key": "a", "values_count": { "gt": 1 } }] }),
                "filter.must[0]: \"values_count\" (count of values) is not supported",
            ),
            (
                json!({ "must": [{ "nested": { "key": "a", "filter": {} } }] }),
                "filter.must[0]: \"nested\" (conditions on objects in an array) is not supported",
            ),
            (
                json!({ "should": { "should": { "has_vector": "v" } } }),
                "filter.should.should: \"has_vector\" (presence of a named vector) is not supported",
            ),
            (
                json!({ "must": [{ "key": "a" }] }),
                "filter.must[0]: a field condition needs \"match\" or \"range\"",
            ),
            (
                json!({ "must": [{ "key": "a", "match": { "value": 1 }, "range": { "gt": 0 } }] }),
                "filter.must[0]: \"match\" and \"range\" in one condition are not supported (Qdrant ORs them); write two conditions",
            ),
            (
                json!({ "must": [matching("a", json!({ "value": 1, "any": [1] }))] }),
                "filter.must[0].match: takes one of \"value\", \"any\", \"except\", found \"value\" and \"any\"",
            ),
            (
                json!({ "must": [matching("a", json!({}))] }),
                "filter.must[0].match: expected one of \"value\", \"any\", \"except\"",
            ),
            (
                json!({ "must": [matching("a", json!("x"))] }),
                "filter.must[0].match: expected an object with \"value\", \"any\" or \"except\", found \"x\"",
            ),
        ];
        for (filter, error) in cases {
            assert_eq!(refused(&filter), error, "{filter}");
        }

        let e = refused(&json!({ "must": [{ "foo": 1 }] }));
        assert!(
            e.starts_with("filter.must[0]: unknown key \"foo\"; expected a condition"),
            "{e}"
        );
        let e = refused(&json!({ "must": [{ "key": "a", "match": { "value": 1 }, "must": [] }] }));
        assert!(e.starts_with("filter.must[0]: unknown key \"must\""), "{e}");
        let long = "x".repeat(1000);
        let e = refused(&json!({ "must": [{ long.clone(): 1 }] }));
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn null_keys_are_absent_as_qdrant_clients_write_them() {
        let filter = parse(&json!({
            "must": [{
                "key": "a", "match": { "value": "x", "any": null }, "range": null,
                "geo_radius": null, "values_count": null
            }],
            "min_should": null,
        }));
        assert!(filter.matches(1, Some(&json!({ "a": "x" }))));
        // Keys Qdrant does not know are refused even when null.
        let e = refused(&json!({ "must": [{ "foo": null }] }));
        assert!(e.starts_with("filter.must[0]: unknown key \"foo\""), "{e}");
        let e = refused(&json!({ "must": [{ "has_id": null }] }));
        assert!(
            e.starts_with("filter.must[0]: unknown key \"has_id\""),
            "{e}"
        );
        let e = refused(&json!({ "must": [matching("a", json!({ "value": 1, "x": null }))] }));
        assert!(
            e.starts_with("filter.must[0].match: unknown key \"x\""),
            "{e}"
        );
    }
}
