//! EDC forms: optimistic concurrency on the version (`ETag`), a reason for every change after the
//! first, one audit entry per accepted write holding the item-level old → new values, and bad
//! input refused with nothing written.

use clinflow_tests::*;
use serde_json::{json, Value};

fn stored(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    name: &str,
) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn concurrent_writers_of_one_version_one_wins_and_the_trail_holds_exactly_the_accepted_changes(
) {
    const WRITERS: usize = 10;
    const ROUNDS: u64 = 4;
    let app = spawn_app().await;
    let staff = app.staff();
    let created = app
        .put_form(&staff, "SUBJ-0001", "VS", None, &vital_signs(120, 80))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.headers["etag"], "\"1\"");
    let mut accepted: Vec<(i64, i64)> = vec![(120, 80)];
    for round in 1..=ROUNDS {
        // WRITERS clients read version `round` and each sends another systolic value.
        let writes = (0..WRITERS).map(|w| {
            let app = &app;
            let staff = &staff;
            // Never the value of the round before (120 at first): each change changes SYSBP.
            let systolic = 101 + (round as i64) * 20 + w as i64;
            async move {
                let mut body = vital_signs(systolic, 70);
                body["reasonForChange"] = json!(format!("re-measured by writer {w}"));
                let r = app
                    .put_form(staff, "SUBJ-0001", "VS", Some(round), &body)
                    .await;
                (systolic, r)
            }
        });
        let replies = futures::future::join_all(writes).await;
        let winners: Vec<&(i64, Reply)> = replies.iter().filter(|(_, r)| r.status == 200).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one 2xx");
        for (_, r) in replies.iter().filter(|(_, r)| r.status != 200) {
            assert_eq!(r.problem(412), "/problems/precondition-failed");
        }
        let (systolic, winner) = winners[0];
        assert_eq!(winner.body["version"], round + 1);
        assert_eq!(
            winner.headers["etag"],
            format!("\"{}\"", round + 1).as_str()
        );
        accepted.push((*systolic, 70));
        // What is stored is the winner's.
        let now = app.get("/v1/subjects/SUBJ-0001/forms/VS", &staff).await;
        assert_eq!(
            now.body["itemGroups"][0]["items"]["SYSBP"],
            json!(systolic),
            "{}",
            now.body
        );
    }
    // The trail: the creation and one change per round, nothing from the losers.
    let trail: Vec<_> = app
        .subject_audit("SUBJ-0001")
        .await
        .into_iter()
        .filter(|i| stored(i, "action").starts_with("form."))
        .collect();
    assert_eq!(trail.len() as u64, 1 + ROUNDS, "{trail:?}");
    assert_eq!(stored(&trail[0], "action"), "form.create");
    assert_eq!(stored(&trail[0], "reason"), "initial entry");
    for (i, entry) in trail.iter().enumerate().skip(1) {
        assert_eq!(stored(entry, "action"), "form.change");
        let old: Value = serde_json::from_str(&stored(entry, "old")).unwrap();
        let new: Value = serde_json::from_str(&stored(entry, "new")).unwrap();
        assert_eq!(old["version"], i as u64);
        assert_eq!(new["version"], i as u64 + 1);
        assert_eq!(old["items"]["1/SYSBP"], accepted[i - 1].0.to_string());
        assert_eq!(new["items"]["1/SYSBP"], accepted[i].0.to_string());
        assert!(stored(entry, "reason").starts_with("re-measured by writer"));
        assert_eq!(stored(entry, "actor"), "tester");
    }
    assert_eq!(app.item_count("FormsTable").await, 1);
}

#[tokio::test]
async fn preconditions_reasons_and_what_a_change_records() {
    let app = spawn_app().await;
    let staff = app.staff();
    let path = "/v1/subjects/SUBJ-0001/forms/AE";
    let ae = |term: &str, serious: &str| {
        json!({"itemGroups": [{"itemGroupOid": "IG.AE", "repeatKey": 1, "items": {
            "AETERM": term, "AESTDTC": "2026-10-01", "AESER": serious, "AESEV": "SEVERE",
            "AEOUT": "RECOVERING"}}]})
    };
    // Never written: 404.
    app.get(path, &staff).await.problem(404);
    // Neither If-Match nor If-None-Match: 428.
    let r = app
        .send_with(
            reqwest::Method::PUT,
            path,
            Some(&staff),
            &[],
            Some(&ae("Headache", "N")),
        )
        .await;
    assert_eq!(r.problem(428), "/problems/precondition-required");
    // A change of a form that does not exist: 412.
    let mut change = ae("Headache", "N");
    change["reasonForChange"] = json!("x");
    let r = app
        .put_form(&staff, "SUBJ-0001", "AE", Some(1), &change)
        .await;
    r.problem(412);
    assert_eq!(app.item_count("FormsTable").await, 0);
    // Created.
    let r = app
        .put_form(&staff, "SUBJ-0001", "AE", None, &ae("Headache", "N"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.headers["location"], path);
    // Created again: 412.
    app.put_form(&staff, "SUBJ-0001", "AE", None, &ae("Migraine", "N"))
        .await
        .problem(412);
    // A change without a reason: 422, nothing written.
    let r = app
        .put_form(&staff, "SUBJ-0001", "AE", Some(1), &ae("Migraine", "Y"))
        .await;
    assert_eq!(r.problem(422), "/problems/invalid-form");
    assert_eq!(r.body["errors"][0]["pointer"], "/reasonForChange");
    // With it: version 2; the audit entry holds the two items that changed, old and new.
    let mut body = ae("Migraine", "Y");
    body["reasonForChange"] = json!("hospitalised: upgraded to serious");
    let r = app
        .put_form(&staff, "SUBJ-0001", "AE", Some(1), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["etag"], "\"2\"");
    // A stale version: 412.
    app.put_form(&staff, "SUBJ-0001", "AE", Some(1), &body)
        .await
        .problem(412);
    // The same data again: nothing changes, nothing is written (200, still version 2).
    let r = app
        .put_form(&staff, "SUBJ-0001", "AE", Some(2), &body)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["version"], 2);
    let got = app.get(path, &staff).await;
    assert_eq!(got.headers["etag"], "\"2\"");
    assert_eq!(got.body["itemGroups"][0]["items"]["AESER"], "Y");
    let changes: Vec<_> = app
        .subject_audit("SUBJ-0001")
        .await
        .into_iter()
        .filter(|i| stored(i, "action").starts_with("form."))
        .collect();
    assert_eq!(changes.len(), 2);
    let old: Value = serde_json::from_str(&stored(&changes[1], "old")).unwrap();
    let new: Value = serde_json::from_str(&stored(&changes[1], "new")).unwrap();
    assert_eq!(
        old,
        json!({"form": "AE", "version": 1, "items": {"1/AETERM": "Headache", "1/AESER": "N"}})
    );
    assert_eq!(
        new,
        json!({"form": "AE", "version": 2, "items": {"1/AETERM": "Migraine", "1/AESER": "Y"}})
    );
    assert_eq!(
        stored(&changes[1], "reason"),
        "hospitalised: upgraded to serious"
    );
}

#[tokio::test]
async fn bad_form_input_is_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let staff = app.staff();
    let future = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        // Unknown form OID.
        ("XX", vital_signs(120, 80), 404, "/problems/not-found"),
        // Wrong item type.
        (
            "VS",
            json!({"itemGroups": [{"itemGroupOid": "IG.VS", "repeatKey": 1, "items": {
                "VSDAT": "2026-11-01", "SYSBP": "high", "DIABP": 80}}]}),
            422,
            "/problems/invalid-form",
        ),
        // A date in the future.
        (
            "VS",
            json!({"itemGroups": [{"itemGroupOid": "IG.VS", "repeatKey": 1, "items": {
                "VSDAT": future, "SYSBP": 120, "DIABP": 80}}]}),
            422,
            "/problems/invalid-form",
        ),
        // An unknown item and an unknown lab test code.
        (
            "LB",
            json!({"itemGroups": [{"itemGroupOid": "IG.LB", "repeatKey": 1, "items": {
                "LBDAT": "2026-11-01", "LBTESTCD": "XYZ", "LBORRES": 1, "LBORRESU": "g/L",
                "PATIENTNAME": "Jane"}}]}),
            422,
            "/problems/invalid-form",
        ),
        // A drug that is not an ATC code.
        (
            "CM",
            json!({"itemGroups": [{"itemGroupOid": "IG.CM", "repeatKey": 1, "items": {
                "CMTRT": "paracetamol", "CMSTDTC": "2026-11-01"}}]}),
            422,
            "/problems/invalid-form",
        ),
        // An unknown top-level field.
        (
            "VS",
            json!({"itemGroups": [], "patientName": "Jane"}),
            422,
            "/problems/invalid-form",
        ),
    ];
    for (oid, body, status, kind) in cases {
        let r = app.put_form(&staff, "SUBJ-0001", oid, None, &body).await;
        assert_eq!(r.problem(status), kind, "{oid} {body}");
        if status == 422 {
            assert!(
                !r.body["errors"].as_array().unwrap().is_empty(),
                "{}",
                r.body
            );
        }
    }
    // Not JSON at all; not application/json.
    let raw = app
        .http
        .put(app.url("/v1/subjects/SUBJ-0001/forms/VS"))
        .bearer_auth(&staff)
        .header("if-none-match", "*")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let r = checked_reply("PUT", "/v1/subjects/SUBJ-0001/forms/VS", raw).await;
    assert_eq!(r.problem(400), "/problems/malformed-request");
    let raw = app
        .http
        .put(app.url("/v1/subjects/SUBJ-0001/forms/VS"))
        .bearer_auth(&staff)
        .header("if-none-match", "*")
        .header("content-type", "text/plain")
        .body("SYSBP=120")
        .send()
        .await
        .unwrap();
    let r = checked_reply("PUT", "/v1/subjects/SUBJ-0001/forms/VS", raw).await;
    r.problem(415);
    assert_eq!(app.item_count("FormsTable").await, 0);
    assert_eq!(app.item_count("AuditTable").await, 0);
}

#[tokio::test]
async fn a_form_too_large_to_store_is_refused_with_413_and_nothing_is_written() {
    let app = spawn_app().await;
    let staff = app.staff();
    // 500 adverse events (the most a form holds), each term 200 characters of four-byte UTF-8 (a
    // CJK extension ideograph): a body under the route's 512 KiB, but more than a DynamoDB item
    // holds (400 KB). Before the check, the write failed in DynamoDB and answered 500.
    let term = "\u{20BB7}".repeat(200);
    let groups: Vec<Value> = (1..=500)
        .map(|k| {
            json!({"itemGroupOid": "IG.AE", "repeatKey": k, "items": {
                "AETERM": term, "AESTDTC": "2026-10-01", "AESER": "N", "AESEV": "SEVERE",
                "AEOUT": "RECOVERING"}})
        })
        .collect();
    let body = json!({ "itemGroups": groups });
    let size = body.to_string().len();
    assert!((400_000..512 * 1024).contains(&size), "{size}");
    let r = app.put_form(&staff, "SUBJ-0001", "AE", None, &body).await;
    assert_eq!(r.problem(413), "/problems/payload-too-large", "{}", r.body);
    assert_eq!(app.item_count("FormsTable").await, 0);
    assert_eq!(app.item_count("AuditTable").await, 0);
    // A form of the same events with short terms is stored.
    let short: Vec<Value> = (1..=500)
        .map(|k| {
            json!({"itemGroupOid": "IG.AE", "repeatKey": k, "items": {
                "AETERM": "Headache", "AESTDTC": "2026-10-01", "AESER": "N", "AESEV": "SEVERE",
                "AEOUT": "RECOVERING"}})
        })
        .collect();
    let r = app
        .put_form(
            &staff,
            "SUBJ-0001",
            "AE",
            None,
            &json!({ "itemGroups": short }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}
