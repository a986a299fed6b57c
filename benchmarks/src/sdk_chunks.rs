//! The chunk sizes the aws-sdk-s3 body stream hands process-dicom: `GetObject` over HTTPS (the
//! SDK's own client, rustls on aws-lc, as in the functions) from an S3-shaped server on loopback,
//! the body read with `try_next` as `shared::store::s3` reads it, every chunk fed to the inspector.
//! The server writes the body as fast as TLS lets it, or paced like a network link slower than
//! the inspector (then each read finds what arrived since the last one).

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one `GetObject` delivered.
pub struct Chunks {
    pub sizes: Vec<usize>,
    pub secs: f64,
}

impl Chunks {
    pub fn total(&self) -> u64 {
        self.sizes.iter().map(|&n| n as u64).sum()
    }

    /// The size below which `q` of the bytes arrived in chunks (by bytes, not by count).
    pub fn by_bytes(&self, q: f64) -> usize {
        let mut s = self.sizes.clone();
        s.sort_unstable();
        let want = (self.total() as f64 * q) as u64;
        let mut seen = 0u64;
        for n in &s {
            seen += *n as u64;
            if seen >= want {
                return *n;
            }
        }
        s.last().copied().unwrap_or(0)
    }

    /// The median chunk by count.
    pub fn median(&self) -> usize {
        let mut s = self.sizes.clone();
        s.sort_unstable();
        s.get(s.len() / 2).copied().unwrap_or(0)
    }

    /// The share of the chunks of at most `n` bytes.
    pub fn share_at_most(&self, n: usize) -> f64 {
        self.sizes.iter().filter(|&&c| c <= n).count() as f64 / self.sizes.len().max(1) as f64
    }

    pub fn largest(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }
}

/// A certificate authority and a `localhost` certificate it signed (openssl CLI, into `dir`).
fn certificates(dir: &Path) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    std::fs::create_dir_all(dir).ok()?;
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .ok()?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem"],
    ]
    .concat()
    .into_iter()
    .chain(["-days", "1", "-subj", "/CN=bench-ca"])
    .collect::<Vec<_>>())?;
    run(&[
        &["req"][..],
        &ec,
        &["-keyout", "key.pem", "-out", "req.csr"],
    ]
    .concat()
    .into_iter()
    .chain(["-subj", "/CN=localhost"])
    .collect::<Vec<_>>())?;
    run(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-extfile",
        "ext",
    ])?;
    Some((
        std::fs::read(dir.join("ca.pem")).ok()?,
        std::fs::read(dir.join("cert.pem")).ok()?,
        std::fs::read(dir.join("key.pem")).ok()?,
    ))
}

/// Serves every GET with `size` bytes, written in pieces of `write` bytes, at most `rate` bytes per
/// second when given. Blocking, on threads of its own, so the pacing (a sleep per piece, as a link
/// spreads a record's packets) holds whatever the reader's runtime does.
fn serve(
    listener: std::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    size: u64,
    write: usize,
    rate: Option<f64>,
) {
    for tcp in listener.incoming() {
        let Ok(tcp) = tcp else { return };
        let config = Arc::clone(&config);
        std::thread::spawn(move || {
            let _ = tcp.set_nodelay(true);
            let Ok(conn) = rustls::ServerConnection::new(config) else {
                return;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nContent-Type: application/dicom\r\nETag: \"bench\"\r\nLast-Modified: Sat, 28 Nov 2026 00:00:00 GMT\r\n\r\n"
            );
            if tls.write_all(head.as_bytes()).is_err() {
                return;
            }
            let block = vec![0x5Au8; write];
            let start = Instant::now();
            let mut sent = 0u64;
            while sent < size {
                let n = (size - sent).min(write as u64) as usize;
                if tls
                    .write_all(&block[..n])
                    .and_then(|()| tls.flush())
                    .is_err()
                {
                    return;
                }
                sent += n as u64;
                if let Some(rate) = rate {
                    let due = Duration::from_secs_f64(sent as f64 / rate);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            tls.conn.send_close_notify();
            let _ = tls.flush();
        });
    }
}

/// One `GetObject` of `size` bytes through the SDK, each chunk handed to `consume`; `None` where
/// openssl or the loopback server cannot be set up.
pub async fn measure(
    dir: &Path,
    size: u64,
    write: usize,
    rate: Option<f64>,
    mut consume: impl AsyncConsume,
) -> Option<Chunks> {
    let (ca, cert, key) = certificates(dir)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_slice(&key).ok()?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .ok()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    let port = listener.local_addr().ok()?.port();
    let server = Arc::new(server);
    std::thread::spawn(move || serve(listener, server, size, write, rate));

    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_pem_certificate(ca))
                .build()
                .ok()?,
        )
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .endpoint_url(format!("https://localhost:{port}"))
        .force_path_style(true)
        .http_client(http)
        .build();
    let client = aws_sdk_s3::Client::from_conf(config);
    let start = Instant::now();
    let object = client
        .get_object()
        .bucket("ingest")
        .key("incoming/bench.dcm")
        .send()
        .await
        .map_err(|e| eprintln!("GetObject: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))
        .ok()?;
    let mut body = object.body;
    let mut sizes = Vec::new();
    while let Some(chunk) = body.try_next().await.ok()? {
        sizes.push(chunk.len());
        consume.consume(chunk).await;
    }
    let secs = start.elapsed().as_secs_f64();
    Some(Chunks { sizes, secs })
}

/// What reads the body (the inspector, or nothing).
pub trait AsyncConsume {
    fn consume(&mut self, chunk: bytes::Bytes) -> impl std::future::Future<Output = ()>;
}
