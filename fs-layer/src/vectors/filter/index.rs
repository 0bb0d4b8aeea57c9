//! Payload indexes: for the few keys a file names in `user.vexfs.payload_index`
//! (`city:keyword,year:integer`), the slots holding each value. A filter
//! whose `must` tests an indexed key starts from those slots instead of
//! checking every payload; the whole filter is still checked on each of
//! them, so the index only has to find a superset of the matches.
//!
//! A keyword index answers `match` of a string and `any` of strings; an
//! integer index answers `match` of an integer, `any` of integers and a
//! `range` (unless some value at the key is a float, which a range matches
//! and the index does not hold). Values are found as matching finds them:
//! every value the key path reaches, and the elements of an array there.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::field::{FieldTest, Members, ValueSet};
use super::key_path::KeyPath;
use super::{Condition, Filter};

/// Keys one file may index.
pub const PAYLOAD_INDEX_FIELDS_MAX: usize = 8;
/// Bytes of a `user.vexfs.payload_index` value.
pub const PAYLOAD_INDEX_SPEC_BYTES_MAX: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexKind {
    Keyword,
    Integer,
}

/// One `key:kind` of a `user.vexfs.payload_index` value.
#[derive(Clone, Debug)]
pub struct IndexedField {
    key: KeyPath,
    kind: IndexKind,
}

/// Parses `key:keyword,key:integer,…` (keys in the filter's key syntax);
/// errors name the part that is wrong.
pub fn parse_index_spec(text: &str) -> Result<Vec<IndexedField>, String> {
    if text.len() > PAYLOAD_INDEX_SPEC_BYTES_MAX {
        return Err(format!(
            "{} bytes, more than PAYLOAD_INDEX_SPEC_BYTES_MAX ({PAYLOAD_INDEX_SPEC_BYTES_MAX})",
            text.len()
        ));
    }
    let mut fields: Vec<IndexedField> = Vec::new();
    for (i, part) in text.split(',').map(str::trim).enumerate() {
        let (key, kind) = part
            .rsplit_once(':')
            .ok_or_else(|| format!("part {i} {part:?}: expected key:keyword or key:integer"))?;
        let kind = match kind.trim() {
            "keyword" => IndexKind::Keyword,
            "integer" => IndexKind::Integer,
            other => {
                return Err(format!(
                    "part {i} {part:?}: kind {other:?} is not keyword or integer"
                ))
            }
        };
        let key = KeyPath::parse(&Value::String(key.trim().to_string()), &format!("part {i}"))?;
        if fields.iter().any(|f| f.key == key) {
            return Err(format!("part {i} {part:?}: the key is indexed twice"));
        }
        if fields.len() == PAYLOAD_INDEX_FIELDS_MAX {
            return Err(format!(
                "more than PAYLOAD_INDEX_FIELDS_MAX ({PAYLOAD_INDEX_FIELDS_MAX}) keys"
            ));
        }
        fields.push(IndexedField { key, kind });
    }
    Ok(fields)
}

/// The slots of each value of the indexed keys, over one state of a file.
#[derive(Debug, Default)]
pub struct PayloadIndex {
    fields: Vec<(KeyPath, FieldValues)>,
}

#[derive(Debug)]
enum FieldValues {
    Keyword(HashMap<String, Vec<u32>>),
    Integer {
        slots_of: BTreeMap<i64, Vec<u32>>,
        /// A float sits at the key somewhere: a range may match it, so
        /// ranges are not answered from `slots_of`.
        floats: bool,
        /// An integer past ±2^53 sits there: a range compares it as the
        /// nearest f64, so the index's integer answer may differ by one
        /// value at the bounds; its slots are then only candidates.
        wide: bool,
    },
}

/// Integers up to this magnitude are exact as f64.
const F64_EXACT_INTEGER_MAX: i64 = 1 << 53;

/// What [`PayloadIndex::candidates`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Candidates {
    /// Slots, ascending, among which every match lies.
    pub slots: Vec<usize>,
    /// Every slot matches: the index answered the whole filter (only
    /// `must` conditions, each on an indexed key, each exactly).
    pub exact: bool,
}

impl PayloadIndex {
    /// Indexes `fields` over `payloads`: (slot, payload) for every slot
    /// that has one, slots below 2^32.
    pub fn build<'a>(
        fields: &[IndexedField],
        payloads: impl Iterator<Item = (usize, &'a Value)>,
    ) -> PayloadIndex {
        let mut index = PayloadIndex {
            fields: fields
                .iter()
                .map(|f| {
                    let values = match f.kind {
                        IndexKind::Keyword => FieldValues::Keyword(HashMap::new()),
                        IndexKind::Integer => FieldValues::Integer {
                            slots_of: BTreeMap::new(),
                            floats: false,
                            wide: false,
                        },
                    };
                    (f.key.clone(), values)
                })
                .collect(),
        };
        for (slot, payload) in payloads {
            let slot = slot as u32;
            let Some(map) = payload.as_object() else {
                continue;
            };
            for (key, values) in &mut index.fields {
                key.any_value(Some(map), &mut |value| {
                    match value {
                        Value::Array(elements) => elements.iter().for_each(|e| values.add(e, slot)),
                        _ => values.add(value, slot),
                    }
                    false // visit every value
                });
            }
        }
        for (_, values) in &mut index.fields {
            values.finish();
        }
        index
    }

    /// The slots among which every match of `filter` lies; None when no
    /// condition of its `must` tests an indexed key the index can answer.
    pub fn candidates(&self, filter: &Filter) -> Option<Candidates> {
        let mut kept: Option<Vec<u32>> = None;
        let mut exact = filter.should.is_none() && filter.must_not.is_empty();
        for condition in &filter.must {
            let answer = match condition {
                Condition::Field { path, test } => self
                    .fields
                    .iter()
                    .filter(|(key, _)| key == path)
                    .find_map(|(_, values)| values.slots(test)),
                _ => None,
            };
            let Some((slots, answered_exactly)) = answer else {
                exact = false;
                continue;
            };
            exact &= answered_exactly;
            kept = Some(match kept {
                None => slots,
                Some(before) => intersect(&before, &slots),
            });
        }
        kept.map(|slots| Candidates {
            slots: slots.into_iter().map(|s| s as usize).collect(),
            exact,
        })
    }
}

impl FieldValues {
    fn add(&mut self, value: &Value, slot: u32) {
        match (self, value) {
            (FieldValues::Keyword(slots_of), Value::String(s)) => {
                slots_of.entry(s.clone()).or_default().push(slot)
            }
            (
                FieldValues::Integer {
                    slots_of,
                    floats,
                    wide,
                },
                Value::Number(n),
            ) => match n.as_i64() {
                Some(i) => {
                    *wide |= !(-F64_EXACT_INTEGER_MAX..=F64_EXACT_INTEGER_MAX).contains(&i);
                    slots_of.entry(i).or_default().push(slot)
                }
                None => *floats = true,
            },
            _ => {}
        }
    }

    /// A slot holding a value twice (an array) is listed once.
    fn finish(&mut self) {
        let lists: Box<dyn Iterator<Item = &mut Vec<u32>>> = match self {
            FieldValues::Keyword(slots_of) => Box::new(slots_of.values_mut()),
            FieldValues::Integer { slots_of, .. } => Box::new(slots_of.values_mut()),
        };
        for slots in lists {
            slots.dedup();
        }
    }

    /// The slots holding a value `test` accepts, sorted, and whether they
    /// are exactly the slots `test` holds for; None when this index cannot
    /// tell.
    fn slots(&self, test: &FieldTest) -> Option<(Vec<u32>, bool)> {
        let exact = !matches!(
            (self, test),
            (FieldValues::Integer { wide: true, .. }, FieldTest::Range(_))
        );
        let lists: Vec<&Vec<u32>> = match (self, test) {
            (FieldValues::Keyword(slots_of), FieldTest::Keyword(s)) => {
                slots_of.get(s.as_str()).into_iter().collect()
            }
            (FieldValues::Keyword(slots_of), FieldTest::Any(ValueSet::Keywords(members))) => {
                members_of(members)
                    .filter_map(|s| slots_of.get(s.as_str()))
                    .collect()
            }
            (FieldValues::Integer { slots_of, .. }, FieldTest::Integer(i)) => {
                slots_of.get(i).into_iter().collect()
            }
            (
                FieldValues::Integer { slots_of, .. },
                FieldTest::Any(ValueSet::Integers(members)),
            ) => members_of(members)
                .filter_map(|i| slots_of.get(i))
                .collect(),
            (
                FieldValues::Integer {
                    slots_of,
                    floats: false,
                    ..
                },
                FieldTest::Range(range),
            ) => {
                let (low, high) = range.integer_bounds()?;
                if low > high {
                    Vec::new()
                } else {
                    slots_of.range(low..=high).map(|(_, slots)| slots).collect()
                }
            }
            _ => return None,
        };
        let mut slots: Vec<u32> = lists.into_iter().flatten().copied().collect();
        slots.sort_unstable();
        slots.dedup();
        Some((slots, exact))
    }
}

fn members_of<T>(members: &Members<T>) -> Box<dyn Iterator<Item = &T> + '_> {
    match members {
        Members::Few(values) => Box::new(values.iter()),
        Members::Many(values) => Box::new(values.iter()),
    }
}

/// The slots in both sorted lists.
fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::filter::tests::parse;
    use serde_json::json;

    fn payloads() -> Vec<Value> {
        (0..200)
            .map(|i| match i % 4 {
                0 => json!({"city": (["Oslo", "Rome"][i % 8 / 4]), "year": 2000 + i % 30}),
                1 => json!({"city": "Lima", "year": [2000 + i % 30, 1990], "tags": ["a"]}),
                2 => json!({"meta": {"score": i}}),
                _ => json!({"year": "not a number", "city": 7}),
            })
            .collect()
    }

    fn index(spec: &str, payloads: &[Value]) -> PayloadIndex {
        PayloadIndex::build(
            &parse_index_spec(spec).unwrap(),
            payloads.iter().enumerate(),
        )
    }

    /// The index's candidates hold every match, and checking the filter on
    /// them gives exactly the matches of a full scan.
    fn agrees(index: &PayloadIndex, payloads: &[Value], filter: Value) -> Option<usize> {
        let filter = parse(&filter);
        let all: Vec<usize> = (0..payloads.len())
            .filter(|&s| filter.matches(s as u64, Some(&payloads[s])))
            .collect();
        let candidates = index.candidates(&filter)?;
        let from_index: Vec<usize> = candidates
            .slots
            .iter()
            .copied()
            .filter(|&s| filter.matches(s as u64, Some(&payloads[s])))
            .collect();
        assert_eq!(from_index, all, "{filter:?}");
        if candidates.exact {
            assert_eq!(candidates.slots, all, "exact candidates of {filter:?}");
        }
        Some(candidates.slots.len())
    }

    #[test]
    fn candidates_hold_every_match() {
        let payloads = payloads();
        let index = index("city:keyword, year:integer, meta.score:integer", &payloads);
        let city = |c: &str| json!({"must": [{"key": "city", "match": {"value": c}}]});
        assert_eq!(agrees(&index, &payloads, city("Lima")), Some(50));
        assert_eq!(agrees(&index, &payloads, city("Paris")), Some(0));
        let any = json!({"must": [{"key": "city", "match": {"any": ["Oslo", "Rome"]}}]});
        assert_eq!(agrees(&index, &payloads, any), Some(50));
        let range = json!({"must": [{"key": "year", "range": {"gte": 2010.5, "lt": 2020}}]});
        assert!(agrees(&index, &payloads, range).is_some());
        let both = json!({"must": [
            {"key": "year", "range": {"gt": 1989, "lte": 1990}},
            {"key": "city", "match": {"value": "Lima"}}]});
        assert_eq!(agrees(&index, &payloads, both), Some(50));
        let nested = json!({"must": [{"key": "meta.score", "match": {"any": [2, 6, 7]}}]});
        assert_eq!(agrees(&index, &payloads, nested), Some(2));
        // What the index cannot answer falls back to a scan.
        let except = json!({"must": [{"key": "city", "match": {"except": ["Lima"]}}]});
        assert_eq!(agrees(&index, &payloads, except), None);
        let should = json!({"should": [{"key": "city", "match": {"value": "Lima"}}]});
        assert_eq!(agrees(&index, &payloads, should), None);
        let unindexed = json!({"must": [{"key": "tags", "match": {"value": "a"}}]});
        assert_eq!(agrees(&index, &payloads, unindexed), None);
    }

    #[test]
    fn a_float_at_an_integer_key_keeps_ranges_off_the_index() {
        let payloads = vec![json!({"x": 1}), json!({"x": 2.5}), json!({"x": 3})];
        let index = index("x:integer", &payloads);
        let range = json!({"must": [{"key": "x", "range": {"gte": 2}}]});
        assert_eq!(agrees(&index, &payloads, range), None);
        let exact = json!({"must": [{"key": "x", "match": {"value": 3}}]});
        assert_eq!(agrees(&index, &payloads, exact), Some(1));
    }

    #[test]
    fn bad_specs_are_refused_by_part() {
        for (spec, says) in [
            ("city", "expected key:keyword"),
            ("city:text", "not keyword or integer"),
            ("a:keyword,a:integer", "indexed twice"),
            ("a..b:keyword", "not a key path"),
            ("a:keyword,b:keyword,c:keyword,d:keyword,e:keyword,f:keyword,g:keyword,h:keyword,i:keyword", "PAYLOAD_INDEX_FIELDS_MAX"),
        ] {
            let e = parse_index_spec(spec).unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
        }
        let long = format!("{}:keyword", "k".repeat(PAYLOAD_INDEX_SPEC_BYTES_MAX));
        assert!(parse_index_spec(&long)
            .unwrap_err()
            .contains("PAYLOAD_INDEX_SPEC_BYTES_MAX"));
    }
}
