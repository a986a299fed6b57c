//! Reconciliation (issue 13): after a run, every upload of a subject is read back through the API
//! and checked against S3, the instance index and the subject's imaging summary — nothing lost,
//! nothing stuck, every count adding up.

use crate::TestApp;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// What the records of one subject add up to.
#[derive(Debug, Default)]
pub struct Reconciled {
    pub processed: usize,
    pub quarantined: usize,
    pub failed: usize,
    /// Declared and never sent (a client that gave up, or retried a declaration).
    pub awaiting_upload: usize,
    /// Every disagreement found; empty when the stores agree.
    pub problems: Vec<String>,
    /// The records by upload id.
    pub records: BTreeMap<String, Value>,
}

impl Reconciled {
    pub fn summary(&self) -> String {
        format!(
            "{} records: {} PROCESSED, {} QUARANTINED, {} FAILED, {} never sent; {} problems",
            self.records.len(),
            self.processed,
            self.quarantined,
            self.failed,
            self.awaiting_upload,
            self.problems.len()
        )
    }
}

impl TestApp {
    /// Every upload of `subject`, page by page, as `GET /v1/uploads?subjectId=` lists them.
    pub async fn uploads_of(&self, subject: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/uploads?subjectId={subject}&limit=100&cursor={c}"),
                None => format!("/v1/uploads?subjectId={subject}&limit=100"),
            };
            let page = self.get(&path, &self.staff()).await;
            assert_eq!(page.status, 200, "{}", page.body);
            all.extend(page.body["items"].as_array().cloned().unwrap_or_default());
            match page.body["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return all,
            }
        }
    }

    /// Checks every upload of `subject`: a terminal state (or never sent), with its reason when it
    /// is not PROCESSED; accepted bytes in S3 under their recorded key with their recorded SHA-256;
    /// quarantined bytes under theirs; nothing left in `incoming/`; each accepted instance in the
    /// index; and the summary's counts equal to what the records add up to.
    /// Waits for each upload of `ids` to be terminal and checks it ended as its file calls for
    /// (`files`, as [`crate::mixed_files`] gives them, in the same order).
    pub async fn wait_outcomes(&self, ids: &[String], files: &[(Vec<u8>, &str)]) {
        for (id, (_, expected)) in ids.iter().zip(files) {
            let record = self
                .wait_status(id, &["PROCESSED", "QUARANTINED", "FAILED"], 240)
                .await;
            assert_eq!(record["status"], *expected, "{id}: {record}");
        }
    }

    /// [`Self::reconcile`] again every half second until it finds no problem or `within` passed;
    /// the last one.
    pub async fn reconcile_within(&self, subject: &str, within: std::time::Duration) -> Reconciled {
        let deadline = std::time::Instant::now() + within;
        loop {
            let r = self.reconcile(subject).await;
            if r.problems.is_empty() || std::time::Instant::now() > deadline {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    pub async fn reconcile(&self, subject: &str) -> Reconciled {
        let mut out = Reconciled::default();
        let mut instances = BTreeSet::new();
        let mut studies = BTreeSet::new();
        let mut series = BTreeSet::new();
        for record in self.uploads_of(subject).await {
            let id = record["uploadId"].as_str().unwrap_or_default().to_owned();
            let status = record["status"].as_str().unwrap_or_default();
            let p = &record["processing"];
            let incoming = record["objectKey"].as_str().unwrap_or_default();
            match status {
                "PROCESSED" => {
                    out.processed += 1;
                    let key = p["objectKey"].as_str().unwrap_or_default();
                    if !key.starts_with("accepted/") {
                        out.problems.push(format!(
                            "{id}: PROCESSED but its key {key:?} is not accepted/"
                        ));
                    }
                    match self.digest_if_present(key).await {
                        None => out
                            .problems
                            .push(format!("{id}: accepted bytes at {key} are missing")),
                        Some((size, digest))
                            if Some(size as u64) != p["sizeBytes"].as_u64()
                                || Some(digest.as_str()) != p["sha256"].as_str() =>
                        {
                            out.problems.push(format!(
                                "{id}: accepted bytes at {key} differ from the record"
                            ))
                        }
                        Some(_) => {}
                    }
                    let dicom = &p["dicom"];
                    let sop = dicom["sopInstanceUid"].as_str().unwrap_or_default();
                    let sha = p["sha256"].as_str().unwrap_or_default();
                    if !self.instance_indexed(sop, sha).await {
                        out.problems
                            .push(format!("{id}: instance {sop} not indexed"));
                    }
                    instances.insert(sop.to_owned());
                    studies.insert(dicom["studyInstanceUid"].to_string());
                    series.insert(dicom["seriesInstanceUid"].to_string());
                }
                "QUARANTINED" | "FAILED" => {
                    if status == "QUARANTINED" {
                        out.quarantined += 1;
                        let key = p["objectKey"].as_str().unwrap_or_default();
                        if !key.starts_with("quarantine/") || !self.object_exists(key).await {
                            out.problems
                                .push(format!("{id}: quarantined bytes not at {key:?}"));
                        }
                        // Nothing of it readable as accepted, nor indexed as an instance.
                        let accepted = key.replacen("quarantine/", "accepted/", 1);
                        if self.object_exists(&accepted).await {
                            out.problems
                                .push(format!("{id}: quarantined, yet {accepted} exists"));
                        }
                        let sop = p["dicom"]["sopInstanceUid"].as_str().unwrap_or_default();
                        let sha = p["sha256"].as_str().unwrap_or_default();
                        if !sop.is_empty() && self.instance_indexed(sop, sha).await {
                            out.problems
                                .push(format!("{id}: quarantined, yet {sop} is indexed"));
                        }
                    } else {
                        out.failed += 1;
                    }
                    if record["statusReason"].as_str().is_none_or(str::is_empty) {
                        out.problems
                            .push(format!("{id}: {status} without a reason"));
                    }
                }
                "AWAITING_UPLOAD" => out.awaiting_upload += 1,
                other => out.problems.push(format!("{id}: stuck in {other}")),
            }
            if status != "AWAITING_UPLOAD"
                && status != "FAILED"
                && self.object_exists(incoming).await
            {
                out.problems
                    .push(format!("{id}: {incoming} still in incoming/"));
            }
            out.records.insert(id, record);
        }
        let summary = self.summary_of(subject).await;
        let expect = [
            ("instances", instances.len()),
            ("studies", studies.len()),
            ("series", series.len()),
            ("quarantined", out.quarantined),
            ("failed", out.failed),
            ("pending", 0),
        ];
        for (field, n) in expect {
            if summary[field].as_u64() != Some(n as u64) {
                out.problems.push(format!(
                    "summary {field} = {} but the records add up to {n}: {summary}",
                    summary[field]
                ));
            }
        }
        out
    }

    /// The size and SHA-256 (hex) of the object at `key`, or `None` if it cannot be read.
    pub async fn digest_if_present(&self, key: &str) -> Option<(usize, String)> {
        let mut object = self
            .stack
            .clients
            .s3
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .ok()?;
        let mut hasher = Sha256::new();
        let mut len = 0;
        while let Some(chunk) = object.body.try_next().await.ok()? {
            len += chunk.len();
            hasher.update(&chunk);
        }
        Some((len, hex::encode(hasher.finalize())))
    }

    /// Whether the instance index holds `sop` with the bytes of digest `sha256`.
    pub async fn instance_indexed(&self, sop: &str, sha256: &str) -> bool {
        self.stack
            .clients
            .dynamodb
            .get_item()
            .table_name(self.table("InstancesTable"))
            .key(
                "sopInstanceUid",
                aws_sdk_dynamodb::types::AttributeValue::S(sop.to_owned()),
            )
            .key(
                "sha256",
                aws_sdk_dynamodb::types::AttributeValue::S(sha256.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .map(|r| r.item.is_some())
            .unwrap_or(false)
    }

    /// The subject's imaging summary as stored (`Null` if none).
    pub async fn summary_of(&self, subject: &str) -> Value {
        shared::store::summary::DynamoImagingSummary::new(
            self.stack.clients.dynamodb.clone(),
            self.table("ImagingSummaryTable"),
        )
        .get(subject)
        .await
        .expect("summary")
        .unwrap_or(Value::Null)
    }
}
