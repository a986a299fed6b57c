#!/usr/bin/env bash
# make flamegraph BENCH=<group> [ARGS=<bench args>]: a CPU flame graph (SVG) of one benchmark group,
# written to benchmarks/flamegraphs/<group>.svg. The bench binary is relinked with the release
# profile but its symbols kept (a package override on the command line: only clinflow-benchmarks
# relinks, no dependency is rebuilt; the next `make bench` strips it again), run under `perf record`
# (DWARF call graphs: the release code has no frame pointers, its .eh_frame unwinds), folded and drawn
# by inferno (installed into ~/.cargo/bin if missing). Child processes (openssl, the anchor of the
# ingest group) are recorded too and appear as their own tower.
set -euo pipefail
cd "$(dirname "$0")/.."
group="${1:?usage: scripts/flamegraph.sh <group> [bench args]}"
shift
export CARGO_INCREMENTAL=0
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v inferno-flamegraph >/dev/null || ! command -v inferno-collapse-perf >/dev/null; then
  cargo install inferno --locked
fi
cargo build --release --locked -p clinflow-benchmarks --bin clinflow-bench \
  --config 'profile.release.package.clinflow-benchmarks.strip="none"'
out_dir=target/flamegraph
mkdir -p "$out_dir" benchmarks/flamegraphs
data="$out_dir/$group.perf.data"
# 499 Hz: enough samples for a few seconds of work, and a perf.data of tens of MB with DWARF stacks.
perf record -F 499 --call-graph dwarf,16384 -o "$data" -- \
  target/release/clinflow-bench "$@" --only "$group"
perf script -i "$data" --no-inline 2>/dev/null |
  inferno-collapse-perf >"$out_dir/$group.folded"
inferno-flamegraph --title "make bench --only $group $* ($(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))" \
  --width 1600 <"$out_dir/$group.folded" >"benchmarks/flamegraphs/$group.svg"
rm -f "$data"
echo "written: benchmarks/flamegraphs/$group.svg (folded stacks: $out_dir/$group.folded)"
