//! Cold start: every function binary of template.yaml (the release build here, x86_64) started as
//! Lambda starts it — the template's environment and nothing of the developer's, the function's
//! own IAM keys, `AWS_ENDPOINT_URL` at the emulator (the local stack on moto, provisioned
//! in-process so the environment names real tables, queues and buckets) — and timed from the
//! spawn to its first `GET /2018-06-01/runtime/invocation/next` on a runtime API listening on
//! loopback: the SDK clients built and whatever the function does before `lambda_runtime::run`
//! (metadata reads its reference snapshot from DynamoDB on moto; the others make no call at init).
//! The child's peak RSS (VmHWM) is read at that request, then the child is killed. The functions
//! are started round-robin (so a noisy neighbour weighs on all alike), `STARTS` times each.
//!
//! Beside them, in the same run: `hello-lambda` (src/bin), a lambda_runtime binary with a no-op
//! handler and no SDK clients, built with the same profile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

pub const STARTS: usize = 20;
const NEXT: &str = "GET /2018-06-01/runtime/invocation/next";

/// One binary's starts.
pub struct Function {
    /// The template's logical id (or `hello-lambda`).
    pub name: String,
    pub executable: PathBuf,
    /// Milliseconds from spawn to the first `/next`, sorted.
    pub init_ms: Vec<f64>,
    /// Peak RSS at the first `/next`, MiB, the highest over the starts.
    pub peak_rss_mib: Option<f64>,
    /// Why a start failed (the first failure), if one did.
    pub failure: Option<String>,
}

impl Function {
    pub fn size_mb(&self) -> Option<f64> {
        file_mb(&self.executable)
    }
    pub fn median(&self) -> Option<f64> {
        quantile(&self.init_ms, 0.5)
    }
    pub fn p90(&self) -> Option<f64> {
        quantile(&self.init_ms, 0.9)
    }
}

/// A file's size in MB (10^6 bytes).
pub fn file_mb(path: &Path) -> Option<f64> {
    std::fs::metadata(path).ok().map(|m| m.len() as f64 / 1e6)
}

/// The nearest-rank quantile of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// VmHWM of a process, MiB.
fn vm_hwm_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|kb| kb / 1024.0)
}

/// The request line of the first request on the runtime API, the time it arrived and the child's
/// VmHWM then.
async fn first_request(
    listener: &tokio::net::TcpListener,
    started: Instant,
    pid: u32,
) -> Result<(f64, Option<f64>), String> {
    let (mut socket, _) = listener.accept().await.map_err(|e| e.to_string())?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed before a request".into());
        }
        seen.extend_from_slice(&buf[..n]);
        if let Some(end) = seen.windows(2).position(|w| w == b"\r\n") {
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            let rss = vm_hwm_mib(pid);
            let line = String::from_utf8_lossy(&seen[..end]).into_owned();
            return if line.starts_with(NEXT) {
                Ok((elapsed, rss))
            } else {
                // An `/init/error`: read what it says.
                let _ = tokio::time::timeout(Duration::from_millis(200), async {
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        seen.extend_from_slice(&buf[..n]);
                    }
                })
                .await;
                Err(format!(
                    "first request {line}: {}",
                    String::from_utf8_lossy(&seen)
                        .rsplit("\r\n\r\n")
                        .next()
                        .unwrap_or("")
                ))
            };
        }
    }
}

/// One start: spawn, wait for the first request (10 s at most), kill.
async fn start_once(
    launch: &local_stack::runtime::Launch<'_>,
) -> Result<(f64, Option<f64>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let mut command = launch.command(address);
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("{}: {e}", launch.executable.display()))?;
    let pid = child.id().ok_or("exited at once")?;
    let result = match tokio::time::timeout(
        Duration::from_secs(10),
        first_request(&listener, started, pid),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err("no request to the runtime API within 10 s".into()),
    };
    let _ = child.kill().await;
    result
}

/// What a binary is started with.
pub struct Target {
    pub name: String,
    pub executable: PathBuf,
    pub environment: BTreeMap<String, String>,
    pub memory_mb: u64,
    pub credentials: Option<local_stack::emulator::AccessKeys>,
}

/// `STARTS` starts of each target, round-robin.
pub async fn measure(targets: &[Target], endpoint: &str, region: &str) -> Vec<Function> {
    let mut out: Vec<Function> = targets
        .iter()
        .map(|t| Function {
            name: t.name.clone(),
            executable: t.executable.clone(),
            init_ms: Vec::new(),
            peak_rss_mib: None,
            failure: None,
        })
        .collect();
    for _ in 0..STARTS {
        for (t, f) in targets.iter().zip(out.iter_mut()) {
            if f.failure.is_some() {
                continue;
            }
            let launch = local_stack::runtime::Launch {
                name: &t.name,
                executable: &t.executable,
                environment: &t.environment,
                aws_endpoint: endpoint,
                region,
                memory_mb: t.memory_mb,
                credentials: t.credentials.as_ref(),
            };
            match start_once(&launch).await {
                Ok((ms, rss)) => {
                    f.init_ms.push(ms);
                    f.peak_rss_mib = match (f.peak_rss_mib, rss) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
                Err(e) => f.failure = Some(e),
            }
        }
    }
    for f in &mut out {
        f.init_ms.sort_by(f64::total_cmp);
    }
    out
}

/// The template's functions as the local stack resolved them (environment with the provisioned
/// names, the role's keys), each at `release/<Binary>`.
pub fn targets(stack: &local_stack::LocalStack, release: &Path) -> Vec<Target> {
    let memory: BTreeMap<String, u64> = stack
        .template
        .resources_of("AWS::Serverless::Function")
        .iter()
        .map(|f| {
            (
                f.logical_id.clone(),
                local_stack::template::json_number(
                    stack.template.function_property(f, "MemorySize").as_ref(),
                )
                .unwrap_or(128),
            )
        })
        .collect();
    stack
        .functions
        .iter()
        .map(|(id, info)| Target {
            name: id.clone(),
            executable: release.join(&info.binary),
            environment: info.environment.clone(),
            memory_mb: memory.get(id).copied().unwrap_or(128),
            credentials: info.credentials.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(10.0));
        assert_eq!(quantile(&v, 0.9), Some(18.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[3.0], 0.9), Some(3.0));
    }

    /// A "function" in bash: waits `delay`, then sends `request` to the runtime API and idles.
    fn function(dir: &Path, name: &str, delay: &str, request: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/bash\nsleep {delay}\nexec 3<>/dev/tcp/${{AWS_LAMBDA_RUNTIME_API%:*}}/${{AWS_LAMBDA_RUNTIME_API#*:}}\nprintf '{request}' >&3\nsleep 5\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn times_the_first_next_and_reports_an_init_error() {
        let dir = std::env::temp_dir().join(format!("clinflow-coldstart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let next = function(
            &dir,
            "next",
            "0.2",
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nhost: x\\r\\n\\r\\n",
        );
        let failing = function(
            &dir,
            "failing",
            "0",
            "POST /2018-06-01/runtime/init/error HTTP/1.1\\r\\ncontent-length: 17\\r\\n\\r\\nno TABLE_NAME set",
        );
        let target = |name: &str, executable: PathBuf| Target {
            name: name.into(),
            executable,
            environment: BTreeMap::new(),
            memory_mb: 128,
            credentials: None,
        };
        let measured = measure(
            &[target("next", next), target("failing", failing)],
            "http://127.0.0.1:9",
            "us-east-1",
        )
        .await;
        let next = &measured[0];
        assert_eq!(next.failure, None);
        assert_eq!(next.init_ms.len(), STARTS);
        // The script sleeps 200 ms before its request: the time includes it, and not 5 s more.
        let median = next.median().unwrap();
        assert!((200.0..2_000.0).contains(&median), "{median} ms");
        assert!(next.init_ms.windows(2).all(|w| w[0] <= w[1]));
        assert!(next.peak_rss_mib.is_some_and(|r| r > 0.0));
        let failing = &measured[1];
        assert!(failing.init_ms.is_empty());
        let failure = failing.failure.as_deref().unwrap();
        assert!(
            failure.contains("/init/error") && failure.contains("no TABLE_NAME set"),
            "{failure}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
