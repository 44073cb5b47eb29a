//! The validation layer: every request whose route is in the contract is
//! checked against it (path and query parameters, content type, body) before
//! a handler sees it. Validators are compiled once, at start-up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{RequestExt, extract::Query};
use serde_json::Value;
use tasuki_core::Violation;

use crate::contract::{Contract, ContractError, ParamIn};
use crate::problem::ApiError;

/// How strictly requests are read (`VALIDATION_MODE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ValidationMode {
    /// Unknown body fields are rejected.
    #[default]
    Default,
    /// Unknown body fields are accepted (and kept with the user).
    Flexible,
    /// As default, and also: no duplicate keys, no unknown query parameters,
    /// exactly `application/json`, integers written as integers.
    Strict,
}

impl FromStr for ValidationMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "default" => Ok(Self::Default),
            "flexible" => Ok(Self::Flexible),
            "strict" => Ok(Self::Strict),
            other => Err(format!(
                "unknown validation mode `{other}` (expected default, flexible or strict)"
            )),
        }
    }
}

/// The validated body, for the handler.
#[derive(Clone, Debug)]
pub struct ValidBody(pub Value);

/// The validated query parameters, typed by their schemas.
#[derive(Clone, Debug, Default)]
pub struct ValidQuery(pub BTreeMap<String, Value>);

struct CompiledParam {
    name: String,
    location: ParamIn,
    required: bool,
    kind: Kind,
    validator: jsonschema::Validator,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Number,
    Boolean,
    String,
}

struct CompiledOperation {
    params: Vec<CompiledParam>,
    body: Option<(jsonschema::Validator, Value)>,
}

pub struct RequestValidator {
    mode: ValidationMode,
    max_body: usize,
    operations: HashMap<(Method, String), CompiledOperation>,
}

impl RequestValidator {
    pub fn new(
        contract: &Contract,
        mode: ValidationMode,
        max_body: usize,
    ) -> Result<Self, ContractError> {
        let mut components = contract.components().clone();
        let mut operations = HashMap::new();
        if mode == ValidationMode::Flexible {
            for op in contract.operations() {
                if let Some(name) = op
                    .body
                    .as_ref()
                    .and_then(|b| b["$ref"].as_str())
                    .and_then(|r| r.rsplit('/').next())
                {
                    components["schemas"][name]["additionalProperties"] = Value::Bool(true);
                }
            }
        }
        let compile = |schema: &Value| {
            jsonschema::options()
                .should_validate_formats(true)
                .build(&contract.standalone_with(schema, components.clone()))
                .map_err(|e| ContractError(format!("a schema does not compile: {e}")))
        };
        for op in contract.operations() {
            let params = op
                .params
                .iter()
                .map(|p| {
                    let kind = match p.schema["type"].as_str() {
                        Some("integer") => Kind::Integer,
                        Some("number") => Kind::Number,
                        Some("boolean") => Kind::Boolean,
                        _ => Kind::String,
                    };
                    Ok(CompiledParam {
                        name: p.name.clone(),
                        location: p.location,
                        required: p.required,
                        kind,
                        validator: compile(&p.schema)?,
                    })
                })
                .collect::<Result<_, ContractError>>()?;
            let body = op
                .body
                .as_ref()
                .map(|schema| {
                    Ok::<_, ContractError>((
                        compile(schema)?,
                        contract.standalone_with(schema, components.clone()),
                    ))
                })
                .transpose()?;
            operations.insert(
                (op.method.clone(), op.path.clone()),
                CompiledOperation { params, body },
            );
        }
        Ok(Self {
            mode,
            max_body,
            operations,
        })
    }
}

/// The middleware. It runs after routing, so requests that match no route
/// fall through to the router's 404 untouched.
pub(crate) async fn layer(
    State(validator): State<Arc<RequestValidator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(path) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(request).await;
    };
    // axum answers HEAD with the GET handler, so HEAD is checked as GET.
    let method = match request.method() {
        &Method::HEAD => Method::GET,
        other => other.clone(),
    };
    let Some(op) = validator.operations.get(&(method, path)) else {
        return next.run(request).await;
    };
    match check(&validator, op, &mut request).await {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn check(
    v: &RequestValidator,
    op: &CompiledOperation,
    request: &mut Request,
) -> Result<(), ApiError> {
    let mut violations = Vec::new();

    let path_params: Vec<(String, String)> = match request.extract_parts::<RawPathParams>().await {
        Ok(raw) => raw
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Err(_) => Vec::new(),
    };
    let query: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .map(|q| q.0)
        .map_err(|e| {
            ApiError::Validation(vec![Violation {
                pointer: "/query".into(),
                message: format!("is not a valid query string: {e}"),
            }])
        })?;

    let mut typed = BTreeMap::new();
    let mut seen = HashSet::new();
    for (name, _) in &query {
        if !seen.insert(name.as_str()) {
            violations.push(Violation {
                pointer: format!("/query/{name}"),
                message: "is given more than once".into(),
            });
        }
        if v.mode == ValidationMode::Strict
            && !op
                .params
                .iter()
                .any(|p| p.location == ParamIn::Query && p.name == *name)
        {
            violations.push(Violation {
                pointer: format!("/query/{name}"),
                message: "is not a parameter of this operation".into(),
            });
        }
    }
    for param in &op.params {
        let (source, prefix) = match param.location {
            ParamIn::Path => (&path_params, "/path/"),
            ParamIn::Query => (&query, "/query/"),
        };
        let pointer = format!("{prefix}{}", param.name);
        let Some((_, raw)) = source.iter().find(|(k, _)| *k == param.name) else {
            if param.required {
                violations.push(Violation {
                    pointer,
                    message: "is required".into(),
                });
            }
            continue;
        };
        let value = match coerce(raw, param.kind) {
            Ok(value) => value,
            Err(expected) => {
                violations.push(Violation {
                    pointer,
                    message: format!("`{raw}` is not {expected}"),
                });
                continue;
            }
        };
        for error in param.validator.iter_errors(&value) {
            violations.push(Violation {
                pointer: pointer.clone(),
                message: error.to_string(),
            });
        }
        if param.location == ParamIn::Query {
            typed.insert(param.name.clone(), value);
        }
    }

    if let Some((body_validator, body_schema)) = &op.body {
        check_content_type(v.mode, request.headers().get(header::CONTENT_TYPE))?;
        let body = std::mem::replace(request.body_mut(), Body::empty());
        let bytes: Bytes = axum::body::to_bytes(body, v.max_body)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(v.max_body))?;
        let value = parse_json(&bytes, v.mode == ValidationMode::Strict)?;
        violations.extend(
            body_validator
                .iter_errors(&value)
                .flat_map(|e| tasuki_core::violations(&e)),
        );
        if v.mode == ValidationMode::Strict {
            integers_as_integers(&value, body_schema, body_schema, "", &mut violations);
        }
        let mut value = value;
        tasuki_core::canonical_integers(&mut value);
        request.extensions_mut().insert(ValidBody(value));
        *request.body_mut() = Body::from(bytes);
    }

    if violations.is_empty() {
        request.extensions_mut().insert(ValidQuery(typed));
        Ok(())
    } else {
        violations.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        violations.dedup();
        Err(ApiError::Validation(violations))
    }
}

fn coerce(raw: &str, kind: Kind) -> Result<Value, &'static str> {
    match kind {
        Kind::Integer => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "an integer"),
        Kind::Number => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or("a number"),
        Kind::Boolean => raw
            .parse::<bool>()
            .map(Value::Bool)
            .map_err(|_| "true or false"),
        Kind::String => Ok(Value::String(raw.to_owned())),
    }
}

fn check_content_type(
    mode: ValidationMode,
    value: Option<&header::HeaderValue>,
) -> Result<(), ApiError> {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be application/json".into(),
        ));
    };
    let mut parts = value.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default().to_ascii_lowercase();
    let params: Vec<String> = parts
        .map(|p| p.to_ascii_lowercase().replace(' ', ""))
        .collect();
    let ok = match mode {
        ValidationMode::Strict => {
            media == "application/json" && params.iter().all(|p| p == "charset=utf-8")
        }
        _ => {
            media == "application/json"
                || (media.starts_with("application/") && media.ends_with("+json"))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "the body must be application/json, not {value}"
        )))
    }
}

fn parse_json(bytes: &[u8], strict: bool) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson("the body is empty".into()));
    }
    if strict {
        serde_json::from_slice::<crate::strict_json::NoDuplicates>(bytes)
            .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// Strict mode: where the schema asks for an integer, `1.0` or `1e0` is refused.
fn integers_as_integers(
    value: &Value,
    schema: &Value,
    root: &Value,
    at: &str,
    out: &mut Vec<Violation>,
) {
    let schema = resolve(schema, root);
    for part in ["allOf", "anyOf", "oneOf"] {
        for sub in schema[part].as_array().into_iter().flatten() {
            integers_as_integers(value, sub, root, at, out);
        }
    }
    if let Some(then) = schema.get("then")
        && if_matches(value, &schema["if"])
    {
        integers_as_integers(value, then, root, at, out);
    }
    let wants_integer = match &schema["type"] {
        Value::String(t) => t == "integer",
        Value::Array(ts) => ts.iter().any(|t| t == "integer") && !ts.iter().any(|t| t == "number"),
        _ => false,
    };
    if wants_integer
        && let Value::Number(n) = value
        && n.is_f64()
    {
        out.push(Violation {
            pointer: at.to_owned(),
            message: "must be written as an integer".into(),
        });
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let sub = &schema["properties"][key];
                if !sub.is_null() {
                    integers_as_integers(
                        child,
                        sub,
                        root,
                        &tasuki_core::child_pointer(at, key),
                        out,
                    );
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, child) in items.iter().enumerate() {
                integers_as_integers(child, &schema["items"], root, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Whether an `if` of the shapes the contract uses (`required` and `const`
/// properties) holds; any other `if` is taken to hold, which can only add checks.
fn if_matches(value: &Value, condition: &Value) -> bool {
    let required = condition["required"].as_array().into_iter().flatten();
    let present = required
        .filter_map(Value::as_str)
        .all(|name| value.get(name).is_some());
    let consts = condition["properties"].as_object().into_iter().flatten();
    let equal = consts
        .filter_map(|(name, sub)| sub.get("const").map(|c| (name, c)))
        .all(|(name, c)| value.get(name).is_none_or(|v| v == c));
    present && equal
}

fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => root.pointer(pointer).map_or(schema, |s| resolve(s, root)),
        None => schema,
    }
}
