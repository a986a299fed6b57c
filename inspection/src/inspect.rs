//! The one-pass inspection of an upload: every byte of the object, as it streams from S3, goes
//! once through the SHA-256, the malware scanner and (until Pixel Data) the DICOM header parser.
//! Nothing here holds more than one chunk of the object.

use crate::dicom::{DicomError, DicomHeader, HeaderParser};
use crate::scan::{ScanError, ScanSession, Scanner, Verdict};
use sha2::{Digest, Sha256};

/// What one pass found.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub size: u64,
    pub sha256: [u8; 32],
    pub verdict: Verdict,
    pub dicom: Result<DicomHeader, DicomError>,
}

pub struct Inspector {
    hasher: Sha256,
    scan: Box<dyn ScanSession>,
    parser: Option<HeaderParser>,
    size: u64,
}

impl Inspector {
    /// Starts a pass over an object S3 says is `size` bytes.
    pub async fn start(scanner: &dyn Scanner, size: u64) -> Result<Self, ScanError> {
        Ok(Self {
            hasher: Sha256::new(),
            scan: scanner.start(size).await?,
            parser: Some(HeaderParser::new(size)),
            size: 0,
        })
    }

    pub async fn update(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        self.size += chunk.len() as u64;
        self.hasher.update(chunk);
        if let Some(parser) = self.parser.as_mut() {
            if !parser.is_done() {
                parser.feed(chunk);
            }
        }
        self.scan.update(chunk).await
    }

    /// Bytes seen so far.
    pub fn position(&self) -> u64 {
        self.size
    }

    pub async fn finish(mut self) -> Result<Inspection, ScanError> {
        let sha256: [u8; 32] = self.hasher.finalize().into();
        let verdict = self.scan.finish(&sha256).await?;
        let dicom = match self.parser.take() {
            Some(p) => p.finish(),
            None => Err(DicomError::Malformed("not parsed".into())),
        };
        Ok(Inspection {
            size: self.size,
            sha256,
            verdict,
            dicom,
        })
    }
}
