//! The small values every points request carries, as Qdrant writes them:
//! point ids, dense vectors, and which payload and vector to return. Each
//! refuses what VexFS does not support with a message that says so (UUID
//! ids, named vectors, multivectors), during parsing.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use vexfs_uapi::VEXFS_NO_ID;

pub const UUID_IDS_REFUSED: &str = "UUID point ids are not supported; use unsigned integers";

/// A point id: an unsigned integer below `VEXFS_NO_ID` (which the
/// filesystem keeps to mark an empty result place).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PointId(pub u64);

impl<'de> Deserialize<'de> for PointId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = PointId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a point id (an unsigned integer)")
            }
            fn visit_u64<E: de::Error>(self, id: u64) -> Result<PointId, E> {
                if id == VEXFS_NO_ID {
                    return Err(E::custom(format!(
                        "point id {id} is reserved by VexFS (it marks an empty result)"
                    )));
                }
                Ok(PointId(id))
            }
            fn visit_i64<E: de::Error>(self, id: i64) -> Result<PointId, E> {
                match u64::try_from(id) {
                    Ok(id) => self.visit_u64(id),
                    Err(_) => Err(E::custom(format!(
                        "point id {id}: ids are unsigned integers"
                    ))),
                }
            }
            fn visit_f64<E: de::Error>(self, id: f64) -> Result<PointId, E> {
                Err(E::custom(format!(
                    "point id {id}: ids are unsigned integers"
                )))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<PointId, E> {
                Err(E::custom(UUID_IDS_REFUSED))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// One element of a dense vector: a number that fits an f32.
struct Element(f32);

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ElementVisitor;
        impl<'de> Visitor<'de> for ElementVisitor {
            type Value = Element;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Element, E> {
                let element = v as f32;
                if !element.is_finite() {
                    return Err(E::custom(format!(
                        "vector element {v} does not fit a 32-bit float"
                    )));
                }
                Ok(Element(element))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
                Ok(Element(v as f32))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Element, E> {
                Ok(Element(v as f32))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Element, A::Error> {
                Err(de::Error::custom(
                    "multivectors are not supported: a vector is one list of numbers",
                ))
            }
        }
        deserializer.deserialize_any(ElementVisitor)
    }
}

/// A dense float32 vector given as a JSON list of numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseVector(pub Vec<f32>);

impl<'de> Deserialize<'de> for DenseVector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VectorVisitor;
        impl<'de> Visitor<'de> for VectorVisitor {
            type Value = DenseVector;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a vector (a list of numbers)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DenseVector, A::Error> {
                let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(65_536));
                while let Some(Element(e)) = seq.next_element()? {
                    elements.push(e);
                }
                Ok(DenseVector(elements))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<DenseVector, A::Error> {
                Err(de::Error::custom(
                    "named vectors, sparse vectors, documents and images are not supported: \
                     a vector is one list of numbers",
                ))
            }
        }
        deserializer.deserialize_any(VectorVisitor)
    }
}

/// Which payload keys an answer carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadSelector {
    None,
    All,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PayloadSelectorWire {
    Flag(bool),
    Keys(Vec<String>),
    Include { include: Vec<String> },
    Exclude { exclude: Vec<String> },
}

impl<'de> Deserialize<'de> for PayloadSelector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = PayloadSelectorWire::deserialize(deserializer).map_err(|_| {
            de::Error::custom(
                "with_payload is true, false, a list of keys, {\"include\": [...]} or {\"exclude\": [...]}",
            )
        })?;
        let selector = match wire {
            PayloadSelectorWire::Flag(true) => PayloadSelector::All,
            PayloadSelectorWire::Flag(false) => PayloadSelector::None,
            PayloadSelectorWire::Keys(keys) | PayloadSelectorWire::Include { include: keys } => {
                PayloadSelector::Include(keys)
            }
            PayloadSelectorWire::Exclude { exclude } => PayloadSelector::Exclude(exclude),
        };
        for key in selector.keys() {
            if key.is_empty() || key.contains('[') {
                return Err(de::Error::custom(format!(
                    "with_payload key {key:?}: keys are dotted paths through objects (no [] or [N])"
                )));
            }
        }
        Ok(selector)
    }
}

impl PayloadSelector {
    fn keys(&self) -> &[String] {
        match self {
            PayloadSelector::Include(keys) | PayloadSelector::Exclude(keys) => keys,
            PayloadSelector::None | PayloadSelector::All => &[],
        }
    }

    pub fn wanted(&self) -> bool {
        *self != PayloadSelector::None
    }

    /// The part of a stored payload this selector returns.
    pub fn apply(&self, payload: Map<String, Value>) -> Map<String, Value> {
        match self {
            PayloadSelector::None => Map::new(),
            PayloadSelector::All => payload,
            PayloadSelector::Include(keys) => {
                let mut kept = Map::new();
                for key in keys {
                    let path: Vec<&str> = key.split('.').collect();
                    if let Some(value) = lookup(&payload, &path) {
                        insert_at(&mut kept, &path, value.clone());
                    }
                }
                kept
            }
            PayloadSelector::Exclude(keys) => {
                let mut payload = payload;
                for key in keys {
                    remove_path(&mut payload, key);
                }
                payload
            }
        }
    }
}

fn lookup<'a>(object: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let value = object.get(*first)?;
    if rest.is_empty() {
        return Some(value);
    }
    lookup(value.as_object()?, rest)
}

fn insert_at(object: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        object.insert(first.to_string(), value);
        return;
    }
    let child = object
        .entry(first.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(child) = child {
        insert_at(child, rest, value);
    }
}

/// Removes the value at a dotted path through objects; true when one was there.
pub fn remove_path(object: &mut Map<String, Value>, key: &str) -> bool {
    match key.split_once('.') {
        None => object.remove(key).is_some(),
        Some((first, rest)) => match object.get_mut(first) {
            Some(Value::Object(child)) => remove_path(child, rest),
            _ => false,
        },
    }
}

/// Whether an answer carries the point's vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WithVector(pub bool);

impl<'de> Deserialize<'de> for WithVector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Bool(flag) => Ok(WithVector(flag)),
            Value::Array(_) => Err(de::Error::custom(
                "with_vector as a list of vector names: named vectors are not supported",
            )),
            other => Err(de::Error::custom(format!(
                "with_vector is true or false, not {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused<T: for<'de> Deserialize<'de> + fmt::Debug>(value: Value) -> String {
        serde_json::from_value::<T>(value).unwrap_err().to_string()
    }

    #[test]
    fn ids_are_unsigned_integers_and_uuids_are_refused_by_name() {
        assert_eq!(
            serde_json::from_value::<PointId>(json!(7)).unwrap(),
            PointId(7)
        );
        let max_usable = u64::MAX - 1;
        assert_eq!(
            serde_json::from_value::<PointId>(json!(max_usable)).unwrap(),
            PointId(max_usable)
        );
        let uuid = json!("550e8400-e29b-41d4-a716-446655440000");
        assert_eq!(refused::<PointId>(uuid), UUID_IDS_REFUSED);
        assert!(refused::<PointId>(json!(-1)).contains("unsigned"));
        assert!(refused::<PointId>(json!(1.5)).contains("unsigned"));
        assert!(refused::<PointId>(json!(u64::MAX)).contains("reserved"));
    }

    #[test]
    fn vectors_are_lists_of_numbers() {
        let v: DenseVector = serde_json::from_value(json!([1, -2, 0.5])).unwrap();
        assert_eq!(v.0, vec![1.0, -2.0, 0.5]);
        assert!(refused::<DenseVector>(json!([[1.0], [2.0]])).contains("multivectors"));
        assert!(refused::<DenseVector>(json!({"image": [1.0]})).contains("named vectors"));
        assert!(
            refused::<DenseVector>(json!({"indices": [1], "values": [1.0]})).contains("sparse")
        );
        assert!(refused::<DenseVector>(json!([1e300])).contains("32-bit float"));
        assert!(refused::<DenseVector>(json!(["a"])).contains("a number"));
    }

    #[test]
    fn payload_selectors_pick_keys_by_dotted_path() {
        let payload = json!({"city": "Oslo", "meta": {"year": 2020, "tag": "x"}, "n": 1});
        let payload = payload.as_object().unwrap().clone();
        let pick = |wire: Value| {
            let selector: PayloadSelector = serde_json::from_value(wire).unwrap();
            Value::Object(selector.apply(payload.clone()))
        };
        assert_eq!(pick(json!(true)), Value::Object(payload.clone()));
        assert_eq!(pick(json!(false)), json!({}));
        assert_eq!(
            pick(json!(["city", "meta.year", "absent"])),
            json!({"city": "Oslo", "meta": {"year": 2020}})
        );
        assert_eq!(pick(json!({"include": ["n"]})), json!({"n": 1}));
        assert_eq!(
            pick(json!({"exclude": ["meta.tag", "city"]})),
            json!({"meta": {"year": 2020}, "n": 1})
        );
        assert!(refused::<PayloadSelector>(json!(["a[0]"])).contains("no [] or [N]"));
        assert!(refused::<PayloadSelector>(json!(3)).contains("with_payload is"));
    }

    #[test]
    fn with_vector_is_a_flag() {
        assert_eq!(
            serde_json::from_value::<WithVector>(json!(true)).unwrap(),
            WithVector(true)
        );
        assert!(refused::<WithVector>(json!(["image"])).contains("named vectors"));
    }
}
