//! Each function under its own role. `sam deploy` gives every function an execution role built from
//! its `Policies` (SAM policy templates expanded) and the managed policies its events need; locally,
//! each function gets an IAM user of the emulator holding exactly those policies, and runs with its
//! keys — its SDK clients, its SQS poller (the event source mapping reads the queue with the
//! function's role, as Lambda does) and, as a child process, its environment. With the emulator's
//! IAM enforcement on, a permission the code needs and the template lacks fails.
//!
//! The roles come from SAM's own translator (`local-stack/sam_roles.py`, samtranslator from the
//! repo's venv), run once per template file and process; their intrinsics are evaluated here with
//! the stack's parameters and the names provisioning gave the resources.

use crate::emulator::{repo_root, AccessKeys};
use crate::template::Template;
use crate::Error;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A function's execution role: its inline policy documents (evaluated) and managed policy ARNs.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub policies: Vec<(String, Json)>,
    pub managed: Vec<String>,
}

/// SAM's translation of a template file: function logical id → its role, intrinsics unevaluated.
fn translated(template: &Path) -> Result<Arc<Json>, Error> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<Json>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache
        .lock()
        .map_err(|_| "roles cache poisoned")?
        .get(template)
    {
        return Ok(Arc::clone(hit));
    }
    let python = std::env::var("CLINFLOW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv/bin/python"));
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("local-stack/sam_roles.py"))
        .arg(template)
        .output()
        .map_err(|e| format!("{}: {e} (make setup installs the venv)", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "SAM could not translate {}: {}",
            template.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let roles: Arc<Json> = Arc::new(serde_json::from_slice(&out.stdout)?);
    cache
        .lock()
        .map_err(|_| "roles cache poisoned")?
        .insert(template.to_owned(), Arc::clone(&roles));
    Ok(roles)
}

/// Every function's role, evaluated against this stack's template (parameters, conditions, names).
pub fn roles(template_path: &Path, template: &Template) -> Result<BTreeMap<String, Role>, Error> {
    let raw = translated(template_path)?;
    let mut roles = BTreeMap::new();
    for (function, role) in raw.as_object().into_iter().flatten() {
        let yaml = |v: Option<&Json>| serde_yaml::to_value(v.cloned().unwrap_or(Json::Null));
        let policies = template.eval(&yaml(role.get("policies"))?)?;
        let managed = template.eval(&yaml(role.get("managed"))?)?;
        let policies = policies
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let name = p.get("PolicyName")?.as_str()?.to_owned();
                let mut document = p.get("PolicyDocument")?.clone();
                if let Some(d) = document.as_object_mut() {
                    d.entry("Version").or_insert_with(|| "2012-10-17".into());
                }
                Some((name, document))
            })
            .collect();
        let managed = crate::template::json_strings(Some(&managed));
        roles.insert(function.clone(), Role { policies, managed });
    }
    Ok(roles)
}

/// Creates the IAM user a function runs as, with its role's policies; returns its keys.
pub async fn function_user(
    iam: &aws_sdk_iam::Client,
    user: &str,
    role: &Role,
) -> Result<AccessKeys, Error> {
    use aws_sdk_iam::error::DisplayErrorContext;
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("IAM {what} for {user}: {e}");
    iam.create_user()
        .user_name(user)
        .send()
        .await
        .map_err(|e| fail("CreateUser", &DisplayErrorContext(e)))?;
    for (name, document) in &role.policies {
        iam.put_user_policy()
            .user_name(user)
            .policy_name(name)
            .policy_document(document.to_string())
            .send()
            .await
            .map_err(|e| fail("PutUserPolicy", &DisplayErrorContext(e)))?;
    }
    for arn in &role.managed {
        iam.attach_user_policy()
            .user_name(user)
            .policy_arn(arn)
            .send()
            .await
            .map_err(|e| fail("AttachUserPolicy", &DisplayErrorContext(e)))?;
    }
    let key = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .map_err(|e| fail("CreateAccessKey", &DisplayErrorContext(e)))?
        .access_key
        .ok_or_else(|| fail("CreateAccessKey", &"no key returned"))?;
    Ok(AccessKeys {
        access_key_id: key.access_key_id,
        secret_access_key: key.secret_access_key,
    })
}

/// The IAM user name of a function of a stack (at most 64 characters, as IAM allows).
pub fn user_name(stack: &str, function: &str) -> String {
    format!("{stack}-{function}").chars().take(64).collect()
}
