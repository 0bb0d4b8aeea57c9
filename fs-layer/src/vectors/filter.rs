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

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::Hash;

use serde_json::{Map, Value};

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
/// Bytes of one payload's JSON.
pub const PAYLOAD_BYTES_MAX: usize = vexfs_uapi::limits::PAYLOAD_BYTES_MAX as usize;
/// Levels of objects and arrays in one payload, the top object counted.
pub const PAYLOAD_DEPTH_MAX: usize = 32;

/// Up to this many values a list is scanned; past it, hashing the probed
/// value once is cheaper than comparing it with each.
const VALUES_SCAN_MAX: usize = 8;
/// Characters of a payload or filter string quoted back in an error.
const ERROR_QUOTE_CHARS_MAX: usize = 40;

/// A parsed filter: see the module documentation.
#[derive(Clone, Debug)]
pub struct Filter {
    must: Vec<Condition>,
    /// `None` when absent (holds); `Some(empty)` holds for no point.
    should: Option<Vec<Condition>>,
    must_not: Vec<Condition>,
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

/// What a `match` or `range` asks of one value at the path.
#[derive(Clone, Debug)]
enum FieldTest {
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
enum ValueSet {
    Keywords(Members<String>),
    Integers(Members<i64>),
}

#[derive(Clone, Debug)]
enum Members<T> {
    Few(Vec<T>),
    Many(HashSet<T>),
}

#[derive(Clone, Copy, Debug)]
struct Range {
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
}

/// A key path: the payload's top-level key, then steps down from it.
#[derive(Clone, Debug)]
struct KeyPath {
    first: String,
    steps: Vec<Step>,
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
    Each,
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
        Filter::from_value(&value)
    }

    fn from_value(value: &Value) -> Result<Filter, String> {
        Parser::default().filter(value, "filter", 1, FILTER_KEYS)
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

impl FieldTest {
    /// An array is tested element by element; arrays in it are not opened.
    fn check(&self, value: &Value) -> bool {
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
    fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

impl KeyPath {
    /// Whether `f` holds for some value the path reaches; stops at the first.
    fn any_value(
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

/// Counts against the limits over a whole filter while it is parsed.
#[derive(Default)]
struct Parser {
    conditions: usize,
    values: usize,
}

const FILTER_KEYS: &str = "\"must\", \"should\" or \"must_not\"";
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
    fn filter(
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
                let key = key_path(key, &format!("{inner_path}.key"))?;
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

    fn field(&mut self, fields: &Map<String, Value>, path: &str) -> Result<Condition, String> {
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
        let key = key_path(key, &format!("{path}.key"))?;
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

    fn count_values(&mut self, count: usize, path: &str) -> Result<(), String> {
        self.values = self.values.saturating_add(count);
        if self.values > FILTER_VALUES_MAX {
            return Err(format!(
                "{path}: more than FILTER_VALUES_MAX ({FILTER_VALUES_MAX}) values in the filter's lists"
            ));
        }
        Ok(())
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

/// Parses a key path in Qdrant's syntax (see the module documentation).
fn key_path(value: &Value, path: &str) -> Result<KeyPath, String> {
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

/// A key whose value is `null` is absent, as with Qdrant's optional fields.
fn present<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|v| !v.is_null())
}

/// Refuses any key not in `allowed`, naming it; a key Qdrant knows and this
/// module refuses is let pass when `null`, as Qdrant reads it as absent.
fn check_keys(
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

fn as_object<'a>(
    value: &'a Value,
    path: &str,
    what: &str,
) -> Result<&'a Map<String, Value>, String> {
    value.as_object().ok_or_else(|| expected(path, what, value))
}

fn as_array<'a>(value: &'a Value, path: &str, what: &str) -> Result<&'a Vec<Value>, String> {
    value.as_array().ok_or_else(|| expected(path, what, value))
}

fn expected(path: &str, what: &str, found: &Value) -> String {
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
fn quote(s: &str) -> String {
    match s.char_indices().nth(ERROR_QUOTE_CHARS_MAX) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

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

    fn parse(filter: &Value) -> Filter {
        Filter::parse(filter.to_string().as_bytes()).unwrap_or_else(|e| panic!("{filter}: {e}"))
    }

    fn refused(filter: &Value) -> String {
        match Filter::parse(filter.to_string().as_bytes()) {
            Ok(parsed) => panic!("{filter} parsed as {parsed:?}"),
            Err(e) => e,
        }
    }

    /// Whether `{"must": [condition]}` matches point 1 with this payload.
    fn holds(condition: Value, payload: Value) -> bool {
        parse(&json!({ "must": [condition] })).matches(1, Some(&payload))
    }

    fn matching(key: &str, m: Value) -> Value {
        json!({ "key": key, "match": m })
    }

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

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Random(u64);

    impl Random {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    /// A filter tree with its leaves, checked without this module.
    enum Tree {
        Leaf(Leaf),
        Node {
            must: Option<Vec<Tree>>,
            should: Option<Vec<Tree>>,
            must_not: Option<Vec<Tree>>,
        },
    }

    enum Leaf {
        Keyword(String, String),
        Between(String, i64, i64),
        HasId(Vec<u64>),
        IsEmpty(String),
    }

    const KEYS: [&str; 3] = ["k0", "k1", "k2"];

    fn random_scalar(r: &mut Random) -> Value {
        match r.below(5) {
            0 => Value::Null,
            1 => json!(r.below(2) == 1),
            2 | 3 => json!(r.below(5) as i64 - 1),
            _ => json!(format!("s{}", r.below(4))),
        }
    }

    fn random_payload(r: &mut Random) -> Value {
        let mut fields = Map::new();
        for key in KEYS {
            let value = match r.below(4) {
                0 => continue,
                1 => Value::Array((0..r.below(3)).map(|_| random_scalar(r)).collect()),
                _ => random_scalar(r),
            };
            fields.insert(key.to_string(), value);
        }
        Value::Object(fields)
    }

    fn random_tree(r: &mut Random, depth: u32) -> Tree {
        // Past three levels, always a leaf: the tree stays finite and shallow.
        if depth >= 3 || (depth > 0 && r.below(3) != 0) {
            let key = KEYS[r.below(3) as usize].to_string();
            return Tree::Leaf(match r.below(4) {
                0 => Leaf::Keyword(key, format!("s{}", r.below(4))),
                1 => {
                    let low = r.below(5) as i64 - 1;
                    Leaf::Between(key, low, low + r.below(3) as i64)
                }
                2 => Leaf::HasId((0..r.below(3)).map(|_| r.below(6)).collect()),
                _ => Leaf::IsEmpty(key),
            });
        }
        let clause = |r: &mut Random| match r.below(4) {
            0 => None,
            _ => Some((0..r.below(4)).map(|_| random_tree(r, depth + 1)).collect()),
        };
        Tree::Node {
            must: clause(r),
            should: clause(r),
            must_not: clause(r),
        }
    }

    fn to_json(tree: &Tree) -> Value {
        match tree {
            Tree::Leaf(Leaf::Keyword(key, value)) => matching(key, json!({ "value": value })),
            Tree::Leaf(Leaf::Between(key, low, high)) => {
                json!({ "key": key, "range": { "gte": low, "lt": high } })
            }
            Tree::Leaf(Leaf::HasId(ids)) => json!({ "has_id": ids }),
            Tree::Leaf(Leaf::IsEmpty(key)) => json!({ "is_empty": { "key": key } }),
            Tree::Node {
                must,
                should,
                must_not,
            } => {
                let mut fields = Map::new();
                for (name, clause) in [("must", must), ("should", should), ("must_not", must_not)] {
                    if let Some(clause) = clause {
                        let conditions: Vec<Value> = clause.iter().map(to_json).collect();
                        // Qdrant's one-condition form, now and then.
                        let written = match conditions.as_slice() {
                            [one] if one.get("key").is_some() => one.clone(),
                            _ => Value::Array(conditions),
                        };
                        fields.insert(name.to_string(), written);
                    }
                }
                Value::Object(fields)
            }
        }
    }

    fn expect(tree: &Tree, id: u64, payload: &Value) -> bool {
        let at = |key: &str| payload.get(key);
        let elements = |key: &str| -> Vec<Value> {
            match at(key) {
                Some(Value::Array(elements)) => elements.clone(),
                Some(v) => vec![v.clone()],
                None => vec![],
            }
        };
        match tree {
            Tree::Leaf(Leaf::Keyword(key, value)) => elements(key).contains(&json!(value)),
            Tree::Leaf(Leaf::Between(key, low, high)) => elements(key)
                .iter()
                .filter_map(Value::as_f64)
                .any(|x| x >= *low as f64 && x < *high as f64),
            Tree::Leaf(Leaf::HasId(ids)) => ids.contains(&id),
            Tree::Leaf(Leaf::IsEmpty(key)) => match at(key) {
                None | Some(Value::Null) => true,
                Some(Value::Array(elements)) => elements.is_empty(),
                Some(_) => false,
            },
            Tree::Node {
                must,
                should,
                must_not,
            } => {
                let all =
                    |c: &Option<Vec<Tree>>| c.iter().flatten().all(|t| expect(t, id, payload));
                let none =
                    |c: &Option<Vec<Tree>>| !c.iter().flatten().any(|t| expect(t, id, payload));
                let some = |c: &Option<Vec<Tree>>| match c {
                    None => true,
                    Some(trees) => trees.iter().any(|t| expect(t, id, payload)),
                };
                all(must) && none(must_not) && some(should)
            }
        }
    }

    #[test]
    fn randomized_against_direct_evaluation() {
        let mut r = Random(0x9e37_79b9_7f4a_7c15);
        let payloads: Vec<Value> = (0..64).map(|_| random_payload(&mut r)).collect();
        let mut matched = 0;
        for _ in 0..2_000 {
            let tree = random_tree(&mut r, 0);
            let written = to_json(&tree);
            let filter = parse(&written);
            let candidates = filter.id_candidates();
            for (id, payload) in payloads.iter().enumerate() {
                let id = id as u64 % 6;
                let want = expect(&tree, id, payload);
                assert_eq!(
                    filter.matches(id, Some(payload)),
                    want,
                    "{written} on {id} {payload}"
                );
                if want {
                    matched += 1;
                    assert!(
                        candidates.as_ref().is_none_or(|c| c.contains(&id)),
                        "{written}"
                    );
                }
            }
        }
        // Both outcomes were exercised, not one by accident.
        assert!(matched > 10_000 && matched < 118_000, "{matched}");
    }
}
