//! What a JSON Schema says of a value, in the words of the API's problems
//! and the registry's refusals: every violation, by JSON pointer.

use serde::Serialize;
use serde_json::Value;

/// One way a payload breaks its schema: where (a JSON pointer) and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

/// Rewrites whole numbers written as floats (`5.0`, `1e3`) as integers, at
/// any depth. JSON Schema counts them as integers, so they pass validation;
/// this makes them integers for every reader after it too.
pub fn canonical_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9_007_199_254_740_992.0
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(canonical_integers),
        Value::Object(map) => map.values_mut().for_each(canonical_integers),
        _ => {}
    }
}

/// The JSON pointer of `name` inside the value at `parent` (RFC 6901 escaping).
pub fn child_pointer(parent: &str, name: &str) -> String {
    format!("{parent}/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// Points a schema error at the field it is about: a missing or unexpected
/// property is named by its own pointer, not its parent's, and a value that
/// matches none of a `oneOf`'s or `anyOf`'s branches is told what is wrong
/// with it under the branch it came closest to.
pub fn violations(error: &jsonschema::ValidationError<'_>) -> Vec<Violation> {
    use jsonschema::error::ValidationErrorKind as Kind;
    let at = error.instance_path().as_str();
    let child = |name: &str| child_pointer(at, name);
    match error.kind() {
        Kind::Required { property } => vec![Violation {
            pointer: child(property.as_str().unwrap_or_default()),
            message: "is required".into(),
        }],
        Kind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| Violation {
                pointer: child(name),
                message: "is not allowed".into(),
            })
            .collect(),
        Kind::OneOfNotValid { context } | Kind::AnyOf { context } => closest_branch(context)
            .unwrap_or_else(|| {
                vec![Violation {
                    pointer: at.to_owned(),
                    message: error.to_string(),
                }]
            }),
        _ => vec![Violation {
            pointer: at.to_owned(),
            message: error.to_string(),
        }],
    }
}

/// The violations of the branch a value came closest to matching: the
/// fewest violations of the value as a whole (a wrong type, say), then the
/// fewest in all.
fn closest_branch(branches: &[Vec<jsonschema::ValidationError<'_>>]) -> Option<Vec<Violation>> {
    branches
        .iter()
        .map(|errors| {
            let whole = errors
                .iter()
                .filter(|e| {
                    use jsonschema::error::ValidationErrorKind as Kind;
                    !matches!(
                        e.kind(),
                        Kind::Required { .. } | Kind::AdditionalProperties { .. }
                    ) && e.instance_path().as_str().is_empty()
                })
                .count();
            (
                whole,
                errors.iter().flat_map(violations).collect::<Vec<_>>(),
            )
        })
        .min_by_key(|(whole, found)| (*whole, found.len()))
        .map(|(_, found)| found)
        .filter(|found| !found.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn whole_numbers_become_integers_at_any_depth() {
        let mut mixed = json!([1.5, 3.0, {"x": -4e0}, "7.0"]);
        canonical_integers(&mut mixed);
        assert_eq!(mixed.to_string(), r#"[1.5,3,{"x":-4},"7.0"]"#);
    }

    #[test]
    fn a_value_that_matches_no_branch_is_told_what_its_closest_branch_wants() {
        let schema = serde_json::json!({"oneOf": [
            {"type": "object", "required": ["values"], "additionalProperties": false,
             "properties": {"values": {"type": "array"}}},
            {"type": "object", "required": ["cohort"], "additionalProperties": false,
             "properties": {"cohort": {"type": "object"}}}
        ]});
        let validator = jsonschema::validator_for(&schema).unwrap();
        let found: Vec<Violation> = validator
            .iter_errors(&serde_json::json!({"values": "x"}))
            .flat_map(|e| violations(&e))
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].pointer, "/values");
        assert!(found[0].message.contains("array"), "{found:?}");
    }

    #[test]
    fn pointers_escape_their_names() {
        assert_eq!(child_pointer("/a", "x/y~z"), "/a/x~1y~0z");
    }
}
