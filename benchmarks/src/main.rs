//! `make bench` = `cargo run --release -p clinflow-benchmarks [-- [SIZE_MIB] [--only GROUP]]`
//!
//! Runs every benchmark and prints ONE markdown table, each figure beside its anchor measured in
//! the same run with the ratio and the goal; writes it to `benchmarks/RESULTS.md` with the date and
//! the machine (CPU model, cores, flags). Groups (`--only` runs one, e.g. under a profiler):
//! - `ingest`: the one-pass inspector over a SIZE_MIB (default 1024) MiB synthetic DICOM (kept
//!   under target/bench/) beside `openssl dgst -sha256`: large reads, 16 KiB pieces, pieces of the
//!   size the SDK delivers; the scan, SHA-256 and the parse alone; the scanner's worst case;
//! - `sdk`: the chunks the aws-sdk-s3 body stream delivers over HTTPS on loopback;
//! - `header`: the header-only parse over pydicom's corpus beside pydicom (when .venv has it);
//! - `cache`: the reference-data cache (ArcSwap) beside `RwLock<HashMap>` (`cache.rs`);
//! - `report`: the subject report's latency with injected source latencies (`report.rs`);
//! - `ratelimit`: the ePRO rate limiter against DynamoDB on moto beside in-process (`rate_limit.rs`);
//! - `api`: the local HttpApi under `wrk` (`api_load.rs`; `apt-get install wrk`);
//! - `coldstart`: every function binary of template.yaml started 20 times against a runtime API on
//!   loopback: init to the first `/next`, its peak RSS, its size; beside a hello-world of our own
//!   (`src/bin/hello-lambda.rs`) and the quoted anchors (`coldstart.rs`);
//! - `export`: a CSV and a PDF export of 100,000 diary entries rendered in-process (`export.rs`).
//!
//! Peak RSS is measured per group (VmHWM, reset between groups).
//!
//! To add a benchmark: a function that pushes [`table::Row`]s (figure, value, anchor measured in the
//! same run, goal) onto the table, called from `main`.

mod api_load;
mod cache;
mod coldstart;
mod export;
mod ingest;
mod rate_limit;
mod report;
mod sdk_chunks;
mod table;

use ingest::MIB;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use table::{Goal, Machine, Row, Table, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// The process's peak RSS since the last [`reset_peak_rss`], MiB.
fn peak_rss_mib() -> Option<f64> {
    peak_rss_mib_of("self")
}

/// The peak RSS (VmHWM) of process `pid` (or `self`), MiB.
fn peak_rss_mib_of(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
}

/// Starts a new peak (Linux: writing 5 to clear_refs resets VmHWM to the current RSS).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Three interleaved rounds of the anchor and each figure (so a noisy neighbour weighs on all
/// alike); the medians.
async fn ingest(table: &mut Table, path: &Path) {
    let size = std::fs::metadata(path).unwrap().len();
    let scanner = ingest::scanner("");
    // Warm the page cache, so every pass reads from memory.
    let _ = ingest::openssl_mb_s(path);
    reset_peak_rss();
    let (mut anchor, mut large, mut small, mut found) =
        (Vec::new(), Vec::new(), Vec::new(), String::new());
    for _ in 0..3 {
        anchor.extend(ingest::openssl_mb_s(path));
        let (mb_s, f) = ingest::inspector_mb_s(path, &scanner, MIB as usize).await;
        large.push(mb_s);
        found = f;
        small.push(ingest::inspector_mb_s(path, &scanner, 16 * 1024).await.0);
    }
    let rss = peak_rss_mib();
    let openssl_cpu = ingest::median(anchor.iter().map(|r| r.cpu).collect());
    let openssl = ingest::median(anchor.iter().map(|r| r.wall).collect()).map(Value::mb_s);
    let what = format!(
        "over a {:.0} MiB synthetic DICOM ({found})",
        size as f64 / MIB as f64
    );
    let anchor_name = "`openssl dgst -sha256`, same file";
    table.push(
        Row::new(
            format!("one-pass inspector (SHA-256 + scanner with 1,002 signatures + DICOM parser), 1 MiB reads, {what}; median of 3"),
            ingest::median(large).map(Value::mb_s),
        )
        .beside(anchor_name, openssl)
        .goal(Goal::RatioAtLeast(0.8)),
    );
    table.push(
        Row::new(
            "the same pass in 16 KiB pieces (a TLS record each)",
            ingest::median(small).map(Value::mb_s),
        )
        .beside(anchor_name, openssl)
        .goal(Goal::RatioAtLeast(0.8)),
    );
    // Where the time goes: each part alone over the same bytes, median of 3; with the rate per
    // CPU-second of the thread beside openssl's per CPU-second (what each would do on a core of its
    // own when the machine is shared).
    let alone = |f: &mut dyn FnMut(&[u8])| {
        let rates: Vec<ingest::Rate> = (0..3).map(|_| ingest::alone_mb_s(path, &mut *f)).collect();
        (
            ingest::median(rates.iter().map(|r| r.wall).collect()).unwrap_or(0.0),
            ingest::median(rates.iter().map(|r| r.cpu).collect()).unwrap_or(0.0),
        )
    };
    let per_cpu = |cpu: f64| match openssl_cpu {
        Some(o) => format!(
            "; per CPU-second {cpu:.0} MB/s, openssl's {o:.0} MB/s ({:.2}×)",
            cpu / o
        ),
        None => format!("; per CPU-second {cpu:.0} MB/s"),
    };
    let mut s = scanner.engine_scan(size);
    let (scan, scan_cpu) = alone(&mut |b| s.update(b));
    table.push(
        Row::new(
            format!(
                "scan alone (q-gram prefilter + Aho-Corasick), 1 MiB reads, median of 3{}",
                per_cpu(scan_cpu)
            ),
            Some(Value::mb_s(scan)),
        )
        .beside(anchor_name, openssl),
    );
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let (sha, sha_cpu) = alone(&mut |b| sha2::Digest::update(&mut hasher, b));
    table.push(
        Row::new(
            format!(
                "SHA-256 alone (sha2 crate), median of 3{}",
                per_cpu(sha_cpu)
            ),
            Some(Value::mb_s(sha)),
        )
        .beside(anchor_name, openssl),
    );
    let mut parser = inspection::dicom::HeaderParser::new(size);
    let (parse, _) = alone(&mut |b| parser.feed(b));
    table.push(
        Row::new(
            "DICOM header parse alone, median of 3",
            Some(Value::mb_s(parse)),
        )
        .beside(anchor_name, openssl),
    );
    for (what, extra, goal) in [
        (
            "scan alone, 10 signatures whose exact runs are two bytes split by `??` added",
            ingest::short_run_signatures(),
            None,
        ),
        (
            "scan alone, 10 signatures of one lone two-byte segment added (the worst case)",
            ingest::worst_case_signatures(),
            Some(Goal::AtLeast(400.0)),
        ),
    ] {
        let scanner = ingest::scanner(&extra);
        let mut s = scanner.engine_scan(size);
        let (mb_s, cpu) = alone(&mut |b| s.update(b));
        let verdict = s.finish(&[0; 32]);
        let mut row = Row::new(
            format!("{what} ({verdict:?}), median of 3{}", per_cpu(cpu)),
            Some(Value::mb_s(mb_s)),
        )
        .beside("scan alone, above", Some(Value::mb_s(scan)));
        if let Some(g) = goal {
            row = row.goal(g);
        }
        table.push(row);
    }
    table.push(
        Row::new(
            "peak RSS of the inspector passes (the process's VmHWM)",
            rss.map(Value::mib),
        )
        .beside("the file", Some(Value::mib(size as f64 / MIB as f64)))
        .goal(Goal::AtMost(64.0)),
    );
}

/// The pass in pieces of the size the SDK delivered, beside openssl (interleaved, median of 3).
async fn ingest_at(table: &mut Table, path: &Path, piece: usize) {
    let scanner = ingest::scanner("");
    let (mut anchor, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        anchor.extend(ingest::openssl_mb_s(path));
        ours.push(ingest::inspector_mb_s(path, &scanner, piece).await.0);
    }
    table.push(
        Row::new(
            format!("the one-pass inspector in {piece}-byte pieces (the median chunk the SDK delivered on a paced link, above); median of 3"),
            ingest::median(ours).map(Value::mb_s),
        )
        .beside(
            "`openssl dgst -sha256`, same file",
            ingest::median(anchor.iter().map(|r| r.wall).collect()).map(Value::mb_s),
        )
        .goal(Goal::RatioAtLeast(0.8)),
    );
}

/// The inspector as the SDK body stream's reader.
struct Feed(Option<inspection::inspect::Inspector>);

impl sdk_chunks::AsyncConsume for Feed {
    async fn consume(&mut self, chunk: bytes::Bytes) {
        if let Some(i) = &mut self.0 {
            i.update(chunk).await.unwrap();
        }
    }
}

/// The chunk sizes the SDK's body stream delivers (over TLS, as from S3), read by the inspector.
/// Returns the median chunk (by bytes) on a link slower than the reader, as from S3 (tens to a few
/// hundred MB/s per connection): the size the ingest pass is then measured at.
async fn sdk(table: &mut Table, dir: &Path) -> Option<usize> {
    let scanner = ingest::scanner("");
    let mut real = None;
    for (size, write, rate, how) in [
        (
            256 * MIB,
            1 << 20,
            None,
            "the server writing 1 MiB at a time as fast as TLS on loopback goes",
        ),
        (
            64 * MIB,
            16 << 10,
            Some(100e6),
            "the server writing a 16 KiB record at a time paced at 100 MB/s (a link slower than the reader, as S3's)",
        ),
    ] {
        let inspector = inspection::inspect::Inspector::start(&scanner, size)
            .await
            .ok();
        let figure = format!("aws-sdk-s3 GetObject body chunks over HTTPS (rustls on aws-lc, as in the functions; `try_next` into the inspector), {how}");
        let Some(chunks) = sdk_chunks::measure(dir, size, write, rate, Feed(inspector)).await
        else {
            table.push(Row::new(figure, None));
            continue;
        };
        let median = chunks.median();
        if rate.is_some() {
            real = Some(median);
        }
        table.push(
            Row::new(
                format!(
                    "{figure}: median chunk ({} chunks, {:.0}% of them ≤ 16 KiB; half the bytes in chunks ≤ {} B; 10% ≤ {} B, 90% ≤ {} B, largest {} B; {:.0} MB/s)",
                    chunks.sizes.len(),
                    100.0 * chunks.share_at_most(16 << 10),
                    chunks.by_bytes(0.5),
                    chunks.by_bytes(0.1),
                    chunks.by_bytes(0.9),
                    chunks.largest(),
                    chunks.total() as f64 / 1e6 / chunks.secs,
                ),
                Some(Value::bytes(median as f64)),
            )
            .beside("a TLS record's most plaintext", Some(Value::bytes(16384.0))),
        );
    }
    real
}

/// The header-only parse over pydicom's corpus beside pydicom's `dcmread(stop_before_pixels)`.
fn header(table: &mut Table) {
    let py = root().join(".venv/bin/python");
    let files: Vec<PathBuf> = Command::new(&py)
        .arg(root().join("scripts/dicom_reference.py"))
        .arg("--list")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(PathBuf::from)
                .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
                .collect()
        })
        .unwrap_or_default();
    let figure = |n: usize| format!("header-only parse over pydicom's {n} test `.dcm` files");
    if files.is_empty() {
        table.push(
            Row::new(figure(0), None)
                .beside("pydicom (corpus not found: `make setup`)", None)
                .goal(Goal::RatioAtLeast(20.0)),
        );
        return;
    }
    reset_peak_rss();
    let contents: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    let rounds = 20;
    let start = Instant::now();
    let mut parsed = 0;
    for _ in 0..rounds {
        for c in &contents {
            if inspection::dicom::parse_header(c).is_ok() {
                parsed += 1;
            }
        }
    }
    let ours = (rounds * contents.len()) as f64 / start.elapsed().as_secs_f64();
    let script = "import sys, time, warnings\nwarnings.simplefilter('ignore')\nimport pydicom\nfiles = sys.argv[1:]\nstart = time.perf_counter(); n = 0\nfor f in files:\n    try:\n        pydicom.dcmread(f, stop_before_pixels=True); n += 1\n    except Exception:\n        pass\nprint(len(files) / (time.perf_counter() - start))\n";
    let theirs: Option<f64> = Command::new(&py)
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok());
    table.push(
        Row::new(
            format!("{} ({} parse)", figure(contents.len()), parsed / rounds),
            Some(Value::per_s(ours, "files/s")),
        )
        .beside(
            "pydicom `dcmread(stop_before_pixels=True)`, same files",
            theirs.map(|t| Value::per_s(t, "files/s")),
        )
        .goal(Goal::RatioAtLeast(20.0)),
    );
}

/// The reference-data cache beside `RwLock<HashMap>`: 2 readers, a writer replacing the data every ms.
fn reference_cache(table: &mut Table) {
    let data = cache::Data::load(&root());
    let swap = cache::arc_swap(&data);
    let lock = cache::rw_lock(&data);
    let what = format!(
        "{} drug codes, 2 reader threads, a writer replacing the data every 1 ms",
        data.len()
    );
    table.push(
        Row::new(
            format!("reference cache (ArcSwap snapshot) reads/s; {what}"),
            Some(Value::per_s(swap.reads_per_second, "reads/s")),
        )
        .beside(
            "RwLock<HashMap> reads/s, same conditions",
            Some(Value::per_s(lock.reads_per_second, "reads/s")),
        )
        .goal(Goal::RatioAtLeast(5.0)),
    );
    table.push(
        Row::new(
            "reference cache p99 read latency",
            Some(Value::per_s(swap.p99_ns, "ns")),
        )
        .beside("RwLock<HashMap> p99", Some(Value::per_s(lock.p99_ns, "ns")))
        .goal(Goal::AtMost(1000.0)),
    );
    table.push(
        Row::new(
            "reference cache p50 read latency",
            Some(Value::per_s(swap.p50_ns, "ns")),
        )
        .beside("RwLock<HashMap> p50", Some(Value::per_s(lock.p50_ns, "ns"))),
    );
}

/// The local HttpApi under wrk on loopback (release clinflow-local over its own moto).
fn api(table: &mut Table) {
    let load = api_load::run(&root());
    let gateway = load.gateway;
    for (route, l) in [
        (
            "GET /v1/metadata/drug_code/N02BE01 (reference cache, no AWS call)",
            load.metadata,
        ),
        (
            "GET /v1/uploads/{id} (one DynamoDB GetItem on moto)",
            load.get_upload,
        ),
        (
            "POST /v1/uploads (a transaction and a presign on moto)",
            load.create_upload,
        ),
    ] {
        let refused = if l.non_2xx > 0 {
            format!(
                " ({} of {} answers not 2xx: not counted)",
                l.non_2xx, l.requests
            )
        } else {
            String::new()
        };
        table.push(
            Row::new(
                format!("{route}: requests served/s, wrk 2 threads 16 connections 10 s{refused}"),
                Some(Value::per_s(l.served_per_second(), "req/s")),
            )
            .beside(
                "the local gateway alone (404 of an unrouted path)",
                Some(Value::per_s(gateway.requests_per_second, "req/s")),
            ),
        );
        table.push(
            Row::new(format!("{route}: p99"), Some(Value::per_s(l.p99_ms, "ms"))).beside(
                "the local gateway alone, p99",
                Some(Value::per_s(gateway.p99_ms, "ms")),
            ),
        );
    }
    table.push(
        Row::new(
            "peak RSS of the local stack process (`clinflow-local up`: gateway, every function in-process) after the four loads (its VmHWM; moto's process not counted)",
            load.stack_peak_rss_mib.map(Value::mib),
        ),
    );
}

/// Cold start of every function binary beside the in-run hello-world and the quoted anchors
/// (`coldstart.rs`); binary sizes beside the 8 MB goal.
async fn coldstart(table: &mut Table) {
    const QUOTED: &str =
        "maxday/lambda-perf, August 2026, on Lambda: quoted by the issue, not measured here";
    let release = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| root().join("target/release"));
    let emulator = local_stack::emulator::Emulator::from_env_or_start()
        .expect("the emulator (make setup installs moto)");
    let options = local_stack::Options {
        stack_name: format!("cold{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        api_addr: "127.0.0.1:0".parse().expect("addr"),
        lambda_addr: "127.0.0.1:0".parse().expect("addr"),
        pollers: false,
        admin: emulator.admin.clone(),
        ..local_stack::Options::default()
    };
    let stack = local_stack::LocalStack::start(&emulator.endpoint, options)
        .await
        .expect("local stack");
    let mut targets = coldstart::targets(&stack, &release);
    targets.push(coldstart::Target {
        name: "hello-lambda".into(),
        executable: release.join("hello-lambda"),
        environment: Default::default(),
        memory_mb: 128,
        credentials: None,
    });
    let mut measured = coldstart::measure(&targets, &stack.aws_endpoint, &stack.region).await;
    let Some(hello) = measured.pop() else { return };
    let ms = |v: Option<f64>| v.map(|v| Value::per_s(v, "ms"));
    let hello_figure = format!(
        "hello-world of our own (`hello-lambda`: lambda_runtime, no-op handler, no SDK client), init to first `/next`, median of {} (p90 {}; peak RSS {})",
        hello.init_ms.len(),
        ms(hello.p90()).map_or("—".into(), |v| v.to_string()),
        hello.peak_rss_mib.map_or("—".into(), |v| Value::mib(v).to_string()),
    );
    for (anchor, value) in [
        ("Rust hello-world init on arm64, 13.6–13.9 ms", 13.75),
        ("Go hello-world init, 41–44 ms", 42.5),
        ("Node 22 hello-world init, 124–130 ms", 127.0),
    ] {
        table.push(
            Row::new(hello_figure.clone(), ms(hello.median()))
                .beside(format!("{anchor} ({QUOTED}; midpoint)"), ms(Some(value))),
        );
    }
    let hello_anchor = "our hello-world, same run";
    for f in &measured {
        let figure = match &f.failure {
            Some(e) if f.init_ms.is_empty() => format!(
                "cold start of {} ({}): **failed**: {e}",
                f.name,
                f.executable.display()
            ),
            _ => format!(
                "cold start of {}: spawn to first `/next` with its SDK clients built, template env, median of {} (p90 {}; peak RSS {}){}",
                f.name,
                f.init_ms.len(),
                ms(f.p90()).map_or("—".into(), |v| v.to_string()),
                f.peak_rss_mib.map_or("—".into(), |v| Value::mib(v).to_string()),
                f.failure.as_deref().map_or(String::new(), |e| format!("; a start failed: {e}")),
            ),
        };
        table.push(
            Row::new(figure, ms(f.median()))
                .beside(hello_anchor, ms(hello.median()))
                .goal(Goal::AtMost(20.0)),
        );
    }
    // The entropy start-up: the first random bytes a fresh process draws from aws-lc.
    let mut first: Vec<f64> = (0..coldstart::STARTS)
        .filter_map(|_| {
            let out = Command::new(release.join("first-random")).output().ok()?;
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    first.sort_by(f64::total_cmp);
    table.push(
        Row::new(
            format!(
                "aws-lc's first 32 random bytes in a fresh process (its DRBG seeded; what the first TLS handshake pays), built with `AWS_LC_SYS_NO_JITTER_ENTROPY=1`, median of {} (p90 {})",
                first.len(),
                ms(coldstart::quantile(&first, 0.9)).map_or("—".into(), |v| v.to_string())
            ),
            ms(coldstart::quantile(&first, 0.5)),
        )
        .beside(
            "with CPU jitter entropy, 38–50 ms (aws-lc-rs's figure quoted by the issue, not measured here; upper end)",
            ms(Some(50.0)),
        ),
    );
    // Where a function's init goes, step by step in fresh processes (`src/bin/init-phases.rs`):
    // the SDK's defaults (each client its own HTTP client, a connector built and dropped at each
    // client's construction) beside shared::aws (one HTTP client, its connector built at the first
    // request). The first call pays the connector (the root store), credentials and a connection.
    let phases = |mode: &[&str]| -> Vec<(String, Vec<f64>)> {
        let mut steps: Vec<(String, Vec<f64>)> = Vec::new();
        for _ in 0..coldstart::STARTS {
            let Ok(out) = Command::new(release.join("init-phases"))
                .args(mode)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("AWS_REGION", &stack.region)
                .env("AWS_ENDPOINT_URL", &stack.aws_endpoint)
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .output()
            else {
                continue;
            };
            for pair in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let Some((name, ms)) = pair.split_once('=') else {
                    continue;
                };
                let Ok(ms) = ms.parse::<f64>() else { continue };
                match steps.iter_mut().find(|(n, _)| n == name) {
                    Some((_, v)) => v.push(ms),
                    None => steps.push((name.to_string(), vec![ms])),
                }
            }
        }
        for (_, v) in &mut steps {
            v.sort_by(f64::total_cmp);
        }
        steps
    };
    let before = phases(&["sdk-default"]);
    let now = phases(&[]);
    let median = |steps: &[(String, Vec<f64>)], name: &str| {
        steps
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| coldstart::quantile(v, 0.5))
    };
    let clients = |steps: &[(String, Vec<f64>)]| {
        ["s3", "dynamodb", "sqs", "secretsmanager"]
            .iter()
            .map(|c| median(steps, c))
            .sum::<Option<f64>>()
    };
    let fmt = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2} ms"));
    table.push(
        Row::new(
            format!(
                "init steps, fresh process, medians of {}: `aws_config` with shared::aws's one HTTPS client (the root store loaded once, at the first client's validation) — load {}; the four clients {} (S3 {}, DynamoDB {}, SQS {}, Secrets Manager {}); JSON log subscriber {}",
                coldstart::STARTS,
                fmt(median(&now, "load_defaults")),
                fmt(clients(&now)),
                fmt(median(&now, "s3")),
                fmt(median(&now, "dynamodb")),
                fmt(median(&now, "sqs")),
                fmt(median(&now, "secretsmanager")),
                fmt(median(&now, "telemetry")),
            ),
            ms(median(&now, "load_defaults")
                .zip(clients(&now))
                .map(|(a, b)| a + b)),
        )
        .beside(
            format!(
                "`aws_config::load_defaults` and the SDK's default HTTP client per client (before): load {}; the four clients {} (S3 {}, DynamoDB {}, SQS {}, Secrets Manager {})",
                fmt(median(&before, "load_defaults")),
                fmt(clients(&before)),
                fmt(median(&before, "s3")),
                fmt(median(&before, "dynamodb")),
                fmt(median(&before, "sqs")),
                fmt(median(&before, "secretsmanager")),
            ),
            ms(median(&before, "load_defaults")
                .zip(clients(&before))
                .map(|(a, b)| a + b)),
        ),
    );
    table.push(
        Row::new(
            format!(
                "the first SDK call of a fresh process (DynamoDB GetItem on moto: credentials, the connector with its root store, a connection), shared::aws, median of {} (the second call: {})",
                coldstart::STARTS,
                fmt(median(&now, "second_call")),
            ),
            ms(median(&now, "first_call")),
        )
        .beside(
            format!(
                "the same with the SDK's default HTTP client (second call: {})",
                fmt(median(&before, "second_call"))
            ),
            ms(median(&before, "first_call")),
        ),
    );
    let mb = |v: Option<f64>| v.map(|v| Value::per_s(v, "MB"));
    for f in &measured {
        table.push(
            Row::new(
                format!(
                    "release binary of {} (x86_64, stripped; `{}`)",
                    f.name,
                    f.executable
                        .file_name()
                        .map_or(String::new(), |n| n.to_string_lossy().into_owned())
                ),
                mb(f.size_mb()),
            )
            .beside("our hello-world binary", mb(hello.size_mb()))
            .goal(Goal::AtMost(8.0)),
        );
    }
    // The deployable arm64 bootstraps, when `make package` has built them.
    for f in &measured {
        let bootstrap = root()
            .join(".aws-sam/build")
            .join(&f.name)
            .join("bootstrap");
        if let Some(size) = coldstart::file_mb(&bootstrap) {
            table.push(
                Row::new(
                    format!("`sam build` bootstrap of {} (aarch64)", f.name),
                    mb(Some(size)),
                )
                .goal(Goal::AtMost(8.0)),
            );
        }
    }
}

/// A group's peak RSS row: this process's VmHWM since the group's [`reset_peak_rss`].
fn group_rss(table: &mut Table, what: &str) {
    table.push(Row::new(
        format!("peak RSS of group {what} (this process's VmHWM, reset before the group)"),
        peak_rss_mib().map(Value::mib),
    ));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1024);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let run = |group: &str| only.as_deref().is_none_or(|o| o == group);
    let started = Instant::now();
    let machine = Machine::here();
    // Other work on the machine slows the two-thread inspector more than single-thread openssl:
    // say how busy it was.
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "?".into())
    };
    let load_before = load();
    let bench_dir = root().join("target/bench");
    let mut table = Table::default();

    let path = (run("ingest") || run("sdk")).then(|| ingest::large_file(&bench_dir, mib));
    if let (true, Some(path)) = (run("ingest"), &path) {
        ingest(&mut table, path).await;
    }
    if let (true, Some(path)) = (run("sdk"), &path) {
        reset_peak_rss();
        if let Some(piece) = sdk(&mut table, &bench_dir.join("tls")).await {
            ingest_at(&mut table, path, piece).await;
        }
        table.push(
            Row::new(
                "peak RSS of this group: the two GetObjects into the inspector, then the pass at the SDK's chunk size (VmHWM)",
                peak_rss_mib().map(Value::mib),
            )
            .beside("the largest object read", Some(Value::mib(mib.max(256) as f64)))
            .goal(Goal::AtMost(64.0)),
        );
    }
    if run("header") {
        header(&mut table);
        group_rss(
            &mut table,
            "header: the pydicom corpus read into memory and parsed 20 times",
        );
    }
    if run("cache") {
        reset_peak_rss();
        reference_cache(&mut table);
        group_rss(
            &mut table,
            "cache: the reference data, its two copies and the reader threads",
        );
    }
    if run("report") {
        reset_peak_rss();
        for (figure, value, anchor, anchor_value) in report::run().await {
            table.push(
                Row::new(figure, Some(Value::per_s(value, "ms")))
                    .beside(anchor, Some(Value::per_s(anchor_value, "ms"))),
            );
        }
        group_rss(
            &mut table,
            "report: the local stack in-process (provisioning, functions, gateway) and the reports",
        );
    }
    if run("ratelimit") {
        reset_peak_rss();
        for (figure, value, anchor, anchor_value) in rate_limit::run().await {
            table.push(
                Row::new(figure, Some(Value::per_s(value, "decisions/s")))
                    .beside(anchor, Some(Value::per_s(anchor_value, "decisions/s"))),
            );
        }
        group_rss(
            &mut table,
            "ratelimit: the limiter's DynamoDB client and the in-process one",
        );
    }
    if run("coldstart") {
        coldstart(&mut table).await;
    }
    if run("api") {
        api(&mut table);
    }
    if run("export") {
        for f in export::run() {
            table.push(
                Row::new(
                    format!(
                        "{} export of {} ePRO entries (export-worker's renderer in-process, each 5 MiB part dropped as shipped): wall seconds; {:.2} s of CPU, {:.0} KiB out",
                        f.what, export::ENTRIES, f.cpu, f.bytes as f64 / 1024.0
                    ),
                    Some(Value::per_s(f.wall, "s")),
                )
                .beside(
                    "the old service's PDF export after its fix (quoted by the issue, not measured here)",
                    Some(Value::per_s(export::OLD_SERVICE_SECONDS, "s")),
                )
                .goal(Goal::AtMost(1.0)),
            );
            table.push(
                Row::new(
                    format!("peak RSS of the {} export (VmHWM, reset before it)", f.what),
                    Some(Value::mib(f.rss)),
                )
                .goal(Goal::AtMost(64.0)),
            );
        }
    }

    let markdown = table.markdown();
    println!("{markdown}");
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let commit = Command::new("git")
        .args([
            "-C",
            &root().to_string_lossy(),
            "describe",
            "--always",
            "--dirty",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let took = started.elapsed().as_secs_f64();
    let busy = format!(
        "load average {load_before} before the run, {} after, on {} cores",
        load(),
        machine.cores
    );
    println!("{machine}; {date}; {commit}; {took:.0} s; {busy}");
    if only.is_none() {
        let results = format!(
            "# Benchmark results\n\n`make bench` on {date} at {commit}, {took:.0} s.\n\nMachine: {machine}; {busy}.\n\n\
             Each figure beside its anchor measured in the same run; ratio = figure / anchor. MB = 10^6 bytes.\n\n{markdown}"
        );
        let path = root().join("benchmarks/RESULTS.md");
        match std::fs::write(&path, results) {
            Ok(()) => println!("written to {}", path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
    }
}
