//! The AWS emulator the local stack runs on: moto server from the repo's own venv (pinned in
//! scripts/setup.sh), on a free loopback port, or whatever `AWS_ENDPOINT_URL` names.
//!
//! moto is started through `local-stack/moto_server.py`, which turns its IAM enforcement on and
//! makes it answer as real AWS does where moto is lenient (per-table DynamoDB authorisation, S3's 403
//! for a missing key without `s3:ListBucket`, presigned URLs authorised as their signer). It creates
//! an administrator first, whose keys are [`Emulator::admin`]: the local stack provisions with them,
//! and runs every function under a user that holds only its template role's policies.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// moto's fixed account id.
pub const MOTO_ACCOUNT: &str = "123456789012";

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(
        "the repo's Python venv (moto) is not at {0}: run `make setup` (scripts/setup.sh) first"
    )]
    NotInstalled(String),
    #[error("could not start the emulator: {0}")]
    Start(String),
}

/// An IAM user's access key.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub struct Emulator {
    pub endpoint: String,
    /// The administrator of an emulator this process started (IAM enforced); `None` for an
    /// endpoint named by `AWS_ENDPOINT_URL`, whose credentials come from the environment.
    pub admin: Option<AccessKeys>,
    /// Where moto saves its state before it answers a write (`None`: in memory only).
    state_dir: Option<PathBuf>,
    port: u16,
    running: Mutex<Running>,
}

/// The moto this process started, if any.
#[derive(Default)]
struct Running {
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

/// The venv's Python, which runs moto through `local-stack/moto_server.py`.
fn python_path() -> PathBuf {
    std::env::var("CLINFLOW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv/bin/python"))
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
                admin: None,
                state_dir: None,
                port: 0,
                running: Mutex::new(Running::default()),
            }),
            _ => Self::start_moto(),
        }
    }

    pub fn start_moto() -> Result<Self, EmulatorError> {
        Self::start(None)
    }

    /// A moto whose state outlives its process: every write is saved to `state_dir` before it is
    /// answered, and [`Self::kill_and_restart`] resumes from there (local-stack/moto_server.py).
    pub fn start_moto_persistent(state_dir: &Path) -> Result<Self, EmulatorError> {
        Self::start(Some(state_dir.to_path_buf()))
    }

    fn start(state_dir: Option<PathBuf>) -> Result<Self, EmulatorError> {
        let python = python_path();
        if !python.exists() {
            return Err(EmulatorError::NotInstalled(python.display().to_string()));
        }
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            match Self::spawn(&python, port, state_dir.as_deref()) {
                Ok((running, admin)) => {
                    return Ok(Self {
                        endpoint: format!("http://127.0.0.1:{port}"),
                        admin: Some(admin),
                        state_dir,
                        port,
                        running: Mutex::new(running),
                    })
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(EmulatorError::Start(last))
    }

    /// Whether its state outlives its process ([`Self::start_moto_persistent`]).
    pub fn is_persistent(&self) -> bool {
        self.state_dir.is_some()
    }

    /// Kills moto at once (SIGKILL: no chance to save or close anything), leaves its port closed
    /// for `down`, then starts it again on the same port from its saved state. Only for an
    /// emulator started by [`Self::start_moto_persistent`].
    pub fn kill_and_restart(&self, down: Duration) -> Result<(), EmulatorError> {
        let state_dir = self.state_dir.as_deref().ok_or_else(|| {
            EmulatorError::Start("only a persistent emulator can be restarted".into())
        })?;
        let mut running = self
            .running
            .lock()
            .map_err(|_| EmulatorError::Start("the emulator's lock is poisoned".into()))?;
        let pid = std::fs::read_to_string(state_dir.join("moto.pid"))
            .map_err(|e| EmulatorError::Start(format!("moto.pid: {e}")))?;
        let killed = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .map_err(|e| EmulatorError::Start(e.to_string()))?;
        if !killed.success() {
            return Err(EmulatorError::Start(format!("kill -KILL {pid} failed")));
        }
        // The old watchdog ends when its pipe closes.
        drop(running.lifeline.take());
        if let Some(mut child) = running.child.take() {
            let _ = child.wait();
        }
        let closed_by = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            if Instant::now() > closed_by {
                return Err(EmulatorError::Start("the killed moto still answers".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(down);
        // Another socket of the machine may hold the port for a moment (it came from the ephemeral
        // range): try again before giving up.
        let mut attempt = 0;
        let (restarted, admin) = loop {
            match Self::spawn(&python_path(), self.port, Some(state_dir)) {
                Ok(started) => break started,
                Err(e) if attempt >= 10 => return Err(e),
                Err(_) => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        };
        if self.admin.as_ref().map(|a| &a.access_key_id) != Some(&admin.access_key_id) {
            return Err(EmulatorError::Start(
                "the restarted moto has another administrator: its state was not resumed".into(),
            ));
        }
        *running = restarted;
        Ok(())
    }

    fn spawn(
        python: &PathBuf,
        port: u16,
        state_dir: Option<&Path>,
    ) -> Result<(Running, AccessKeys), EmulatorError> {
        let log = std::env::temp_dir().join(format!("clinflow-moto-{port}.log"));
        let keys = std::env::temp_dir().join(format!("clinflow-moto-{port}.admin.json"));
        let _ = std::fs::remove_file(&keys);
        // The shell is a watchdog: it stops moto when its stdin closes, which happens when this
        // process drops the Emulator or dies in any way (even SIGKILL).
        let script = r#"
"$0" "$1" --admin-key-file "$2" -H 127.0.0.1 -p "$3" ${5:+"$5"} >>"$4" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
cat >/dev/null
"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(python)
            .arg(repo_root().join("local-stack/moto_server.py"))
            .arg(&keys)
            .arg(port.to_string())
            .arg(&log)
            .arg(
                state_dir
                    .map(|d| format!("--state-dir={}", d.display()))
                    .unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| EmulatorError::Start(e.to_string()))?;
        let lifeline = child.stdin.take();
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
        // The administrator's keys are written before moto starts serving.
        let admin = std::fs::read(&keys)
            .ok()
            .and_then(|raw| serde_json::from_slice::<AccessKeys>(&raw).ok())
            .ok_or_else(|| {
                EmulatorError::Start(format!("no administrator keys in {}", keys.display()))
            })?;
        let _ = std::fs::remove_file(&keys);
        Ok((
            Running {
                child: Some(child),
                lifeline,
            },
            admin,
        ))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let Ok(running) = self.running.get_mut() else {
            return;
        };
        drop(running.lifeline.take());
        if let Some(mut child) = running.child.take() {
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
