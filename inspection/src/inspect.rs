//! The one-pass inspection of an upload: every byte of the object, as it streams from S3, goes
//! once through the SHA-256, the malware scanner and the DICOM header parser. The SHA-256 runs on a
//! thread of its own, beside the scan and the parse, so a second core is used where there is one.
//! At most a few chunks of the object are held at any time.

use crate::dicom::{DicomError, DicomHeader, HeaderParser, PatientId};
use crate::scan::{ScanError, ScanSession, Scanner, Verdict};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

/// Chunks in flight to the hashing thread (memory: this many chunks at most).
const HASH_QUEUE: usize = 4;

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
}

impl Inspector {
    /// Starts a pass over an object S3 says is `size` bytes.
    pub async fn start(scanner: &dyn Scanner, size: u64) -> Result<Self, ScanError> {
        Ok(Self {
            scan: scanner.start(size).await?,
            hasher: Hasher::start(),
            parser: HeaderParser::new(size),
            size: 0,
        })
    }

    pub async fn update(&mut self, chunk: Bytes) -> Result<(), ScanError> {
        self.size += chunk.len() as u64;
        self.hasher.update(&chunk);
        if !self.parser.is_done() {
            self.parser.feed(&chunk);
        }
        self.scan.update(&chunk).await
    }

    pub async fn finish(mut self) -> Result<Inspection, ScanError> {
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
