//! `GET /v1/subjects/{subjectId}/report` (subject-report): the fan-out under the deadline, the
//! breakers, degraded answers, the auth matrix, the audit of every read, and the risk score over
//! data written through the API.
//!
//! Latency and failures are injected by fake external sources on loopback
//! ([`clinflow_tests::sources::FakeSource`]) behind the HTTP adapters: the function is configured
//! through its template parameters (`Report<Source>Url`, `Report<Source>TimeoutMs`,
//! `ReportAnswerMarginMs`), as a deployment would point it at an external EDC or ePRO system.

use clinflow_tests::sources::FakeSource;
use clinflow_tests::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SUBJECT: &str = "SUBJ-0001";

fn report_path(subject: &str) -> String {
    format!("/v1/subjects/{subject}/report")
}

fn monitor(app: &TestApp) -> String {
    app.token("monitor", &[BOS])
}

/// The report's audit entries of `subject` (their actors).
async fn report_reads(app: &TestApp, subject: &str) -> Vec<String> {
    app.subject_actors(subject, "read.report").await
}

/// Demographics, EDC and ePRO from three fake sources answering after 100, 150 and 200 ms.
async fn app_with_latencies() -> (TestApp, [FakeSource; 3]) {
    let demographics = FakeSource::start(SUBJECT, TRIAL, BOS, 100).await;
    let edc = FakeSource::start(SUBJECT, TRIAL, BOS, 150).await;
    let epro = FakeSource::start(SUBJECT, TRIAL, BOS, 200).await;
    let app = spawn_app_with(&[
        ("ReportDemographicsUrl", &demographics.url),
        ("ReportEdcUrl", &edc.url),
        ("ReportEproUrl", &epro.url),
    ])
    .await;
    (app, [demographics, edc, epro])
}

#[tokio::test]
async fn the_report_takes_the_slowest_source_not_the_sum() {
    let (app, sources) = app_with_latencies().await;
    let token = monitor(&app);
    // The first request opens the connections (and the function's clients).
    let first = app.get(&report_path(SUBJECT), &token).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let mut took = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let r = app.get(&report_path(SUBJECT), &token).await;
        took.push(started.elapsed());
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["degraded"], false, "{}", r.body);
    }
    took.sort();
    let median = took[took.len() / 2];
    // Sequential calls would take 100 + 150 + 200 = 450 ms; concurrent ones the slowest, 200 ms.
    assert!(
        median >= Duration::from_millis(200),
        "{median:?}: faster than the slowest source?"
    );
    assert!(
        median < Duration::from_millis(300),
        "{median:?}: not concurrent (the sum is 450 ms)"
    );
    for s in &sources {
        assert_eq!(s.received(), 8, "each source called once per report");
        assert_eq!(s.cancelled(), 0);
    }
    // The report is built from what the sources said.
    let r = app.get(&report_path(SUBJECT), &token).await;
    assert_eq!(r.body["demographics"]["subjectKey"], "EXT-0001");
    assert_eq!(r.body["edc"]["adverseEvents"][0]["term"], "Pneumonia");
    assert_eq!(r.body["epro"]["daysWithCompletedDiary"], 14);
    assert_eq!(r.body["risk"]["score"], 30, "{}", r.body["risk"]);
    assert_eq!(
        r.body["risk"]["reasons"][0]["code"],
        "SERIOUS_ADVERSE_EVENT"
    );
    // Every answered report was audited.
    assert_eq!(report_reads(&app, SUBJECT).await.len(), 9);
}

#[tokio::test]
async fn a_hanging_source_is_cut_at_the_deadline_cancelled_and_the_report_degraded() {
    // ePRO hangs for a minute; its own timeout (9.5 s) is longer than what the invocation has:
    // the function's 10 s less a 5 s margin. The deadline cuts it at ~5 s.
    let demographics = FakeSource::start(SUBJECT, TRIAL, BOS, 0).await;
    let epro = FakeSource::start(SUBJECT, TRIAL, BOS, 60_000).await;
    let app = spawn_app_with(&[
        ("ReportDemographicsUrl", &demographics.url),
        ("ReportEproUrl", &epro.url),
        ("ReportEproTimeoutMs", "9500"),
        ("ReportAnswerMarginMs", "5000"),
    ])
    .await;
    let started = Instant::now();
    let r = app.get(&report_path(SUBJECT), &monitor(&app)).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        took >= Duration::from_millis(4_800) && took < Duration::from_millis(6_500),
        "{took:?}: not cut at the deadline less the margin (~5 s)"
    );
    assert_eq!(r.body["degraded"], true);
    assert_eq!(
        r.body["epro"],
        json!({"available": false, "reason": "timeout"})
    );
    assert_eq!(r.body["edc"]["available"], true);
    assert_eq!(r.body["risk"]["complete"], false);
    assert_eq!(r.body["risk"]["unassessed"], json!(["epro"]));
    // The call was cancelled, not left running: the source saw its client go.
    let waited = Instant::now();
    while epro.cancelled() == 0 && waited.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(epro.received(), 1);
    assert_eq!(
        epro.cancelled(),
        1,
        "the hanging call's connection was closed"
    );
    assert_eq!(
        epro.counters
            .answered
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn a_failing_source_opens_its_breaker_and_it_closes_after_recovery() {
    let edc = FakeSource::start(SUBJECT, TRIAL, BOS, 0).await;
    edc.set_failing(true);
    let app = spawn_app_with(&[("ReportEdcUrl", &edc.url)]).await;
    let token = monitor(&app);
    let mut reasons = Vec::new();
    for _ in 0..60 {
        let r = app.get(&report_path(SUBJECT), &token).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["degraded"], true);
        reasons.push(r.body["edc"]["reason"].as_str().unwrap().to_owned());
    }
    let open = reasons.iter().filter(|r| *r == "circuit_open").count();
    // go-zero lets the first 6 calls through untouched ((total − 5)/(total + 1) ≤ 0 for a total
    // up to 5); the k-th call after that is dropped with probability (k − 6)/k, climbing towards 1
    // (about 40 of 60 expected, less a forced probe a second): most never reach the source.
    assert!(
        reasons[..6].iter().all(|r| r == "unavailable"),
        "{reasons:?}"
    );
    assert!(open >= 25, "{open} of 60 dropped: {reasons:?}");
    assert_eq!(edc.received(), 60 - open, "dropped calls are not made");

    // The source recovers. Forced probes (one a second at least) and successes bring the calls
    // back; once the failures have left the 10 s window (12 s on), the window holds successes
    // and the few drops of the recovery: (total − 5 − 1.5·accepts) ≤ 0 and every call passes —
    // almost always; under a loaded machine a drop or two can linger, hence the wait below.
    edc.set_failing(false);
    let recovering = Instant::now();
    let mut run = 0;
    // Closed for certain once the window (10 s) holds nothing from before the breaker let calls
    // through again: the drops of the early recovery (up to ~12 s on) have left it too by 23 s,
    // so the window holds successes only and no call can be dropped.
    while run < 10 || recovering.elapsed() < Duration::from_secs(23) {
        assert!(
            recovering.elapsed() < Duration::from_secs(40),
            "the breaker never closed"
        );
        let r = app.get(&report_path(SUBJECT), &token).await;
        run = if r.body["edc"]["available"] == true {
            run + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = edc.received();
    for _ in 0..5 {
        let r = app.get(&report_path(SUBJECT), &token).await;
        assert_eq!(r.body["degraded"], false, "{}", r.body);
    }
    assert_eq!(
        edc.received(),
        before + 5,
        "closed: every call reaches the source"
    );
}

#[tokio::test]
async fn demographics_unavailable_is_a_503_and_nothing_is_audited() {
    let demographics = FakeSource::start(SUBJECT, TRIAL, BOS, 0).await;
    demographics.set_failing(true);
    let app = spawn_app_with(&[("ReportDemographicsUrl", &demographics.url)]).await;
    let r = app.get(&report_path(SUBJECT), &monitor(&app)).await;
    assert_eq!(r.problem(503), "/problems/unavailable");
    // Nothing of the subject in the answer, no read recorded.
    assert!(!r.body.to_string().contains("EXT-0001"));
    assert!(report_reads(&app, SUBJECT).await.is_empty());
}

#[tokio::test]
async fn the_report_is_scoped_like_the_uploads() {
    let app = spawn_app().await;
    let path = report_path(SUBJECT);
    // No token: the authorizer answers 401 before the function.
    let r = app.send(reqwest::Method::GET, &path, None, None).await;
    assert_eq!(r.status, 401);
    // A role that may not read reports: 403, a patient (even its own) included.
    let r = app.get(&path, &app.token("auditor", &[BOS])).await;
    assert_eq!(r.problem(403), "/problems/forbidden");
    let r = app.get(&path, &app.patient_token(SUBJECT)).await;
    assert_eq!(r.problem(403), "/problems/forbidden");
    // Another site, another trial, a subject that does not exist, an id that is not one: the
    // same 404.
    let missing = app.get(&path, &app.token("monitor", &[LYN])).await;
    assert_eq!(missing.problem(404), "/problems/not-found");
    for (token, path) in [
        (
            app.token_in("sponsor_admin", &[], &["OTHER-TRIAL"]),
            path.clone(),
        ),
        (
            app.token_in("monitor", &[BOS], &["OTHER-TRIAL"]),
            path.clone(),
        ),
        (monitor(&app), report_path("SUBJ-9999")),
        (monitor(&app), report_path("not an id")),
    ] {
        let r = app.get(&path, &token).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert_eq!(r.body["detail"], missing.body["detail"]);
    }
    assert!(
        report_reads(&app, SUBJECT).await.is_empty(),
        "refusals read nothing"
    );
    // Site staff and monitors of the site, sponsor admins of the trial.
    for token in [
        app.token("site_staff", &[BOS]),
        monitor(&app),
        app.token_in("sponsor_admin", &[], &[TRIAL]),
    ] {
        let r = app.get(&path, &token).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["siteId"], BOS);
        assert_eq!(r.headers["cache-control"], "no-store");
    }
    assert_eq!(report_reads(&app, SUBJECT).await, ["tester"; 3]);
}

#[tokio::test]
async fn without_its_audit_grant_the_report_fails_closed() {
    let app = spawn_app_from(template_without_statement("AuditReads")).await;
    let r = app.get(&report_path(SUBJECT), &monitor(&app)).await;
    assert_eq!(r.problem(503), "/problems/unavailable");
    assert!(report_reads(&app, SUBJECT).await.is_empty());
}

#[tokio::test]
async fn without_its_read_grant_on_forms_and_diaries_those_sections_are_unavailable() {
    let app = spawn_app_from(template_without_statement("ReadFormsAndDiaries")).await;
    let r = app.get(&report_path(SUBJECT), &monitor(&app)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["edc"],
        json!({"available": false, "reason": "unavailable"})
    );
    assert_eq!(
        r.body["epro"],
        json!({"available": false, "reason": "unavailable"})
    );
    assert_eq!(r.body["imaging"]["available"], true);
}

/// A diary entry `days_ago` days back at 09:00 UTC.
fn entry_on(days_ago: i64, pain: i64, completed: bool) -> Value {
    let at = (chrono::Utc::now() - chrono::Duration::days(days_ago))
        .date_naive()
        .and_hms_opt(9, 0, 0)
        .unwrap()
        .and_utc();
    json!({"recordedAt": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
           "painScore": pain, "symptoms": ["FATIGUE"], "diaryCompleted": completed})
}

#[tokio::test]
async fn a_report_over_data_written_through_the_api_lists_its_reasons() {
    // Eleven diary entries from one phone at once: a burst above the default 10.
    let app = spawn_app_with(&[("EproRateLimitBurst", "20")]).await;
    let staff = app.staff();
    let subject = app.enrol_subject(BOS, "BOS-0900").await;
    let ae = json!({"itemGroups": [
        {"itemGroupOid": "IG.AE", "repeatKey": 1, "items": {"AETERM": "Pneumonia",
         "AESTDTC": "2026-11-10", "AESER": "Y", "AESEV": "SEVERE", "AEOUT": "RECOVERING"}},
        {"itemGroupOid": "IG.AE", "repeatKey": 2, "items": {"AETERM": "Headache",
         "AESTDTC": "2026-11-01", "AESER": "N", "AESEV": "MILD", "AEOUT": "RECOVERED"}}]});
    let lb = json!({"itemGroups": [
        {"itemGroupOid": "IG.LB", "repeatKey": 1, "items": {"LBDAT": "2026-11-20",
         "LBTESTCD": "ALT", "LBORRES": 112.0, "LBORRESU": "U/L", "LBORNRLO": 7, "LBORNRHI": 56}},
        {"itemGroupOid": "IG.LB", "repeatKey": 2, "items": {"LBDAT": "2026-11-20",
         "LBTESTCD": "HGB", "LBORRES": 13.5, "LBORRESU": "g/dL", "LBORNRLO": 12, "LBORNRHI": 16}}]});
    for (oid, body) in [("AE", &ae), ("LB", &lb)] {
        let r = app.put_form(&staff, &subject, oid, None, body).await;
        assert!(r.status == 200 || r.status == 201, "{oid}: {}", r.body);
    }
    // The diary falls off: the week before last, a completed diary every day at pain 2; last
    // week pain 6 on the days 7, 6, 4 and 2 ago, nothing on days 5, 3 and 1.
    let mut days: Vec<(i64, i64)> = (8..=14).map(|d| (d, 2)).collect();
    days.extend([(7, 6), (6, 6), (4, 6), (2, 6)]);
    let patient = app.patient_token(&subject);
    for (d, pain) in &days {
        let r = app
            .post_epro(
                &patient,
                &subject,
                &format!("diary-{d}"),
                &entry_on(*d, *pain, true),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = app.get(&report_path(&subject), &monitor(&app)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let risk = &r.body["risk"];
    let reasons: Vec<(&str, u64)> = risk["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["code"].as_str().unwrap(), r["points"].as_u64().unwrap()))
        .collect();
    // Serious AE 30; ALT 112 > 56: 10 (HGB in range: nothing); pain: last week mean 6, the week
    // before 2: +4 → 4 × 5 = 20 (the cap); missed: days 5, 3, 1 of 14 → 3 × 2 = 6. Total 66: HIGH.
    assert_eq!(
        reasons,
        [
            ("SERIOUS_ADVERSE_EVENT", 30),
            ("PAIN_RISING", 20),
            ("LAB_OUT_OF_RANGE", 10),
            ("MISSED_DIARIES", 6),
        ],
        "{risk}"
    );
    assert_eq!(risk["score"], 66);
    assert_eq!(risk["level"], "HIGH");
    assert_eq!(risk["complete"], true);
    assert_eq!(r.body["epro"]["missedDiaryDays"], 3);
    assert_eq!(r.body["epro"]["painMeanLast7Days"], 6.0);
    assert_eq!(r.body["epro"]["painMeanPrevious7Days"], 2.0);
    assert_eq!(r.body["edc"]["labs"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["imaging"]["instances"], 0);
    assert_eq!(report_reads(&app, &subject).await, ["tester"]);
}
