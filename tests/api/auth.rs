//! The auth matrix, for every upload route: no token, expired, bad signature, wrong audience and
//! wrong issuer are stopped by the authorizer (401); the wrong site answers 404 (existence does not
//! leak); the wrong role 403.

use clinflow_tests::*;
use local_stack::jwt::{mint, TokenSpec};
use reqwest::Method;
use serde_json::json;

struct Route {
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
}

fn routes(upload_id: &str) -> Vec<Route> {
    vec![
        Route {
            method: Method::POST,
            path: "/v1/uploads".into(),
            body: Some(declaration("SUBJ-0001", b"file")),
        },
        Route {
            method: Method::GET,
            path: format!("/v1/uploads/{upload_id}"),
            body: None,
        },
        Route {
            method: Method::GET,
            path: format!("/v1/uploads/{upload_id}/parts"),
            body: None,
        },
        Route {
            method: Method::POST,
            path: format!("/v1/uploads/{upload_id}/complete"),
            body: Some(json!({"parts": [{"partNumber": 1, "etag": "x"}]})),
        },
        Route {
            method: Method::DELETE,
            path: format!("/v1/uploads/{upload_id}"),
            body: None,
        },
    ]
}

fn token(secret: &str, issuer: &str, audience: &str, ttl: i64) -> String {
    let sites = vec![BOS.to_owned()];
    mint(
        secret,
        &TokenSpec {
            subject: "tester",
            role: "site_staff",
            sites: &sites,
            trials: &[],
            issuer,
            audience,
            ttl_seconds: ttl,
        },
    )
}

#[tokio::test]
async fn the_authorizer_refuses_bad_tokens_on_every_route() {
    let (app, id) = TestApp::with_multipart_upload(6 * 1024 * 1024).await;
    let before = app.item_count("AuditTable").await;
    let (iss, aud) = (app.stack.issuer.clone(), app.stack.audience.clone());
    let bad_tokens: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("expired", Some(token("test-secret", &iss, &aud, -60))),
        (
            "bad signature",
            Some(token("another-secret", &iss, &aud, 3600)),
        ),
        (
            "wrong audience",
            Some(token("test-secret", &iss, "someone-else", 3600)),
        ),
        (
            "wrong issuer",
            Some(token("test-secret", "https://evil.example", &aud, 3600)),
        ),
        ("garbage", Some("not-a-jwt".to_owned())),
    ];
    for route in routes(&id) {
        for (name, tok) in &bad_tokens {
            let r = app
                .send(
                    route.method.clone(),
                    &route.path,
                    tok.as_deref(),
                    route.body.as_ref(),
                )
                .await;
            assert_eq!(
                r.status, 401,
                "{name} {} {}: {}",
                route.method, route.path, r.body
            );
            assert_eq!(r.body["message"], "Unauthorized");
        }
    }
    assert_eq!(
        app.item_count("AuditTable").await,
        before,
        "nothing written"
    );
}

#[tokio::test]
async fn site_and_role_decide_in_the_function() {
    let (app, id) = TestApp::with_multipart_upload(6 * 1024 * 1024).await;
    let before = app.item_count("AuditTable").await;

    let other_site_staff = app.token("site_staff", &[LYN]);
    let other_site_monitor = app.token("monitor", &[LYN]);
    let monitor = app.token("monitor", &[BOS]);
    let admin = app.token_in("sponsor_admin", &[], &[TRIAL]);
    let other_trial_admin = app.token_in("sponsor_admin", &[], &["CLIN-OTHER-02"]);
    let admin_without_trials = app.token("sponsor_admin", &[]);
    let unknown_role = app.token("auditor", &[BOS]);

    for route in routes(&id) {
        let call = |tok: String| {
            let app = &app;
            let route = &route;
            async move {
                app.send(
                    route.method.clone(),
                    &route.path,
                    Some(&tok),
                    route.body.as_ref(),
                )
                .await
            }
        };
        let what = format!("{} {}", route.method, route.path);
        // Wrong site: the subject or upload does not exist for this caller.
        assert_eq!(
            call(other_site_staff.clone()).await.problem(404),
            "/problems/not-found",
            "{what}"
        );
        // A monitor elsewhere, a sponsor admin of another trial or of none: creating is refused for
        // the role (403), the rest is invisible (404).
        let creating = route.method == Method::POST && route.path == "/v1/uploads";
        for outsider in [
            other_site_monitor.clone(),
            other_trial_admin.clone(),
            admin_without_trials.clone(),
        ] {
            let r = call(outsider).await;
            if creating {
                assert_eq!(r.problem(403), "/problems/forbidden", "{what}");
            } else {
                assert_eq!(r.problem(404), "/problems/not-found", "{what}");
            }
        }
        // Wrong role: a role the service does not know.
        assert_eq!(
            call(unknown_role.clone()).await.problem(403),
            "/problems/forbidden",
            "{what}"
        );
        // Readers read; only site staff of the site write.
        let reads = route.method == Method::GET && !route.path.ends_with("/parts");
        for reader in [monitor.clone(), admin.clone()] {
            let r = call(reader).await;
            if reads {
                assert_eq!(r.status, 200, "{what}: {}", r.body);
            } else {
                assert_eq!(r.problem(403), "/problems/forbidden", "{what}");
            }
        }
    }
    assert_eq!(
        app.item_count("AuditTable").await,
        before,
        "nothing written"
    );
    assert_eq!(app.item_count("UploadsTable").await, 1);
}
