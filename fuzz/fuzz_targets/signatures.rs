//! The ClamAV-format signature database parser over arbitrary text, as a `.hdb`, `.hsb` or `.ndb`
//! file (the first byte chooses). A database that parses is compiled into the scan engine, which
//! then scans a few bytes (what follows the first NUL of the input, or a fixed sample), whole and
//! in chunks: no panic on any signature the parser accepted, and the same verdict (infected or not)
//! whatever the chunking.
#![no_main]

use inspection::scan::engine::Engine;
use inspection::scan::signatures::SignatureDb;
use inspection::scan::Verdict;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use std::sync::Arc;

const SAMPLE: &[u8] =
    b"\0\0\0\0DICM\x02\0\x10\0UI\x14\0ABCDEFGHIJKLMNOPQRST\xff\xfe\x00\xe0 EICAR TAIL";

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let file = match which % 3 {
        0 => "fuzz.hdb",
        1 => "fuzz.hsb",
        _ => "fuzz.ndb",
    };
    let (text, scanned) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, SAMPLE),
    };
    let text = String::from_utf8_lossy(text);
    let mut db = SignatureDb::default();
    db.add_file(file, &text).expect("a known extension");
    if db.is_empty() {
        return;
    }
    let Ok(engine) = Engine::new(db) else {
        return;
    };
    let engine = Arc::new(engine);
    let sha256: [u8; 32] = Sha256::digest(scanned).into();

    let mut scan = engine.scan(scanned.len() as u64);
    scan.update(scanned);
    let whole = scan.finish(&sha256);

    let mut scan = engine.scan(scanned.len() as u64);
    let step = 1 + usize::from(which / 3) % 7;
    for chunk in scanned.chunks(step) {
        scan.update(chunk);
    }
    let chunked = scan.finish(&sha256);

    let infected = |v: &Verdict| matches!(v, Verdict::Infected { .. });
    assert_eq!(
        infected(&whole),
        infected(&chunked),
        "verdicts differ by chunking: {whole:?} vs {chunked:?} ({step}-byte chunks)"
    );
});
