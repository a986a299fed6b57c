//! The header parser against pydicom, on every file of pydicom's test corpus and pydicom-data
//! (every common transfer syntax): each file pydicom reads agrees on every extracted attribute, or
//! is named below with the documented reason; each file pydicom refuses is refused too, or named.
//! Every file is also fed in several chunkings, which must not change the result.

use clinflow_tests::reference::{
    corpus, differences, patient_id_difference, reference, DOCUMENTED,
};
use shared::dicom::{parse_header, parse_with_patient_id, DicomHeader, HeaderParser, PatientId};
use std::collections::BTreeMap;

type Parsed = (
    Result<DicomHeader, shared::dicom::DicomError>,
    Option<PatientId>,
);

fn chunked(bytes: &[u8], chunk: usize) -> Parsed {
    let mut p = HeaderParser::new(bytes.len() as u64);
    for c in bytes.chunks(chunk) {
        p.feed(c);
    }
    let patient_id = p.take_patient_id();
    (p.finish(), patient_id)
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
        let parsed = parse_with_patient_id(&bytes);
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
        let (parsed, patient_id) = parsed;
        match (r["ok"].as_bool().unwrap(), &parsed) {
            (true, Ok(h)) => {
                let mut diffs = differences(h, r);
                diffs.extend(patient_id_difference(patient_id.as_ref(), r));
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
        assert_eq!(chunked(truncated, 8192).0, Err(e));
    }
}

/// Identifying attributes inside sequences of defined length, explicit and implicit VR, are found;
/// an empty or padding-only value is not "present"; no value reaches the header.
#[test]
fn identifying_attributes_are_found_in_nested_sequences_without_keeping_values() {
    fn explicit(group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&elem.to_le_bytes());
        out.extend_from_slice(vr);
        if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }
    fn item(content: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFE, 0xFF, 0x00, 0xE0];
        out.extend_from_slice(&(content.len() as u32).to_le_bytes());
        out.extend_from_slice(content);
        out
    }
    fn implicit(group: u16, elem: u16, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&elem.to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
        out
    }
    // A synthetic file: its top-level Patient ID, then (0008,1110) Referenced Study Sequence of
    // defined length holding an Accession Number, an empty Patient Name, and a UN (private)
    // sequence of defined length, implicit VR inside, holding a Referring Physician's name.
    let mut file = shared::dicom::synthetic::header_for_patient(1, 4, "PAT-77");
    let pixel_header = file.split_off(file.len() - 12);
    let nested_un = item(
        &[
            implicit(0x0008, 0x0090, b"DOE^JOHN"),
            implicit(0x0010, 0x0010, b"  "),
        ]
        .concat(),
    );
    let inner = [
        explicit(0x0008, 0x0050, b"SH", b"ACC123"),
        explicit(0x0010, 0x0010, b"PN", b""),
        explicit(0x0011, 0x1010, b"UN", &nested_un),
    ]
    .concat();
    file.extend(explicit(0x0008, 0x1110, b"SQ", &item(&inner)));
    file.extend(pixel_header);
    file.extend([0u8; 4]);

    let (header, patient_id) = parse_with_patient_id(&file);
    let header = header.unwrap();
    assert_eq!(
        header.identifying_attributes,
        ["AccessionNumber", "ReferringPhysicianName", "PatientID"]
    );
    assert_eq!(patient_id.unwrap().as_bytes(), b"PAT-77");
    let json = serde_json::to_string(&header).unwrap();
    for value in ["PAT-77", "ACC123", "DOE^JOHN", "patientId"] {
        assert!(!json.contains(value), "{value} in {json}");
    }
    for chunk in [1, 5, 64] {
        let (h, p) = chunked(&file, chunk);
        assert_eq!(h.unwrap(), header, "chunks of {chunk}");
        assert_eq!(p.unwrap().as_bytes(), b"PAT-77");
    }
}
