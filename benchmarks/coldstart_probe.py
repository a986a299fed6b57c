#!/usr/bin/env python3
"""Cold start without the local stack (README, Measured: session 6): `python3 benchmarks/coldstart_probe.py N BIN...`
starts each binary N times, round robin, with a Lambda-shaped environment (PROBE_ENV="NAME=value ..." adds the
function's own variables), and times spawn -> its first request line on a loopback runtime API. AWS_ENDPOINT_URL points
at a closed port: only for functions that make no AWS call at init."""
import os, socket, subprocess, sys, time, statistics
n = int(sys.argv[1]); bins = sys.argv[2:]
base = {"PATH": os.environ["PATH"], "AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
        "IMAGING_SUMMARY_TABLE": "t", "RUST_LOG": "info"}
extra = dict(kv.split("=", 1) for kv in os.environ.get("PROBE_ENV", "").split() if kv)
res = {b: [] for b in bins}
for _ in range(n):
    for b in bins:
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
        env = dict(base, **extra, AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % s.getsockname()[1])
        t0 = time.perf_counter()
        p = subprocess.Popen([b], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        s.settimeout(5)
        try:
            c, _ = s.accept()
        except Exception:
            print(b, "no connection"); p.kill(); p.wait(); s.close(); continue
        d = b""
        while b"\r\n" not in d:
            x = c.recv(4096)
            if not x: break
            d += x
        t = (time.perf_counter() - t0) * 1000
        p.kill(); p.wait(); c.close(); s.close()
        res[b].append(t) if d.startswith(b"GET /2018-06-01/runtime/invocation/next") else print(b, d[:200])
for b, v in res.items():
    v.sort()
    print(f"{os.path.basename(b):24s} median {statistics.median(v):6.1f} ms  p90 {v[int(0.9*len(v))-1]:6.1f}  min {v[0]:6.1f}  size {os.path.getsize(b)/1e6:.2f} MB")
