//! A 1 GiB DICOM through the whole ingest path, with process-dicom run as its real binary under the
//! local Lambda runtime API, in a child process whose peak memory is measured: multipart presigned
//! upload → S3 → SQS → process-dicom (one streaming pass: SHA-256, scan, parse) → accepted.
//!
//! A test binary of its own, so nothing else runs beside it.

use clinflow_tests::*;
use serde_json::json;
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;
const PIXEL_BYTES: u64 = 1024 * MIB;
const PART: u64 = 64 * MIB;
/// The smallest memory the issue names for process-dicom's Lambda.
const LAMBDA_MEMORY: u64 = 128 * MIB;

/// The file: a header, then pixel data made of one pseudo-random 16 MiB block repeated.
struct Synthetic {
    header: Vec<u8>,
    block: Vec<u8>,
}

impl Synthetic {
    fn new() -> Self {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let block = (0..16 * MIB / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        Self {
            header: synthetic_dicom_header(7, PIXEL_BYTES),
            block,
        }
    }

    fn size(&self) -> u64 {
        self.header.len() as u64 + PIXEL_BYTES
    }

    /// Bytes `[from, to)` of the file.
    fn range(&self, from: u64, to: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity((to - from) as usize);
        let h = self.header.len() as u64;
        if from < h {
            out.extend_from_slice(&self.header[from as usize..h.min(to) as usize]);
        }
        let mut p = from.max(h) - h;
        let end = to - h;
        let b = self.block.len() as u64;
        while p < end {
            let at = p % b;
            let n = (b - at).min(end - p);
            out.extend_from_slice(&self.block[at as usize..(at + n) as usize]);
            p += n;
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_gib_dicom_is_processed_by_the_real_binary_in_bounded_memory() {
    let app = spawn_ingest_processes(
        &[("MultipartPartSizeBytes", &PART.to_string())],
        &[("ProcessDicomFunction", function_binary("process-dicom"))],
    )
    .await;
    let file = Synthetic::new();
    let size = file.size();
    let mut sha = Sha256::new();
    for from in (0..size).step_by(PART as usize) {
        sha.update(file.range(from, (from + PART).min(size)));
    }
    let digest = hex::encode(sha.finalize());
    let mut declared = declaration("SUBJ-0001", b"");
    declared["sizeBytes"] = json!(size);
    declared["sha256"] = json!(digest);

    let created = app.post("/v1/uploads", &app.staff(), &declared).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["uploadId"].as_str().unwrap().to_owned();
    let plan = &created.body["upload"];
    assert_eq!(plan["mode"], "multipart");
    let mut parts = Vec::new();
    for p in plan["parts"].as_array().unwrap() {
        let n = p["partNumber"].as_u64().unwrap();
        let from = (n - 1) * PART;
        let body = file.range(from, from + p["size"].as_u64().unwrap());
        let r = app.send_presigned(p, body).await;
        assert_eq!(r.status(), 200);
        parts.push(json!({"partNumber": n, "etag": r.headers()["etag"].to_str().unwrap()}));
    }
    let started = std::time::Instant::now();
    let done = app
        .post(
            &format!("/v1/uploads/{id}/complete"),
            &app.staff(),
            &json!({ "parts": parts }),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);

    let record = app.wait_processed(&id).await;
    let elapsed = started.elapsed();
    assert_eq!(record["status"], "PROCESSED", "{record}");
    let p = &record["processing"];
    assert_eq!(p["sha256"], digest);
    assert_eq!(p["sizeBytes"], size);
    assert_eq!(p["scan"], "clean");
    assert_eq!(p["dicom"]["pixelData"]["length"], PIXEL_BYTES);
    assert_eq!(p["dicom"]["pixelData"]["encapsulated"], false);
    let accepted = p["objectKey"].as_str().unwrap();
    assert!(accepted.starts_with("accepted/"), "{accepted}");

    let function = &app.stack.processes["ProcessDicomFunction"];
    let peak = function
        .peak_rss_bytes()
        .expect("the function's process is alive");
    // The binary reported it as CloudWatch metrics (Embedded Metric Format on its stdout), once it
    // finished the invocation, which can be a moment after the record says PROCESSED.
    let emf = || -> Vec<serde_json::Value> {
        function
            .output()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("_aws").is_some())
            .collect()
    };
    let waiting = std::time::Instant::now();
    while emf().len() < 2 && waiting.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let metrics = emf();
    assert!(
        metrics.iter().any(|m| m["Outcome"] == "PROCESSED"
            && m["ObjectBytes"] == json!(size as f64)
            && m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "clinflow"),
        "{metrics:?}"
    );
    assert!(
        metrics
            .iter()
            .any(|m| m["Outcome"] == "PROCESSED" && m["Objects"] == json!(1.0)),
        "{metrics:?}"
    );
    println!(
        "1 GiB DICOM ({size} bytes) processed by the process-dicom binary: peak RSS {:.1} MiB \
         (Lambda memory floor {} MiB), {:.1} s from complete to PROCESSED",
        peak as f64 / MIB as f64,
        LAMBDA_MEMORY / MIB,
        elapsed.as_secs_f64()
    );
    assert!(
        peak < LAMBDA_MEMORY,
        "peak RSS {peak} bytes for a {size}-byte object"
    );
}
