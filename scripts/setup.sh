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
