//! A randomized test of filters: random filter trees over random payloads,
//! each parsed filter's answers checked against a direct evaluation of the
//! tree, written here without this module's code.

use serde_json::{json, Map, Value};

use super::tests::{matching, parse};

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
            let all = |c: &Option<Vec<Tree>>| c.iter().flatten().all(|t| expect(t, id, payload));
            let none = |c: &Option<Vec<Tree>>| !c.iter().flatten().any(|t| expect(t, id, payload));
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
