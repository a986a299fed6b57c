//! Patient identifiers stay where they belong: the record keeps no DICOM identifier value (only
//! which identifying attributes the file has), readers other than the uploading site's staff never
//! see the file name, and wrong-patient uploads are found by a keyed hash of the Patient ID —
//! flagged on the record, in the imaging summary and in the audit trail, while the value itself
//! reaches no table and no log line.

use clinflow_tests::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::dicom::PatientId;
use shared::identity::PatientKey;
use shared::store::summary::DynamoImagingSummary;
use std::time::{Duration, Instant};

const TRIAL: &str = "CLIN-DEMO-01";
const ALPHA: &str = "PAT-ALPHA-0001";
const BRAVO: &str = "PAT-BRAVO-0002";
const CHARLIE: &str = "PAT-CHARLIE-0003";

/// A small synthetic DICOM file of the given patient; `instance` makes its SOP Instance UID unique.
fn scan_of(patient: &str, instance: u32) -> Vec<u8> {
    let mut file = shared::dicom::synthetic::header_for_patient(instance, 256, patient);
    file.extend((0..256u32).map(|i| (i * 7 + instance) as u8));
    file
}

async fn process(app: &TestApp, subject: &str, bytes: &[u8]) -> Value {
    let created = app.upload(&declaration(subject, bytes), bytes).await;
    let id = created["uploadId"].as_str().unwrap();
    let record = app.wait_processed(id).await;
    assert_eq!(record["status"], "PROCESSED", "{record}");
    record
}

fn mismatch(record: &Value) -> Vec<&str> {
    record["processing"]["patientMismatch"]["reasons"]
        .as_array()
        .map(|r| r.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default()
}

/// Every item of every table of the stack, as text.
async fn every_table_as_text(app: &TestApp) -> String {
    let mut out = String::new();
    for table in app.stack.template.resources_of("AWS::DynamoDB::Table") {
        let items = app
            .stack
            .clients
            .dynamodb
            .scan()
            .table_name(app.table(&table.logical_id))
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        out.push_str(&format!("{}: {items:?}\n", table.logical_id));
    }
    out
}

/// The deployment's key, as process-dicom reads it (the secret the local stack generated).
async fn deployment_key(app: &TestApp) -> PatientKey {
    let secret = &app.stack.functions["ProcessDicomFunction"].environment["PATIENT_ID_KEY_SECRET"];
    let value = app
        .stack
        .clients
        .secrets
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .unwrap();
    PatientKey::from_secret(value.secret_string().unwrap()).unwrap()
}

async fn summary_flags(app: &TestApp, subject: &str, expected: usize) -> Value {
    let summaries = DynamoImagingSummary::new(
        app.stack.clients.dynamodb.clone(),
        app.table("ImagingSummaryTable"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let summary = summaries.get(subject).await.unwrap().unwrap_or_default();
        let pending = summary["pending"].as_i64().unwrap_or(1);
        if summary["patientMismatches"].as_u64() == Some(expected as u64) && pending == 0 {
            return summary;
        }
        assert!(Instant::now() < deadline, "summary of {subject}: {summary}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn wrong_patient_uploads_are_flagged_kept_summarised_and_audited() {
    let app = spawn_pipeline(&[]).await;

    // SUBJ-0001: patient ALPHA twice (no flag), then BRAVO (flagged, kept).
    let first = process(&app, "SUBJ-0001", &scan_of(ALPHA, 1)).await;
    let again = process(&app, "SUBJ-0001", &scan_of(ALPHA, 2)).await;
    let other = process(&app, "SUBJ-0001", &scan_of(BRAVO, 3)).await;
    assert!(mismatch(&first).is_empty(), "{first}");
    assert!(mismatch(&again).is_empty(), "{again}");
    assert_eq!(mismatch(&other), ["differs_from_subject"], "{other}");
    // Kept: accepted and indexed like any other.
    assert!(other["processing"]["objectKey"]
        .as_str()
        .unwrap()
        .starts_with("accepted/"));
    assert_eq!(other["processing"]["instance"], "new");

    // SUBJ-0002: ALPHA is SUBJ-0001's patient (flagged); a flagged upload links nothing, so the
    // subject's own patient CHARLIE is then accepted without a flag.
    let stolen = process(&app, "SUBJ-0002", &scan_of(ALPHA, 4)).await;
    assert_eq!(mismatch(&stolen), ["matches_other_subject"], "{stolen}");
    let own = process(&app, "SUBJ-0002", &scan_of(CHARLIE, 5)).await;
    assert!(mismatch(&own).is_empty(), "{own}");
    // CHARLIE is now SUBJ-0002's: on SUBJ-0001 it is both another subject's and not the subject's.
    let both = process(&app, "SUBJ-0001", &scan_of(CHARLIE, 6)).await;
    assert_eq!(
        mismatch(&both),
        ["differs_from_subject", "matches_other_subject"],
        "{both}"
    );

    // The record says which identifying attributes the file has, never their values.
    for record in [&first, &other, &stolen] {
        assert_eq!(
            record["processing"]["dicom"]["identifyingAttributes"],
            serde_json::json!(["PatientID"])
        );
        assert!(record["processing"]["dicom"].get("patientId").is_none());
    }

    // The summary lists the flagged uploads.
    let s1 = summary_flags(&app, "SUBJ-0001", 2).await;
    let mut flagged = vec![other["uploadId"].clone(), both["uploadId"].clone()];
    flagged.sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(s1["patientMismatchUploads"], Value::Array(flagged));
    assert_eq!(s1["instances"], 4);
    let s2 = summary_flags(&app, "SUBJ-0002", 1).await;
    assert_eq!(
        s2["patientMismatchUploads"],
        serde_json::json!([stolen["uploadId"]])
    );

    // Audited with the status change, in the same transaction.
    let trail = app.audit_trail(other["uploadId"].as_str().unwrap()).await;
    let last = trail.last().unwrap();
    assert_eq!(last["new"].as_s().unwrap(), "PROCESSED");
    assert_eq!(
        last["reason"].as_s().unwrap(),
        "processed; patient_mismatch: differs_from_subject"
    );
    let clean = app.audit_trail(first["uploadId"].as_str().unwrap()).await;
    assert_eq!(clean.last().unwrap()["reason"].as_s().unwrap(), "processed");

    // The links hold the keyed hash: HMAC-SHA256 under the deployment's secret, not a plain digest.
    let key = deployment_key(&app).await;
    let alpha = key.hash(&PatientId::from_value(ALPHA.as_bytes()).unwrap());
    assert_ne!(
        alpha.as_str(),
        hex::encode(Sha256::digest(ALPHA.as_bytes()))
    );
    let link = app
        .stack
        .clients
        .dynamodb
        .get_item()
        .table_name(app.table("PatientLinksTable"))
        .key(
            "link",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "PATIENT#{TRIAL}#{}",
                alpha.as_str()
            )),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("ALPHA's link");
    assert_eq!(link["subjectId"].as_s().unwrap(), "SUBJ-0001");
    assert_eq!(
        link["firstUploadId"].as_s().unwrap(),
        first["uploadId"].as_str().unwrap()
    );

    // No Patient ID, plain or as a plain SHA-256, anywhere in the tables.
    let stored = every_table_as_text(&app).await;
    for patient in [ALPHA, BRAVO, CHARLIE] {
        assert!(!stored.contains(patient), "{patient} is stored");
        let digest = hex::encode(Sha256::digest(patient.as_bytes()));
        assert!(!stored.contains(&digest), "SHA-256 of {patient} is stored");
    }
    assert!(stored.contains(alpha.as_str()));
}

/// The processor's own log stream (the real binary, every level down to debug) carries the flag
/// and never a Patient ID.
#[tokio::test(flavor = "multi_thread")]
async fn no_patient_id_reaches_the_logs() {
    let app = spawn_ingest_processes(
        &[("LogLevel", "debug")],
        &[("ProcessDicomFunction", function_binary("process-dicom"))],
    )
    .await;
    process(&app, "SUBJ-0001", &scan_of(ALPHA, 1)).await;
    let flagged = process(&app, "SUBJ-0001", &scan_of(BRAVO, 2)).await;
    assert_eq!(mismatch(&flagged), ["differs_from_subject"]);
    let function = &app.stack.processes["ProcessDicomFunction"];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !function
        .output()
        .iter()
        .any(|l| l.contains("patient_mismatch"))
    {
        assert!(Instant::now() < deadline, "no flag in the logs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = function.output().join("\n");
    assert!(logs.contains("\"patient_mismatch\":\"differs_from_subject\""));
    for patient in [ALPHA, BRAVO] {
        assert!(!logs.contains(patient), "{patient} in the logs");
    }
}

#[tokio::test]
async fn only_the_uploading_sites_staff_see_the_file_name() {
    let app = spawn_app().await;
    let bytes = scan_of(ALPHA, 1);
    let mut declared = declaration("SUBJ-0001", &bytes);
    declared["fileName"] = Value::String("DOE_JANE_brain_mri.dcm".into());
    let created = app.post("/v1/uploads", &app.staff(), &declared).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["fileName"], "DOE_JANE_brain_mri.dcm");
    let path = format!("/v1/uploads/{}", created.body["uploadId"].as_str().unwrap());

    let staff = app.get(&path, &app.staff()).await;
    assert_eq!(staff.status, 200);
    assert_eq!(staff.body["fileName"], "DOE_JANE_brain_mri.dcm");

    for (role, sites) in [
        ("monitor", vec![BOS]),
        ("sponsor_admin", vec![]),
        ("sponsor_admin", vec![BOS]),
    ] {
        let r = app.get(&path, &app.token_in(role, &sites, &[TRIAL])).await;
        assert_eq!(r.status, 200, "{role}: {}", r.body);
        assert!(r.body.get("fileName").is_none(), "{role}: {}", r.body);
        assert!(!r.body.to_string().contains("DOE_JANE"), "{role}");
        assert_eq!(r.body["uploadId"], created.body["uploadId"]);
    }
    // Staff of another site do not see the upload at all.
    let elsewhere = app.get(&path, &app.token("site_staff", &[LYN])).await;
    assert_eq!(elsewhere.status, 404);
    // The name is kept (for the uploading site), not altered.
    assert!(every_table_as_text(&app)
        .await
        .contains("DOE_JANE_brain_mri.dcm"));
}

/// The links themselves, on the emulator: a redelivery finds its own links (no flag, nothing new
/// written); a conflicting call writes nothing; each conflict is named.
#[tokio::test]
async fn links_are_idempotent_and_a_conflict_writes_nothing() {
    use shared::domain::{SubjectId, TrialId, UploadId};
    use shared::identity::{MismatchReason, PatientLinks};
    use shared::store::patient_links::DynamoPatientLinks;

    let app = spawn_app().await;
    let links = DynamoPatientLinks::new(
        app.stack.clients.dynamodb.clone(),
        app.table("PatientLinksTable"),
    );
    let key = PatientKey::from_secret(&"x".repeat(32)).unwrap();
    let hash = |p: &str| key.hash(&PatientId::from_value(p.as_bytes()).unwrap());
    let trial = TrialId::parse(TRIAL).unwrap();
    let (s1, s2) = (
        SubjectId::parse("SUBJ-0001").unwrap(),
        SubjectId::parse("SUBJ-0002").unwrap(),
    );
    let upload = UploadId::generate();

    assert!(links
        .link(&trial, &s1, &hash(ALPHA), &upload)
        .await
        .unwrap()
        .is_empty());
    let stored = link_items(&app).await;
    // The same call again (a redelivery, a retry after a crash): no flag, no change.
    assert!(links
        .link(&trial, &s1, &hash(ALPHA), &upload)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(link_items(&app).await, stored);
    assert_eq!(stored.len(), 2);

    assert_eq!(
        links
            .link(&trial, &s1, &hash(BRAVO), &UploadId::generate())
            .await
            .unwrap(),
        [MismatchReason::DiffersFromSubject]
    );
    assert_eq!(
        links
            .link(&trial, &s2, &hash(ALPHA), &UploadId::generate())
            .await
            .unwrap(),
        [MismatchReason::MatchesOtherSubject]
    );
    // Conflicts link nothing.
    assert_eq!(link_items(&app).await, stored);
    // Another trial is another namespace.
    let other_trial = TrialId::parse("CLIN-OTHER-02").unwrap();
    assert!(links
        .link(&other_trial, &s2, &hash(ALPHA), &UploadId::generate())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(link_items(&app).await.len(), 4);
}

/// The links table's items, each as sorted (attribute, value) pairs, sorted.
async fn link_items(app: &TestApp) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut items: Vec<_> = app
        .stack
        .clients
        .dynamodb
        .scan()
        .table_name(app.table("PatientLinksTable"))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|item| {
            item.into_iter()
                .map(|(k, v)| (k, format!("{v:?}")))
                .collect()
        })
        .collect();
    items.sort();
    items
}
