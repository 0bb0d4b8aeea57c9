//! Conditions on the values at a key path: `match` (of one value, `any` or
//! `except` of a list) and `range`, parsed from a filter and checked against
//! the values a path reaches.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;

use serde_json::{Map, Value};

use super::key_path::KeyPath;
use super::parse::{as_array, as_object, check_keys, expected, present, Parser};
use super::Condition;

/// Up to this many values a list is scanned; past it, hashing the probed
/// value once is cheaper than comparing it with each.
const VALUES_SCAN_MAX: usize = 8;

/// What a `match` or `range` asks of one value at the path.
#[derive(Clone, Debug)]
pub(super) enum FieldTest {
    Keyword(String),
    Integer(i64),
    Bool(bool),
    Any(ValueSet),
    Except(ValueSet),
    Range(Range),
}

/// The list of an `any` or `except`: Qdrant takes strings or integers, not
/// both; an empty list is one of strings.
#[derive(Clone, Debug)]
pub(super) enum ValueSet {
    Keywords(Members<String>),
    Integers(Members<i64>),
}

#[derive(Clone, Debug)]
pub(super) enum Members<T> {
    Few(Vec<T>),
    Many(HashSet<T>),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Range {
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
}

impl FieldTest {
    /// An array is tested element by element; arrays in it are not opened.
    pub(super) fn check(&self, value: &Value) -> bool {
        match value {
            Value::Array(elements) => elements.iter().any(|e| self.check_one(e)),
            _ => self.check_one(value),
        }
    }

    fn check_one(&self, value: &Value) -> bool {
        match (self, value) {
            (FieldTest::Keyword(keyword), Value::String(s)) => s == keyword,
            (FieldTest::Integer(integer), Value::Number(n)) => n.as_i64() == Some(*integer),
            (FieldTest::Bool(flag), Value::Bool(b)) => b == flag,
            (FieldTest::Any(set), _) => set.holds(value),
            (FieldTest::Except(set), _) => match (set, value) {
                (ValueSet::Keywords(members), Value::String(s)) => !members.contains(s.as_str()),
                (ValueSet::Integers(members), Value::Number(n)) => {
                    n.as_i64().is_none_or(|i| !members.contains(&i))
                }
                (_, Value::Null) => false,
                // A value of another type, a float, an object or an array
                // inside the array is "not in the list", as in Qdrant.
                _ => true,
            },
            (FieldTest::Range(range), Value::Number(n)) => {
                n.as_f64().is_some_and(|x| range.contains(x))
            }
            _ => false,
        }
    }
}

impl ValueSet {
    fn holds(&self, value: &Value) -> bool {
        match (self, value) {
            (ValueSet::Keywords(members), Value::String(s)) => members.contains(s.as_str()),
            (ValueSet::Integers(members), Value::Number(n)) => {
                n.as_i64().is_some_and(|i| members.contains(&i))
            }
            _ => false,
        }
    }
}

impl<T: Eq + Hash> Members<T> {
    fn new(values: Vec<T>) -> Members<T> {
        if values.len() <= VALUES_SCAN_MAX {
            Members::Few(values)
        } else {
            Members::Many(values.into_iter().collect())
        }
    }

    fn contains<Q: Eq + Hash + ?Sized>(&self, probe: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        match self {
            Members::Few(values) => values.iter().any(|v| v.borrow() == probe),
            Members::Many(values) => values.contains(probe),
        }
    }
}

impl Range {
    /// The integers the range holds, as [low, high] (low > high: none).
    /// Bounds past the i64 range saturate, which holds the same integers.
    pub(super) fn integer_bounds(&self) -> Option<(i64, i64)> {
        let mut low = i64::MIN;
        let mut high = i64::MAX;
        if let Some(b) = self.gte {
            low = low.max(b.ceil() as i64);
        }
        if let Some(b) = self.gt {
            low = low.max((b.floor() as i64).saturating_add(1));
        }
        if let Some(b) = self.lte {
            high = high.min(b.floor() as i64);
        }
        if let Some(b) = self.lt {
            high = high.min((b.ceil() as i64).saturating_sub(1));
        }
        Some((low, high))
    }

    fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

impl Parser {
    pub(super) fn field(
        &mut self,
        fields: &Map<String, Value>,
        path: &str,
    ) -> Result<Condition, String> {
        for name in ["is_empty", "is_null"] {
            if present(fields, name).is_some() {
                return Err(format!(
                    "{path}: \"{name}\" beside \"key\" is not supported; write {{\"{name}\": {{\"key\": …}}}}"
                ));
            }
        }
        check_keys(
            fields,
            path,
            // Both refused above unless null, when Qdrant reads them as absent.
            &["key", "match", "range", "is_empty", "is_null"],
            "\"key\" with \"match\" or \"range\"",
        )?;
        let key = present(fields, "key")
            .ok_or_else(|| format!("{path}.key: expected a key path, found null"))?;
        let key = KeyPath::parse(key, &format!("{path}.key"))?;
        let test = match (present(fields, "match"), present(fields, "range")) {
            (Some(m), None) => self.match_test(m, &format!("{path}.match"))?,
            (None, Some(r)) => FieldTest::Range(range(r, &format!("{path}.range"))?),
            (None, None) => return Err(format!("{path}: a field condition needs \"match\" or \"range\"")),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{path}: \"match\" and \"range\" in one condition are not supported (Qdrant ORs them); write two conditions"
                ))
            }
        };
        Ok(Condition::Field { path: key, test })
    }

    fn match_test(&mut self, value: &Value, path: &str) -> Result<FieldTest, String> {
        let fields = as_object(
            value,
            path,
            "an object with \"value\", \"any\" or \"except\"",
        )?;
        check_keys(
            fields,
            path,
            &["value", "any", "except"],
            "one of \"value\", \"any\", \"except\"",
        )?;
        let mut chosen: Option<(&str, &Value)> = None;
        for name in ["value", "any", "except"] {
            if let Some(v) = present(fields, name) {
                if let Some((first, _)) = chosen {
                    return Err(format!("{path}: takes one of \"value\", \"any\", \"except\", found \"{first}\" and \"{name}\""));
                }
                chosen = Some((name, v));
            }
        }
        match chosen {
            Some(("value", v)) => scalar(v, &format!("{path}.value")),
            Some(("any", v)) => Ok(FieldTest::Any(self.value_set(v, &format!("{path}.any"))?)),
            Some((_, v)) => Ok(FieldTest::Except(
                self.value_set(v, &format!("{path}.except"))?,
            )),
            None => Err(format!(
                "{path}: expected one of \"value\", \"any\", \"except\""
            )),
        }
    }

    fn value_set(&mut self, value: &Value, path: &str) -> Result<ValueSet, String> {
        let items = as_array(value, path, "a list of strings or of integers")?;
        self.count_values(items.len(), path)?;
        let at = |i: usize| format!("{path}[{i}]");
        match items.first() {
            None | Some(Value::String(_)) => {
                let keywords = items.iter().enumerate().map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(expected(&at(i), "a string, like the first value", other)),
                });
                Ok(ValueSet::Keywords(Members::new(
                    keywords.collect::<Result<_, _>>()?,
                )))
            }
            Some(first) if first.as_i64().is_some() => {
                let integers = items.iter().enumerate().map(|(i, item)| {
                    item.as_i64()
                        .ok_or_else(|| expected(&at(i), "an integer, like the first value", item))
                });
                Ok(ValueSet::Integers(Members::new(
                    integers.collect::<Result<_, _>>()?,
                )))
            }
            Some(first) => Err(expected(
                &at(0),
                "a string or a 64-bit integer (Qdrant's lists take no bools or floats)",
                first,
            )),
        }
    }
}

fn scalar(value: &Value, path: &str) -> Result<FieldTest, String> {
    match value {
        Value::String(s) => Ok(FieldTest::Keyword(s.clone())),
        Value::Bool(b) => Ok(FieldTest::Bool(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(integer) => Ok(FieldTest::Integer(integer)),
            None if n.is_f64() => Err(expected(
                path,
                "a string, an integer or a bool (match takes no floats; use \"range\")",
                value,
            )),
            None => Err(expected(
                path,
                "a string, a 64-bit integer or a bool",
                value,
            )),
        },
        other => Err(expected(path, "a string, an integer or a bool", other)),
    }
}

fn range(value: &Value, path: &str) -> Result<Range, String> {
    let fields = as_object(value, path, "an object of \"gt\", \"gte\", \"lt\", \"lte\"")?;
    check_keys(
        fields,
        path,
        &["gt", "gte", "lt", "lte"],
        "\"gt\", \"gte\", \"lt\" or \"lte\"",
    )?;
    let bound = |name: &str| -> Result<Option<f64>, String> {
        match present(fields, name) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| expected(&format!("{path}.{name}"), "a number", v)),
            Some(s @ Value::String(_)) => Err(expected(
                &format!("{path}.{name}"),
                "a number (datetime ranges are not supported)",
                s,
            )),
            Some(other) => Err(expected(&format!("{path}.{name}"), "a number", other)),
        }
    };
    Ok(Range {
        gt: bound("gt")?,
        gte: bound("gte")?,
        lt: bound("lt")?,
        lte: bound("lte")?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::vectors::filter::tests::{holds, matching, refused};

    #[test]
    fn match_value_keyword_integer_bool() {
        let london = matching("city", json!({ "value": "London" }));
        assert!(holds(london.clone(), json!({ "city": "London" })));
        assert!(!holds(london.clone(), json!({ "city": "Berlin" })));
        assert!(!holds(london.clone(), json!({ "town": "London" })));
        assert!(!holds(london, json!({ "city": 5 })));

        let five = matching("n", json!({ "value": 5 }));
        assert!(holds(five.clone(), json!({ "n": 5 })));
        assert!(!holds(five.clone(), json!({ "n": 6 })));
        assert!(!holds(five.clone(), json!({ "n": "5" })));
        // Qdrant compares with serde_json's as_i64, which a float never passes.
        assert!(!holds(five, json!({ "n": 5.0 })));
        assert!(holds(
            matching("n", json!({ "value": -3 })),
            json!({ "n": -3 })
        ));

        let yes = matching("ok", json!({ "value": true }));
        assert!(holds(yes.clone(), json!({ "ok": true })));
        assert!(!holds(yes.clone(), json!({ "ok": false })));
        assert!(!holds(yes, json!({ "ok": 1 })));
    }

    #[test]
    fn match_on_arrays_tests_each_element_one_level_deep() {
        let london = matching("city", json!({ "value": "London" }));
        assert!(holds(
            london.clone(),
            json!({ "city": ["Berlin", "London"] })
        ));
        assert!(!holds(london.clone(), json!({ "city": ["Berlin"] })));
        assert!(!holds(london.clone(), json!({ "city": [] })));
        assert!(!holds(london, json!({ "city": [["London"]] })));
        assert!(holds(
            matching("n", json!({ "value": 2 })),
            json!({ "n": [1, 2] })
        ));
    }

    #[test]
    fn match_value_refuses_floats_and_other_types() {
        let e = refused(&json!({ "must": [matching("n", json!({ "value": 1.5 }))] }));
        assert!(e.starts_with("filter.must[0].match.value: expected"), "{e}");
        assert!(e.contains("no floats") && e.ends_with("found 1.5"), "{e}");
        let e = refused(&json!({ "must": matching("n", json!({ "value": u64::MAX })) }));
        assert!(e.starts_with("filter.must.match.value:"), "{e}");
        let e = refused(&json!({ "must": [matching("n", json!({ "value": [1] }))] }));
        assert!(e.ends_with("found a list"), "{e}");
        let e = refused(&json!({ "must": [matching("n", json!({ "value": null }))] }));
        assert_eq!(
            e,
            "filter.must[0].match: expected one of \"value\", \"any\", \"except\""
        );
    }

    #[test]
    fn match_any_few_and_many() {
        let few = matching("c", json!({ "any": ["red", "blue"] }));
        assert!(holds(few.clone(), json!({ "c": "red" })));
        assert!(holds(few.clone(), json!({ "c": ["green", "blue"] })));
        assert!(!holds(few.clone(), json!({ "c": "green" })));
        assert!(!holds(few, json!({ "c": 1 })));

        let words: Vec<String> = (0..20).map(|i| format!("w{i}")).collect();
        let many = matching("c", json!({ "any": words }));
        assert!(holds(many.clone(), json!({ "c": "w19" })));
        assert!(!holds(many, json!({ "c": "w20" })));

        let numbers: Vec<i64> = (0..20).map(|i| i * 7).collect();
        let many = matching("n", json!({ "any": numbers }));
        assert!(holds(many.clone(), json!({ "n": 133 })));
        assert!(!holds(many.clone(), json!({ "n": 134 })));
        assert!(!holds(many.clone(), json!({ "n": 133.0 })));
        assert!(!holds(many, json!({ "n": "133" })));
        assert!(holds(
            matching("n", json!({ "any": [1, 2] })),
            json!({ "n": 2 })
        ));

        assert!(!holds(
            matching("c", json!({ "any": [] })),
            json!({ "c": "" })
        ));
    }

    #[test]
    fn match_any_refuses_mixed_bool_and_float_lists() {
        let e = refused(&json!({ "must": [matching("c", json!({ "any": ["a", 1] }))] }));
        assert_eq!(
            e,
            "filter.must[0].match.any[1]: expected a string, like the first value, found 1"
        );
        let e = refused(&json!({ "must": [matching("c", json!({ "except": [1, "a"] }))] }));
        assert!(
            e.starts_with("filter.must[0].match.except[1]: expected an integer"),
            "{e}"
        );
        let e = refused(&json!({ "must": [matching("c", json!({ "any": [true] }))] }));
        assert!(
            e.starts_with("filter.must[0].match.any[0]:") && e.contains("no bools"),
            "{e}"
        );
        let e = refused(&json!({ "must": [matching("c", json!({ "any": [1.5] }))] }));
        assert!(e.ends_with("found 1.5"), "{e}");
        let e = refused(&json!({ "must": [matching("c", json!({ "any": "a" }))] }));
        assert!(
            e.starts_with("filter.must[0].match.any: expected a list"),
            "{e}"
        );
    }

    #[test]
    fn match_except() {
        let not_red = matching("c", json!({ "except": ["red"] }));
        assert!(holds(not_red.clone(), json!({ "c": "blue" })));
        assert!(!holds(not_red.clone(), json!({ "c": "red" })));
        // Absent, null and empty hold no value that could differ.
        assert!(!holds(not_red.clone(), json!({})));
        assert!(!holds(not_red.clone(), json!({ "c": null })));
        assert!(!holds(not_red.clone(), json!({ "c": [] })));
        // An array holds when some element is not in the list.
        assert!(holds(not_red.clone(), json!({ "c": ["red", "blue"] })));
        assert!(!holds(not_red.clone(), json!({ "c": ["red", "red"] })));
        // Values of another type are not in the list.
        assert!(holds(not_red.clone(), json!({ "c": 1 })));
        assert!(holds(not_red.clone(), json!({ "c": true })));
        assert!(holds(not_red.clone(), json!({ "c": { "x": "red" } })));
        assert!(holds(not_red, json!({ "c": [["red"]] })));

        let not_one = matching("n", json!({ "except": [1] }));
        assert!(holds(not_one.clone(), json!({ "n": 2 })));
        assert!(!holds(not_one.clone(), json!({ "n": 1 })));
        assert!(holds(not_one.clone(), json!({ "n": 1.0 })));
        assert!(holds(not_one, json!({ "n": "1" })));

        let numbers: Vec<i64> = (0..20).collect();
        let many = matching("n", json!({ "except": numbers }));
        assert!(!holds(many.clone(), json!({ "n": 19 })));
        assert!(holds(many, json!({ "n": 20 })));
        assert!(holds(
            matching("c", json!({ "except": [] })),
            json!({ "c": "x" })
        ));
    }

    #[test]
    fn range_bounds() {
        let r =
            |range: Value, payload: Value| holds(json!({ "key": "p", "range": range }), payload);
        assert!(!r(json!({ "gt": 10 }), json!({ "p": 10 })));
        assert!(r(json!({ "gte": 10 }), json!({ "p": 10 })));
        assert!(!r(json!({ "lt": 10 }), json!({ "p": 10 })));
        assert!(r(json!({ "lte": 10 }), json!({ "p": 10 })));
        assert!(r(json!({ "gt": 10, "lt": 11 }), json!({ "p": 10.5 })));
        assert!(!r(json!({ "gt": 10.5, "lt": 11 }), json!({ "p": 10.5 })));
        assert!(r(json!({ "gte": -1.5, "lte": null }), json!({ "p": -1 })));
        assert!(r(json!({ "gt": 15 }), json!({ "p": [1, 20] })));
        assert!(!r(json!({ "gt": 15 }), json!({ "p": [1, 2] })));
        // Strings, bools and missing fields are outside every range.
        assert!(!r(json!({ "gt": 1 }), json!({ "p": "10" })));
        assert!(!r(json!({ "gt": 0 }), json!({ "p": true })));
        assert!(!r(json!({ "gt": 0 }), json!({})));
        // No bounds: any number.
        assert!(r(json!({}), json!({ "p": 3 })));
        assert!(!r(json!({}), json!({ "p": "3" })));
    }

    #[test]
    fn range_refuses_non_numbers() {
        let e = refused(&json!({ "must": [{ "key": "p", "range": { "gt": "x" } }] }));
        assert_eq!(
            e,
            "filter.must[0].range.gt: expected a number (datetime ranges are not supported), found \"x\""
        );
        let e = refused(&json!({ "must": [{ "key": "p", "range": { "gt": [1] } }] }));
        assert_eq!(
            e,
            "filter.must[0].range.gt: expected a number, found a list"
        );
        let e = refused(&json!({ "must": [{ "key": "p", "range": { "above": 1 } }] }));
        assert!(
            e.starts_with("filter.must[0].range: unknown key \"above\""),
            "{e}"
        );
        let e = refused(&json!({ "must": [{ "key": "p", "range": 1 }] }));
        assert!(
            e.starts_with("filter.must[0].range: expected an object"),
            "{e}"
        );
    }
}
