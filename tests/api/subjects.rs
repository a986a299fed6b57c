//! Enrolment: a subject key is unique per trial (a retry or a double click enrols once, the key
//! with other data is refused), the site's list pages through its subjects, bad input writes
//! nothing.

use clinflow_tests::*;
use serde_json::json;

#[tokio::test]
async fn a_double_click_enrols_one_subject() {
    let app = spawn_app().await;
    let staff = app.staff();
    for round in 0..3 {
        let body = enrolment(TRIAL, BOS, &format!("BOS-10{round}"));
        let replies = futures::future::join_all((0..6).map(|_| app.enrol(&staff, &body))).await;
        let created: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
        assert_eq!(created.len(), 1, "one 201 in round {round}");
        let id = created[0].body["subjectId"].as_str().unwrap();
        assert_eq!(
            created[0].headers["location"],
            format!("/v1/subjects/{id}").as_str()
        );
        for r in &replies {
            assert!([200, 201].contains(&r.status), "{}", r.body);
            assert_eq!(
                r.body["subjectId"], id,
                "every click answers the one subject"
            );
        }
        // A later retry: 200 with the same subject.
        let again = app.enrol(&staff, &body).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.body["subjectId"], id);
        assert_eq!(app.subject_changes(id).await, ["subject.enrol"]);
    }
    // Three seeded + three enrolled; one key claim each.
    assert_eq!(app.item_count("SubjectsTable").await, 6);
    assert_eq!(app.item_count("SubjectKeysTable").await, 6);
}

#[tokio::test]
async fn a_subject_key_is_unique_per_trial_not_across_trials() {
    let app = spawn_app().await;
    let staff = app.staff();
    let first = app.enrol(&staff, &enrolment(TRIAL, BOS, "BOS-0500")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.body["subjectId"].as_str().unwrap().to_owned();
    assert_eq!(first.body["subjectKey"], "BOS-0500");
    assert_eq!(first.body["status"], "ENROLLED");
    assert_eq!(first.body["enrolledBy"], "tester");
    // The same key with another birth year: 409, nothing written.
    let mut other = enrolment(TRIAL, BOS, "BOS-0500");
    other["birthYear"] = json!(1970);
    let r = app.enrol(&staff, &other).await;
    assert_eq!(r.problem(409), "/problems/subject-key-taken");
    assert!(r.body.get("subjectId").is_none());
    // The key in another trial is another subject.
    let r = app
        .enrol(&staff, &enrolment("CLIN-OTHER-09", BOS, "BOS-0500"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_ne!(r.body["subjectId"], id.as_str());
    // What was stored is the first enrolment; a monitor reads it.
    let got = app
        .get(&format!("/v1/subjects/{id}"), &app.token("monitor", &[BOS]))
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["birthYear"], 1961);
    assert_eq!(got.body, first.body);
}

#[tokio::test]
async fn a_sites_subjects_page_by_page_each_once_and_only_that_site() {
    let app = spawn_app().await;
    let staff = app.staff();
    for n in 0..5 {
        app.enrol_subject(BOS, &format!("BOS-2{n:02}")).await;
    }
    app.enrol_subject(LYN, "LYN-200").await;
    let mut seen = Vec::new();
    let mut path = format!("/v1/subjects?siteId={BOS}&limit=3");
    loop {
        let page = app.get(&path, &staff).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for s in page.body["subjects"].as_array().unwrap() {
            assert_eq!(s["siteId"], BOS);
            seen.push(s["subjectId"].as_str().unwrap().to_owned());
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => path = format!("/v1/subjects?siteId={BOS}&limit=3&cursor={c}"),
            None => break,
        }
    }
    // SUBJ-0001, SUBJ-0002 and the five enrolled, each once, in id order.
    assert_eq!(seen.len(), 7, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted);
    // Each subject listed is an audited read.
    let reads = app
        .subject_audit("SUBJ-0001")
        .await
        .iter()
        .filter(|i| i["action"].as_s().unwrap() == "read.subject")
        .count();
    assert_eq!(reads, 1);
    // A cursor of another site's list: 400.
    let lyn = app
        .get(
            &format!("/v1/subjects?siteId={LYN}&limit=1"),
            &app.token("monitor", &[LYN, BOS]),
        )
        .await;
    let cursor = lyn.body["nextCursor"].as_str().map(str::to_owned);
    if let Some(c) = cursor {
        let r = app
            .get(&format!("/v1/subjects?siteId={BOS}&cursor={c}"), &staff)
            .await;
        assert_eq!(r.problem(400), "/problems/invalid-query");
    }
}

#[tokio::test]
async fn bad_enrolments_are_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let staff = app.staff();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    for (body, pointer) in [
        (
            json!({"trialId": TRIAL, "siteId": BOS, "subjectKey": "BOS-1", "sex": "F", "birthYear": 1961, "enrolledOn": tomorrow}),
            "/enrolledOn",
        ),
        (
            json!({"trialId": TRIAL, "siteId": BOS, "subjectKey": "BOS-1", "sex": "X", "birthYear": 1961, "enrolledOn": "2026-01-15"}),
            "/sex",
        ),
        (
            json!({"trialId": TRIAL, "siteId": BOS, "subjectKey": "BOS-1", "sex": "F", "birthYear": "1961", "enrolledOn": "2026-01-15"}),
            "/birthYear",
        ),
        (
            json!({"trialId": TRIAL, "siteId": BOS, "subjectKey": "Jane Doe", "sex": "F", "birthYear": 1961, "enrolledOn": "2026-01-15"}),
            "/subjectKey",
        ),
        (
            json!({"trialId": TRIAL, "siteId": BOS, "subjectKey": "BOS-1", "sex": "F", "birthYear": 1961, "enrolledOn": "2026-01-15", "name": "Jane"}),
            "/name",
        ),
        (
            json!({"trialId": TRIAL, "siteId": BOS, "sex": "F", "birthYear": 1961, "enrolledOn": "2026-01-15"}),
            "/subjectKey",
        ),
    ] {
        let r = app.enrol(&staff, &body).await;
        assert_eq!(r.problem(422), "/problems/invalid-subject", "{body}");
        let pointers: Vec<&str> = r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert!(pointers.contains(&pointer), "{pointer} in {pointers:?}");
    }
    let r = app
        .get(&format!("/v1/subjects?siteId={BOS}&limit=0"), &staff)
        .await;
    assert_eq!(r.problem(400), "/problems/invalid-query");
    let r = app.get("/v1/subjects", &staff).await;
    assert_eq!(r.problem(400), "/problems/invalid-query");
    assert_eq!(app.item_count("SubjectsTable").await, 3);
    assert_eq!(app.item_count("SubjectKeysTable").await, 3);
    assert_eq!(app.item_count("AuditTable").await, 0);
}
