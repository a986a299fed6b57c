//! The clamd adapter: `zINSTREAM` over TCP. Each chunk goes as a 4-byte big-endian length and its
//! bytes; a zero length ends the stream; clamd answers `stream: OK`, `stream: <name> FOUND`, or an
//! error such as `INSTREAM size limit exceeded. ERROR` (then the object is unscannable, not clean).

use super::{ScanError, ScanSession, Scanner, Verdict};
use async_trait::async_trait;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// clamd's largest chunk is bounded by its StreamMaxLength; 64 KiB is what clamdscan sends.
const CHUNK: usize = 64 * 1024;

pub struct Clamd {
    address: String,
    timeout: Duration,
}

impl Clamd {
    pub fn new(address: impl Into<String>, timeout: Duration) -> Self {
        Self {
            address: address.into(),
            timeout,
        }
    }

    /// `PING` → `PONG`: is the daemon there?
    pub async fn ping(&self) -> Result<(), ScanError> {
        let mut stream = self.connect().await?;
        stream.write_all(b"zPING\0").await.map_err(io)?;
        let reply = read_reply(&mut stream, self.timeout).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(ScanError(format!("clamd answered {reply:?} to PING")))
        }
    }

    async fn connect(&self) -> Result<TcpStream, ScanError> {
        tokio::time::timeout(self.timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| ScanError(format!("connecting to clamd at {} timed out", self.address)))?
            .map_err(io)
    }
}

fn io(e: std::io::Error) -> ScanError {
    ScanError(format!("clamd: {e}"))
}

/// Reads clamd's reply up to its NUL. A connection error after some bytes arrived still yields them
/// (clamd answers, then closes, when a stream passes its limit); with nothing read it is an error.
async fn read_reply(stream: &mut TcpStream, timeout: Duration) -> Result<String, ScanError> {
    let mut reply = Vec::new();
    let read = async {
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    reply.extend_from_slice(&buf[..n]);
                    if reply.contains(&0) || reply.len() > 4096 {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    };
    let outcome = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ScanError("clamd did not answer in time".into()))?;
    if let Err(e) = outcome {
        if reply.is_empty() {
            return Err(io(e));
        }
    }
    let text = String::from_utf8_lossy(&reply);
    Ok(text.trim_end_matches(['\0', '\n']).trim().to_owned())
}

/// Reads clamd's answer to a stream.
pub fn parse_reply(reply: &str) -> Result<Verdict, ScanError> {
    let body = reply
        .strip_prefix("stream:")
        .map(str::trim)
        .unwrap_or(reply);
    if body == "OK" {
        Ok(Verdict::Clean)
    } else if let Some(name) = body.strip_suffix("FOUND") {
        Ok(Verdict::Infected {
            signature: name.trim().to_owned(),
        })
    } else if body.contains("size limit exceeded") || body.contains("limit") {
        Ok(Verdict::Unscannable {
            reason: format!("clamd: {body}"),
        })
    } else {
        Err(ScanError(format!("clamd answered {body:?}")))
    }
}

struct ClamdSession {
    stream: TcpStream,
    timeout: Duration,
    /// clamd closed its side (it does at its size limit): the rest is not sent; its reply decides.
    refused: bool,
}

#[async_trait]
impl Scanner for Clamd {
    async fn start(&self, _size: u64) -> Result<Box<dyn ScanSession>, ScanError> {
        let mut stream = self.connect().await?;
        stream.write_all(b"zINSTREAM\0").await.map_err(io)?;
        Ok(Box::new(ClamdSession {
            stream,
            timeout: self.timeout,
            refused: false,
        }))
    }
}

#[async_trait]
impl ScanSession for ClamdSession {
    async fn update(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        if self.refused {
            return Ok(());
        }
        for piece in chunk.chunks(CHUNK) {
            let len = (piece.len() as u32).to_be_bytes();
            let write = async {
                self.stream.write_all(&len).await?;
                self.stream.write_all(piece).await
            };
            match tokio::time::timeout(self.timeout, write).await {
                Ok(Ok(())) => {}
                // A reset or broken pipe mid-stream: clamd stopped reading (its limit); its reply says why.
                Ok(Err(_)) => {
                    self.refused = true;
                    return Ok(());
                }
                Err(_) => return Err(ScanError("clamd stopped reading the stream".into())),
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>, _sha256: &[u8; 32]) -> Result<Verdict, ScanError> {
        if !self.refused && self.stream.write_all(&0u32.to_be_bytes()).await.is_err() {
            // clamd stopped reading at its limit; the reply (if any) says why.
            self.refused = true;
        }
        let reply = match read_reply(&mut self.stream, self.timeout).await {
            // Refused mid-stream and no reply readable: clamd stopped at its limit.
            Err(_) if self.refused => String::new(),
            other => other?,
        };
        if reply.is_empty() {
            return if self.refused {
                Ok(Verdict::Unscannable {
                    reason: "clamd closed the stream before its end".into(),
                })
            } else {
                Err(ScanError(
                    "clamd closed the connection without an answer".into(),
                ))
            };
        }
        parse_reply(&reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(parse_reply("stream: OK").unwrap(), Verdict::Clean);
        assert_eq!(
            parse_reply("stream: Eicar-Test-Signature FOUND").unwrap(),
            Verdict::Infected {
                signature: "Eicar-Test-Signature".into()
            }
        );
        assert!(matches!(
            parse_reply("INSTREAM size limit exceeded. ERROR").unwrap(),
            Verdict::Unscannable { .. }
        ));
        assert!(parse_reply("UNKNOWN COMMAND").is_err());
    }
}
