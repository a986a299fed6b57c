//! The whole one-pass inspection (SHA-256, scan, DICOM parse) over arbitrary bytes with a small
//! fixed signature set, the object handed over in pieces of sizes drawn from the input. No panic;
//! the digest is the object's SHA-256 and the DICOM result is the whole-object parse's.
#![no_main]

use bytes::Bytes;
use inspection::dicom::parse_header;
use inspection::inspect::Inspector;
use inspection::scan::signatures::SignatureDb;
use inspection::scan::BuiltinScanner;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

fn scanner() -> &'static BuiltinScanner {
    static SCANNER: OnceLock<BuiltinScanner> = OnceLock::new();
    SCANNER.get_or_init(|| {
        let mut db = SignatureDb::default();
        db.add_file(
            "t.ndb",
            "Dicm:0:128:4449434d\nPair:0:*:4142{2-4}4344\nAlt:0:*:(01|02)??ff*0a0b\nLast:0:EOF-4:5441494c\n",
        )
        .unwrap();
        db.add_file("t.hdb", "44d88612fea8a8f36de82e1278abb02f:68:Eicar\n")
            .unwrap();
        BuiltinScanner::new(db, 1 << 20).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inspection = runtime.block_on(async {
        let mut inspector = Inspector::start(scanner(), data.len() as u64)
            .await
            .unwrap();
        let mut x = (data.len() as u64 ^ 0x9E37_79B9_7F4A_7C15) | 1;
        let mut rest = data;
        while !rest.is_empty() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (1 + x % 2048) as usize;
            let (piece, tail) = rest.split_at(n.min(rest.len()));
            inspector
                .update(Bytes::copy_from_slice(piece))
                .await
                .unwrap();
            rest = tail;
        }
        inspector.finish().await.unwrap()
    });
    assert_eq!(inspection.size, data.len() as u64);
    assert_eq!(inspection.sha256, <[u8; 32]>::from(Sha256::digest(data)));
    assert_eq!(inspection.dicom, parse_header(data));
});
