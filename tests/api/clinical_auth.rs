//! The auth matrix of every clinical route: no token 401 (the gateway), a role the route does not
//! allow 403, a subject at another site or of another trial 404 exactly like a missing one — and
//! nothing written by any refused request.

use clinflow_tests::*;
use reqwest::Method;
use serde_json::Value;

const OTHER_TRIAL: &str = "CLIN-OTHER-09";

struct Call {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

fn call(method: Method, path: String) -> Call {
    Call {
        method,
        path,
        headers: Vec::new(),
        body: None,
    }
}

/// Every subject route, for `subject`.
fn subject_routes(subject: &str) -> Vec<Call> {
    let mut put = call(Method::PUT, format!("/v1/subjects/{subject}/forms/VS"));
    put.headers.push(("if-none-match", "*".into()));
    put.body = Some(vital_signs(120, 80));
    let mut epro = call(Method::POST, format!("/v1/subjects/{subject}/epro"));
    epro.headers
        .push(("idempotency-key", uuid::Uuid::new_v4().to_string()));
    epro.body = Some(diary_entry(1, 3));
    vec![
        call(Method::GET, format!("/v1/subjects/{subject}")),
        call(Method::GET, format!("/v1/subjects/{subject}/forms")),
        call(Method::GET, format!("/v1/subjects/{subject}/forms/VS")),
        put,
        epro,
        call(Method::GET, format!("/v1/subjects/{subject}/epro")),
        call(Method::GET, format!("/v1/subjects/{subject}/audit")),
    ]
}

async fn send(app: &TestApp, c: &Call, token: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.send_with(c.method.clone(), &c.path, token, &headers, c.body.as_ref())
        .await
}

async fn nothing_changed(app: &TestApp) {
    assert_eq!(app.item_count("FormsTable").await, 0, "forms");
    assert_eq!(app.item_count("EproTable").await, 0, "diary entries");
    assert_eq!(app.item_count("EproRequestsTable").await, 0, "request keys");
}

#[tokio::test]
async fn every_clinical_route_refuses_who_may_not_and_hides_other_sites_and_trials() {
    let app = spawn_app().await;
    app.stack
        .seed_subjects(&[("SUBJ-9001", OTHER_TRIAL, BOS)])
        .await
        .expect("seed");
    let staff_bos = app.token_in("site_staff", &[BOS], &[TRIAL]);

    // No token: the gateway's 401, on every route.
    let mut all = subject_routes("SUBJ-0001");
    all.push(call(Method::GET, format!("/v1/subjects?siteId={BOS}")));
    let mut enrol = call(Method::POST, "/v1/subjects".into());
    enrol.body = Some(enrolment(TRIAL, BOS, "BOS-9999"));
    all.push(enrol);
    for c in &all {
        let r = send(&app, c, None).await;
        assert_eq!(r.status, 401, "{} {}: {}", c.method, c.path, r.body);
    }

    // A subject at another site (LYN) and one of another trial at BOS: 404 like a missing one,
    // on every subject route, for site staff of BOS working on the demo trial.
    for subject in ["SUBJ-0101", "SUBJ-9001", "SUBJ-NOPE"] {
        for c in subject_routes(subject) {
            // The audit trail is not for site staff at all: 403 whatever the subject.
            let expected = if c.path.ends_with("/audit") { 403 } else { 404 };
            let r = send(&app, &c, Some(&staff_bos)).await;
            r.problem(expected);
        }
    }
    // A monitor of BOS working on the demo trial: the same two subjects are not there.
    let monitor_bos = app.token_in("monitor", &[BOS], &[TRIAL]);
    for subject in ["SUBJ-0101", "SUBJ-9001"] {
        for c in subject_routes(subject)
            .into_iter()
            .filter(|c| c.method == Method::GET)
        {
            send(&app, &c, Some(&monitor_bos)).await.problem(404);
        }
    }
    // A sponsor admin of another trial sees no subject of the demo trial.
    let admin_other = app.token_in("sponsor_admin", &[], &[OTHER_TRIAL]);
    for c in subject_routes("SUBJ-0001")
        .into_iter()
        .filter(|c| c.method == Method::GET)
    {
        send(&app, &c, Some(&admin_other)).await.problem(404);
    }

    // Roles the route does not allow: 403.
    let monitor = app.token("monitor", &[BOS]);
    let patient = app.patient_token("SUBJ-0001");
    for (token, c) in [
        (&monitor, {
            let mut c = call(Method::POST, "/v1/subjects".into());
            c.body = Some(enrolment(TRIAL, BOS, "BOS-9998"));
            c
        }),
        (
            &patient,
            call(Method::GET, format!("/v1/subjects?siteId={BOS}")),
        ),
        (&patient, call(Method::GET, "/v1/subjects/SUBJ-0001".into())),
        (
            &patient,
            call(Method::GET, "/v1/subjects/SUBJ-0001/forms".into()),
        ),
        (
            &patient,
            call(Method::GET, "/v1/subjects/SUBJ-0001/forms/VS".into()),
        ),
        (
            &patient,
            call(Method::GET, "/v1/subjects/SUBJ-0001/audit".into()),
        ),
        (
            &app.staff(),
            call(Method::GET, "/v1/subjects/SUBJ-0001/audit".into()),
        ),
    ] {
        send(&app, &c, Some(token)).await.problem(403);
    }
    for (token, c) in [(&monitor, 3usize), (&patient, 3)] {
        // PUT form (3 in subject_routes) by a monitor or a patient: 403.
        let c = &subject_routes("SUBJ-0001")[c];
        send(&app, c, Some(token)).await.problem(403);
    }
    // ePRO by a monitor or a sponsor admin: 403.
    let admin = app.token_in("sponsor_admin", &[], &[TRIAL]);
    for token in [&monitor, &admin] {
        send(&app, &subject_routes("SUBJ-0001")[4], Some(token))
            .await
            .problem(403);
    }
    // Enrolling at a site that is not yours: 403; listing another site's subjects: 403.
    let r = app
        .enrol(&staff_bos, &enrolment(TRIAL, LYN, "LYN-9999"))
        .await;
    r.problem(403);
    app.get(&format!("/v1/subjects?siteId={LYN}"), &staff_bos)
        .await
        .problem(403);
    // A patient's token for another subject: that diary is not there for it.
    let other_patient = app.patient_token("SUBJ-0002");
    for c in subject_routes("SUBJ-0001")
        .into_iter()
        .filter(|c| c.path.ends_with("/epro"))
    {
        send(&app, &c, Some(&other_patient)).await.problem(404);
    }
    nothing_changed(&app).await;
    // No enrolment was written either: the subjects table holds the four seeded ones.
    assert_eq!(app.item_count("SubjectsTable").await, 4);
    assert_eq!(app.item_count("SubjectKeysTable").await, 4);
    // Refusals write no audit entry, not even of a read.
    assert_eq!(app.item_count("AuditTable").await, 0);
}

#[tokio::test]
async fn the_patient_keeps_its_own_diary_and_every_read_is_audited() {
    let app = spawn_app().await;
    let patient = app.patient_token("SUBJ-0001");
    let r = app
        .post_epro(&patient, "SUBJ-0001", "k-1", &diary_entry(2, 4))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["submittedBy"], "patient-SUBJ-0001");
    let diary = app.get("/v1/subjects/SUBJ-0001/epro", &patient).await;
    assert_eq!(diary.status, 200, "{}", diary.body);
    assert_eq!(diary.body["entries"].as_array().unwrap().len(), 1);
    // A monitor reads the subject, its forms and its diary; then the trail shows every read.
    let monitor = app.token("monitor", &[BOS]);
    for path in [
        "/v1/subjects/SUBJ-0001",
        "/v1/subjects/SUBJ-0001/forms",
        "/v1/subjects/SUBJ-0001/epro",
    ] {
        assert_eq!(app.get(path, &monitor).await.status, 200);
    }
    let trail = app.get("/v1/subjects/SUBJ-0001/audit", &monitor).await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    let actions: Vec<(&str, &str)> = trail.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("patient-SUBJ-0001", "epro.submit"),
            ("patient-SUBJ-0001", "read.epro"),
            ("tester", "read.subject"),
            ("tester", "read.forms"),
            ("tester", "read.epro"),
        ]
    );
    // The trail's own read is recorded after it was answered.
    let stored = app.subject_audit("SUBJ-0001").await;
    assert_eq!(stored.len(), 6);
    assert_eq!(
        stored[5]["action"].as_s().unwrap(),
        "read.audit",
        "{stored:?}"
    );
}
