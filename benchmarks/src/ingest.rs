//! Ingest: the one-pass inspector (SHA-256 + the built-in scanner + the DICOM header parser) over
//! a large synthetic DICOM, beside `openssl dgst -sha256` over the same file; each part alone; the
//! scanner's worst case.

use bytes::{Bytes, BytesMut};
use inspection::inspect::Inspector;
use inspection::scan::signatures::SignatureDb;
use inspection::scan::BuiltinScanner;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub const MIB: u64 = 1024 * 1024;
const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// A synthetic DICOM of `mib` MiB of pseudo-random pixel data under `dir` (kept between runs).
pub fn large_file(dir: &Path, mib: u64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
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

/// The benchmark's database: 1,000 body signatures of pseudo-random bytes in the forms real
/// databases use (plain hex, a one-byte wildcard, an unbounded gap, a bounded gap), EICAR by body
/// and by hash, and `extra_ndb`.
pub fn scanner(extra_ndb: &str) -> BuiltinScanner {
    let mut db = SignatureDb::default();
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
    let eicar: String = EICAR.iter().map(|b| format!("{b:02x}")).collect();
    db.add_file("eicar.ndb", &format!("Eicar:0:*:{eicar}\n"))
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

/// The worst case for the scanner's prefilter: 10 signatures that are one two-byte segment each
/// (pinned at offset 0, so they never match and the whole file is scanned).
pub fn worst_case_signatures() -> String {
    (0..10u8)
        .map(|i| format!("Bench.Tiny{i}:0:0:{:02x}{:02x}\n", 0x30 + i, 0x80 + i))
        .collect()
}

/// 10 signatures whose exact runs are two bytes, split by `??` (never matching here).
pub fn short_run_signatures() -> String {
    (0..10u8)
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
        .collect()
}

/// A throughput two ways: over the wall-clock time, and over the CPU time the work got (what it
/// would run at on a core of its own; the machine may be shared).
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub wall: f64,
    pub cpu: f64,
}

/// Seconds on a CPU of the calling thread.
fn thread_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// Seconds on a CPU of the waited-for children (user + system, clock ticks of 1/100 s).
fn children_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis: cutime and cstime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(13)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

/// `openssl dgst -sha256` over the file, MB/s.
pub fn openssl_mb_s(path: &Path) -> Option<Rate> {
    let size = std::fs::metadata(path).ok()?.len();
    let cpu = children_cpu_secs();
    let start = Instant::now();
    let out = Command::new("openssl")
        .arg("dgst")
        .arg("-sha256")
        .arg(path)
        .output()
        .ok()?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = children_cpu_secs() - cpu;
    out.status.success().then(|| Rate {
        wall: size as f64 / 1e6 / wall,
        cpu: size as f64 / 1e6 / cpu.max(0.01),
    })
}

/// The file read in 1 MiB blocks, handed on as pieces of `piece` bytes: slices of the block, as
/// hyper hands out slices of its read buffer.
pub fn pieces(path: &Path, piece: usize, mut f: impl FnMut(Bytes)) {
    let mut file = std::fs::File::open(path).unwrap();
    loop {
        let mut block = BytesMut::zeroed(MIB as usize);
        let n = file.read(&mut block).unwrap();
        if n == 0 {
            return;
        }
        block.truncate(n);
        let block = block.freeze();
        let mut at = 0;
        while at < n {
            let end = (at + piece).min(n);
            f(block.slice(at..end));
            at = end;
        }
    }
}

/// The one-pass inspector over the file in pieces of `piece` bytes: MB/s and what it found.
pub async fn inspector_mb_s(path: &Path, scanner: &BuiltinScanner, piece: usize) -> (f64, String) {
    let size = std::fs::metadata(path).unwrap().len();
    let start = Instant::now();
    let mut inspector = Inspector::start(scanner, size).await.unwrap();
    let mut queue = Vec::new();
    let mut file = std::fs::File::open(path).unwrap();
    loop {
        let mut block = BytesMut::zeroed(MIB as usize);
        let n = file.read(&mut block).unwrap();
        if n == 0 {
            break;
        }
        block.truncate(n);
        let block = block.freeze();
        queue.clear();
        let mut at = 0;
        while at < n {
            let end = (at + piece).min(n);
            queue.push(block.slice(at..end));
            at = end;
        }
        for p in queue.drain(..) {
            inspector.update(p).await.unwrap();
        }
    }
    let inspection = inspector.finish().await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    let found = format!(
        "{:?}, DICOM header {}",
        inspection.verdict,
        if inspection.dicom.is_ok() {
            "parsed"
        } else {
            "refused"
        }
    );
    (size as f64 / 1e6 / secs, found)
}

/// MB/s of `f` over the file in 1 MiB reads, on this thread.
pub fn alone_mb_s(path: &Path, mut f: impl FnMut(&[u8])) -> Rate {
    let size = std::fs::metadata(path).unwrap().len();
    let cpu = thread_cpu_secs();
    let start = Instant::now();
    pieces(path, MIB as usize, |b| f(&b));
    Rate {
        wall: size as f64 / 1e6 / start.elapsed().as_secs_f64(),
        cpu: size as f64 / 1e6 / (thread_cpu_secs() - cpu).max(1e-6),
    }
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}
