#!/usr/bin/env bash
# Everything CI runs (`make test`): format, lints, the template check, then every test. Integration
# tests start their own moto server on a free loopback port (or use AWS_ENDPOINT_URL if set).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cfn-lint template.yaml"
.venv/bin/cfn-lint template.yaml
echo "== openapi-spec-validator openapi.yaml"
.venv/bin/openapi-spec-validator openapi.yaml
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (the functions' binaries: one test runs process-dicom as Lambda runs it)"
cargo build --workspace --bins --locked
echo "== cargo test"
cargo test --workspace --locked
echo "== all checks passed in $(( $(date +%s) - start ))s"
