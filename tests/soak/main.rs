//! `make soak` (issue 13, Load): hundreds of uploads at once through the local stack — every
//! function's SDK calls through the fault-injecting proxy — while readers poll the read routes;
//! every upload must reach its outcome, and the subject's records must reconcile with S3, the
//! instance index and the summary. Prints throughput and latency percentiles for README.
//!
//! Ignored by `make test` (it takes minutes); `make soak` runs it. `SOAK_UPLOADS` (default 300)
//! and `SOAK_CONCURRENCY` (default 32) size it.

use clinflow_tests::fault_proxy::{FaultPlan, FaultProxy};
use clinflow_tests::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Declares, sends and polls one upload to its end; its id, status and the time from the
/// declaration to the terminal state the client saw.
async fn one(app: &TestApp, bytes: &[u8]) -> (String, String, Duration) {
    let started = Instant::now();
    let created = app
        .call_retrying(
            "POST",
            "/v1/uploads",
            Some(&declaration("SUBJ-0001", bytes)),
            10,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let plan = &created.body["upload"];
    assert_eq!(app.send_presigned(plan, bytes.to_vec()).await.status(), 200);
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let r = app
            .call_retrying("GET", &format!("/v1/uploads/{id}"), None, 10)
            .await;
        let status = r.body["status"].as_str().unwrap_or_default().to_owned();
        if ["PROCESSED", "QUARANTINED", "FAILED"].contains(&status.as_str()) {
            return (id, status, started.elapsed());
        }
        assert!(Instant::now() < deadline, "{id} still {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "minutes long: make soak"]
async fn hundreds_of_uploads_under_faults_and_readers_all_end_and_reconcile() {
    let uploads = env_usize("SOAK_UPLOADS", 300);
    let concurrency = env_usize("SOAK_CONCURRENCY", 32);
    let proxy = FaultProxy::start(
        &endpoint(),
        FaultPlan {
            seed: 0x50A4,
            throttle_per_mille: 20,
            server_error_per_mille: 10,
            reset_per_mille: 5,
            lost_answer_per_mille: 5,
            ..FaultPlan::default()
        },
    )
    .await;
    let app =
        Arc::new(spawn_pipeline_through(&proxy.endpoint, &[("IngestRetryBaseSeconds", "1")]).await);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    // A tenth infected, a tenth not DICOM, the rest distinct clean instances.
    let ct = dicom_file("CT_small.dcm");
    let infected = with_eicar(&ct);
    let files: Vec<(Vec<u8>, &str)> = (0..uploads as u32)
        .map(|i| match i % 10 {
            3 => (infected.clone(), "QUARANTINED"),
            7 => {
                let mut noise: Vec<u8> = (0..8_000u32)
                    .map(|j| (j.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect();
                noise[..4].copy_from_slice(&i.to_be_bytes());
                (noise, "QUARANTINED")
            }
            _ => (synthetic_dicom(10_000 + i, 16 * 1024, i as u8), "PROCESSED"),
        })
        .collect();

    // Readers: the upload list and the subject's imaging summary, polled the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let read_latencies = Arc::new(Mutex::new(Vec::new()));
    let read_5xx = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (app, stop, latencies, errors) = (
                Arc::clone(&app),
                Arc::clone(&stop),
                Arc::clone(&read_latencies),
                Arc::clone(&read_5xx),
            );
            tokio::spawn(async move {
                let path = if r % 2 == 0 {
                    "/v1/uploads?subjectId=SUBJ-0001&limit=20"
                } else {
                    "/v1/subjects/SUBJ-0001/imaging"
                };
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let r = app.get(path, &app.staff()).await;
                    let took = t0.elapsed();
                    if r.status >= 500 {
                        errors.fetch_add(1, Ordering::Relaxed);
                    } else {
                        assert!(r.status == 200, "{path}: {} {}", r.status, r.body);
                        latencies.lock().unwrap().push(took);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();

    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let tasks: Vec<_> = files
        .iter()
        .map(|(bytes, _)| {
            let (app, semaphore, bytes) = (Arc::clone(&app), Arc::clone(&semaphore), bytes.clone());
            tokio::spawn(async move {
                let _permit = semaphore.acquire_owned().await.unwrap();
                one(&app, &bytes).await
            })
        })
        .collect();
    let mut ended = Vec::new();
    for t in tasks {
        ended.push(t.await.expect("upload task"));
    }
    let wall = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("reader");
    }
    proxy.enabled.store(false, Ordering::SeqCst);

    let mut wrong = Vec::new();
    for ((id, status, _), (_, expected)) in ended.iter().zip(&files) {
        if status != expected {
            wrong.push(format!("{id}: {status}, expected {expected}"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    let reconciled = loop {
        let r = app.reconcile("SUBJ-0001").await;
        if r.problems.is_empty() || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let mut latencies: Vec<Duration> = ended.iter().map(|(_, _, d)| *d).collect();
    latencies.sort();
    let mut reads = read_latencies.lock().unwrap().clone();
    reads.sort();
    println!(
        "soak: CPU {cpu}, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "soak: {uploads} uploads, {concurrency} at a time, in {:.1} s = {:.1} uploads/s; declaration → terminal p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        wall.as_secs_f64(),
        uploads as f64 / wall.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64(),
        percentile(&latencies, 0.99).as_secs_f64(),
        latencies.last().copied().unwrap_or_default().as_secs_f64(),
    );
    println!(
        "soak: read routes under load: {} reads, p50 {:.1} ms, p99 {:.1} ms, {} answered 5xx (faults reach them too)",
        reads.len(),
        percentile(&reads, 0.5).as_secs_f64() * 1e3,
        percentile(&reads, 0.99).as_secs_f64() * 1e3,
        read_5xx.load(Ordering::Relaxed),
    );
    println!("soak: faults: {}", proxy.stats.summary());
    println!("soak: reconciliation: {}", reconciled.summary());
    assert!(
        proxy.stats.injected() > 0,
        "no fault struck: {}",
        proxy.stats.summary()
    );
    assert!(!reads.is_empty(), "no read route answered");
    assert!(
        read_5xx.load(Ordering::Relaxed) * 10 <= reads.len() as u64,
        "more than a tenth of the reads answered 5xx"
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(reconciled.problems.is_empty(), "{:#?}", reconciled.problems);
    assert_eq!(reconciled.failed, 0);
    assert_eq!(reconciled.processed + reconciled.quarantined, uploads);
}
