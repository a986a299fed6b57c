//! Hostile input, on every route of the template:
//! - schemathesis (PyPI) generates requests from openapi.yaml against the running local stack, with
//!   a valid token: no 5xx, and every response conforms to the spec (status, content type, body);
//! - what a generator will not try: injection-shaped, traversing, control-character, Unicode-trick
//!   and enormous path parameters, oversized and deeply nested bodies, an oversized header → a 4xx
//!   (a problem, or the gateway's own refusal), never a 5xx, and nothing written.

use crate::access::{call, routes, value_of};
use clinflow_tests::*;
use local_stack::emulator::repo_root;

/// Generated cases per operation and token.
const CASES_PER_OPERATION: u32 = 40;

/// The summary line's count: "N generated, N passed".
fn generated(output: &str) -> Option<(u64, u64)> {
    let line = output.lines().find(|l| {
        let l = l.trim_start();
        l.starts_with(|c: char| c.is_ascii_digit()) && l.contains(" generated")
    })?;
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    Some((*numbers.first()?, *numbers.get(1).unwrap_or(&0)))
}

#[tokio::test]
async fn schemathesis_from_openapi_finds_no_5xx_and_no_response_outside_the_spec() {
    let schemathesis = repo_root().join(".venv/bin/schemathesis");
    assert!(
        schemathesis.exists(),
        "scripts/setup.sh installs schemathesis into .venv"
    );
    let app = spawn_app().await;
    let upload = app.create_upload("SUBJ-0001", b"file").await;
    let upload_id = upload.body["uploadId"].as_str().unwrap().to_owned();
    // Real identifiers, so generated requests reach the handlers' logic, not only their 404s.
    let dir = std::env::temp_dir().join(format!("schemathesis-{upload_id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[parameters]\n\"path.subjectId\" = \"SUBJ-0001\"\n\"path.kind\" = \"drug_code\"\n\
             \"path.code\" = \"N02BE01\"\n\"path.uploadId\" = \"{upload_id}\"\n"
        ),
    )
    .unwrap();
    let mut total = 0;
    for (who, token) in [
        ("site staff", app.token_in("site_staff", &[BOS], &[TRIAL])),
        (
            "sponsor admin",
            app.token_in("sponsor_admin", &[], &[TRIAL]),
        ),
    ] {
        let out = tokio::process::Command::new(&schemathesis)
            .arg("--config-file")
            .arg(&config)
            .arg("--no-color")
            .args(["run", "openapi.yaml", "--url", &app.stack.api_url])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["-n", &CASES_PER_OPERATION.to_string()])
            // Hypothesis describes strategies by parsing their source with `ast`, which is not
            // thread-safe on Python 3.11 ("AST constructor recursion depth mismatch", an internal
            // error, not a finding): the coverage phase tripped on it every run, and two workers
            // (threads) in the fuzzing phase on a CI run. One worker, examples and fuzzing (which
            // generate from every schema).
            .args(["--phases", "examples,fuzzing", "--workers", "1", "--seed", "20261128"])
            .current_dir(repo_root())
            .output()
            .await
            .expect("schemathesis runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "schemathesis as {who} found problems:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (cases, passed) = generated(&stdout).expect("a summary");
        assert_eq!(cases, passed, "{stdout}");
        assert!(cases >= 200, "{who}: only {cases} cases\n{stdout}");
        println!("schemathesis as {who}: {cases} generated, {passed} passed");
        total += cases;
    }
    println!(
        "schemathesis: {total} cases over {} operations",
        routes().len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Path parameter values a generator from the spec would not produce.
fn hostile_ids() -> Vec<String> {
    vec![
        "' OR '1'='1".into(),
        "1; DROP TABLE uploads".into(),
        "{\"$ne\":null}".into(),
        // (`..` and `%2e%2e` never reach a server from a WHATWG URL client: it resolves them.)
        "....//....//etc".into(),
        "..%2F..%2Fetc%2Fpasswd".into(),
        "%252e%252e%252fetc".into(),
        "%00".into(),
        "SUBJ-0001%0d%0aSet-Cookie:%20x".into(),
        // Right-to-left override and a homoglyph of SUBJ-0001 (Cyrillic С, Ј).
        "%E2%80%AEgpj.exe".into(),
        "%D0%A1UBJ-0001".into(),
        "A".repeat(4096),
        "SUBJ-0001".repeat(500),
    ]
}

async fn raw(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, String)],
) -> (u16, String) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn hostile_ids_bodies_and_headers_on_every_route_get_a_4xx_and_write_nothing() {
    let app = spawn_app().await;
    let upload = app.create_upload("SUBJ-0001", b"file").await;
    let upload_id = upload.body["uploadId"].as_str().unwrap().to_owned();
    let counted = ["AuditTable", "UploadsTable", "ReferenceTable"];
    let mut before = Vec::new();
    for t in counted {
        before.push(app.item_count(t).await);
    }
    let staff = app.token_in("site_staff", &[BOS], &[TRIAL]);
    let admin = app.token_in("sponsor_admin", &[], &[TRIAL]);
    let mut tried = 0;
    for (method, template) in routes() {
        let token = if template.starts_with("/v1/reference") || template.ends_with("/reprocess") {
            &admin
        } else {
            &staff
        };
        let good = call(&method, &template, &upload_id);
        let params: Vec<&str> = template.split('/').filter(|s| s.starts_with('{')).collect();
        // Each path parameter, hostile in turn.
        for param in &params {
            for id in hostile_ids() {
                let path = template
                    .split('/')
                    .map(|s| {
                        if s == *param {
                            id.clone()
                        } else {
                            value_of(s, &upload_id).to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                let body = good.body.as_ref().map(|b| b.to_string().into_bytes());
                let (status, text) =
                    raw(&app, good.method.clone(), &path, token, body, &good.headers).await;
                tried += 1;
                assert!(
                    (400..500).contains(&status),
                    "{method} {template} with {param} = {id:.60}: {status} {text:.300}"
                );
            }
        }
        if matches!(method.as_str(), "POST" | "PUT") {
            // Over API Gateway's 10 MB payload limit.
            let huge = vec![b'['; 11 * 1024 * 1024];
            let (status, _) = raw(
                &app,
                good.method.clone(),
                &good.path,
                token,
                Some(huge),
                &good.headers,
            )
            .await;
            assert_eq!(status, 413, "{method} {template}: a body over 10 MB");
            // Nested past any parser's patience.
            let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
            let (status, text) = raw(
                &app,
                good.method.clone(),
                &good.path,
                token,
                Some(nested),
                &good.headers,
            )
            .await;
            assert!(
                (400..500).contains(&status),
                "{method} {template}: deeply nested JSON: {status} {text:.300}"
            );
            // Not JSON at all, and JSON of the wrong shape.
            for body in [
                b"\xff\xfe\x00garbage".to_vec(),
                b"[]".to_vec(),
                b"null".to_vec(),
            ] {
                let (status, text) = raw(
                    &app,
                    good.method.clone(),
                    &good.path,
                    token,
                    Some(body),
                    &good.headers,
                )
                .await;
                assert!(
                    (400..500).contains(&status) || status == 404,
                    "{method} {template}: {status} {text:.300}"
                );
            }
            tried += 5;
        }
        // An oversized correlation header on a read: ignored (the request id stands in) or
        // refused, never a 5xx.
        if method == "GET" {
            let mut headers = good.headers.clone();
            headers.push(("x-correlation-id", "x".repeat(16 * 1024)));
            let (status, text) =
                raw(&app, good.method.clone(), &good.path, token, None, &headers).await;
            assert!(
                status < 500,
                "{method} {template}: oversized header: {status} {text:.300}"
            );
            tried += 1;
        }
    }
    let mut after = Vec::new();
    for t in counted {
        after.push(app.item_count(t).await);
    }
    // The oversized-header reads of patient data were served, so they were audited as reads;
    // nothing else reached the audit trail.
    let audit = app
        .stack
        .clients
        .dynamodb
        .scan()
        .table_name(app.table("AuditTable"))
        .send()
        .await
        .expect("scan audit");
    let changes = audit
        .items()
        .iter()
        .filter(|i| {
            i.get("action")
                .and_then(|a| a.as_s().ok())
                .is_none_or(|a| !a.starts_with("read."))
        })
        .count();
    assert_eq!(changes, before[0], "no change audited: {:?}", audit.items());
    assert_eq!(after[1..], before[1..], "nothing written ({counted:?})");
    println!("hostile requests: {tried} over {} routes", routes().len());
}
