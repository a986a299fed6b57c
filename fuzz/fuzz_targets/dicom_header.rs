//! The DICOM header push parser over arbitrary bytes: once whole, once in chunks of sizes drawn
//! from the input itself (1 to 8 bytes half the time, up to 4 KiB otherwise), as S3 delivers them.
//! Neither may panic; both must reach the same header (or the same error) and the same Patient ID;
//! and the parser's memory stays bounded after every chunk, whatever the input claims.
#![no_main]

use inspection::dicom::{parse_with_patient_id, HeaderParser};
use libfuzzer_sys::fuzz_target;

/// What the parser may hold at any time: a 1 KiB value buffer (grown by doubling), 64 frames, an
/// inflater with its window. Far above what it needs; far below what an unbounded parser would take.
const MEMORY_BOUND: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let (whole, whole_id) = parse_with_patient_id(data);

    // The chunk sizes come from the input's own bytes (FNV-1a), so the seeds stay DICOM files.
    let mut x = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    let mut parser = HeaderParser::new(data.len() as u64);
    let mut rest = data;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = if x & 1 == 0 {
            1 + (x >> 1) % 8
        } else {
            1 + (x >> 1) % 4096
        } as usize;
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        if !parser.is_done() {
            parser.feed(chunk);
        }
        assert!(
            parser.memory_bytes() <= MEMORY_BOUND,
            "parser holds {} bytes",
            parser.memory_bytes()
        );
        rest = tail;
    }
    let chunked_id = parser.take_patient_id();
    let chunked = parser.finish();

    assert_eq!(whole, chunked, "whole and chunked parses differ");
    assert!(
        whole_id == chunked_id,
        "whole and chunked Patient IDs differ"
    );
});
