//! ePRO diaries: an `Idempotency-Key` makes a retry safe (the same request answers the first
//! answer, concurrent retries store one entry, the key with another body is refused), and bad
//! input writes nothing.

use clinflow_tests::*;
use serde_json::json;

/// A stack whose ePRO limit does not get in the way of these tests (rate_limit.rs tests it).
async fn app() -> TestApp {
    spawn_app_with(&[
        ("EproRateLimitBurst", "1000"),
        ("EproRateLimitPerSecond", "100"),
    ])
    .await
}

#[tokio::test]
async fn a_submission_retried_five_times_some_concurrently_is_stored_once() {
    let app = app().await;
    let staff = app.staff();
    for round in 0..3 {
        let key = uuid::Uuid::new_v4().to_string();
        let body = diary_entry(round + 1, 6);
        let first = app.post_epro(&staff, "SUBJ-0001", &key, &body).await;
        assert_eq!(first.status, 201, "{}", first.body);
        // Two retries one after the other, then three at once.
        let mut replies = Vec::new();
        for _ in 0..2 {
            replies.push(app.post_epro(&staff, "SUBJ-0001", &key, &body).await);
        }
        replies.extend(
            futures::future::join_all(
                (0..3).map(|_| app.post_epro(&staff, "SUBJ-0001", &key, &body)),
            )
            .await,
        );
        for r in &replies {
            assert_eq!(r.status, 201, "{}", r.body);
            assert_eq!(r.body, first.body, "the first answer again");
            assert_eq!(r.headers["idempotency-replayed"], "true");
        }
    }
    // Concurrent first attempts (a retry before the first answer arrived): one entry.
    let key = uuid::Uuid::new_v4().to_string();
    let body = diary_entry(10, 2);
    let replies =
        futures::future::join_all((0..5).map(|_| app.post_epro(&staff, "SUBJ-0001", &key, &body)))
            .await;
    let ids: std::collections::BTreeSet<String> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", r.body);
            r.body["entryId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every retry answers the same entry");
    // Stored: four entries, four request keys, four audited submissions.
    assert_eq!(app.item_count("EproTable").await, 4);
    assert_eq!(app.item_count("EproRequestsTable").await, 4);
    let submits = app
        .subject_changes("SUBJ-0001")
        .await
        .into_iter()
        .filter(|a| a == "epro.submit")
        .count();
    assert_eq!(submits, 4);
    let diary = app.get("/v1/subjects/SUBJ-0001/epro", &staff).await;
    assert_eq!(diary.body["entries"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_and_keys_are_per_client() {
    let app = app().await;
    let staff = app.staff();
    let r = app
        .post_epro(&staff, "SUBJ-0001", "key-1", &diary_entry(1, 3))
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .post_epro(&staff, "SUBJ-0001", "key-1", &diary_entry(1, 4))
        .await;
    assert_eq!(r.problem(422), "/problems/idempotency-key-reused");
    // The same key for another subject is another request too.
    let r = app
        .post_epro(&staff, "SUBJ-0002", "key-1", &diary_entry(1, 3))
        .await;
    assert_eq!(r.problem(422), "/problems/idempotency-key-reused");
    // Another client's key of the same name is its own.
    let other = app.stack.token("coordinator-2", "site_staff", &[BOS], &[]);
    let r = app
        .post_epro(&other, "SUBJ-0001", "key-1", &diary_entry(1, 4))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(app.item_count("EproTable").await, 2);
}

#[tokio::test]
async fn bad_diary_input_is_refused_and_nothing_is_written() {
    let app = app().await;
    let staff = app.staff();
    let future = (chrono::Utc::now() + chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (body, pointer) in [
        (
            json!({"recordedAt": "2026-11-01T08:00:00Z", "painScore": 11, "diaryCompleted": true}),
            "/painScore",
        ),
        (
            json!({"recordedAt": "2026-11-01T08:00:00Z", "painScore": -1, "diaryCompleted": true}),
            "/painScore",
        ),
        (
            json!({"recordedAt": future, "painScore": 3, "diaryCompleted": true}),
            "/recordedAt",
        ),
        (
            json!({"recordedAt": "yesterday", "painScore": 3, "diaryCompleted": true}),
            "/recordedAt",
        ),
        (
            json!({"recordedAt": "2026-11-01T08:00:00Z", "painScore": "3", "diaryCompleted": true}),
            "/painScore",
        ),
        (
            json!({"recordedAt": "2026-11-01T08:00:00Z", "painScore": 3, "symptoms": ["my name is Jane"], "diaryCompleted": true}),
            "/symptoms/0",
        ),
        (
            json!({"recordedAt": "2026-11-01T08:00:00Z", "painScore": 3}),
            "/diaryCompleted",
        ),
        (
            json!({"recordedAt": "2026-11-01T08:00:00Z", "painScore": 3, "diaryCompleted": true, "name": "Jane"}),
            "/name",
        ),
    ] {
        let r = app
            .post_epro(
                &staff,
                "SUBJ-0001",
                &uuid::Uuid::new_v4().to_string(),
                &body,
            )
            .await;
        assert_eq!(r.problem(422), "/problems/invalid-epro", "{body}");
        let pointers: Vec<&str> = r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert!(pointers.contains(&pointer), "{pointer} in {pointers:?}");
    }
    // Without an Idempotency-Key: 400; with one that is not visible ASCII or too long: 400.
    let path = "/v1/subjects/SUBJ-0001/epro";
    let entry = diary_entry(1, 3);
    let r = app
        .send_with(reqwest::Method::POST, path, Some(&staff), &[], Some(&entry))
        .await;
    assert_eq!(r.problem(400), "/problems/idempotency-key-required");
    let long = "k".repeat(256);
    let r = app.post_epro(&staff, "SUBJ-0001", &long, &entry).await;
    assert_eq!(r.problem(400), "/problems/idempotency-key-required");
    // A cursor this diary did not issue: 400.
    let r = app.get(&format!("{path}?cursor=abc"), &staff).await;
    assert_eq!(r.problem(400), "/problems/invalid-query");
    assert_eq!(app.item_count("EproTable").await, 0);
    assert_eq!(app.item_count("EproRequestsTable").await, 0);
    assert_eq!(app.item_count("AuditTable").await, 0);
}

#[tokio::test]
async fn the_diary_pages_oldest_first() {
    let app = app().await;
    let staff = app.staff();
    for h in [30, 5, 20, 10, 1] {
        let r = app
            .post_epro(
                &staff,
                "SUBJ-0002",
                &format!("k{h}"),
                &diary_entry(h, h % 11),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/subjects/SUBJ-0002/epro?limit=2".to_owned();
    loop {
        let page = app.get(&path, &staff).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for e in page.body["entries"].as_array().unwrap() {
            seen.push(e["recordedAt"].as_str().unwrap().to_owned());
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/subjects/SUBJ-0002/epro?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "oldest first");
}
