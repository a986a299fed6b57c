//! Reference data end to end: the admin route changes the source (audited, If-Match), refresh-cache
//! publishes a snapshot (never an empty or partial one, never an unchanged one again), and the
//! metadata route serves it through the lock-free cache — a change visible after the refresh plus
//! at most the revalidation period, not before; the last good snapshot kept when S3 fails.

use async_trait::async_trait;
use clinflow_tests::*;
use local_stack::emulator::repo_root;
use serde_json::{json, Value};
use shared::reference::cache::{Fetched, SnapshotSource};
use shared::reference::ReferenceKind;
use shared::store::reference::{DynamoReference, ReferencePage, ReferenceSource};
use shared::store::snapshots::{S3Snapshots, SnapshotPublisher};
use shared::store::StoreError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARACETAMOL: &str = "/v1/metadata/drug_code/N02BE01";
const SNAPSHOT_KEY: &str = "snapshots/reference.json.gz";

fn admin(app: &TestApp) -> String {
    app.token_in("sponsor_admin", &[], &[TRIAL])
}

async fn refresh(app: &TestApp) -> Option<String> {
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("events/refresh-cache-scheduled.json")).unwrap(),
    )
    .unwrap();
    app.invoke("RefreshCacheFunction", &event).await.1
}

fn reference_bucket(app: &TestApp) -> String {
    app.stack.bucket("ReferenceBucket").unwrap().to_owned()
}

/// The published snapshot's object versions (the bucket is versioned: one per write).
async fn snapshot_versions(app: &TestApp) -> usize {
    app.stack
        .clients
        .s3
        .list_object_versions()
        .bucket(reference_bucket(app))
        .prefix(SNAPSHOT_KEY)
        .send()
        .await
        .unwrap()
        .versions()
        .len()
}

/// `PUT path` as a sponsor admin with `If-Match: tag`.
async fn put_if_match(app: &TestApp, path: &str, body: &Value, tag: &str) -> Reply {
    app.send_with(
        reqwest::Method::PUT,
        path,
        Some(&admin(app)),
        &[("if-match", tag)],
        Some(body),
    )
    .await
}

async fn drug_name(app: &TestApp, token: &str) -> String {
    let r = app.get(PARACETAMOL, token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["name"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_changed_value_is_seen_after_the_next_refresh_plus_the_revalidation_period_and_not_before(
) {
    let app = spawn_app_with(&[("ReferenceRevalidateSeconds", "2")]).await;
    assert_eq!(refresh(&app).await, None);
    assert_eq!(snapshot_versions(&app).await, 1);
    let reader = app.token("monitor", &[BOS]);
    assert_eq!(drug_name(&app, &reader).await, "paracetamol");

    // The admin reads the source's version and changes the entry with it (a reason is required).
    let path = "/v1/reference/drug_code/N02BE01";
    let current = app.get(path, &admin(&app)).await;
    assert_eq!(current.status, 200, "{}", current.body);
    let tag = current.headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(tag, "\"1\"");
    let mut change = json!({"name": "paracetamol (acetaminophen)", "atcClass": "N02BE",
                            "className": "Anilides", "active": true});
    let unreasoned = put_if_match(&app, path, &change, &tag).await;
    assert_eq!(unreasoned.status, 422, "{}", unreasoned.body);
    change["reasonForChange"] = json!("USAN name added for US sites");
    let changed = put_if_match(&app, path, &change, &tag).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.headers["etag"], "\"2\"");
    // The same stale tag again: 412, nothing written.
    let stale = put_if_match(&app, path, &change, &tag).await;
    assert_eq!(stale.status, 412, "{}", stale.body);
    let trail = app.audit_of("reference#drug_code#N02BE01").await;
    assert_eq!(trail.len(), 1, "one change, one audit entry");
    let entry = &trail[0];
    assert_eq!(entry["action"].as_s().unwrap(), "reference.change");
    assert!(entry["old"].as_s().unwrap().contains("\"paracetamol\""));
    assert!(entry["new"]
        .as_s()
        .unwrap()
        .contains("paracetamol (acetaminophen)"));
    assert_eq!(
        entry["reason"].as_s().unwrap(),
        "USAN name added for US sites"
    );

    // Not before the refresh: readers keep the published snapshot, however long they ask.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(drug_name(&app, &reader).await, "paracetamol");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // After it: within the revalidation period (2 s) and a little scheduling slack.
    assert_eq!(refresh(&app).await, None);
    let refreshed = Instant::now();
    while drug_name(&app, &reader).await != "paracetamol (acetaminophen)" {
        assert!(
            refreshed.elapsed() < Duration::from_millis(3_500),
            "not seen within the revalidation period"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen_after = refreshed.elapsed();
    assert!(seen_after <= Duration::from_millis(3_500), "{seen_after:?}");
    // An unchanged source is not published again.
    assert_eq!(snapshot_versions(&app).await, 2);
    assert_eq!(refresh(&app).await, None);
    assert_eq!(snapshot_versions(&app).await, 2);
}

#[tokio::test]
async fn every_role_reads_entries_with_etags_and_unknown_keys_answer_404_problems() {
    let app = spawn_app().await;
    assert_eq!(refresh(&app).await, None);
    for token in [
        app.staff(),
        app.token("monitor", &["SITE-LYN-02"]),
        admin(&app),
    ] {
        assert_eq!(drug_name(&app, &token).await, "paracetamol");
    }
    let reader = app.staff();
    let entry = app.get(PARACETAMOL, &reader).await;
    assert_eq!(entry.body["kind"], "drug_code");
    assert_eq!(entry.body["atcClass"], "N02BE");
    assert_eq!(entry.body["stale"], false);
    assert!(entry.headers["cache-control"]
        .to_str()
        .unwrap()
        .starts_with("private, max-age="));
    let etag = entry.headers["etag"].to_str().unwrap().to_owned();
    let unchanged = app
        .send_with(
            reqwest::Method::GET,
            PARACETAMOL,
            Some(&reader),
            &[("if-none-match", &etag)],
            None,
        )
        .await;
    assert_eq!(unchanged.status, 304);
    // The old API's key answers the same entry.
    let legacy = app.get("/v1/metadata?key=drug_code_N02BE01", &reader).await;
    assert_eq!(legacy.status, 200);
    assert_eq!(legacy.body, entry.body);
    let site = app.get("/v1/metadata?key=site_SITE-BOS-01", &reader).await;
    assert_eq!(site.status, 200, "{}", site.body);
    assert_eq!(site.body["country"], "US");
    // Unknown: 404 problems; the old API's keys also carry its error text.
    for path in [
        "/v1/metadata/drug_code/N02BE99",
        "/v1/metadata/colour/red",
        "/v1/metadata/site/NO-SUCH-SITE",
    ] {
        let r = app.get(path, &reader).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_eq!(r.body["type"], "/problems/not-found", "{path}");
    }
    for key in ["drug_code_001", "unknown", "drug_code_"] {
        let r = app.get(&format!("/v1/metadata?key={key}"), &reader).await;
        assert_eq!(r.status, 404, "{key}: {}", r.body);
        assert_eq!(r.body["error"], "metadata not found", "{key}");
    }
    let r = app.get("/v1/metadata", &reader).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // No token: the gateway's 401. Only sponsor admins reach the source.
    let r = app
        .send(reqwest::Method::GET, PARACETAMOL, None, None)
        .await;
    assert_eq!(r.status, 401);
    for token in [app.staff(), app.token("monitor", &[BOS])] {
        let r = app.get("/v1/reference/drug_code/N02BE01", &token).await;
        assert_eq!(r.status, 403, "{}", r.body);
    }
}

#[tokio::test]
async fn bad_admin_input_is_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let audit_before = app.item_count("AuditTable").await;
    let reference_before = app.item_count("ReferenceTable").await;
    let admin = admin(&app);
    let good = json!({"name": "x", "atcClass": "N02BE", "className": "Anilides", "active": true});
    for (path, body, headers, status) in [
        // No precondition at all.
        ("/v1/reference/drug_code/N02BE71", good.clone(), vec![], 428),
        // Invalid values, an unknown field, a code of the wrong shape.
        (
            "/v1/reference/drug_code/N02BE71",
            json!({"name": "", "atcClass": "n02", "className": "A", "active": "yes", "x": 1}),
            vec![("if-none-match", "*")],
            422,
        ),
        (
            "/v1/reference/drug_code/paracetamol",
            good.clone(),
            vec![("if-none-match", "*")],
            422,
        ),
        (
            "/v1/reference/site/SITE-BOS-01",
            json!({"name": "Boston", "country": "USA", "status": "OPEN"}),
            vec![("if-match", "\"1\"")],
            422,
        ),
        // Creating what exists; changing with a version that is not the stored one.
        (
            "/v1/reference/drug_code/N02BE01",
            good.clone(),
            vec![("if-none-match", "*")],
            412,
        ),
        (
            "/v1/reference/drug_code/N02BE01",
            json!({"name": "x", "atcClass": "N02BE", "className": "Anilides", "active": true,
                   "reasonForChange": "r"}),
            vec![("if-match", "\"7\"")],
            412,
        ),
        (
            "/v1/reference/colour/red",
            good.clone(),
            vec![("if-none-match", "*")],
            404,
        ),
    ] {
        let r = app
            .send_with(
                reqwest::Method::PUT,
                path,
                Some(&admin),
                &headers,
                Some(&body),
            )
            .await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.body);
    }
    let r = app
        .send_with(
            reqwest::Method::PUT,
            "/v1/reference/drug_code/N02BE71",
            Some(&app.staff()),
            &[("if-none-match", "*")],
            Some(&good),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(app.item_count("AuditTable").await, audit_before);
    assert_eq!(app.item_count("ReferenceTable").await, reference_before);
}

/// The real source, failing from its `fail_at`-th page on (a throttled or broken read mid-way).
struct FailingLater {
    inner: DynamoReference,
    calls: AtomicUsize,
    fail_at: usize,
}

#[async_trait]
impl ReferenceSource for FailingLater {
    async fn page(
        &self,
        kind: ReferenceKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ReferencePage, StoreError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 >= self.fail_at {
            return Err(StoreError::Unavailable("Query reference".into()));
        }
        self.inner.page(kind, after, limit).await
    }
}

#[tokio::test]
async fn a_partial_or_empty_source_never_replaces_a_good_snapshot() {
    let app = spawn_app().await;
    assert_eq!(refresh(&app).await, None);
    let clients = app.stack.function_clients("RefreshCacheFunction").await;
    let table = app.table("ReferenceTable");
    let published = S3Snapshots::new(clients.s3.clone(), reference_bucket(&app), SNAPSHOT_KEY);
    let good = published.published_version().await.unwrap().unwrap();

    // A source that fails on its third page of 50: nothing is published.
    let partial = refresh_cache::Refresher::new(
        Arc::new(FailingLater {
            inner: DynamoReference::reader(clients.dynamodb.clone(), &table),
            calls: AtomicUsize::new(0),
            fail_at: 3,
        }),
        Arc::new(published.clone()),
    )
    .with_page_size(50);
    // Change the source first, so a partial publish would show.
    app.stack
        .clients
        .dynamodb
        .delete_item()
        .table_name(&table)
        .key(
            "kind",
            aws_sdk_dynamodb::types::AttributeValue::S("drug_code".into()),
        )
        .key(
            "code",
            aws_sdk_dynamodb::types::AttributeValue::S("N02BE01".into()),
        )
        .send()
        .await
        .unwrap();
    assert!(matches!(
        partial.refresh(chrono::Utc::now()).await,
        Err(refresh_cache::RefreshError::Source(_))
    ));
    assert_eq!(
        published.published_version().await.unwrap(),
        Some(good.clone())
    );
    assert_eq!(snapshot_versions(&app).await, 1);

    // Every site gone: the function refuses the empty kind and fails (the alarm sees it).
    let sites = app
        .stack
        .clients
        .dynamodb
        .query()
        .table_name(&table)
        .key_condition_expression("kind = :k")
        .expression_attribute_values(
            ":k",
            aws_sdk_dynamodb::types::AttributeValue::S("site".into()),
        )
        .send()
        .await
        .unwrap();
    for item in sites.items() {
        app.stack
            .clients
            .dynamodb
            .delete_item()
            .table_name(&table)
            .key("kind", item["kind"].clone())
            .key("code", item["code"].clone())
            .send()
            .await
            .unwrap();
    }
    let error = refresh(&app).await;
    assert!(error.is_some(), "an empty kind must fail the invocation");
    assert_eq!(published.published_version().await.unwrap(), Some(good));
    assert_eq!(snapshot_versions(&app).await, 1);
    // Readers still get the last good snapshot.
    assert_eq!(drug_name(&app, &app.staff()).await, "paracetamol");
}

/// The real S3 adapter, or one whose endpoint refuses connections (S3 down), at the flip of a switch.
struct Switchable {
    up: S3Snapshots,
    down: S3Snapshots,
    failing: AtomicBool,
}

#[async_trait]
impl SnapshotSource for Switchable {
    async fn fetch(&self, if_none_match: Option<&str>) -> Result<Fetched, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            self.down.fetch(if_none_match).await
        } else {
            self.up.fetch(if_none_match).await
        }
    }
}

fn request(path_params: (&str, &str)) -> lambda_http::Request {
    let mut event: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("events/metadata-get.json")).unwrap(),
    )
    .unwrap();
    let (kind, code) = path_params;
    event["pathParameters"] = json!({"kind": kind, "code": code});
    event["rawPath"] = json!(format!("/v1/metadata/{kind}/{code}"));
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

#[tokio::test]
async fn with_s3_down_the_last_good_snapshot_is_served_marked_stale_never_a_5xx() {
    let app = spawn_app().await;
    assert_eq!(refresh(&app).await, None);
    let clients = app.stack.function_clients("MetadataFunction").await;
    let dead = aws_sdk_s3::Client::from_conf(
        clients
            .s3
            .config()
            .to_builder()
            .endpoint_url("http://127.0.0.1:9")
            .build(),
    );
    let source = Arc::new(Switchable {
        up: S3Snapshots::new(clients.s3.clone(), reference_bucket(&app), SNAPSHOT_KEY),
        down: S3Snapshots::new(dead, reference_bucket(&app), SNAPSHOT_KEY),
        failing: AtomicBool::new(false),
    });
    let api = metadata::MetadataApi::new(source.clone(), Duration::from_millis(200));
    api.warm().await;
    source.failing.store(true, Ordering::SeqCst);
    let down = Instant::now();
    let mut ages = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let response = api.handle(request(("drug_code", "N02BE01"))).await;
        assert_eq!(response.status(), 200);
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["name"], "paracetamol");
        assert_eq!(body["stale"], true, "{body}");
        // The age counts from the source's last answer: it grows while S3 is down.
        let age: u64 = response.headers()["age"].to_str().unwrap().parse().unwrap();
        assert!(age <= down.elapsed().as_secs() + 1, "{age}");
        ages.push(age);
    }
    assert!(ages.windows(2).all(|w| w[0] <= w[1]), "{ages:?}");
    assert!(ages.last() > Some(&0), "{ages:?}");
    // Back up: fresh again.
    source.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let response = api.handle(request(("drug_code", "N02BE01"))).await;
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(body["stale"], false, "{body}");
    // A cold start with S3 down: nothing to serve yet, a 503 problem (not a 500, not a hang).
    let cold = metadata::MetadataApi::new(
        Arc::new(Switchable {
            up: source.down.clone(),
            down: source.down.clone(),
            failing: AtomicBool::new(true),
        }),
        Duration::from_secs(60),
    );
    let response = cold.handle(request(("drug_code", "N02BE01"))).await;
    assert_eq!(response.status(), 503);
}
