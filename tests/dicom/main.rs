//! The header parser against pydicom, on every file of pydicom's test corpus and pydicom-data
//! (every common transfer syntax): each file pydicom reads agrees on every extracted attribute, or
//! is named below with the documented reason; each file pydicom refuses is refused too, or named.
//! Every file is also fed in several chunkings, which must not change the result.

use clinflow_tests::reference::{corpus, differences, reference, DOCUMENTED};
use shared::dicom::{parse_header, DicomHeader, HeaderParser};
use std::collections::BTreeMap;

fn chunked(bytes: &[u8], chunk: usize) -> Result<DicomHeader, shared::dicom::DicomError> {
    let mut p = HeaderParser::new(bytes.len() as u64);
    for c in bytes.chunks(chunk) {
        p.feed(c);
    }
    p.finish()
}

#[test]
fn every_corpus_file_agrees_with_pydicom_or_is_documented() {
    let files = corpus();
    assert!(
        files.len() > 200,
        "corpus: {} files (make setup installs pydicom-data)",
        files.len()
    );
    let refs = reference(&files);
    let mut report = Vec::new();
    let (mut agreed, mut refused_both, mut documented) = (0, 0, 0);
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let name = file.rsplit('/').next().unwrap();
        let parsed = parse_header(&bytes);
        for chunk in [1usize, 7, 131, 4096] {
            if bytes.len() > 2_000_000 && chunk < 4096 {
                continue;
            }
            assert_eq!(
                chunked(&bytes, chunk),
                parsed,
                "{name}: chunks of {chunk} change the result"
            );
        }
        let r = &refs[file];
        match (r["ok"].as_bool().unwrap(), &parsed) {
            (true, Ok(h)) => {
                let diffs = differences(h, r);
                if diffs.is_empty() {
                    agreed += 1;
                } else {
                    report.push(format!("{name}: DIFFERS {}", diffs.join("; ")));
                }
            }
            (true, Err(e)) => match DOCUMENTED.iter().find(|(n, _)| *n == name) {
                Some((_, why)) if e.to_string().starts_with(why) => documented += 1,
                _ => report.push(format!("{name}: WE REFUSE ({e}) what pydicom reads")),
            },
            (false, Err(e)) => {
                refused_both += 1;
                println!("  refused by both: {name}: {e}");
            }
            (false, Ok(_)) => report.push(format!(
                "{name}: WE READ what pydicom refuses ({})",
                r["error"]
            )),
        }
    }
    println!(
        "{agreed} agree with pydicom, {documented} refused as documented, {refused_both} refused by both, {} unexplained",
        report.len()
    );
    for line in &report {
        println!("  {line}");
    }
    assert!(report.is_empty(), "{report:#?}");
    assert_eq!(documented, DOCUMENTED.len());
    assert!(agreed >= 227, "{agreed}");
}

/// xorshift: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Property: whatever the bytes — corpus files with flipped bits, overwritten lengths, cut at any
/// offset, random garbage after a valid preamble — the parser returns a header or a reason, never
/// panics, and never holds more than a fixed number of bytes.
#[test]
fn hostile_inputs_never_panic_and_memory_stays_bounded() {
    let files: Vec<Vec<u8>> = corpus()
        .iter()
        .filter(|f| f.ends_with(".dcm"))
        .map(|f| std::fs::read(f).unwrap())
        .filter(|b| b.len() < 300_000)
        .collect();
    assert!(files.len() > 100);
    let mut rng = Rng(0x5eed_c0de_1234_5678);
    let mut max_memory = 0;
    let mut outcomes = BTreeMap::new();
    for round in 0..30_000 {
        let mut bytes = files[rng.below(files.len())].clone();
        match round % 4 {
            // Flip bits.
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(bytes.len());
                    bytes[i] ^= 1 << rng.below(8);
                }
            }
            // Overwrite 4 bytes after the preamble with a huge or random length.
            1 => {
                let i = 132 + rng.below(bytes.len().saturating_sub(136).max(1));
                let v: u32 = if rng.below(2) == 0 {
                    0xFFFF_FFF0 - rng.below(100) as u32
                } else {
                    rng.next() as u32
                };
                if i + 4 <= bytes.len() {
                    bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            // Truncate anywhere.
            2 => bytes.truncate(rng.below(bytes.len())),
            // Garbage after a valid preamble.
            _ => {
                let keep = 132 + rng.below(200);
                bytes.truncate(keep.min(bytes.len()));
                for _ in 0..rng.below(4096) {
                    bytes.push(rng.next() as u8);
                }
            }
        }
        let mut parser = HeaderParser::new(bytes.len() as u64);
        for c in bytes.chunks(1 + rng.below(5000)) {
            parser.feed(c);
            max_memory = max_memory.max(parser.memory_bytes());
        }
        let kind = match parser.finish() {
            Ok(_) => "parsed",
            Err(shared::dicom::DicomError::NotDicom(_)) => "not_dicom",
            Err(shared::dicom::DicomError::Malformed(_)) => "malformed",
        };
        *outcomes.entry(kind).or_insert(0) += 1;
    }
    println!("outcomes {outcomes:?}, parser memory at most {max_memory} bytes");
    assert!(max_memory <= 64 * 1024 + 2048, "{max_memory}");
    assert!(outcomes.len() == 3, "{outcomes:?}");
}

#[test]
fn a_file_cut_anywhere_is_malformed_even_after_its_pixel_data() {
    // CT_small.dcm ends with a (FFFC,FFFC) padding element after its 32 KiB of pixel data.
    let ct = clinflow_tests::dicom_file("CT_small.dcm");
    for (cut, what) in [
        (1usize, "(FFFC,FFFC)"),
        (7, "(FFFC,FFFC)"),
        (1000, "(7FE0,0010)"),
    ] {
        let truncated = &ct[..ct.len() - cut];
        let e = parse_header(truncated).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("malformed: {what}")),
            "{cut}: {e}"
        );
        assert_eq!(chunked(truncated, 8192), Err(e));
    }
}
