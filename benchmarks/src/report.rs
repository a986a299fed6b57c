//! Report latency with injected source latencies: demographics, EDC and ePRO behind the HTTP
//! adapters, pointed at fake sources on loopback answering after 100, 150 and 200 ms; imaging and
//! the audit entry on DynamoDB (moto). Each request goes the whole way: the local stack's HttpApi
//! (JWT check, API Gateway v2 payload) → subject-report's handler → the four sources concurrently
//! (+ the audit PutItem once demographics answers) → the JSON report.
//!
//! Beside it, from the same run and the same fake sources: the slowest source called alone (the
//! floor a concurrent report cannot beat) and the three called one after another (what the Go
//! seed's first, sequential version paid). Goal: p50 within 5 ms of the slowest.
//!
//! `run()` starts a local stack of its own on a moto it starts (the repo's `.venv`), so it needs
//! what `make test` needs. Each figure comes with its anchor: `(figure, value, anchor, value)`.

use axum::response::IntoResponse;
use std::time::{Duration, Instant};

const SUBJECT: &str = "SUBJ-0001";
const TRIAL: &str = "CLIN-DEMO-01";
const SITE: &str = "SITE-BOS-01";
/// Requests per measured series.
const N: usize = 100;

/// A fake source answering every route of the contract after `delay`.
async fn fake_source(delay: Duration) -> String {
    let subject = serde_json::json!({"subjectId": SUBJECT, "trialId": TRIAL, "siteId": SITE,
        "subjectKey": "EXT-0001", "sex": "F", "birthYear": 1961, "enrolledOn": "2026-01-15",
        "status": "ENROLLED"});
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let subject = subject.clone();
        async move {
            tokio::time::sleep(delay).await;
            let path = uri.path();
            let body = if path.ends_with("/forms") {
                serde_json::json!({"forms": [{"formOid": "AE", "itemGroups": [{"itemGroupOid": "IG.AE",
                    "repeatKey": 1, "items": {"AETERM": "Pneumonia", "AESTDTC": "2026-10-01",
                    "AESER": "Y", "AESEV": "SEVERE", "AEOUT": "RECOVERING"}}]}]})
            } else if path.ends_with("/diary") {
                serde_json::json!({"entries": [{"entryId": "e1", "recordedAt": "2026-11-20T09:00:00Z",
                    "painScore": 3, "diaryCompleted": true}]})
            } else {
                subject
            };
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Milliseconds of `n` runs of `f`, sorted.
async fn timed<F, Fut>(n: usize, mut f: F) -> Vec<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        f().await;
        out.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    out.sort_by(f64::total_cmp);
    out
}

/// `(figure, value, anchor, anchor value)` rows, milliseconds.
pub async fn run() -> Vec<(String, f64, String, f64)> {
    let demographics = fake_source(Duration::from_millis(100)).await;
    let edc = fake_source(Duration::from_millis(150)).await;
    let epro = fake_source(Duration::from_millis(200)).await;
    let emulator = local_stack::emulator::Emulator::from_env_or_start()
        .expect("the emulator (make setup installs moto)");
    let options = local_stack::Options {
        stack_name: format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        api_addr: "127.0.0.1:0".parse().expect("addr"),
        lambda_addr: "127.0.0.1:0".parse().expect("addr"),
        pollers: false,
        admin: emulator.admin.clone(),
        parameters: [
            ("ReportDemographicsUrl", &demographics),
            ("ReportEdcUrl", &edc),
            ("ReportEproUrl", &epro),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect(),
        ..local_stack::Options::default()
    };
    let stack = local_stack::LocalStack::start(&emulator.endpoint, options)
        .await
        .expect("local stack");
    stack
        .seed_subjects(local_stack::DEMO_SUBJECTS)
        .await
        .expect("seed");
    let token = stack.token("bench", "monitor", &[SITE], &[]);
    let http = reqwest::Client::new();
    let report = format!("{}/v1/subjects/{SUBJECT}/report", stack.api_url);
    let get_report = || async {
        let r = http
            .get(&report)
            .bearer_auth(&token)
            .send()
            .await
            .expect("report");
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["degraded"], false, "{body}");
    };
    // Warm: connections to the fake sources and moto open, clients built.
    for _ in 0..3 {
        get_report().await;
    }
    let reports = timed(N, get_report).await;
    let source = |base: &str, path: &str| format!("{base}/subjects/{SUBJECT}{path}");
    let (d, e, p) = (
        source(&demographics, ""),
        source(&edc, "/forms"),
        source(&epro, "/diary"),
    );
    let get = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.expect("source");
            let _ = r.bytes().await;
        }
    };
    let slowest = timed(N, || get(p.clone())).await;
    let sequential = timed(N, || async {
        get(d.clone()).await;
        get(e.clone()).await;
        get(p.clone()).await;
    })
    .await;
    drop(stack);
    drop(emulator);
    vec![
        (
            "report latency p50 (ms), sources injected at 100/150/200 ms, whole API path"
                .to_owned(),
            percentile(&reports, 0.50),
            "slowest source alone p50 (ms), same run".to_owned(),
            percentile(&slowest, 0.50),
        ),
        (
            "report latency p99 (ms), sources injected at 100/150/200 ms, whole API path"
                .to_owned(),
            percentile(&reports, 0.99),
            "slowest source alone p99 (ms), same run".to_owned(),
            percentile(&slowest, 0.99),
        ),
        (
            "report latency p50 (ms)".to_owned(),
            percentile(&reports, 0.50),
            "the three sources one after another p50 (ms), same run".to_owned(),
            percentile(&sequential, 0.50),
        ),
    ]
}
