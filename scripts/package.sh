#!/usr/bin/env bash
# `make package`: the deployable build, exactly what `sam deploy` takes, with no Docker and no
# aarch64 gcc. A venv of its own (.venv-deploy: aws-sam-cli, cargo-lambda and ziglang from PyPI,
# pinned in scripts/deploy-requirements.txt); `sam validate --lint`; `sam build`, which runs
# `cargo lambda build --release --arm64` (zig as the C compiler and linker) for each function and
# copies its binary to .aws-sam/build/<LogicalId>/bootstrap. Then checks that every function of the
# template has its bootstrap and that each is an aarch64 ELF executable, as Lambda's arm64 runs it.
# Honours CARGO_TARGET_DIR (cargo-lambda and sam read cargo's target directory).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

PYTHON=${PYTHON:-python3}
venv=.venv-deploy
stamp=$venv/.requirements.sha256
want=$(sha256sum scripts/deploy-requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/sam" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "package: creating $venv (aws-sam-cli, cargo-lambda, ziglang)"
  rm -rf "$venv"
  if ! "$PYTHON" -m venv "$venv" 2>/dev/null; then
    # Debian's python3 without ensurepip (CI machines run as root).
    if command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    "$PYTHON" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r scripts/deploy-requirements.txt
  echo "$want" > "$stamp"
fi
# sam runs `cargo lambda` (cargo-lambda on PATH), which runs zig as `python3 -m ziglang`.
export PATH="$PWD/$venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0

# Lambda's arm64 target for the Rust toolchain (cargo-lambda would add it too, less visibly).
if command -v rustup >/dev/null 2>&1 &&
  ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "package: rustup target add aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu
fi

echo "== sam validate --lint"
sam validate --lint
echo "== sam build (cargo lambda build --release --arm64, each function)"
sam build
echo "== every function has an aarch64 bootstrap"
"$venv/bin/python" - <<'PY'
import os, sys
from samcli.yamlhelper import yaml_parse

with open("template.yaml") as f:
    template = yaml_parse(f.read())
functions = sorted(
    name for name, r in template["Resources"].items() if r.get("Type") == "AWS::Serverless::Function"
)
bad = []
for name in functions:
    path = os.path.join(".aws-sam", "build", name, "bootstrap")
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError as e:
        bad.append(f"{name}: {e}")
        continue
    # ELF magic, 64-bit, little endian, an executable (ET_EXEC or ET_DYN), e_machine 183 (AArch64).
    ok = (
        header[:4] == b"\x7fELF"
        and header[4] == 2
        and header[5] == 1
        and int.from_bytes(header[16:18], "little") in (2, 3)
        and int.from_bytes(header[18:20], "little") == 183
        and os.access(path, os.X_OK)
    )
    size = os.path.getsize(path)
    print(f"  {name}: {path} ({size / 1e6:.1f} MB){'' if ok else ' - NOT an aarch64 ELF executable'}")
    if not ok:
        bad.append(name)
if not functions or bad:
    sys.exit(f"package: bad or missing bootstrap: {', '.join(bad) or 'no functions'}")
PY
if command -v file >/dev/null 2>&1; then
  file .aws-sam/build/*/bootstrap
fi
echo "== package built in $(( $(date +%s) - start ))s: .aws-sam/build (sam deploy --guided takes it from here)"
