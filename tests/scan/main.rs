//! Malware scanning on real inputs, with both adapters of the Scanner port: the built-in engine and
//! a real clamd (started here on a free loopback port with a custom signature database; ClamAV's
//! own databases cannot be downloaded offline). EICAR alone and inside a DICOM file; the limit.

use clinflow_tests::dicom_file;
use sha2::{Digest, Sha256};
use shared::scan::clamd::Clamd;
use shared::scan::signatures::SignatureDb;
use shared::scan::{BuiltinScanner, Scanner, Verdict};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn databases() -> Vec<(&'static str, String)> {
    vec![
        (
            "clinflow.hdb",
            "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n".to_owned(),
        ),
        (
            "clinflow.ndb",
            format!("Clinflow.Eicar-Embedded:0:*:{}\n", hex::encode(EICAR)),
        ),
    ]
}

fn builtin(max_bytes: u64) -> BuiltinScanner {
    let mut db = SignatureDb::default();
    for (name, text) in databases() {
        db.add_file(name, &text).unwrap();
    }
    BuiltinScanner::new(db, max_bytes).unwrap()
}

/// A clamd on a free port, killed when dropped.
struct ClamdProcess {
    _child: tokio::process::Child,
    address: String,
    _dir: PathBuf,
}

async fn start_clamd(stream_max: &str) -> ClamdProcess {
    let binary = std::env::var("CLINFLOW_CLAMD").unwrap_or_else(|_| "/usr/sbin/clamd".into());
    assert!(
        std::path::Path::new(&binary).exists(),
        "clamd not found at {binary}: scripts/setup.sh installs clamav-daemon"
    );
    let dir =
        std::env::temp_dir().join(format!("clinflow-clamd-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("db")).unwrap();
    for (name, text) in databases() {
        std::fs::write(dir.join("db").join(name), text).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("clamd.conf");
    std::fs::write(
        &conf,
        format!(
            "Foreground yes\nTCPSocket {port}\nTCPAddr 127.0.0.1\nDatabaseDirectory {}\nStreamMaxLength {stream_max}\nLogFile {}\nPidFile {}\n",
            dir.join("db").display(),
            dir.join("clamd.log").display(),
            dir.join("clamd.pid").display(),
        ),
    )
    .unwrap();
    let child = tokio::process::Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{port}");
    let clamd = Clamd::new(&address, Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(60);
    while clamd.ping().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "clamd did not start; see {}",
            dir.join("clamd.log").display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ClamdProcess {
        _child: child,
        address,
        _dir: dir,
    }
}

async fn scan(scanner: &dyn Scanner, data: &[u8]) -> Verdict {
    let mut session = scanner.start(data.len() as u64).await.unwrap();
    for chunk in data.chunks(8191) {
        session.update(chunk).await.unwrap();
    }
    session.finish(&Sha256::digest(data).into()).await.unwrap()
}

/// A real DICOM file with EICAR written into its pixel data.
fn dicom_with_eicar() -> Vec<u8> {
    let mut file = dicom_file("CT_small.dcm");
    let at = file.len() - 1000;
    file[at..at + EICAR.len()].copy_from_slice(EICAR);
    file
}

fn name(v: &Verdict) -> &str {
    match v {
        Verdict::Infected { signature } => signature,
        Verdict::Clean => "clean",
        Verdict::Unscannable { .. } => "unscannable",
    }
}

#[tokio::test]
async fn both_scanners_find_eicar_alone_and_inside_a_dicom_file() {
    let clamd_process = start_clamd("4M").await;
    let clamd = Clamd::new(&clamd_process.address, Duration::from_secs(10));
    let builtin = builtin(u64::MAX);
    for (label, scanner) in [
        ("builtin", &builtin as &dyn Scanner),
        ("clamd", &clamd as &dyn Scanner),
    ] {
        assert_eq!(
            scan(scanner, &dicom_file("CT_small.dcm")).await,
            Verdict::Clean,
            "{label}"
        );
        // Alone, EICAR matches both the hash and the body signature; either is a detection.
        let alone = name(&scan(scanner, EICAR).await).to_owned();
        assert!(
            alone.starts_with("Eicar-Test-Signature")
                || alone.starts_with("Clinflow.Eicar-Embedded"),
            "{label}: {alone}"
        );
        let embedded = name(&scan(scanner, &dicom_with_eicar()).await).to_owned();
        assert!(
            embedded.starts_with("Clinflow.Eicar-Embedded"),
            "{label}: {embedded}"
        );
    }
}

#[tokio::test]
async fn beyond_a_scanners_limit_is_unscannable_never_clean() {
    let clamd_process = start_clamd("1M").await;
    let clamd = Clamd::new(&clamd_process.address, Duration::from_secs(10));
    let big = vec![0x5au8; 3 * 1024 * 1024];
    assert_eq!(name(&scan(&clamd, &big).await), "unscannable");
    assert_eq!(
        name(&scan(&builtin(1024 * 1024), &big).await),
        "unscannable"
    );
    assert_eq!(scan(&builtin(u64::MAX), &big).await, Verdict::Clean);
}

#[tokio::test]
async fn a_clamd_that_is_not_there_is_an_error_not_a_verdict() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let clamd = Clamd::new(format!("127.0.0.1:{port}"), Duration::from_secs(2));
    assert!(clamd.start(10).await.is_err());
}

/// The built-in scanner's databases live in the bucket: a new file, a changed file (new ETag) and a
/// removed file change what is detected at the next check; an unchanged set is not reloaded; an
/// update that leaves no signature keeps the set that loaded last instead of scanning with none.
#[tokio::test]
async fn signature_databases_reload_when_their_etags_change() {
    use process_dicom::signatures::{S3Signatures, ScannerSource};
    let clients = local_stack::emulator_clients(
        &clinflow_tests::endpoint(),
        "us-east-1",
        clinflow_tests::admin().as_ref(),
    )
    .await;
    let s3 = clients.s3.clone();
    let bucket = format!("sigs-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let put = |key: &'static str, text: String| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move {
            s3.put_object()
                .bucket(&bucket)
                .key(format!("scanner/signatures/{key}"))
                .body(text.into_bytes().into())
                .send()
                .await
                .unwrap();
        }
    };
    let marker = |name: &str| format!("clinflow custom test marker {name}");
    let ndb = |name: &str| format!("Clinflow.Custom.{name}:0:*:{}\n", hex::encode(marker(name)));
    let source = S3Signatures::new(
        s3.clone(),
        &bucket,
        "scanner/signatures/",
        Duration::ZERO,
        u64::MAX,
    );
    let verdict = |scanner: std::sync::Arc<dyn Scanner>, data: String| async move {
        name(&scan(&*scanner, data.as_bytes()).await).to_owned()
    };

    // Nothing there: no scanner at all, never a clean verdict.
    assert!(source.scanner().await.is_err());

    put("eicar.ndb", databases()[1].1.clone()).await;
    let first = source.scanner().await.unwrap();
    assert_eq!(verdict(first.clone(), marker("One")).await, "clean");
    // Unchanged: the same compiled scanner.
    assert!(std::sync::Arc::ptr_eq(
        &first,
        &source.scanner().await.unwrap()
    ));

    // A new file.
    put("custom.ndb", ndb("One")).await;
    let second = source.scanner().await.unwrap();
    assert_eq!(
        verdict(second.clone(), marker("One")).await,
        "Clinflow.Custom.One"
    );
    assert_eq!(
        verdict(second.clone(), String::from_utf8_lossy(EICAR).into_owned()).await,
        "Clinflow.Eicar-Embedded"
    );

    // The same key rewritten: its ETag changes.
    put("custom.ndb", ndb("Two")).await;
    let third = source.scanner().await.unwrap();
    assert_eq!(verdict(third.clone(), marker("One")).await, "clean");
    assert_eq!(
        verdict(third.clone(), marker("Two")).await,
        "Clinflow.Custom.Two"
    );

    // Every file replaced by lines the engine cannot use: the last good set stays.
    put("custom.ndb", "not a signature\n".into()).await;
    put("eicar.ndb", "neither is this\n".into()).await;
    let kept = source.scanner().await.unwrap();
    assert!(std::sync::Arc::ptr_eq(&third, &kept));
    assert_eq!(verdict(kept, marker("Two")).await, "Clinflow.Custom.Two");
}
