//! openapi.yaml, checked against the running local stack: every response a test receives through
//! [`crate::TestApp::send`] must be documented for its route — its status among the operation's
//! responses, its content type among that response's, its body valid against the schema (JSON
//! Schema 2020-12, formats checked). A response that is not is a failed test, whichever test
//! provoked it.

use jsonschema::Validator;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

pub struct Spec {
    pub doc: Value,
    validators: Mutex<HashMap<String, std::sync::Arc<Validator>>>,
}

pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = local_stack::emulator::repo_root().join("openapi.yaml");
        let text = std::fs::read_to_string(&path).expect("openapi.yaml");
        let doc: Value = serde_yaml::from_str(&text).expect("openapi.yaml is YAML");
        Spec {
            doc,
            validators: Mutex::new(HashMap::new()),
        }
    })
}

impl Spec {
    /// Every (METHOD, path template) the document describes.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (path, item) in self.doc["paths"].as_object().into_iter().flatten() {
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                if item.get(method).is_some() {
                    out.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        out.sort();
        out
    }

    /// The path template a concrete path falls under, if any.
    pub fn template_of(&self, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.doc["paths"]
            .as_object()?
            .keys()
            .find(|t| {
                let ts: Vec<&str> = t.trim_matches('/').split('/').collect();
                ts.len() == segments.len()
                    && ts
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')))
            })
            .cloned()
    }

    /// Follows a local `$ref` (`#/components/...`).
    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or(&Value::Null),
            None => v,
        }
    }

    fn validator(&self, key: &str, schema: &Value) -> std::sync::Arc<Validator> {
        let mut cache = self.validators.lock().expect("lock");
        if let Some(v) = cache.get(key) {
            return std::sync::Arc::clone(v);
        }
        // The schema inside a document that carries the components its `$ref`s point into.
        let mut root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
        });
        for (k, v) in schema.as_object().into_iter().flatten() {
            root[k] = v.clone();
        }
        let validator = std::sync::Arc::new(
            jsonschema::options()
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("openapi.yaml: schema for {key} does not compile: {e}")),
        );
        cache.insert(key.to_owned(), std::sync::Arc::clone(&validator));
        validator
    }

    /// Whether this response is what the document says `method path` answers.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: &str,
        body: &Value,
    ) -> Result<(), String> {
        let Some(template) = self.template_of(path) else {
            // Not an API route (a test probing an unknown path): nothing to check.
            return Ok(());
        };
        let operation = &self.doc["paths"][&template][method.to_lowercase()];
        if operation.is_null() {
            return Ok(());
        }
        let what = format!("{method} {template} → {status}");
        let response = operation["responses"]
            .get(status.to_string())
            .map(|r| self.resolve(r))
            .ok_or_else(|| format!("{what}: status not documented"))?;
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            return if body.is_null() {
                Ok(())
            } else {
                Err(format!("{what}: documented without a body, got {body}"))
            };
        };
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let media = content
            .get(essence)
            .ok_or_else(|| format!("{what}: content type {essence:?} not documented"))?;
        let key = format!("{what} {essence}");
        let validator = self.validator(&key, &media["schema"]);
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{what}: body does not match openapi.yaml:\n  {}\nbody: {body}",
                errors.join("\n  ")
            ))
        }
    }
}
