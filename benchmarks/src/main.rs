//! `cargo run --release -p clinflow-benchmarks [-- SIZE_MIB]`
//!
//! 1. Writes a synthetic DICOM file of SIZE_MIB (default 1024) MiB of pixel data under
//!    target/bench/ (kept between runs).
//! 2. Times `openssl dgst -sha256` on it: the anchor.
//! 3. Times the one-pass inspector (SHA-256 + built-in scanner with 1,000 body signatures + EICAR +
//!    DICOM header parser) on the same file, read in 1 MiB chunks; reports MB/s and the process's
//!    peak RSS (VmHWM).
//! 4. Times the header-only parse over pydicom's corpus (files/s) beside pydicom's
//!    `dcmread(stop_before_pixels=True)` over the same files, when .venv has pydicom.

use inspection::inspect::Inspector;
use inspection::scan::signatures::SignatureDb;
use inspection::scan::BuiltinScanner;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const MIB: u64 = 1024 * 1024;
const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn large_file(mib: u64) -> PathBuf {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("synthetic-{mib}MiB.dcm"));
    let pixel = mib * MIB;
    let head = inspection::dicom::synthetic::header(1, pixel);
    if std::fs::metadata(&path).map(|m| m.len()).ok() == Some(head.len() as u64 + pixel) {
        return path;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    f.write_all(&head).unwrap();
    let mut block = vec![0u8; MIB as usize];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..mib {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
    path
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn scanner(extra_ndb: &str) -> BuiltinScanner {
    let mut db = SignatureDb::default();
    // 1,000 body signatures of pseudo-random bytes, in the forms real databases use: plain hex,
    // a one-byte wildcard, an unbounded gap, a bounded gap.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut bytes = |n: usize| -> String {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{:02x}", x as u8)
            })
            .collect()
    };
    let ndb: String = (0..1000)
        .map(|i| {
            let body = match i % 4 {
                0 => bytes(24),
                1 => format!("{}??{}", bytes(12), bytes(12)),
                2 => format!("{}*{}", bytes(10), bytes(10)),
                _ => format!("{}{{4-16}}{}", bytes(8), bytes(8)),
            };
            format!("Bench.Sig{i}:0:*:{body}\n")
        })
        .collect();
    db.add_file("bench.ndb", &ndb).unwrap();
    db.add_file("eicar.ndb", &format!("Eicar:0:*:{}\n", hex_of(EICAR)))
        .unwrap();
    db.add_file(
        "eicar.hdb",
        "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Hash\n",
    )
    .unwrap();
    if !extra_ndb.is_empty() {
        db.add_file("extra.ndb", extra_ndb).unwrap();
    }
    BuiltinScanner::new(db, u64::MAX).unwrap()
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn openssl_mb_s(path: &Path, size: u64) -> Option<f64> {
    let start = Instant::now();
    let out = Command::new("openssl")
        .arg("dgst")
        .arg("-sha256")
        .arg(path)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| size as f64 / 1e6 / start.elapsed().as_secs_f64())
}

async fn inspector_mb_s(
    path: &Path,
    size: u64,
    scanner: &BuiltinScanner,
    chunk: usize,
) -> (f64, String) {
    let mut file = std::fs::File::open(path).unwrap();
    let start = Instant::now();
    let mut inspector = Inspector::start(scanner, size).await.unwrap();
    loop {
        // A fresh buffer per chunk, as a network stream hands out (no copy into Bytes).
        let mut buf = vec![0u8; chunk];
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        buf.truncate(n);
        inspector.update(bytes::Bytes::from(buf)).await.unwrap();
    }
    let inspection = inspector.finish().await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    let verdict = format!(
        "{:?}, dicom ok: {}",
        inspection.verdict,
        inspection.dicom.is_ok()
    );
    (size as f64 / 1e6 / secs, verdict)
}

/// Reads the file in 1 MiB chunks into `f`; the seconds it took.
fn read_through(path: &Path, mut f: impl FnMut(&[u8])) -> f64 {
    let mut file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; MIB as usize];
    let start = Instant::now();
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            return start.elapsed().as_secs_f64();
        }
        f(&buf[..n]);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn corpus() -> Vec<PathBuf> {
    let py = root().join(".venv/bin/python");
    let out = Command::new(&py)
        .arg(root().join("scripts/dicom_reference.py"))
        .arg("--list")
        .output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(PathBuf::from)
            .collect()
    })
    .unwrap_or_default()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let path = large_file(mib);
    let size = std::fs::metadata(&path).unwrap().len();
    println!("file: {} ({:.0} MB)", path.display(), size as f64 / 1e6);
    // Warm the page cache so both read from memory; then three rounds, the two interleaved so a
    // noisy neighbour weighs on both alike; the median of each.
    let _ = openssl_mb_s(&path, size);
    let bench_scanner = scanner("");
    let (mut anchors, mut ours, mut verdict) = (Vec::new(), Vec::new(), String::new());
    for _ in 0..3 {
        anchors.extend(openssl_mb_s(&path, size));
        let (mb_s, v) = inspector_mb_s(&path, size, &bench_scanner, MIB as usize).await;
        ours.push(mb_s);
        verdict = v;
    }
    let ours = median(&mut ours);
    match (!anchors.is_empty()).then(|| median(&mut anchors)) {
        Some(a) => println!(
            "one-pass inspector: {ours:.0} MB/s   openssl dgst -sha256: {a:.0} MB/s   ratio {:.2}   (medians of 3; {verdict})",
            ours / a
        ),
        None => println!("one-pass inspector: {ours:.0} MB/s (openssl not found)"),
    }
    // An S3 body streams in chunks of some KiB, not MiB: the same pass at that size.
    let (small, _) = inspector_mb_s(&path, size, &bench_scanner, 16 * 1024).await;
    println!(
        "  the same pass in 16 KiB chunks (as a network stream hands them out): {small:.0} MB/s"
    );
    // Where the time goes: each part alone over the same bytes.
    let mb_s = |secs: f64| size as f64 / 1e6 / secs;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let secs = read_through(&path, |b| sha2::Digest::update(&mut hasher, b));
    println!("  sha256 alone: {:.0} MB/s", mb_s(secs));
    let mut scan = bench_scanner.engine_scan(size);
    let secs = read_through(&path, |b| scan.update(b));
    println!("  scan alone: {:.0} MB/s", mb_s(secs));
    let mut parser = inspection::dicom::HeaderParser::new(size);
    let secs = read_through(&path, |b| parser.feed(b));
    println!("  parse alone: {:.0} MB/s", mb_s(secs));
    // The filter's weak spot: short anchors. Signatures added to the same database, scanned alone
    // over the same file.
    // (Four two-byte runs apart: no match by chance, so the whole file is scanned.)
    let short: String = (0..10u8)
        .map(|i| {
            let run = |k: u8| format!("{:02x}{:02x}", 0x30 + i * 7 + k, 0x80 + i * 5 + k);
            format!(
                "Bench.Short{i}:0:*:{}??{}??{}??{}\n",
                run(0),
                run(1),
                run(2),
                run(3)
            )
        })
        .collect();
    // The worst case: segments of two bytes alone (here pinned at offset 0, so they never match
    // and the whole file is scanned).
    let tiny: String = (0..10u8)
        .map(|i| format!("Bench.Tiny{i}:0:0:{:02x}{:02x}\n", 0x30 + i, 0x80 + i))
        .collect();
    for (what, extra) in [
        (
            "10 signatures whose exact runs are two bytes, split by ??",
            short,
        ),
        (
            "10 signatures of one two-byte segment (the worst case)",
            tiny,
        ),
    ] {
        let mut scan = scanner(&extra).engine_scan(size);
        let secs = read_through(&path, |b| scan.update(b));
        println!(
            "  scan alone, {what} added: {:.0} MB/s ({:?})",
            mb_s(secs),
            scan.finish(&[0; 32])
        );
    }
    println!(
        "peak RSS of this process: {:.1} MiB (the file is {:.0} MiB)",
        peak_rss_mib(),
        size as f64 / MIB as f64
    );

    let files: Vec<PathBuf> = corpus()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    if files.is_empty() {
        println!("header parse: pydicom corpus not found (make setup)");
        return;
    }
    let contents: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
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
    let out = Command::new(root().join(".venv/bin/python"))
        .arg("-c")
        .arg(script)
        .args(&files)
        .output();
    let theirs: Option<f64> = out
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok());
    match theirs {
        Some(t) => println!(
            "header parse over {} corpus files: {ours:.0} files/s   pydicom dcmread(stop_before_pixels=True): {t:.0} files/s   ratio {:.1}x   ({} parsed per round)",
            contents.len(),
            ours / t,
            parsed / rounds
        ),
        None => println!("header parse: {ours:.0} files/s (pydicom not runnable)"),
    }
}
