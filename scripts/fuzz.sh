#!/usr/bin/env bash
# make fuzz (README, Reliability; issue 13): coverage-guided fuzzing of the inspection crate with
# cargo-fuzz (libFuzzer) on stable Rust: `--sanitizer none` (the crate is safe Rust: we look for
# panics, arithmetic overflows — the targets are built with debug assertions —, memory beyond
# -rss_limit_mb and inputs slower than -timeout), `--release`. Targets (fuzz/fuzz_targets/):
#   dicom_header  the DICOM header push parser, whole and in chunks: same result, bounded memory;
#   signatures    the .hdb/.hsb/.ndb parser, then the engine compiled from what it accepted,
#                 scanning whole and in chunks: no panic, same verdict;
#   inspector     the whole one-pass inspection (hash, scan, parse) over arbitrary bytes.
# Each target runs a stated number of executions: FUZZ_RUNS_<TARGET> (e.g. FUZZ_RUNS_DICOM_HEADER)
# or FUZZ_RUNS for all; FUZZ_TARGETS="dicom_header signatures" runs some. The defaults took 13.4
# minutes here (2 shared cores) from an empty corpus, the 1-minute build from clean included; 22
# on a grown corpus at load 3.5 (signatures slows to ~2,400/s on 4 KiB inputs:
# FUZZ_RUNS_SIGNATURES=1000000 keeps that run under 15 minutes). Seeds: the DICOM files of
# pydicom and pydicom-data (from .venv, cut to 64 KiB: the parser stops reading values at Pixel
# Data) and fuzz/seeds/signatures (committed). The corpus grows in fuzz/corpus/<target> (not in
# git) and is reused by the next run. A crash, an OOM or a timeout leaves its input in
# fuzz/artifacts/<target>/ (in fuzz/, `cargo fuzz run --sanitizer none --release -a <target> <file>`
# replays it) and makes this script exit non-zero, after every target ran.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_INCREMENTAL=0

CARGO_FUZZ_VERSION=0.13.1
if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

targets=(${FUZZ_TARGETS:-dicom_header signatures inspector})
declare -A default_runs=([dicom_header]=250000 [signatures]=2000000 [inspector]=150000)
declare -A max_len=([dicom_header]=65536 [signatures]=4096 [inspector]=65536)
declare -A seeds=([dicom_header]=fuzz/seeds/dicom [signatures]=fuzz/seeds/signatures [inspector]=fuzz/seeds/dicom)
declare -A dict=([dicom_header]=fuzz/dicts/dicom.dict [signatures]=fuzz/dicts/signatures.dict [inspector]=fuzz/dicts/dicom.dict)

# The DICOM seeds, from the venv's pydicom (test files, charsets, palettes) and pydicom-data.
mkdir -p fuzz/seeds/dicom
site=$(ls -d .venv/lib/python3*/site-packages 2>/dev/null | head -1 || true)
if [ -n "$site" ]; then
  find -L "$site/pydicom/data" "$site/data_store" -name '*.dcm' 2>/dev/null | while read -r f; do
    head -c 65536 "$f" >"fuzz/seeds/dicom/$(basename "$(dirname "$f")")-$(basename "$f")"
  done
fi
if [ -z "$(ls -A fuzz/seeds/dicom)" ]; then
  echo "no DICOM seeds (no .venv with pydicom: make setup); fuzzing from an empty corpus" >&2
fi
echo "seeds: $(ls fuzz/seeds/dicom | wc -l) DICOM files, $(ls fuzz/seeds/signatures | wc -l) signature files"

build=(--sanitizer none --release --debug-assertions)
start=$(date +%s)
(cd fuzz && cargo fuzz build "${build[@]}")

declare -A rows
failed=0
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
  var="FUZZ_RUNS_${t^^}"
  runs="${!var:-${FUZZ_RUNS:-${default_runs[$t]}}}"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  before=$(ls "fuzz/artifacts/$t" | wc -l)
  log="fuzz/logs/$t.log"
  echo "== $t: $runs executions (log: $log)"
  rc=0
  t0=$(date +%s)
  (cd fuzz && cargo fuzz run "${build[@]}" "$t" "corpus/$t" "../${seeds[$t]}" -- \
    -runs="$runs" -max_len="${max_len[$t]}" -rss_limit_mb=512 -timeout=10 \
    -dict="../${dict[$t]}" -print_final_stats=1) >"$log" 2>&1 || rc=$?
  secs=$(($(date +%s) - t0))
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  # The inputs libFuzzer keeps (its final `corp:`); the directory also holds ones it replaced since.
  corpus=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$(($(ls "fuzz/artifacts/$t" | wc -l) - before))
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|artifact_prefix|Test unit written' "$log" | head -8 || true
  fi
  rows[$t]="$(printf '%-13s %10s %6s %8s %6s %7s %7s %8s' "$t" "${executed:-?}" "$secs" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corpus:-?}" "$crashes")"
done

echo
echo "make fuzz, $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(($(date +%s) - start)) s (build included)"
printf '%-13s %10s %6s %8s %6s %7s %7s %8s\n' target runs s exec/s cov ft corpus crashes
for t in "${targets[@]}"; do echo "${rows[$t]}"; done
if [ "$failed" -ne 0 ]; then
  echo "crash, OOM or timeout: inputs in fuzz/artifacts/<target>/, logs in fuzz/logs/" >&2
  exit 1
fi
