#!/usr/bin/env bash
# Installs what the two commands need and is missing: the repo's Python venv (moto server, cfn-lint,
# pydicom) and a build of the workspace. Idempotent and quick when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' is required: $2" >&2; exit 1; }; }
need cargo "install Rust with rustup (https://rustup.rs)"
need curl "apt-get install curl"
PYTHON=${PYTHON:-python3}
need "$PYTHON" "apt-get install python3 python3-venv"

# clamd, for the tests of the clamd scanner adapter (ClamAV's own databases are not needed: the
# tests load their own signatures).
if [ ! -x /usr/sbin/clamd ] && [ -z "${CLINFLOW_CLAMD:-}" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing clamav-daemon (apt-get)"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends clamav-daemon >/dev/null
  else
    echo "setup: clamd is required for the tests: install clamav-daemon" >&2; exit 1
  fi
fi

# Chromium and its WebDriver, for the web console's browser test (tests/api/console.rs).
if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } && [ -z "${CLINFLOW_CHROMEDRIVER:-}" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium and chromium-driver (apt-get)"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  else
    echo "setup: chromium and chromedriver are required for the browser test" >&2; exit 1
  fi
fi

# poppler-utils (pdftoppm, pdftotext), for the tests that render the PDF export and read its text.
if ! command -v pdftoppm >/dev/null 2>&1 || ! command -v pdftotext >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing poppler-utils (apt-get)"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends poppler-utils >/dev/null
  else
    echo "setup: pdftoppm and pdftotext are required for the tests: install poppler-utils" >&2; exit 1
  fi
fi

stamp=.venv/.requirements.sha256
want=$(sha256sum scripts/requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv (moto server, cfn-lint, pydicom, openapi-spec-validator)"
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    # Debian's python3 without ensurepip: install python3-venv (CI machines run as root).
    if command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    "$PYTHON" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r scripts/requirements.txt
  echo "$want" > "$stamp"
fi

# s3s-fs, an S3 server on the local file system that enforces SigV4 (signature, expiry, signed
# length and x-amz-checksum-sha256) where moto checks none of them: tests/sigv4 sends our presigned
# URLs to it. Pinned: later versions need a newer rustc. About 6 minutes to build on 2 cores, once:
# it goes to cargo's own bin directory (outside the clone, so a clean clone finds it), and is
# skipped when that version is already there. Its build uses a throwaway target dir, not ours.
S3S_FS_VERSION=0.14.1
s3s_fs="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
if [ -z "${CLINFLOW_S3S_FS:-}" ] && [ "$("$s3s_fs" --version 2>/dev/null)" != "s3s-fs $S3S_FS_VERSION" ]; then
  echo "setup: installing s3s-fs $S3S_FS_VERSION (cargo install, about 6 minutes on 2 cores)"
  s3s_build=$(mktemp -d)
  CARGO_TARGET_DIR="$s3s_build" cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked --force --quiet
  rm -rf "$s3s_build"
fi
