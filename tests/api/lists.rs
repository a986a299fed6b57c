//! What a front-end lists: a subject's uploads (`GET /v1/uploads?subjectId=`), newest first, a page
//! at a time; and a subject's imaging (`GET /v1/subjects/{subjectId}/imaging`) through the pipeline.
//! Both site-scoped; every response checked against openapi.yaml.

use base64::Engine as _;
use clinflow_tests::*;
use serde_json::Value;
use std::collections::BTreeSet;

/// Declares `n` uploads for `subject` as BOS staff; their ids, in creation order.
async fn declare(app: &TestApp, subject: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut body = declaration(subject, format!("file {i}").as_bytes());
        body["fileName"] = Value::from(format!("series-{i}.dcm"));
        let created = app.post("/v1/uploads", &app.staff(), &body).await;
        assert_eq!(created.status, 201, "{}", created.body);
        ids.push(created.body["uploadId"].as_str().unwrap().to_owned());
    }
    ids
}

/// Follows `nextCursor` from the first page to the last: every record, in the order served.
async fn every_page(app: &TestApp, token: &str, query: &str) -> (Vec<Value>, usize) {
    let mut records = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/uploads?{query}&cursor={c}"),
            None => format!("/v1/uploads?{query}"),
        };
        let page = app.get(&path, token).await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages += 1;
        assert!(pages < 50, "pagination does not end");
        records.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (records, pages),
        }
    }
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["uploadId"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_newest_first(records: &[Value]) {
    let times: Vec<&str> = records
        .iter()
        .map(|r| r["createdAt"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
}

#[tokio::test]
async fn a_subjects_uploads_come_newest_first_page_by_page_each_once() {
    let app = spawn_app().await;
    let mine = declare(&app, "SUBJ-0001", 7).await;
    // Another subject's uploads never show in this list.
    let other = declare(&app, "SUBJ-0002", 2).await;

    for limit in [1, 3, 7, 100] {
        let (records, pages) = every_page(
            &app,
            &app.staff(),
            &format!("subjectId=SUBJ-0001&limit={limit}"),
        )
        .await;
        let got = ids(&records);
        let unique: BTreeSet<&String> = got.iter().collect();
        assert_eq!(
            unique.len(),
            got.len(),
            "limit {limit}: an upload served twice"
        );
        assert_eq!(
            unique,
            mine.iter().collect::<BTreeSet<_>>(),
            "limit {limit}: one missing or another subject's"
        );
        assert_newest_first(&records);
        assert_eq!(pages, 7usize.div_ceil(limit).max(1), "limit {limit}");
    }
    // The default page holds them all, each as GET /v1/uploads/{id} shows it.
    let page = app
        .get("/v1/uploads?subjectId=SUBJ-0001", &app.staff())
        .await;
    assert_eq!(page.body["subjectId"], "SUBJ-0001");
    assert!(page.body.get("nextCursor").is_none(), "{}", page.body);
    let first = &page.body["items"][0];
    let single = app
        .get(
            &format!("/v1/uploads/{}", first["uploadId"].as_str().unwrap()),
            &app.staff(),
        )
        .await;
    assert_eq!(first, &single.body);
    // The newest is the last declared (ties at the same millisecond aside).
    assert_eq!(
        first["createdAt"],
        app.get(&format!("/v1/uploads/{}", mine[6]), &app.staff())
            .await
            .body["createdAt"]
    );

    let (records, _) = every_page(&app, &app.staff(), "subjectId=SUBJ-0002&limit=1").await;
    assert_eq!(
        ids(&records).into_iter().collect::<BTreeSet<_>>(),
        other.into_iter().collect::<BTreeSet<_>>()
    );
    // A subject with no upload: an empty last page.
    let none = app
        .get(
            "/v1/uploads?subjectId=SUBJ-0101",
            &app.token("monitor", &[LYN]),
        )
        .await;
    assert_eq!(none.status, 200);
    assert_eq!(none.body["items"], serde_json::json!([]));
}

#[tokio::test]
async fn a_status_filter_pages_through_only_that_status() {
    let app = spawn_app().await;
    let declared = declare(&app, "SUBJ-0001", 9).await;
    // Abort every third: ABORTED; the rest stay AWAITING_UPLOAD.
    let mut aborted = BTreeSet::new();
    for id in declared.iter().step_by(3) {
        let r = app.delete(&format!("/v1/uploads/{id}"), &app.staff()).await;
        assert_eq!(r.body["status"], "ABORTED", "{}", r.body);
        aborted.insert(id.clone());
    }
    for limit in [1, 2, 50] {
        let (records, _) = every_page(
            &app,
            &app.staff(),
            &format!("subjectId=SUBJ-0001&status=ABORTED&limit={limit}"),
        )
        .await;
        assert!(records.iter().all(|r| r["status"] == "ABORTED"));
        assert_eq!(ids(&records).into_iter().collect::<BTreeSet<_>>(), aborted);
        assert_newest_first(&records);
        let (records, _) = every_page(
            &app,
            &app.staff(),
            &format!("subjectId=SUBJ-0001&status=AWAITING_UPLOAD&limit={limit}"),
        )
        .await;
        assert_eq!(records.len(), 6, "limit {limit}");
        assert!(records
            .iter()
            .all(|r| !aborted.contains(r["uploadId"].as_str().unwrap())));
    }
    let (none, _) = every_page(&app, &app.staff(), "subjectId=SUBJ-0001&status=PROCESSED").await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn the_list_is_site_scoped_like_a_single_upload() {
    let app = spawn_app().await;
    let ids_bos = declare(&app, "SUBJ-0001", 2).await;
    // Readers of the subject's site see the same records the uploader does.
    let staff = app
        .get("/v1/uploads?subjectId=SUBJ-0001", &app.staff())
        .await;
    for token in [
        app.token("monitor", &[BOS]),
        app.token("monitor", &[LYN, BOS]),
        app.token_in("sponsor_admin", &[], &[TRIAL]),
    ] {
        let seen = app.get("/v1/uploads?subjectId=SUBJ-0001", &token).await;
        assert_eq!(seen.status, 200, "{}", seen.body);
        assert_eq!(
            ids(seen.body["items"].as_array().unwrap()).len(),
            ids_bos.len()
        );
        for (theirs, uploader) in seen.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .zip(staff.body["items"].as_array().unwrap())
        {
            let single = app
                .get(
                    &format!("/v1/uploads/{}", theirs["uploadId"].as_str().unwrap()),
                    &token,
                )
                .await;
            assert_eq!(theirs, &single.body, "as GET /v1/uploads/{{id}} shows it");
            assert_eq!(theirs["uploadId"], uploader["uploadId"]);
        }
    }
    // Outside the caller's sites: 404, exactly as a subject that does not exist.
    for (token, subject) in [
        (app.token("monitor", &[LYN]), "SUBJ-0001"),
        (app.token("site_staff", &[LYN]), "SUBJ-0001"),
        (
            app.token_in("sponsor_admin", &[], &["CLIN-OTHER-02"]),
            "SUBJ-0001",
        ),
        (app.token("monitor", &[]), "SUBJ-0001"),
        (app.staff(), "SUBJ-0101"),
        (app.staff(), "SUBJ-9999"),
    ] {
        let r = app
            .get(&format!("/v1/uploads?subjectId={subject}"), &token)
            .await;
        assert_eq!(r.problem(404), "/problems/not-found", "{subject}");
        assert!(r.body.get("items").is_none());
    }
    // A cursor issued for a visible subject opens nothing else.
    let page = app
        .get("/v1/uploads?subjectId=SUBJ-0001&limit=1", &app.staff())
        .await;
    let cursor = page.body["nextCursor"].as_str().unwrap();
    let r = app
        .get(
            &format!("/v1/uploads?subjectId=SUBJ-0101&cursor={cursor}"),
            &app.token("monitor", &[LYN]),
        )
        .await;
    assert_eq!(r.problem(400), "/problems/invalid-query");
}

#[tokio::test]
async fn bad_list_parameters_are_400_problems_and_write_nothing() {
    let app = spawn_app().await;
    declare(&app, "SUBJ-0001", 3).await;
    let page = app
        .get("/v1/uploads?subjectId=SUBJ-0001&limit=1", &app.staff())
        .await;
    let cursor = page.body["nextCursor"].as_str().unwrap().to_owned();
    let decoded = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&cursor)
            .unwrap(),
    )
    .unwrap();
    let reencode = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let edited_subject = reencode(decoded.replace("SUBJ-0001", "SUBJ-0002"));
    let edited_time = reencode(decoded.replace("\"createdAt\":\"20", "\"createdAt\":\"19"));
    let edited_id = reencode(decoded.replace("\"uploadId\":\"", "\"uploadId\":\"x"));
    // Well formed, but no upload of the subject: another id, or another subject's upload.
    let other_id = reencode(decoded.replace(
        page.body["items"][0]["uploadId"].as_str().unwrap(),
        "00000000-0000-4000-8000-000000000000",
    ));
    let theirs = declare(&app, "SUBJ-0002", 1).await.remove(0);
    let their_upload =
        reencode(decoded.replace(page.body["items"][0]["uploadId"].as_str().unwrap(), &theirs));
    let (uploads, audit) = (
        app.item_count("UploadsTable").await,
        app.item_count("AuditTable").await,
    );
    let mut truncated = cursor.clone();
    truncated.truncate(cursor.len() / 2);
    for (query, field) in [
        ("", "subjectId"),
        ("subjectId=", "subjectId"),
        ("subjectId=SUBJ%2F0001", "subjectId"),
        ("subjectId=SUBJ-0001&subjectId=SUBJ-0002", "subjectId"),
        ("subjectId=SUBJ-0001&limit=0", "limit"),
        ("subjectId=SUBJ-0001&limit=101", "limit"),
        ("subjectId=SUBJ-0001&limit=abc", "limit"),
        ("subjectId=SUBJ-0001&status=DONE", "status"),
        ("subjectId=SUBJ-0001&status=processed", "status"),
        ("subjectId=SUBJ-0001&sort=asc", "sort"),
        (
            &format!("subjectId=SUBJ-0001&cursor={edited_subject}"),
            "cursor",
        ),
        (
            &format!("subjectId=SUBJ-0001&cursor={edited_time}"),
            "cursor",
        ),
        (&format!("subjectId=SUBJ-0001&cursor={edited_id}"), "cursor"),
        (&format!("subjectId=SUBJ-0001&cursor={other_id}"), "cursor"),
        (
            &format!("subjectId=SUBJ-0001&cursor={their_upload}"),
            "cursor",
        ),
        (&format!("subjectId=SUBJ-0001&cursor={truncated}"), "cursor"),
        (&format!("subjectId=SUBJ-0002&cursor={cursor}"), "cursor"),
        // Issued without a filter: not valid for a filtered list.
        (
            &format!("subjectId=SUBJ-0001&status=ABORTED&cursor={cursor}"),
            "cursor",
        ),
        ("subjectId=SUBJ-0001&cursor=not-a-cursor", "cursor"),
    ] {
        let r = app.get(&format!("/v1/uploads?{query}"), &app.staff()).await;
        assert_eq!(r.problem(400), "/problems/invalid-query", "{query}");
        let fields: Vec<&str> = r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{query}: {fields:?}");
    }
    // The same cursor, untouched, still works.
    let next = app
        .get(
            &format!("/v1/uploads?subjectId=SUBJ-0001&limit=1&cursor={cursor}"),
            &app.staff(),
        )
        .await;
    assert_eq!(next.status, 200);
    assert_ne!(
        next.body["items"][0]["uploadId"],
        page.body["items"][0]["uploadId"]
    );
    assert_eq!(app.item_count("UploadsTable").await, uploads);
    assert_eq!(app.item_count("AuditTable").await, audit);
    assert_eq!(app.object_count().await, 0);
}

/// Polls the imaging route until its summary counts `instances` (the summary is kept from a queue).
async fn imaging_with(app: &TestApp, subject: &str, instances: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let r = app
            .get(&format!("/v1/subjects/{subject}/imaging"), &app.staff())
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body["summary"]["instances"] == instances && r.body["summary"]["pending"] == 0 {
            return r.body;
        }
        assert!(std::time::Instant::now() < deadline, "{}", r.body);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_subjects_imaging_lists_its_studies_series_and_instances() {
    let app = spawn_pipeline(&[]).await;
    let mut processed = Vec::new();
    for name in ["CT_small.dcm", "MR_small.dcm"] {
        let file = dicom_file(name);
        let mut body = declaration("SUBJ-0001", &file);
        body["fileName"] = Value::from(name);
        let created = app.upload(&body, &file).await;
        let record = app
            .wait_processed(created["uploadId"].as_str().unwrap())
            .await;
        assert_eq!(record["status"], "PROCESSED", "{record}");
        processed.push(record);
    }
    // The same CT again: a duplicate, indexed once and counted once.
    let ct = dicom_file("CT_small.dcm");
    let again = app.upload(&declaration("SUBJ-0001", &ct), &ct).await;
    let again = app
        .wait_processed(again["uploadId"].as_str().unwrap())
        .await;
    assert_eq!(again["processing"]["instance"], "duplicate", "{again}");

    let imaging = imaging_with(&app, "SUBJ-0001", 2).await;
    assert_eq!(imaging["subjectId"], "SUBJ-0001");
    assert_eq!(imaging["siteId"], BOS);
    assert_eq!(imaging["complete"], true);
    assert_eq!(imaging["summary"]["studies"], 2);
    assert_eq!(imaging["summary"]["instancesByModality"]["CT"], 1);
    assert_eq!(imaging["summary"]["instancesByModality"]["MR"], 1);
    assert!(imaging["summary"].get("subjectId").is_none());
    let studies = imaging["studies"].as_array().unwrap();
    assert_eq!(studies.len(), 2, "{imaging}");
    for record in &processed {
        let dicom = &record["processing"]["dicom"];
        let study = studies
            .iter()
            .find(|s| s["studyInstanceUid"] == dicom["studyInstanceUid"])
            .unwrap_or_else(|| panic!("study of {} missing: {imaging}", record["uploadId"]));
        assert_eq!(study["modalities"], serde_json::json!([dicom["modality"]]));
        assert_eq!(study["studyDate"], dicom["studyDate"]);
        assert_eq!(
            (
                study["seriesCount"].as_u64(),
                study["instanceCount"].as_u64()
            ),
            (Some(1), Some(1))
        );
        let series = &study["series"][0];
        assert_eq!(series["seriesInstanceUid"], dicom["seriesInstanceUid"]);
        assert_eq!(series["modality"], dicom["modality"]);
        let instance = &series["instances"][0];
        assert_eq!(instance["sopInstanceUid"], dicom["sopInstanceUid"]);
        assert_eq!(instance["uploadId"], record["uploadId"]);
        assert_eq!(instance["sha256"], record["processing"]["sha256"]);
        assert_eq!(instance["sizeBytes"], record["sizeBytes"]);
    }
    // No patient identifier anywhere in it.
    let text = imaging.to_string();
    for record in &processed {
        if let Some(patient) = record["processing"]["dicom"]["patientId"].as_str() {
            assert!(!text.contains(patient), "patient id in {text}");
        }
        assert!(!text.contains(record["fileName"].as_str().unwrap()));
    }

    // The same for every reader of the site; 404 for anyone else, as for a subject that does not exist.
    for token in [
        app.token("monitor", &[BOS]),
        app.token_in("sponsor_admin", &[], &[TRIAL]),
    ] {
        let r = app.get("/v1/subjects/SUBJ-0001/imaging", &token).await;
        assert_eq!(r.body["studies"], imaging["studies"]);
    }
    for (token, subject) in [
        (app.token("monitor", &[LYN]), "SUBJ-0001"),
        (app.token("site_staff", &[LYN]), "SUBJ-0001"),
        (app.staff(), "SUBJ-0101"),
        (app.staff(), "SUBJ-9999"),
        (app.staff(), "not%20a%20subject"),
    ] {
        let r = app
            .get(&format!("/v1/subjects/{subject}/imaging"), &token)
            .await;
        assert_eq!(r.problem(404), "/problems/not-found", "{subject}");
    }
    // A subject with nothing processed yet: zeros, no studies.
    let empty = app
        .get("/v1/subjects/SUBJ-0002/imaging", &app.staff())
        .await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body["summary"]["instances"], 0);
    assert_eq!(empty.body["studies"], serde_json::json!([]));
}
