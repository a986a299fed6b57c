//! The local HttpApi under `wrk` on loopback (the release build of `clinflow-local` over its own
//! emulator): requests per second and p99 latency for
//! - the gateway alone: a path no route matches, answered 404 by the local gateway itself — the
//!   ceiling every route is measured against (JWT check, routing, payload building excluded);
//! - `GET /v1/metadata/drug_code/N02BE01`: the reference cache, no AWS call per request;
//! - `GET /v1/uploads/{id}`: one DynamoDB `GetItem` on the emulator;
//! - `POST /v1/uploads`: a transaction (record + audit) and a presigned PUT on the emulator.
//!
//! The emulator is moto, a single Python process: the routes that call it measure moto as much as
//! this code. Loopback only; 2 threads, 16 connections, 10 s per route; the template's route
//! throttling raised for the run; only 2xx/3xx answers count as served.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Every answer wrk counted, per second.
    pub requests_per_second: f64,
    /// Answers outside 2xx/3xx (wrk's "Non-2xx or 3xx responses"), in all.
    pub non_2xx: u64,
    pub requests: u64,
    pub p99_ms: f64,
}

impl Load {
    /// 2xx/3xx answers per second: what a route served (a 429 or a 5xx is not served).
    pub fn served_per_second(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        self.requests_per_second * (self.requests - self.non_2xx.min(self.requests)) as f64
            / self.requests as f64
    }
}

/// The figures, by route label.
pub struct ApiLoad {
    pub gateway: Load,
    pub metadata: Load,
    pub get_upload: Load,
    pub create_upload: Load,
    /// The local stack process's peak RSS (VmHWM) after the load, MiB (moto, a process of its
    /// own, not counted).
    pub stack_peak_rss_mib: Option<f64>,
}

struct Stack(Child);

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(3990)
}

/// `wrk`'s `Requests/sec` and the 99% line of `--latency`.
fn parse_wrk(out: &str) -> Option<Load> {
    let rps = out
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let p99 = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("99%"))?
        .split_whitespace()
        .nth(1)?;
    let ms = if let Some(v) = p99.strip_suffix("us") {
        v.parse::<f64>().ok()? / 1000.0
    } else if let Some(v) = p99.strip_suffix("ms") {
        v.parse::<f64>().ok()?
    } else if let Some(v) = p99.strip_suffix('s') {
        v.parse::<f64>().ok()? * 1000.0
    } else {
        return None;
    };
    let requests = out
        .lines()
        .map(str::trim)
        .find(|l| l.contains(" requests in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let non_2xx = out
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    Some(Load {
        requests_per_second: rps,
        non_2xx,
        requests,
        p99_ms: ms,
    })
}

fn wrk(url: &str, token: &str, script: Option<&Path>) -> Load {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c16", "-d10s", "--latency"])
        .args(["-H", &format!("authorization: Bearer {token}")]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd.arg(url).output().expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text).unwrap_or_else(|| panic!("wrk output:\n{text}"))
}

/// Starts the release `clinflow-local` from `root`, measures, stops it.
pub fn run(root: &Path) -> ApiLoad {
    let status = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--locked",
            "-q",
            "-p",
            "clinflow-local",
        ])
        .current_dir(root)
        .status()
        .expect("cargo");
    assert!(status.success(), "building clinflow-local");
    let bin = root.join("target/release/clinflow-local");
    let port = free_port();
    let lambda_port = free_port();
    let mut child = Command::new(&bin)
        .args(["up", "--seed-demo"])
        .env("CLINFLOW_API_ADDR", format!("127.0.0.1:{port}"))
        .env("CLINFLOW_LAMBDA_ADDR", format!("127.0.0.1:{lambda_port}"))
        .env("CLINFLOW_STACK_NAME", format!("bench{port}"))
        .env("RUST_LOG", "error")
        // The template's route throttling (50 req/s by default) would answer most of the load 429:
        // raised here so the figures are the routes', not the throttle's.
        .env(
            "CLINFLOW_PARAMETERS",
            "ApiThrottlingRateLimit=1000000;ApiThrottlingBurstLimit=1000000",
        )
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("clinflow-local up");
    let stdout = child.stdout.take().expect("stdout");
    let pid = child.id();
    let stack = Stack(child);
    let started = Instant::now();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("clinflow local stack ready") => break,
            Some(_) if started.elapsed() < Duration::from_secs(120) => {}
            _ => panic!("the local stack did not start"),
        }
    }
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let token = {
        let out = Command::new(&bin)
            .args(["token", "--role", "site_staff", "--sites", "SITE-BOS-01"])
            .current_dir(root)
            .output()
            .expect("token");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let api = format!("http://127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("clinflow-bench-{port}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let body = r#"{"subjectId":"SUBJ-0001","fileName":"bench.dcm","contentType":"application/dicom","sizeBytes":1048576,"sha256":"3dd31e5cc835b3f2cdd46c9da1982f59251e78518fefa8163d914631c66437d6"}"#;
    let post = dir.join("post.lua");
    std::fs::write(
        &post,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"content-type\"] = \"application/json\"\n"
        ),
    )
    .expect("post.lua");
    // One upload to read back.
    let created = Command::new("curl")
        .args(["-sS", "-X", "POST", &format!("{api}/v1/uploads")])
        .args(["-H", &format!("authorization: Bearer {token}")])
        .args(["-H", "content-type: application/json", "-d", body])
        .output()
        .expect("curl");
    let created: serde_json::Value =
        serde_json::from_slice(&created.stdout).expect("a created upload");
    let id = created["uploadId"].as_str().expect("uploadId").to_owned();
    let figures = ApiLoad {
        gateway: wrk(&format!("{api}/no-such-route"), &token, None),
        metadata: wrk(
            &format!("{api}/v1/metadata/drug_code/N02BE01"),
            &token,
            None,
        ),
        get_upload: wrk(&format!("{api}/v1/uploads/{id}"), &token, None),
        create_upload: wrk(&format!("{api}/v1/uploads"), &token, Some(&post)),
        stack_peak_rss_mib: crate::peak_rss_mib_of(&pid.to_string()),
    };
    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let out = "Running 10s test @ http://x\n  Latency Distribution\n     50%  1.20ms\n     99%  850.00us\n  1000 requests in 10.00s, 1.2MB read\n  Non-2xx or 3xx responses: 250\nRequests/sec:  100.00\n";
        let l = parse_wrk(out).unwrap();
        assert_eq!(l.requests_per_second, 100.0);
        assert_eq!((l.requests, l.non_2xx), (1000, 250));
        assert!((l.served_per_second() - 75.0).abs() < 1e-9);
        assert!((l.p99_ms - 0.85).abs() < 1e-9);
    }
}
