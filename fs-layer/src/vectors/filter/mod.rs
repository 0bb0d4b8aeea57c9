//! Filters over the JSON payloads of points, with the semantics of Qdrant's
//! filter, so that a server can pass a Qdrant JSON filter through unchanged;
//! and the checks a payload passes before it is stored.
//!
//! The grammar is Qdrant's REST form (where "one or a list" is written `…`):
//!
//! ```text
//! filter    := { "must"?: cond…, "should"?: cond…, "must_not"?: cond… }
//! cond      := filter
//!            | { "key": K, "match": { "value": STRING | INTEGER | BOOL } }
//!            | { "key": K, "match": { "any" | "except": [STRING…] | [INTEGER…] } }
//!            | { "key": K, "range": { "gt"?, "gte"?, "lt"?, "lte"?: NUMBER } }
//!            | { "has_id": [U64…] } | { "is_empty": { "key": K } } | { "is_null": { "key": K } }
//! K         := key ( "." key | "[]" | "[" DIGITS "]" )*     key := [alnum _ -]+ | '"' [^"\]* '"'
//! ```
//!
//! Semantics follow Qdrant's code (lib/segment/src/payload_storage/
//! query_checker.rs and condition_checker.rs, lib/segment/src/json_path/,
//! lib/segment/src/common/utils.rs), which differs from intuition in places:
//!
//! * `must` and `must_not` of no conditions hold; `"should": []` holds for no
//!   point (Qdrant issue #554, closed as wontfix). A `null` clause is absent.
//! * A key path does not look into arrays unless it says so: `a.b` finds
//!   nothing when `a` is an array; `a[].b` visits every element of `a`.
//! * `match` and `range` hold when any value at the path holds; a value that
//!   is an array is tested element by element, one level deep.
//! * `match` of an integer holds only for payload numbers that are integers:
//!   `{"value": 1}` does not match `1.0` (serde_json's `as_i64`).
//! * `except` holds for a value not in the list and of another type, but not
//!   for `null`, a missing field or an empty array.
//! * `is_empty` holds when every value at the path is `null` or `[]`, so for a
//!   missing field too, and not for `[null]`. `is_null` holds when some value
//!   is `null`: not for a missing field, `[]` or `[null]` (but `a[]` finds
//!   the `null` in `[null]`).
//! * A point without payload is checked as one with the empty payload `{}`.
//!
//! Whatever Qdrant accepts and this module does not evaluate (full-text and
//! prefix match, geo, values_count, nested, has_vector, min_should, datetime
//! ranges, UUID ids) is refused by name, never ignored; so is any key Qdrant
//! does not know. A key of Qdrant's whose value is `null` is absent, as in
//! Qdrant, since its clients may write unset fields so.
//!
//! Parsing turns the JSON into an owned tree, key paths split into steps and
//! long value lists hashed, so that checking a point allocates nothing: a
//! query checks every payload of a file.
//!
//! Here, the compiled form of a filter and its evaluation; `field` holds
//! `match` and `range`, `key_path` the paths into a payload, `parse` the
//! walk over the filter's JSON with its errors, and `payload` the checks a
//! payload passes before it is stored.

use serde_json::{Map, Value};

mod field;
mod index;
mod key_path;
mod parse;
mod payload;
#[cfg(test)]
mod randomized;

pub use index::{
    parse_index_spec, Candidates, IndexKind, IndexedField, PayloadIndex, PAYLOAD_INDEX_FIELDS_MAX,
    PAYLOAD_INDEX_SPEC_BYTES_MAX,
};
pub use payload::{merge_payload, parse_payload, PAYLOAD_BYTES_MAX, PAYLOAD_DEPTH_MAX};

use field::FieldTest;
use key_path::KeyPath;
use parse::{Parser, FILTER_KEYS};

/// Bytes of one filter's JSON.
pub const FILTER_BYTES_MAX: usize = vexfs_uapi::limits::FILTER_BYTES_MAX as usize;
/// Levels of filters, the top one counted: a filter in a filter is depth 2.
pub const FILTER_DEPTH_MAX: usize = 16;
/// Conditions in one filter at all levels, nested filters counted.
pub const FILTER_CONDITIONS_MAX: usize = 1_024;
/// Values in all `any`, `except` and `has_id` lists of one filter together.
pub const FILTER_VALUES_MAX: usize = 65_536;
/// Steps of one key path (`a.b[].c` has four): a path cannot usefully reach
/// deeper than a payload nests, and checking a point recurses once per step.
pub const FILTER_KEY_STEPS_MAX: usize = PAYLOAD_DEPTH_MAX;

/// A parsed filter: see the module documentation.
#[derive(Clone, Debug)]
pub struct Filter {
    must: Vec<Condition>,
    /// `None` when absent (holds); `Some(empty)` holds for no point.
    should: Option<Vec<Condition>>,
    must_not: Vec<Condition>,
    /// The JSON it was parsed from (empty for a filter inside a filter):
    /// what a cache of its matches is keyed by.
    source: Box<[u8]>,
}

#[derive(Clone, Debug)]
enum Condition {
    Field {
        path: KeyPath,
        test: FieldTest,
    },
    /// Sorted and without duplicates: searched, and handed out as candidates.
    HasId(Vec<u64>),
    IsEmpty(KeyPath),
    IsNull(KeyPath),
    Filter(Box<Filter>),
}

impl Filter {
    /// Parses a filter from JSON; an error names the place in the filter,
    /// as in `filter.must[2].range.gt: expected a number, found "x"`.
    pub fn parse(json: &[u8]) -> Result<Filter, String> {
        if json.len() > FILTER_BYTES_MAX {
            return Err(format!(
                "filter: {} bytes, more than FILTER_BYTES_MAX ({FILTER_BYTES_MAX})",
                json.len()
            ));
        }
        // serde_json refuses JSON nested past 128 levels, so the value can be
        // walked recursively; filters in filters are bounded before each walk.
        let value: Value =
            serde_json::from_slice(json).map_err(|e| format!("filter: not JSON: {e}"))?;
        let mut filter = Filter::from_value(&value)?;
        filter.source = json.into();
        Ok(filter)
    }

    fn from_value(value: &Value) -> Result<Filter, String> {
        Parser::default().filter(value, "filter", 1, FILTER_KEYS)
    }

    /// The JSON this filter was parsed from.
    pub fn source(&self) -> &[u8] {
        &self.source
    }

    /// Whether the point with this id and payload (a JSON object) passes.
    pub fn matches(&self, id: u64, payload: Option<&Value>) -> bool {
        // Qdrant checks a point without payload against the empty payload.
        self.check(id, payload.and_then(Value::as_object))
    }

    /// Ids the filter can only match among, when its top-level `must` holds a
    /// `has_id` (the intersection of all such, ascending), else `None`: lets
    /// the caller skip a scan.
    pub fn id_candidates(&self) -> Option<Vec<u64>> {
        let mut candidates: Option<Vec<u64>> = None;
        for condition in &self.must {
            if let Condition::HasId(ids) = condition {
                match &mut candidates {
                    None => candidates = Some(ids.clone()),
                    Some(kept) => kept.retain(|id| ids.binary_search(id).is_ok()),
                }
            }
        }
        candidates
    }

    /// Whether the filter matches every point, as `{}` does.
    pub fn is_empty(&self) -> bool {
        self.must.iter().all(Condition::holds_always)
            && self.must_not.is_empty()
            && self
                .should
                .as_ref()
                .is_none_or(|should| should.iter().any(Condition::holds_always))
    }

    fn check(&self, id: u64, fields: Option<&Map<String, Value>>) -> bool {
        self.must.iter().all(|c| c.check(id, fields))
            && !self.must_not.iter().any(|c| c.check(id, fields))
            && self
                .should
                .as_ref()
                .is_none_or(|should| should.iter().any(|c| c.check(id, fields)))
    }
}

impl Condition {
    fn check(&self, id: u64, fields: Option<&Map<String, Value>>) -> bool {
        match self {
            Condition::Field { path, test } => path.any_value(fields, &mut |v| test.check(v)),
            Condition::HasId(ids) => ids.binary_search(&id).is_ok(),
            Condition::IsEmpty(path) => !path.any_value(fields, &mut |v| !is_empty_value(v)),
            Condition::IsNull(path) => path.any_value(fields, &mut Value::is_null),
            Condition::Filter(filter) => filter.check(id, fields),
        }
    }

    fn holds_always(&self) -> bool {
        matches!(self, Condition::Filter(filter) if filter.is_empty())
    }
}

fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(elements) => elements.is_empty(),
        Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Object(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The helpers below are shared with the tests of the submodules.

    pub(super) fn parse(filter: &Value) -> Filter {
        Filter::parse(filter.to_string().as_bytes()).unwrap_or_else(|e| panic!("{filter}: {e}"))
    }

    pub(super) fn refused(filter: &Value) -> String {
        match Filter::parse(filter.to_string().as_bytes()) {
            Ok(parsed) => panic!("{filter} parsed as {parsed:?}"),
            Err(e) => e,
        }
    }

    /// Whether `{"must": [condition]}` matches point 1 with this payload.
    pub(super) fn holds(condition: Value, payload: Value) -> bool {
        parse(&json!({ "must": [condition] })).matches(1, Some(&payload))
    }

    pub(super) fn matching(key: &str, m: Value) -> Value {
        json!({ "key": key, "match": m })
    }

    #[test]
    fn has_id_and_candidates() {
        let filter = parse(&json!({ "must": { "has_id": [5, 3, 3, 9] } }));
        assert!(filter.matches(3, None));
        assert!(!filter.matches(4, None));
        assert_eq!(filter.id_candidates(), Some(vec![3, 5, 9]));

        let filter = parse(&json!({ "must": [{ "has_id": [1, 2, 3] }, { "has_id": [3, 2, 7] }] }));
        assert_eq!(filter.id_candidates(), Some(vec![2, 3]));
        assert!(filter.matches(2, None) && !filter.matches(1, None));

        let filter = parse(&json!({ "must_not": { "has_id": [1] } }));
        assert_eq!(filter.id_candidates(), None);
        assert!(!filter.matches(1, None) && filter.matches(2, None));
        // Only the top level's must bounds the ids; a nested one is only checked.
        let filter = parse(&json!({ "must": [{ "must": { "has_id": [1] } }] }));
        assert_eq!(filter.id_candidates(), None);
        assert!(filter.matches(1, None) && !filter.matches(2, None));
        let filter = parse(&json!({ "must": { "has_id": [] } }));
        assert_eq!(filter.id_candidates(), Some(vec![]));
        assert!(!filter.matches(0, None));
        assert_eq!(parse(&json!({})).id_candidates(), None);
    }

    #[test]
    fn is_empty_and_is_null() {
        let empty = |payload: Option<Value>| {
            parse(&json!({ "must": { "is_empty": { "key": "a" } } })).matches(1, payload.as_ref())
        };
        let null = |payload: Option<Value>| {
            parse(&json!({ "must": { "is_null": { "key": "a" } } })).matches(1, payload.as_ref())
        };
        // (payload, is_empty, is_null), as Qdrant's condition checker tests them.
        let cases = [
            (None, true, false),
            (Some(json!({})), true, false),
            (Some(json!({ "a": null })), true, true),
            (Some(json!({ "a": [] })), true, false),
            (Some(json!({ "a": [null] })), false, false),
            (Some(json!({ "a": "" })), false, false),
            (Some(json!({ "a": 0 })), false, false),
            (Some(json!({ "a": {} })), false, false),
            (Some(json!({ "a": false })), false, false),
        ];
        for (payload, is_empty, is_null) in cases {
            assert_eq!(empty(payload.clone()), is_empty, "is_empty {payload:?}");
            assert_eq!(null(payload.clone()), is_null, "is_null {payload:?}");
        }
        let at =
            |kind: &str, key: &str, payload: Value| holds(json!({ kind: { "key": key } }), payload);
        assert!(at("is_null", "a[]", json!({ "a": [null] })));
        assert!(at("is_empty", "a[]", json!({ "a": [null] })));
        assert!(at("is_empty", "a[]", json!({ "a": 5 })));
        let mixed = json!({ "a": [{ "b": 1 }, { "b": null }] });
        assert!(at("is_null", "a[].b", mixed.clone()));
        assert!(!at("is_empty", "a[].b", mixed));
        assert!(at(
            "is_empty",
            "a[].b",
            json!({ "a": [{ "b": [] }, { "b": null }, {}] })
        ));
        assert!(at("is_empty", "a.b", json!({ "a": { "c": 1 } })));
    }

    #[test]
    fn clauses() {
        let red = matching("color", json!({ "value": "red" }));
        let london = matching("city", json!({ "value": "London" }));
        let point = json!({ "city": "London", "color": "red" });
        let check = |filter: Value| parse(&filter).matches(1, Some(&point));

        assert!(check(json!({ "must": [] })));
        assert!(check(json!({ "must_not": [] })));
        assert!(check(
            json!({ "must": null, "should": null, "must_not": null })
        ));
        // Qdrant: an empty should matches nothing (issue #554, wontfix).
        assert!(!check(json!({ "should": [] })));
        assert!(!check(json!({ "must": [red.clone()], "should": [] })));

        assert!(check(json!({ "must": [red.clone(), london.clone()] })));
        assert!(check(json!({ "must": red.clone() })));
        let blue = matching("color", json!({ "value": "blue" }));
        assert!(!check(json!({ "must": [red.clone(), blue.clone()] })));
        assert!(check(json!({ "should": [blue.clone(), red.clone()] })));
        assert!(!check(json!({ "should": blue.clone() })));
        assert!(check(json!({ "must_not": blue.clone() })));
        assert!(!check(json!({ "must_not": [blue.clone(), red.clone()] })));
        assert!(!check(
            json!({ "must": london.clone(), "must_not": red.clone() })
        ));
        assert!(check(
            json!({ "must": london.clone(), "should": [blue.clone(), red.clone()], "must_not": blue.clone() })
        ));
        assert!(!check(
            json!({ "must": london, "should": blue, "must_not": [] })
        ));
    }

    #[test]
    fn nested_filters() {
        let m = |key: &str, value: Value| matching(key, json!({ "value": value }));
        let filter = parse(&json!({
            "should": [
                { "must": [m("city", json!("London")), m("color", json!("red"))] },
                { "must": [m("city", json!("Berlin"))], "must_not": m("color", json!("red")) }
            ]
        }));
        let point = |city: &str, color: &str| json!({ "city": city, "color": color });
        assert!(filter.matches(1, Some(&point("London", "red"))));
        assert!(!filter.matches(1, Some(&point("London", "blue"))));
        assert!(filter.matches(1, Some(&point("Berlin", "blue"))));
        assert!(!filter.matches(1, Some(&point("Berlin", "red"))));

        // `{}` as a condition is a filter that holds, as in Qdrant.
        assert!(parse(&json!({ "must": [{}] })).matches(1, None));
        assert!(!parse(&json!({ "must_not": [{}] })).matches(1, None));
        assert!(!parse(&json!({ "must": { "should": [] } })).matches(1, None));
    }

    #[test]
    fn is_empty_means_matches_everything() {
        for everything in [
            json!({}),
            json!({ "must": [] }),
            json!({ "must_not": [], "should": null }),
            json!({ "must": [{}, { "must": {} }] }),
            json!({ "should": [{}, { "has_id": [1] }] }),
        ] {
            assert!(parse(&everything).is_empty(), "{everything}");
        }
        for something in [
            json!({ "should": [] }),
            json!({ "must_not": {} }),
            json!({ "must": { "has_id": [1] } }),
            json!({ "must": { "should": [] } }),
            json!({ "must": { "is_empty": { "key": "a" } } }),
        ] {
            assert!(!parse(&something).is_empty(), "{something}");
        }
    }

    #[test]
    fn payload_that_is_not_an_object_is_the_empty_payload() {
        let filter = parse(&json!({ "must": { "is_empty": { "key": "a" } } }));
        assert!(filter.matches(1, Some(&json!(5))));
        assert!(filter.matches(1, Some(&json!(["a"]))));
        assert!(!filter.matches(1, Some(&json!({ "a": 1 }))));
    }
}
