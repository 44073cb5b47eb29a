//! `openapi.yaml`, the single source of truth of the API, as data: its
//! operations, their parameters and bodies, and the schemas of its responses.

use axum::http::Method;
use serde_json::{Value, json};

/// The contract's text, served at `/openapi.yaml`.
pub const OPENAPI_YAML: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml"));

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamIn {
    Path,
    Query,
}

#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub location: ParamIn,
    pub required: bool,
    pub schema: Value,
}

#[derive(Clone, Debug)]
pub struct Operation {
    pub method: Method,
    /// The path template, `/jobs/{id}`; axum writes routes the same way.
    pub path: String,
    pub operation_id: String,
    pub params: Vec<Param>,
    /// The request body's JSON schema, when the operation takes one.
    pub body: Option<Value>,
    /// Whether the operation may require the `adminToken` bearer scheme.
    pub admin: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("openapi.yaml: {0}")]
pub struct ContractError(pub(crate) String);

pub struct Contract {
    doc: Value,
    operations: Vec<Operation>,
}

impl Contract {
    /// The contract compiled into this build.
    pub fn load() -> Result<Self, ContractError> {
        Self::parse(OPENAPI_YAML)
    }

    pub fn parse(text: &str) -> Result<Self, ContractError> {
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| ContractError(e.to_string()))?;
        let mut operations = Vec::new();
        let paths = doc["paths"]
            .as_object()
            .ok_or_else(|| ContractError("no paths".into()))?;
        for (path, item) in paths {
            let item = item
                .as_object()
                .ok_or_else(|| ContractError(format!("{path} is not an object")))?;
            for (method, op) in item {
                let Ok(method) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                let params = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| param(&doc, p))
                    .collect::<Result<_, _>>()?;
                let body = op["requestBody"]["content"]["application/json"]["schema"].clone();
                operations.push(Operation {
                    method,
                    path: path.clone(),
                    operation_id: op["operationId"].as_str().unwrap_or_default().to_owned(),
                    params,
                    body: (!body.is_null()).then_some(body),
                    admin: op["security"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|req| req.get("adminToken").is_some())),
                });
            }
        }
        Ok(Self { doc, operations })
    }

    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    pub fn operation(&self, method: &Method, path: &str) -> Option<&Operation> {
        self.operations
            .iter()
            .find(|op| op.method == *method && op.path == path)
    }

    /// A named schema of `components/schemas`.
    pub fn schema(&self, name: &str) -> Option<&Value> {
        self.doc["components"]["schemas"].get(name)
    }

    /// A schema made standalone: local `$ref`s resolve against the contract's components.
    pub fn standalone(&self, schema: &Value) -> Value {
        self.standalone_with(schema, self.doc["components"].clone())
    }

    pub(crate) fn standalone_with(&self, schema: &Value, components: Value) -> Value {
        json!({"allOf": [schema], "components": components})
    }

    pub(crate) fn components(&self) -> &Value {
        &self.doc["components"]
    }

    /// Checks a response against the contract: its status must be declared,
    /// and its JSON body must match the declared schema.
    pub fn check_response(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        content_type: &str,
        body: &Value,
    ) -> Result<(), String> {
        let op = self
            .operation(method, path)
            .ok_or_else(|| format!("{method} {path} is not in the contract"))?;
        let responses =
            &self.doc["paths"][&op.path][op.method.as_str().to_lowercase()]["responses"];
        let mut response = responses
            .get(status.to_string())
            .ok_or_else(|| format!("{method} {path} does not declare status {status}"))?;
        if let Some(reference) = response["$ref"].as_str() {
            response = self
                .resolve(reference)
                .ok_or_else(|| format!("dangling {reference}"))?;
        }
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let declared: Vec<&String> = response["content"]
            .as_object()
            .map(|c| c.keys().collect())
            .unwrap_or_default();
        let schema = &response["content"][media]["schema"];
        if schema.is_null() {
            return Err(format!(
                "{method} {path} {status}: content type {media} is not one of {declared:?}"
            ));
        }
        if !media.ends_with("json") {
            return Ok(());
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&self.standalone(schema))
            .map_err(|e| format!("bad schema: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{}: {e}", e.instance_path().as_str()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{method} {path} {status} breaks the contract: {errors:?} in {body}"
            ))
        }
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        self.doc.pointer(pointer)
    }
}

fn param(doc: &Value, p: &Value) -> Result<Param, ContractError> {
    let p = match p["$ref"].as_str() {
        Some(reference) => doc
            .pointer(reference.trim_start_matches('#'))
            .ok_or_else(|| ContractError(format!("dangling {reference}")))?,
        None => p,
    };
    let location = match p["in"].as_str() {
        Some("path") => ParamIn::Path,
        Some("query") => ParamIn::Query,
        other => {
            return Err(ContractError(format!(
                "parameters in {other:?} are not supported"
            )));
        }
    };
    Ok(Param {
        name: p["name"].as_str().unwrap_or_default().to_owned(),
        location,
        required: p["required"].as_bool().unwrap_or(location == ParamIn::Path),
        schema: p["schema"].clone(),
    })
}
