//! The access matrix, generated from template.yaml's route table so a new route cannot be forgotten:
//! every route × {no token, expired, not yet valid, bad signature, `alg: none`, wrong issuer, wrong
//! audience, garbage} → 401 from the authorizer; × {a role this service does not know, a role the
//! route does not allow} → 403; × {a caller of another site, of another trial} → 404 where the route
//! is scoped to a subject (existence does not leak). Nothing is written by any refused call.
//!
//! Each route needs a line in [`policy`]: the test fails on a route without one.

use base64::Engine as _;
use clinflow_tests::*;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

/// Who a route lets in, and whether it is scoped to a subject's site and trial.
struct Policy {
    /// Known roles the route refuses with 403.
    refused_roles: &'static [&'static str],
    /// Scoped to a subject: a caller of another site or trial gets 404.
    subject_scoped: bool,
}

/// Every route of the template, by (METHOD, path template). A route missing here fails the test.
fn policy(method: &str, path: &str) -> Option<Policy> {
    let p = |refused_roles, subject_scoped| {
        Some(Policy {
            refused_roles,
            subject_scoped,
        })
    };
    match (method, path) {
        ("POST", "/v1/uploads") => p(&["monitor", "sponsor_admin"], true),
        ("GET", "/v1/uploads") => p(&["patient"], true),
        ("GET", "/v1/uploads/{uploadId}") => p(&["patient"], true),
        ("DELETE", "/v1/uploads/{uploadId}") => p(&["monitor", "sponsor_admin"], true),
        ("GET", "/v1/uploads/{uploadId}/parts") => p(&["monitor", "sponsor_admin"], true),
        ("POST", "/v1/uploads/{uploadId}/complete") => p(&["monitor", "sponsor_admin"], true),
        ("POST", "/v1/uploads/{uploadId}/reprocess") => p(&["site_staff", "monitor"], true),
        ("GET", "/v1/subjects/{subjectId}/imaging") => p(&["patient"], true),
        // Clinical data. Enrolment and the site's list are scoped by the site they name (another
        // site is 403, see clinical_auth.rs); the rest by the subject.
        ("POST", "/v1/subjects") => p(&["monitor", "sponsor_admin", "patient"], false),
        ("GET", "/v1/subjects") => p(&["patient"], false),
        ("GET", "/v1/subjects/{subjectId}")
        | ("GET", "/v1/subjects/{subjectId}/forms")
        | ("GET", "/v1/subjects/{subjectId}/forms/{formOid}") => p(&["patient"], true),
        ("PUT", "/v1/subjects/{subjectId}/forms/{formOid}") => {
            p(&["monitor", "sponsor_admin", "patient"], true)
        }
        // The diary: site staff and the patient (its own subject only) write; patients read their own.
        ("POST", "/v1/subjects/{subjectId}/epro") => p(&["monitor", "sponsor_admin"], true),
        ("GET", "/v1/subjects/{subjectId}/epro") => p(&[], true),
        ("GET", "/v1/subjects/{subjectId}/audit") => p(&["site_staff", "patient"], true),
        ("GET", "/v1/subjects/{subjectId}/report") => p(&["patient"], true),
        // Exports: any role but a patient, of a subject in scope (exports.rs tries a real export
        // from another site and trial).
        ("POST", "/v1/subjects/{subjectId}/exports")
        | ("GET", "/v1/subjects/{subjectId}/exports") => p(&["patient"], true),
        ("GET", "/v1/exports/{exportId}") => p(&["patient"], true),
        // Reference data: any role reads; only sponsor admins reach the source.
        ("GET", "/v1/metadata/{kind}/{code}") | ("GET", "/v1/metadata") => p(&[], false),
        ("GET", "/v1/reference/{kind}/{code}") | ("PUT", "/v1/reference/{kind}/{code}") => {
            p(&["site_staff", "monitor", "patient"], false)
        }
        _ => None,
    }
}

/// The template's routes: (METHOD, path template).
pub(crate) fn routes() -> Vec<(String, String)> {
    template_routes()
}

/// A request to `path` the right caller could make: parameters filled with SUBJ-0001's (a subject of
/// BOS in the demo trial), a valid body, the headers the route requires.
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

/// The value the right caller puts in a path segment (`{subjectId}` → SUBJ-0001, ...).
pub(crate) fn value_of<'a>(segment: &'a str, upload_id: &'a str) -> &'a str {
    match segment {
        "{subjectId}" => "SUBJ-0001",
        "{uploadId}" => upload_id,
        "{kind}" => "drug_code",
        "{code}" => "N02BE01",
        "{formOid}" => "VS",
        // Well formed, never issued (exports.rs reads real ones across scopes).
        "{exportId}" => "00000000-0000-4000-8000-000000000001",
        s if s.starts_with('{') => panic!("give {s} a value in tests/api/access.rs"),
        s => s,
    }
}

pub(crate) fn call(method: &str, template: &str, upload_id: &str) -> Call {
    let mut path = String::new();
    for segment in template.split('/').filter(|s| !s.is_empty()) {
        path.push('/');
        path.push_str(value_of(segment, upload_id));
    }
    let query = match (method, template) {
        ("GET", "/v1/uploads") => "?subjectId=SUBJ-0001",
        ("GET", "/v1/metadata") => "?key=drug_code_N02BE01",
        ("GET", "/v1/subjects") => "?siteId=SITE-BOS-01",
        _ => "",
    };
    path.push_str(query);
    let body = match (method, template) {
        ("POST", "/v1/uploads") => Some(declaration("SUBJ-0001", b"file")),
        ("POST", "/v1/uploads/{uploadId}/complete") => {
            Some(json!({"parts": [{"partNumber": 1, "etag": "x"}]}))
        }
        ("POST", "/v1/subjects") => Some(enrolment(TRIAL, BOS, "BOS-9999")),
        ("PUT", "/v1/subjects/{subjectId}/forms/{formOid}") => Some(vital_signs(120, 80)),
        ("POST", "/v1/subjects/{subjectId}/epro") => Some(diary_entry(1, 3)),
        ("POST", "/v1/subjects/{subjectId}/exports") => Some(json!({"format": "csv"})),
        ("PUT", "/v1/reference/{kind}/{code}") => Some(json!({"name": "paracetamol",
            "atcClass": "N02BE", "className": "Anilides", "active": true, "reasonForChange": "r"})),
        _ => None,
    };
    let headers = match (method, template) {
        ("PUT", "/v1/reference/{kind}/{code}") => vec![("if-match", "\"1\"".to_owned())],
        ("PUT", "/v1/subjects/{subjectId}/forms/{formOid}") => {
            vec![("if-none-match", "*".to_owned())]
        }
        ("POST", "/v1/subjects/{subjectId}/epro") => {
            vec![("idempotency-key", uuid::Uuid::new_v4().to_string())]
        }
        _ => vec![],
    };
    Call {
        method: method.parse().unwrap(),
        path,
        body,
        headers,
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT with exactly these claims: HS256 with `secret`, or unsigned with `alg: none`.
fn jwt(secret: Option<&str>, claims: &Value) -> String {
    let alg = if secret.is_some() { "HS256" } else { "none" };
    let signing_input = format!(
        "{}.{}",
        b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = match secret {
        Some(secret) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(signing_input.as_bytes());
            b64(&mac.finalize().into_bytes())
        }
        None => String::new(),
    };
    format!("{signing_input}.{signature}")
}

fn bad_tokens(app: &TestApp) -> Vec<(&'static str, Option<String>)> {
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, aud: &str, nbf: i64, exp: i64| {
        json!({"sub": "tester", "role": "site_staff", "sites": BOS, "trials": TRIAL,
               "iss": iss, "aud": aud, "iat": now, "nbf": nbf, "exp": exp})
    };
    let (iss, aud) = (app.stack.issuer.as_str(), app.stack.audience.as_str());
    let good = claims(iss, aud, now - 10, now + 3600);
    vec![
        ("no token", None),
        (
            "expired",
            Some(jwt(
                Some("test-secret"),
                &claims(iss, aud, now - 7200, now - 60),
            )),
        ),
        (
            "not yet valid",
            Some(jwt(
                Some("test-secret"),
                &claims(iss, aud, now + 600, now + 3600),
            )),
        ),
        ("bad signature", Some(jwt(Some("another-secret"), &good))),
        ("alg none", Some(jwt(None, &good))),
        (
            "wrong issuer",
            Some(jwt(
                Some("test-secret"),
                &claims("https://evil.example", aud, now - 10, now + 3600),
            )),
        ),
        (
            "wrong audience",
            Some(jwt(
                Some("test-secret"),
                &claims(iss, "someone-else", now - 10, now + 3600),
            )),
        ),
        ("garbage", Some("not-a-jwt".to_owned())),
    ]
}

async fn send(app: &TestApp, c: &Call, token: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.send_with(c.method.clone(), &c.path, token, &headers, c.body.as_ref())
        .await
}

#[tokio::test]
async fn every_route_refuses_every_bad_token_bad_role_and_foreign_subject() {
    let app = spawn_app().await;
    let upload = app.create_upload("SUBJ-0001", b"file").await;
    assert_eq!(upload.status, 201, "{}", upload.body);
    let upload_id = upload.body["uploadId"].as_str().unwrap().to_owned();
    // Every table a refused call could write to.
    let tables = [
        "AuditTable",
        "UploadsTable",
        "SubjectsTable",
        "SubjectKeysTable",
        "FormsTable",
        "EproTable",
        "EproRequestsTable",
        "ReferenceTable",
        "ExportsTable",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(app.item_count(t).await);
    }
    let bad = bad_tokens(&app);
    let known_roles = ["site_staff", "monitor", "sponsor_admin", "patient"];
    let token_for = |role: &str, sites: &[&str], trials: &[&str]| match role {
        // A sponsor admin is scoped by trials, site roles by sites (and trials when given), a
        // patient by the subject its token names.
        "sponsor_admin" => app.token_in(role, &[], trials),
        "patient" => app.patient_token("SUBJ-0001"),
        _ => app.token_in(role, sites, trials),
    };

    let routes = routes();
    assert!(routes.len() >= 12, "{routes:?}");
    let mut unlisted = Vec::new();
    for (method, template) in &routes {
        let Some(policy) = policy(method, template) else {
            unlisted.push(format!("{method} {template}"));
            continue;
        };
        let c = call(method, template, &upload_id);
        let what = format!("{method} {template}");
        for (name, token) in &bad {
            let r = send(&app, &c, token.as_deref()).await;
            assert_eq!(r.status, 401, "{name} on {what}: {}", r.body);
            assert_eq!(r.body["message"], "Unauthorized", "{name} on {what}");
        }
        // A role this service does not know.
        let r = send(&app, &c, Some(&token_for("auditor", &[BOS], &[TRIAL]))).await;
        assert_eq!(r.status, 403, "unknown role on {what}: {}", r.body);
        for role in policy.refused_roles {
            let r = send(&app, &c, Some(&token_for(role, &[BOS], &[TRIAL]))).await;
            assert_eq!(r.status, 403, "{role} on {what}: {}", r.body);
            assert_eq!(r.body["type"], "/problems/forbidden", "{role} on {what}");
        }
        if policy.subject_scoped {
            for role in known_roles
                .iter()
                .filter(|r| !policy.refused_roles.contains(r))
            {
                for (who, sites, trials) in [
                    ("another site", [LYN], [TRIAL]),
                    ("another trial", [BOS], ["CLIN-OTHER-02"]),
                ] {
                    // A sponsor admin has no site: only another trial applies to it. A patient's
                    // scope is its subject (clinical_auth.rs tries another subject's diary).
                    if (*role == "sponsor_admin" && who == "another site") || *role == "patient" {
                        continue;
                    }
                    let r = send(&app, &c, Some(&token_for(role, &sites, &trials))).await;
                    assert!(
                        r.status == 404
                            || (r.status == 200 && method == "GET" && r.body["items"] == json!([])),
                        "{role} of {who} on {what}: {} {}",
                        r.status,
                        r.body
                    );
                    if r.status == 404 {
                        assert_eq!(r.body["type"], "/problems/not-found", "{what}");
                    }
                }
            }
        }
    }
    assert!(
        unlisted.is_empty(),
        "routes without an access policy in tests/api/access.rs: {unlisted:?}"
    );
    let mut after = Vec::new();
    for t in tables {
        after.push(app.item_count(t).await);
    }
    assert_eq!(after, before, "nothing written to {tables:?}");
}

#[tokio::test]
async fn the_local_api_protects_routes_exactly_as_the_templates_default_authorizer_says() {
    // API Gateway checks a route with the authorizer it names, else with the API's
    // DefaultAuthorizer; the local stack takes both from the template. Without the default, every
    // route is open: no JWT is checked and the functions receive no claims, so even a valid
    // token is refused by the function itself (and in AWS the routes would be public). Before, the
    // local stack protected every route whatever the template said, and deleting the line passed
    // every test.
    let text =
        std::fs::read_to_string(local_stack::emulator::repo_root().join("template.yaml")).unwrap();
    let line = "        DefaultAuthorizer: JwtAuthorizer\n";
    assert_eq!(
        text.matches(line).count(),
        1,
        "template.yaml names its default authorizer"
    );
    let dir = std::env::temp_dir().join(format!("clinflow-auth-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let open = dir.join("template.yaml");
    std::fs::write(&open, text.replace(line, "")).unwrap();

    let path = "/v1/uploads?subjectId=SUBJ-0001&limit=1";
    let protected = spawn_app().await;
    assert_eq!(protected.get(path, &protected.staff()).await.status, 200);
    assert_eq!(protected.get(path, "not-a-jwt").await.status, 401);

    let unprotected = spawn_app_from(open).await;
    let r = unprotected.get(path, &unprotected.staff()).await;
    assert_eq!(r.status, 401, "no authorizer ran, so no claims: {}", r.body);
}
