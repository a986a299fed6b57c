//! Malware scanning: the [`Scanner`] port, its verdicts, and two adapters:
//! - [`BuiltinScanner`]: runs ClamAV-format signature databases ([`signatures`]) with a streaming
//!   multi-pattern [`engine`], in process;
//! - [`clamd::Clamd`]: a clamd daemon over TCP (`zINSTREAM`).
//!
//! A scanner sees every byte once, as the processor streams the object. A verdict is `Clean` only
//! when the whole object was scanned: an object beyond a scanner's limits is `Unscannable`, never clean.

pub mod clamd;
pub mod engine;
pub mod filter;
pub mod signatures;

use async_trait::async_trait;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    Infected {
        signature: String,
    },
    /// The scanner could not look at all of it (too large, a limit of the daemon): never clean.
    Unscannable {
        reason: String,
    },
}

/// The scanner itself failed (daemon down, connection lost): the object is neither clean nor
/// infected; the message goes back to the queue.
#[derive(Debug, thiserror::Error)]
#[error("scanner unavailable: {0}")]
pub struct ScanError(pub String);

#[async_trait]
pub trait Scanner: Send + Sync {
    /// Starts scanning an object of `size` bytes.
    async fn start(&self, size: u64) -> Result<Box<dyn ScanSession>, ScanError>;
}

#[async_trait]
pub trait ScanSession: Send {
    async fn update(&mut self, chunk: &[u8]) -> Result<(), ScanError>;
    /// The verdict; `sha256` is the object's digest, computed by the caller in the same pass.
    async fn finish(self: Box<Self>, sha256: &[u8; 32]) -> Result<Verdict, ScanError>;
}

/// The built-in engine over a signature database.
pub struct BuiltinScanner {
    engine: Arc<engine::Engine>,
    /// Larger objects are `Unscannable`.
    max_bytes: u64,
}

impl BuiltinScanner {
    pub fn new(db: signatures::SignatureDb, max_bytes: u64) -> Result<Self, String> {
        Ok(Self {
            engine: Arc::new(engine::Engine::new(db)?),
            max_bytes,
        })
    }

    /// A scan of the engine alone (benchmarks).
    pub fn engine_scan(&self, size: u64) -> engine::EngineScan {
        self.engine.scan(size)
    }
}

enum BuiltinSession {
    Scanning(Box<engine::EngineScan>),
    TooLarge(u64),
}

#[async_trait]
impl Scanner for BuiltinScanner {
    async fn start(&self, size: u64) -> Result<Box<dyn ScanSession>, ScanError> {
        Ok(Box::new(if size > self.max_bytes {
            BuiltinSession::TooLarge(self.max_bytes)
        } else {
            BuiltinSession::Scanning(Box::new(self.engine.scan(size)))
        }))
    }
}

#[async_trait]
impl ScanSession for BuiltinSession {
    async fn update(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        if let Self::Scanning(s) = self {
            s.update(chunk);
        }
        Ok(())
    }

    async fn finish(self: Box<Self>, sha256: &[u8; 32]) -> Result<Verdict, ScanError> {
        Ok(match *self {
            Self::Scanning(s) => (*s).finish(sha256),
            Self::TooLarge(max) => Verdict::Unscannable {
                reason: format!("larger than the scanner's limit of {max} bytes"),
            },
        })
    }
}
