//! The one-pass inspection of an upload: every byte of the object, as it streams from S3, goes
//! once through the SHA-256, the malware scanner and the DICOM header parser. The SHA-256 runs on a
//! thread of its own, beside the scan and the parse, so a second core is used where there is one.
//!
//! An S3 body streams in pieces of at most a TLS record (16 KiB) and often less; each piece handed
//! on costs a wake-up of the hashing thread and a step of the scanner. The pieces are gathered into
//! blocks of [`BLOCK`] bytes first (a copy runs at more than 10 GB/s); a piece of a block's size or
//! more goes on as it is. What a pass holds is bounded, whatever the object's size: the block being
//! filled and [`HASH_QUEUE`] blocks on their way to the hashing thread.

use crate::dicom::{DicomError, DicomHeader, HeaderParser, PatientId};
use crate::scan::{ScanError, ScanSession, Scanner, Verdict};
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// Blocks in flight to the hashing thread (memory: this many blocks at most).
const HASH_QUEUE: usize = 4;

/// The bytes gathered before the hash, the scan and the parse see them.
pub const BLOCK: usize = 256 * 1024;

/// What one pass found.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub size: u64,
    pub sha256: [u8; 32],
    pub verdict: Verdict,
    pub dicom: Result<DicomHeader, DicomError>,
    /// The data set's Patient ID, for wrong-patient detection only: hashed, never stored or logged.
    pub patient_id: Option<PatientId>,
}

/// SHA-256 on its own thread; inline where no thread can be started.
enum Hasher {
    Thread {
        chunks: SyncSender<Bytes>,
        digest: JoinHandle<[u8; 32]>,
    },
    Inline(Sha256),
}

impl Hasher {
    fn start() -> Self {
        let (chunks, received) = sync_channel::<Bytes>(HASH_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                let mut h = Sha256::new();
                for chunk in received {
                    h.update(&chunk);
                }
                h.finalize().into()
            });
        match spawned {
            Ok(digest) => Self::Thread { chunks, digest },
            Err(_) => Self::Inline(Sha256::new()),
        }
    }

    fn update(&mut self, chunk: &Bytes) {
        match self {
            Self::Thread { chunks, .. } => {
                if chunks.send(chunk.clone()).is_err() {
                    // The thread is gone (it cannot be, short of a panic): finish() reports it.
                }
            }
            Self::Inline(h) => h.update(chunk),
        }
    }

    fn finish(self) -> Result<[u8; 32], ScanError> {
        match self {
            Self::Thread { chunks, digest } => {
                drop(chunks);
                digest
                    .join()
                    .map_err(|_| ScanError("the hashing thread failed".into()))
            }
            Self::Inline(h) => Ok(h.finalize().into()),
        }
    }
}

pub struct Inspector {
    hasher: Hasher,
    scan: Box<dyn ScanSession>,
    parser: HeaderParser,
    size: u64,
    /// The pieces not yet handed on (less than [`BLOCK`] bytes).
    gathered: BytesMut,
}

impl Inspector {
    /// Starts a pass over an object S3 says is `size` bytes.
    pub async fn start(scanner: &dyn Scanner, size: u64) -> Result<Self, ScanError> {
        Ok(Self {
            scan: scanner.start(size).await?,
            hasher: Hasher::start(),
            parser: HeaderParser::new(size),
            size: 0,
            gathered: BytesMut::new(),
        })
    }

    /// The next piece of the object, in order.
    pub async fn update(&mut self, chunk: Bytes) -> Result<(), ScanError> {
        self.size += chunk.len() as u64;
        if self.gathered.is_empty() && chunk.len() >= BLOCK {
            return self.pass(chunk).await;
        }
        if self.gathered.capacity() == 0 {
            self.gathered.reserve(BLOCK);
        }
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = rest.len().min(BLOCK - self.gathered.len());
            self.gathered.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.gathered.len() == BLOCK {
                // The block goes on its way; a new one is started (or the old one's memory taken
                // back, once the hashing thread let go of it).
                let block = self.gathered.split().freeze();
                self.gathered.reserve(BLOCK);
                self.pass(block).await?;
            }
        }
        Ok(())
    }

    /// One block (or one large piece) through the hash, the parse and the scan.
    async fn pass(&mut self, block: Bytes) -> Result<(), ScanError> {
        self.hasher.update(&block);
        if !self.parser.is_done() {
            self.parser.feed(&block);
        }
        self.scan.update(&block).await
    }

    pub async fn finish(mut self) -> Result<Inspection, ScanError> {
        if !self.gathered.is_empty() {
            let last = self.gathered.split().freeze();
            self.pass(last).await?;
        }
        let sha256 = self.hasher.finish()?;
        let verdict = self.scan.finish(&sha256).await?;
        let patient_id = self.parser.take_patient_id();
        Ok(Inspection {
            size: self.size,
            sha256,
            verdict,
            dicom: self.parser.finish(),
            patient_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::signatures::SignatureDb;
    use crate::scan::BuiltinScanner;

    const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

    fn scanner() -> BuiltinScanner {
        let mut db = SignatureDb::default();
        let body = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        db.add_file(
            "t.ndb",
            &format!(
                "Eicar:0:*:{}\nPair:0:*:4142{{2-4}}4344\nLast:0:EOF-4:{}\n",
                body(EICAR),
                body(b"TAIL")
            ),
        )
        .unwrap();
        BuiltinScanner::new(db, u64::MAX).unwrap()
    }

    /// A synthetic DICOM of `pixels` bytes of noise, with `planted` written at `at` in the file.
    fn object(pixels: usize, planted: &[(usize, &[u8])]) -> Vec<u8> {
        let mut data = crate::dicom::synthetic::header(7, pixels as u64);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        data.extend((0..pixels).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Noise without the signatures' letters.
            b'a' + (x % 26) as u8
        }));
        for (at, bytes) in planted {
            data[*at..*at + bytes.len()].copy_from_slice(bytes);
        }
        data
    }

    async fn inspect(data: &[u8], pieces: &[usize]) -> Inspection {
        let scanner = scanner();
        let mut inspector = Inspector::start(&scanner, data.len() as u64).await.unwrap();
        let (mut at, mut k) = (0, 0);
        while at < data.len() {
            let n = pieces[k % pieces.len()].min(data.len() - at);
            inspector
                .update(Bytes::copy_from_slice(&data[at..at + n]))
                .await
                .unwrap();
            at += n;
            k += 1;
        }
        inspector.finish().await.unwrap()
    }

    /// Gathering pieces into blocks changes nothing: whatever the pieces (one byte, a TLS record,
    /// a block and a byte either side, mixed), the digest, the verdict and the header are those of
    /// the whole object, with a signature lying across a block's end.
    #[tokio::test]
    async fn the_same_inspection_whatever_the_pieces() {
        let pixels = 3 * BLOCK;
        let header = crate::dicom::synthetic::header(7, 0).len();
        for at in [BLOCK - 30, BLOCK - 1, BLOCK, 2 * BLOCK - header - 40] {
            let infected = object(pixels, &[(at, EICAR)]);
            let clean = object(pixels, &[(at, &EICAR[..EICAR.len() - 1])]);
            let want: [u8; 32] = Sha256::digest(&infected).into();
            let whole = inspect(&infected, &[infected.len()]).await;
            assert_eq!(whole.sha256, want);
            assert_eq!(whole.size, infected.len() as u64);
            assert!(whole.dicom.is_ok(), "{:?}", whole.dicom);
            assert!(whole.patient_id.is_some());
            assert_eq!(
                whole.verdict,
                Verdict::Infected {
                    signature: "Eicar".into()
                }
            );
            for pieces in [
                &[1][..],
                &[2],
                &[7],
                &[16 * 1024],
                &[BLOCK - 1],
                &[BLOCK],
                &[BLOCK + 1],
                &[16 * 1024, 5, BLOCK + 3, 1, 2 * BLOCK],
            ] {
                assert_eq!(inspect(&infected, pieces).await, whole, "{at} {pieces:?}");
                let got = inspect(&clean, pieces).await;
                assert_eq!(got.verdict, Verdict::Clean, "{at} {pieces:?}");
                assert_eq!(got.sha256, <[u8; 32]>::from(Sha256::digest(&clean)));
            }
        }
    }

    /// A gap signature whose parts lie in different blocks, and one pinned to the end of the
    /// object, which only the last (partial) block holds.
    #[tokio::test]
    async fn signatures_across_blocks_and_at_the_end() {
        let mut data = object(BLOCK + 100, &[(BLOCK - 2, b"AB..CD")]);
        for pieces in [&[3][..], &[16 * 1024], &[BLOCK]] {
            assert_eq!(
                inspect(&data, pieces).await.verdict,
                Verdict::Infected {
                    signature: "Pair".into()
                },
                "{pieces:?}"
            );
        }
        let n = data.len();
        data[BLOCK - 2..BLOCK + 4].copy_from_slice(b"......");
        data[n - 4..].copy_from_slice(b"TAIL");
        for pieces in [&[3][..], &[16 * 1024], &[BLOCK], &[n - 2, 2]] {
            assert_eq!(
                inspect(&data, pieces).await.verdict,
                Verdict::Infected {
                    signature: "Last".into()
                },
                "{pieces:?}"
            );
        }
    }
}
