//! The AWS emulator the local stack runs on: moto server from the repo's own venv (pinned in
//! scripts/setup.sh), on a free loopback port, or whatever `AWS_ENDPOINT_URL` names.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// moto's fixed account id.
pub const MOTO_ACCOUNT: &str = "123456789012";

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("moto_server not found at {0}: run `make setup` (scripts/setup.sh) first")]
    NotInstalled(String),
    #[error("could not start the emulator: {0}")]
    Start(String),
}

pub struct Emulator {
    pub endpoint: String,
    child: Option<Child>,
    /// The watchdog reads this pipe; when it closes (drop, or this process dies) moto is stopped.
    lifeline: Option<ChildStdin>,
}

/// The repository root (where template.yaml and .venv live).
pub fn repo_root() -> PathBuf {
    if let Ok(root) = std::env::var("CLINFLOW_ROOT") {
        return PathBuf::from(root);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn moto_path() -> PathBuf {
    std::env::var("CLINFLOW_MOTO")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv/bin/moto_server"))
}

/// How moto is started: `moto_server` itself when `CLINFLOW_MOTO` names one; by default, through
/// `local-stack/moto-serialised`, which runs the venv's moto with DynamoDB requests one at a time
/// (moto does not isolate concurrent conditional writes; DynamoDB does).
fn moto_launcher() -> PathBuf {
    match std::env::var_os("CLINFLOW_MOTO") {
        Some(_) => moto_path(),
        None => repo_root().join("local-stack/moto-serialised"),
    }
}

fn free_port() -> Result<u16, EmulatorError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| EmulatorError::Start(e.to_string()))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| EmulatorError::Start(e.to_string()))
}

impl Emulator {
    /// `AWS_ENDPOINT_URL` if set (nothing is started), else a fresh moto server.
    pub fn from_env_or_start() -> Result<Self, EmulatorError> {
        match std::env::var("AWS_ENDPOINT_URL") {
            Ok(endpoint) if !endpoint.is_empty() => Ok(Self {
                endpoint,
                child: None,
                lifeline: None,
            }),
            _ => Self::start_moto(),
        }
    }

    pub fn start_moto() -> Result<Self, EmulatorError> {
        let moto = moto_path();
        if !moto.exists() {
            return Err(EmulatorError::NotInstalled(moto.display().to_string()));
        }
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            match Self::spawn(&moto_launcher(), port) {
                Ok(e) => return Ok(e),
                Err(e) => last = e.to_string(),
            }
        }
        Err(EmulatorError::Start(last))
    }

    fn spawn(moto: &PathBuf, port: u16) -> Result<Self, EmulatorError> {
        let log = std::env::temp_dir().join(format!("clinflow-moto-{port}.log"));
        // The shell is a watchdog: it stops moto when its stdin closes, which happens when this
        // process drops the Emulator or dies in any way (even SIGKILL).
        let script = r#"
"$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
cat >/dev/null
"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(moto)
            .arg(port.to_string())
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| EmulatorError::Start(e.to_string()))?;
        let lifeline = child.stdin.take();
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /moto-api/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                if std::io::Read::read(&mut s, &mut buf).is_ok_and(|n| n >= 12)
                    && buf.starts_with(b"HTTP/1")
                {
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(EmulatorError::Start(format!(
                    "moto exited ({status}); see {}",
                    log.display()
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(EmulatorError::Start(format!(
                    "moto did not answer on port {port}; see {}",
                    log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self {
            endpoint,
            child: Some(child),
            lifeline,
        })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
