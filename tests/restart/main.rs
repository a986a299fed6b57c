//! The emulator killed (SIGKILL) and started again mid-pipeline, twice, while uploads are being
//! processed: nothing is lost. AWS keeps every write it acknowledged through any outage; so does
//! this emulator (`--state-dir`: local-stack/moto_server.py saves each write before answering it).
//! What the outage tests is everything else: the functions' calls refused mid-message, messages
//! received and never deleted, claims taken and never released, answers never sent, the pollers'
//! long polls cut. Every upload must still end with the outcome its bytes call for, and S3, the
//! records, the index and the summary must reconcile.
//!
//! A test binary of its own: every test of a binary shares one emulator, and this one kills it.

use clinflow_tests::*;
use std::time::{Duration, Instant};

/// How long the emulator stays down each time: longer than the SDK's retries of one call, so
/// calls really fail and messages really go back to their queues.
const DOWN: Duration = Duration::from_secs(3);

/// How many of SUBJ-0001's uploads are terminal (the records, read through the API: one page holds
/// them all); 0 while the API cannot answer.
async fn terminal(app: &TestApp) -> usize {
    let page = app
        .get("/v1/uploads?subjectId=SUBJ-0001&limit=100", &app.staff())
        .await;
    if page.status != 200 {
        return 0;
    }
    page.body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|u| {
                    matches!(
                        u["status"].as_str(),
                        Some("PROCESSED" | "QUARANTINED" | "FAILED")
                    )
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_emulator_killed_and_restarted_mid_pipeline_loses_nothing_and_everything_reconciles() {
    let emulator = persistent_emulator();
    // A failed ingest message comes back after 1 s (its own backoff) or, if even setting that
    // failed because the emulator was down, after the queue's 20 s visibility; a claim left by a
    // message cut off mid-way expires with that message's 15 s deadline.
    let app = spawn_pipeline(&[
        ("IngestRetryBaseSeconds", "1"),
        ("IngestVisibilityTimeoutSeconds", "20"),
        ("ProcessDicomMessageTimeoutSeconds", "15"),
        // An imaging event received before a kill and never deleted returns after 30 s, not 180.
        ("ImagingEventsVisibilityTimeoutSeconds", "30"),
    ])
    .await;
    // 12 distinct clean instances, 3 infected, 3 not DICOM: what each must end as.
    let files = mixed_files(12, 2000, 3, 3);
    let started = Instant::now();
    let ids: Vec<String> =
        futures::future::join_all(files.iter().map(|(bytes, _)| app.upload_retrying(bytes))).await;
    // Kill it mid-pipeline: the first time as soon as one upload is terminal, the second when a
    // third of them are; each time some must still be on their way.
    let mut pending_at_kills = Vec::new();
    for wanted in [1, ids.len() / 3] {
        let deadline = Instant::now() + Duration::from_secs(120);
        let done = loop {
            let done = terminal(&app).await;
            if done >= wanted || Instant::now() > deadline {
                break done;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        pending_at_kills.push(ids.len() - done);
        tokio::task::spawn_blocking(move || emulator.kill_and_restart(DOWN))
            .await
            .expect("join")
            .expect("restart the emulator from its saved state");
    }
    println!(
        "emulator killed twice, {DOWN:?} down each time; uploads not yet terminal at the kills: \
         {pending_at_kills:?} of {}",
        ids.len()
    );
    assert!(
        pending_at_kills.iter().all(|p| *p > 0),
        "each kill must come mid-pipeline: {pending_at_kills:?}"
    );
    // Every upload reaches its outcome.
    app.wait_outcomes(&ids, &files).await;
    let took = started.elapsed();
    // The summary's consumer may still be applying the last outcomes: an event received before a
    // kill and never deleted comes back after its queue's visibility timeout (30 s here).
    let reconciled = app
        .reconcile_within("SUBJ-0001", Duration::from_secs(120))
        .await;
    println!(
        "after two kills: {}; {} uploads terminal in {took:?}, reconciled after {:?}",
        reconciled.summary(),
        ids.len(),
        started.elapsed()
    );
    assert!(reconciled.problems.is_empty(), "{:#?}", reconciled.problems);
    assert_eq!(reconciled.processed, 12);
    assert_eq!(reconciled.quarantined, 6);
    assert_eq!(reconciled.failed, 0);
    for id in &ids {
        assert!(reconciled.records.contains_key(id), "{id} not listed");
    }
    // Nothing set aside as a stray, no imaging event given up on, and no version of a quarantined
    // upload's bytes left readable under incoming/ (the reconciliation looks at current objects).
    let strays = app.versions_under("quarantine/stray/").await;
    assert!(strays.is_empty(), "{strays:?}");
    let dead = app.drain_queue("ImagingEventsDeadLetterQueue", 1).await;
    assert!(dead.is_empty(), "{dead:?}");
    let incoming_bytes: Vec<_> = app
        .versions_under("incoming/")
        .await
        .into_iter()
        .filter(|(_, _, marker)| !marker)
        .collect();
    for (id, record) in &reconciled.records {
        if record["status"] == "QUARANTINED" {
            assert!(
                incoming_bytes
                    .iter()
                    .all(|(k, _, _)| !k.contains(id.as_str())),
                "{id}: {incoming_bytes:?}"
            );
        }
    }
}
