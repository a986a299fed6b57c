//! A fake external source on loopback for the report's HTTP adapters: an axum server that answers
//! the documented contract (shared/src/report/http.rs) for one subject after a configurable
//! delay, or fails with 503, and counts what it saw — calls received, answers sent, and handlers
//! dropped before they answered (the client went away: a cancelled call).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
pub struct Counters {
    pub received: AtomicUsize,
    pub answered: AtomicUsize,
    /// Handlers dropped mid-delay: the client closed the connection.
    pub cancelled: AtomicUsize,
}

pub struct FakeSource {
    pub url: String,
    pub counters: Arc<Counters>,
    delay_ms: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    counters: Arc<Counters>,
    delay_ms: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
    subject: Value,
}

/// Counts a handler that never reached its answer.
struct Cancellation(Arc<Counters>, bool);

impl Drop for Cancellation {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn delayed(s: &Shared, body: impl FnOnce(&Shared) -> Value) -> Response {
    s.counters.received.fetch_add(1, Ordering::SeqCst);
    let mut guard = Cancellation(s.counters.clone(), false);
    tokio::time::sleep(Duration::from_millis(s.delay_ms.load(Ordering::SeqCst))).await;
    guard.1 = true;
    s.counters.answered.fetch_add(1, Ordering::SeqCst);
    if s.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body(s).to_string(),
    )
        .into_response()
}

fn days_ago(d: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(d))
        .date_naive()
        .and_hms_opt(9, 0, 0)
        .expect("time")
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The forms an external EDC holds for the subject: one serious adverse event.
pub fn external_forms() -> Value {
    json!({"forms": [{"formOid": "AE", "itemGroups": [{"itemGroupOid": "IG.AE", "repeatKey": 1,
        "items": {"AETERM": "Pneumonia", "AESTDTC": "2026-10-01", "AESER": "Y",
                  "AESEV": "SEVERE", "AEOUT": "RECOVERING"}}]}]})
}

/// The diary an external ePRO platform holds: a completed entry each of the last 14 days, pain 2.
pub fn external_diary() -> Value {
    let entries: Vec<Value> = (1..=14)
        .map(|d| {
            json!({"entryId": format!("e{d}"), "recordedAt": days_ago(d), "painScore": 2,
                        "symptoms": ["FATIGUE"], "diaryCompleted": true})
        })
        .collect();
    json!({ "entries": entries })
}

impl FakeSource {
    /// Serves every source's contract for `subject` (trial and site as given) on 127.0.0.1.
    pub async fn start(subject: &str, trial: &str, site: &str, delay_ms: u64) -> Self {
        let shared = Shared {
            counters: Arc::new(Counters::default()),
            delay_ms: Arc::new(AtomicU64::new(delay_ms)),
            failing: Arc::new(AtomicBool::new(false)),
            subject: json!({"subjectId": subject, "trialId": trial, "siteId": site,
                "subjectKey": "EXT-0001", "sex": "F", "birthYear": 1961,
                "enrolledOn": "2026-01-15", "status": "ENROLLED"}),
        };
        let app =
            axum::Router::new()
                .route(
                    "/subjects/{id}",
                    get(
                        |State(s): State<Shared>, Path(_): Path<String>| async move {
                            delayed(&s, |s| s.subject.clone()).await
                        },
                    ),
                )
                .route(
                    "/subjects/{id}/forms",
                    get(|State(s): State<Shared>| async move {
                        delayed(&s, |_| external_forms()).await
                    }),
                )
                .route(
                    "/subjects/{id}/diary",
                    get(|State(s): State<Shared>| async move {
                        delayed(&s, |_| external_diary()).await
                    }),
                )
                .route(
                    "/subjects/{id}/imaging-summary",
                    get(|State(s): State<Shared>| async move {
                        delayed(&s, |_| json!({"instances": 0, "pending": 0})).await
                    }),
                )
                .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            counters: shared.counters,
            delay_ms: shared.delay_ms,
            failing: shared.failing,
            task,
        }
    }

    pub fn set_delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn received(&self) -> usize {
        self.counters.received.load(Ordering::SeqCst)
    }

    pub fn cancelled(&self) -> usize {
        self.counters.cancelled.load(Ordering::SeqCst)
    }
}

impl Drop for FakeSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}
