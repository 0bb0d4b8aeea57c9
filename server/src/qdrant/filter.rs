//! Filters pass to the filesystem as the JSON the client sent: the daemon
//! implements Qdrant's core filter and refuses the rest with EINVAL, whose
//! message only its log shows. So before a filter is sent, the parts of
//! Qdrant's filter that VexFS does not have (geo, full text, values_count,
//! nested, has_vector, min_should, datetime ranges, UUID ids) are named
//! here for the client; what is left is the daemon's to judge.

use serde_json::Value;

use super::values::UUID_IDS_REFUSED;

/// Clauses of a filter that hold conditions.
const CLAUSES: [&str; 3] = ["must", "should", "must_not"];

/// Where a filter refused by the filesystem is explained.
pub const FILTER_REFUSED_HINT: &str = "VexFS refused the filter: it supports Qdrant's core filter \
    (must/should/must_not; match value/any/except; range; has_id; is_empty; is_null; nested \
    filters), see docs/VECTORS.md \"The filter language\"; the mount's log names the part";

/// Names the first part of `filter` that VexFS does not support.
pub fn check(filter: &Value) -> Result<(), String> {
    check_filter(filter, "filter")
}

fn unsupported(at: &str, what: &str) -> Result<(), String> {
    Err(format!("{at}: {what} is not supported by VexFS"))
}

fn check_filter(filter: &Value, at: &str) -> Result<(), String> {
    let Some(object) = filter.as_object() else {
        return Err(format!("{at}: a filter is an object, not {filter}"));
    };
    for (key, value) in object.iter().filter(|(_, v)| !v.is_null()) {
        let here = format!("{at}.{key}");
        match key.as_str() {
            "min_should" => return unsupported(&here, "min_should"),
            clause if CLAUSES.contains(&clause) => match value {
                Value::Array(conditions) => {
                    for (i, condition) in conditions.iter().enumerate() {
                        check_condition(condition, &format!("{here}[{i}]"))?;
                    }
                }
                condition => check_condition(condition, &here)?,
            },
            _ => {}
        }
    }
    Ok(())
}

fn check_condition(condition: &Value, at: &str) -> Result<(), String> {
    let Some(object) = condition.as_object() else {
        return Ok(());
    };
    if object.contains_key("key") {
        return check_field(object, at);
    }
    for (key, value) in object.iter().filter(|(_, v)| !v.is_null()) {
        match key.as_str() {
            "nested" => return unsupported(at, "the nested condition"),
            "has_vector" => return unsupported(at, "has_vector"),
            "has_id"
                if value
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(Value::is_string)) =>
            {
                return Err(format!("{at}.has_id: {UUID_IDS_REFUSED}"));
            }
            _ => {}
        }
    }
    if CLAUSES
        .iter()
        .chain(&["min_should"])
        .any(|c| object.contains_key(*c))
    {
        return check_filter(condition, at);
    }
    Ok(())
}

fn check_field(field: &serde_json::Map<String, Value>, at: &str) -> Result<(), String> {
    for (key, value) in field.iter().filter(|(_, v)| !v.is_null()) {
        let here = format!("{at}.{key}");
        match key.as_str() {
            "geo_bounding_box" | "geo_radius" | "geo_polygon" => {
                return unsupported(&here, "geo filtering")
            }
            "values_count" => return unsupported(&here, "values_count"),
            "match" => {
                let full_text = ["text", "text_any", "phrase", "prefix"];
                if let Some(kind) = full_text
                    .iter()
                    .find(|k| value.get(**k).is_some_and(|v| !v.is_null()))
                {
                    return unsupported(&format!("{here}.{kind}"), "full-text match");
                }
            }
            "range" => {
                let bounds = value.as_object().into_iter().flat_map(|o| o.values());
                if bounds.clone().any(Value::is_string) {
                    return unsupported(&here, "a datetime range");
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_core_filter_passes_through() {
        let filter = json!({
            "must": [{"key": "city", "match": {"value": "London"}, "range": null},
                     {"key": "year", "range": {"gte": 2020}}],
            "should": {"has_id": [1, 2]},
            "must_not": [{"is_empty": {"key": "a"}},
                         {"must": [{"key": "b", "match": {"any": ["x"]}}]}],
            "min_should": null
        });
        assert_eq!(check(&filter), Ok(()));
    }

    #[test]
    fn qdrant_features_vexfs_lacks_are_named_with_their_place() {
        for (filter, expected) in [
            (
                json!({"must": [{"key": "loc", "geo_radius": {"center": {}, "radius": 1.0}}]}),
                "filter.must[0].geo_radius: geo filtering",
            ),
            (
                json!({"should": {"key": "t", "match": {"text": "hello"}}}),
                "filter.should.match.text: full-text match",
            ),
            (
                json!({"must": [{"nested": {"key": "a", "filter": {}}}]}),
                "filter.must[0]: the nested",
            ),
            (json!({"must_not": [{"has_vector": "image"}]}), "has_vector"),
            (
                json!({"min_should": {"conditions": [], "min_count": 1}}),
                "filter.min_should: min_should",
            ),
            (
                json!({"must": [{"key": "d", "range": {"gt": "2023-01-01T00:00:00Z"}}]}),
                "datetime range",
            ),
            (
                json!({"must": [{"key": "n", "values_count": {"gt": 1}}]}),
                "values_count",
            ),
            (
                json!({"must": [{"must": [{"has_id": ["550e8400-e29b-41d4-a716-446655440000"]}]}]}),
                UUID_IDS_REFUSED,
            ),
            (json!([1]), "a filter is an object"),
        ] {
            let e = check(&filter).unwrap_err();
            assert!(e.contains(expected), "{e:?} lacks {expected:?}");
        }
    }
}
