//! `GET /v1/subjects/{id}/audit`: every change of a subject, oldest first, page by page, each once;
//! bad query parameters are 400 and read nothing.

use clinflow_tests::*;
use serde_json::json;

#[tokio::test]
async fn the_trail_pages_through_every_change_oldest_first() {
    let app = spawn_app().await;
    let staff = app.staff();
    let subject = app.enrol_subject(BOS, "BOS-0900").await;
    let r = app
        .put_form(&staff, &subject, "VS", None, &vital_signs(120, 80))
        .await;
    assert_eq!(r.status, 201);
    let mut body = vital_signs(124, 80);
    body["reasonForChange"] = json!("transcription error");
    assert_eq!(
        app.put_form(&staff, &subject, "VS", Some(1), &body)
            .await
            .status,
        200
    );
    for key in ["a", "b"] {
        let r = app
            .post_epro(&staff, &subject, key, &diary_entry(2, 1))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let monitor = app.token("monitor", &[BOS]);
    let mut actions = Vec::new();
    let mut path = format!("/v1/subjects/{subject}/audit?limit=2");
    loop {
        let page = app.get(&path, &monitor).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for e in page.body["entries"].as_array().unwrap() {
            actions.push(e["action"].as_str().unwrap().to_owned());
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/subjects/{subject}/audit?limit=2&cursor={c}"),
            None => break,
        }
    }
    // The changes, then the trail's own reads (each page read is audited after it is answered).
    let changes: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("read."))
        .collect();
    assert_eq!(
        changes,
        [
            "subject.enrol",
            "form.create",
            "form.change",
            "epro.submit",
            "epro.submit"
        ]
    );
    assert_eq!(&actions[..5], changes.as_slice(), "oldest first");
    for bad in ["limit=0", "limit=501", "cursor=xyz", "since=2026-01-01"] {
        let r = app
            .get(&format!("/v1/subjects/{subject}/audit?{bad}"), &monitor)
            .await;
        assert_eq!(r.problem(400), "/problems/invalid-query", "{bad}");
    }
    // A cursor of this trail is no cursor of another subject's.
    let first = app
        .get(&format!("/v1/subjects/{subject}/audit?limit=1"), &monitor)
        .await;
    let cursor = first.body["nextCursor"].as_str().expect("a next page");
    let r = app
        .get(
            &format!("/v1/subjects/SUBJ-0001/audit?cursor={cursor}"),
            &monitor,
        )
        .await;
    assert_eq!(r.problem(400), "/problems/invalid-query");
}
