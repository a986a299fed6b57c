//! The web console (web/, issue 11) on the local stack: the static files and the dev sign-in
//! route, then the console itself in a real headless Chromium (tests/console/console_test.py,
//! Selenium + Debian's chromium/chromedriver, which scripts/setup.sh installs).

use clinflow_tests::*;
use local_stack::emulator::repo_root;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn the_local_stack_serves_the_console_and_signs_dev_tokens() {
    let app = spawn_app().await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.headers().contains_key("content-security-policy"));
    assert!(page.text().await.unwrap().contains("js/main.js"));
    let module = app
        .http
        .get(app.url("/js/uploader.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(module.status(), 200);
    assert!(module.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    // Nothing outside web/, no hidden files, no node_modules; the API's 404 for unknown /v1 paths.
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/.gitignore",
        "/node_modules/hash-wasm/package.json",
        "/v1/nothing-here",
    ] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let config: Value = app
        .http
        .get(app.url("/config.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["auth"]["mode"], "dev");

    // The console's bucket (template.yaml, "web console hosting") is provisioned like every bucket,
    // with its policy: CloudFront's service principal only, for the stack's distribution (a
    // placeholder id locally: CloudFront is not emulated; the local stack serves web/ itself).
    let console_bucket = app.stack.bucket("ConsoleBucket").expect("ConsoleBucket");
    let policy: Value = serde_json::from_str(
        app.stack
            .clients
            .s3
            .get_bucket_policy()
            .bucket(console_bucket)
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap(),
    )
    .unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{policy}");
    assert_eq!(
        statements[0]["Principal"],
        json!({"Service": "cloudfront.amazonaws.com"})
    );
    assert!(statements[0]["Condition"]["StringEquals"]["AWS:SourceArn"]
        .as_str()
        .unwrap()
        .ends_with(":distribution/local-ConsoleDistribution"));

    // A dev token for a monitor of LYN reads LYN's subject and not BOS's (404 as a missing one).
    let r = app
        .http
        .post(app.url("/dev/token"))
        .json(&json!({ "role": "monitor", "sites": ["SITE-LYN-02"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get("/v1/subjects/SUBJ-0101/imaging", &token)
            .await
            .status,
        200
    );
    app.get("/v1/subjects/SUBJ-0001/imaging", &token)
        .await
        .problem(404);
    // No role the service knows, or no JSON: a problem, no token.
    for body in [json!({ "role": "root", "sites": [] }), json!("x")] {
        let r = app
            .http
            .post(app.url("/dev/token"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/problem+json"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_uploads_resumes_and_keeps_sites_apart_in_a_real_browser() {
    // 5 MiB parts from 5 MiB on (the template's minimums): the test's 24 MiB file has five.
    let imaging_source = closed_port_url();
    let app = spawn_pipeline(&[
        ("MultipartThresholdBytes", "5242880"),
        ("MultipartPartSizeBytes", "5242880"),
        ("EproRateLimitBurst", "20"),
        // The report's imaging source is a port nothing listens on: the report the browser shows
        // is degraded (imaging unavailable, the score a lower bound).
        ("ReportImagingUrl", imaging_source.as_str()),
    ])
    .await;
    // SUBJ-0001's clinical data, written through the API as the site and the patient's phone
    // would: a serious adverse event, an out-of-range lab, and a diary of DIARY_DAYS days.
    let staff = app.staff();
    let ae = json!({"itemGroups": [
        {"itemGroupOid": "IG.AE", "repeatKey": 1, "items": {"AETERM": "Pneumonia",
         "AESTDTC": "2026-11-10", "AESER": "Y", "AESEV": "SEVERE", "AEOUT": "RECOVERING"}}]});
    let lb = json!({"itemGroups": [
        {"itemGroupOid": "IG.LB", "repeatKey": 1, "items": {"LBDAT": "2026-11-20",
         "LBTESTCD": "ALT", "LBORRES": 112.0, "LBORRESU": "U/L", "LBORNRLO": 7, "LBORNRHI": 56}}]});
    for (oid, body) in [("AE", &ae), ("LB", &lb)] {
        let r = app.put_form(&staff, SUBJECT, oid, None, body).await;
        assert_eq!(r.status, 201, "{oid}: {}", r.body);
    }
    let patient = app.patient_token(SUBJECT);
    for day in 1..=DIARY_DAYS {
        let at = (chrono::Utc::now() - chrono::Duration::days(day))
            .date_naive()
            .and_hms_opt(9, 0, 0)
            .unwrap()
            .and_utc();
        let entry = json!({"recordedAt": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "painScore": (DIARY_DAYS + 1 - day).min(10), "symptoms": [], "diaryCompleted": true});
        let r = app
            .post_epro(&patient, SUBJECT, &format!("console-{day}"), &entry)
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let root = repo_root();
    let result = std::env::temp_dir().join(format!("console-{}.json", uuid::Uuid::new_v4()));
    let started = std::time::Instant::now();
    let output = tokio::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/console/console_test.py"))
        .env("CONSOLE_URL", &app.stack.api_url)
        .env("SCREENSHOTS", root.join("web/screenshots"))
        .env("RESULT", &result)
        .env("DIARY_DAYS", DIARY_DAYS.to_string())
        .output()
        .await
        .expect("run tests/console/console_test.py (make setup installs selenium)");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the browser test failed");
    println!("browser test: {:.1} s", started.elapsed().as_secs_f64());
    let result: Value = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();

    // What the browser sent is what got stored.
    let dicom = app.wait_processed(result["dicom"].as_str().unwrap()).await;
    assert_eq!(dicom["status"], "PROCESSED", "{dicom}");
    assert_eq!(dicom["fileName"], "CT_small.dcm");
    assert_eq!(
        dicom["sha256"],
        hex::encode(Sha256::digest(dicom_file("CT_small.dcm")))
    );
    let eicar = app.wait_processed(result["eicar"].as_str().unwrap()).await;
    assert_eq!(eicar["status"], "QUARANTINED", "{eicar}");
    assert!(eicar["statusReason"]
        .as_str()
        .unwrap()
        .starts_with("malware: "));
    let big = app
        .wait_processed(result["multipart"].as_str().unwrap())
        .await;
    assert_eq!(big["status"], "PROCESSED", "{big}");
    assert_eq!(big["mode"], "multipart");
    assert_eq!(big["partCount"], result["partCount"]);
    assert_eq!(big["processing"]["sha256"], big["sha256"], "{big}");
    let accepted = big["processing"]["objectKey"].as_str().unwrap();
    assert_eq!(
        hex::encode(app.object_digest(accepted).await.1),
        big["sha256"].as_str().unwrap()
    );
    // The parts storage held at the reload were not sent again; each of the others once.
    let held = result["held"].as_array().unwrap().len();
    let resent = result["resent"].as_array().unwrap().len();
    assert!(held >= 1 && held + resent == result["partCount"].as_u64().unwrap() as usize);
    assert_eq!(result["drug"], "paracetamol");
    assert!(result["drugMissing"].as_str().unwrap().contains("ot found"));

    // The monitor's report showed the reasons the stored data gives.
    let reasons: Vec<&str> = result["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"SERIOUS_ADVERSE_EVENT"), "{reasons:?}");
    assert!(reasons.contains(&"LAB_OUT_OF_RANGE"), "{reasons:?}");
    assert_eq!(result["painPoints"], DIARY_DAYS);
    assert_eq!(result["unavailable"], json!(["imaging"]));
    // The CSV export the monitor asked for is DONE, its link answered 200 with the CSV, and the
    // audit trail holds the request and exactly one download link: polling read the list (no
    // links), the link was fetched once, on the click.
    let export = result["export"].as_str().unwrap();
    let stored = app.get(&format!("/v1/exports/{export}"), &staff).await;
    assert_eq!(stored.status, 200, "{}", stored.body);
    assert_eq!(stored.body["status"], "DONE");
    assert_eq!(stored.body["format"], "csv");
    assert_eq!(result["downloadStatus"], 200);
    assert!(result["downloadBytes"].as_u64().unwrap() > 0);
    let by = |action: &'static str, actor: &'static str| {
        let app = &app;
        async move {
            app.subject_actors(SUBJECT, action)
                .await
                .iter()
                .filter(|a| *a == actor)
                .count()
        }
    };
    assert_eq!(by("subject.export", "dev-monitor").await, 1);
    assert_eq!(by("subject.export.download", "dev-monitor").await, 1);
    assert!(by("read.report", "dev-monitor").await >= 1);
}

/// `http://127.0.0.1:<port>` of a port that was free a moment ago (bound, then released).
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

const SUBJECT: &str = "SUBJ-0001";
/// Diary days written for SUBJ-0001 (one entry a day, the last DIARY_DAYS days).
const DIARY_DAYS: i64 = 8;
