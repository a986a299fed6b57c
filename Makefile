# The two commands: `make dev` runs the system locally and walks its main job; `make test` runs
# the tests. `make package` builds what `sam deploy` takes; CI (.ci/run) runs test, then package.
.PHONY: dev test setup token lint build package bench flamegraph soak fuzz clean

dev:
	@bash scripts/dev.sh

test:
	@bash scripts/test.sh

setup:
	@bash scripts/setup.sh

build:
	cargo build --workspace

# The deployable build (README, Deploy): its own venv with aws-sam-cli, cargo-lambda and ziglang;
# sam validate --lint; sam build (arm64 binaries); a check of every function's bootstrap.
package:
	@bash scripts/package.sh

# The long runs of issue 13 (README, Reliability): hundreds of uploads at once through the local
# stack with faults injected, readers polling, then a reconciliation. SOAK_UPLOADS=300
# SOAK_CONCURRENCY=32 size it; under 30 minutes here.
soak:
	@bash scripts/setup.sh
	cargo build --workspace --bins --locked
	cargo test --locked -p clinflow-tests --test soak -- --ignored --nocapture

# Coverage-guided fuzzing (README, Reliability; issue 13): cargo-fuzz on stable (--sanitizer none),
# installed if missing; the DICOM header parser, the signature parser and its engine, the whole
# inspection, each for a stated number of executions (FUZZ_RUNS=N for all, FUZZ_RUNS_DICOM_HEADER=N
# for one; FUZZ_TARGETS="signatures" runs some). Prints runs, exec/s, coverage and crashes per
# target; exits non-zero on a crash, its input left in fuzz/artifacts/<target>/. 13 minutes here
# from an empty corpus, 22 on a grown one (README, Reliability).
fuzz:
	@bash scripts/fuzz.sh

# The benchmarks (README, Measured): one markdown table, each figure beside its anchor from the same
# run, written to benchmarks/RESULTS.md with the date and the machine. BENCH=ingest|sdk|header|cache|
# report|ratelimit|coldstart|api|export runs one group (printed, RESULTS.md left alone). The function
# binaries are built first: the coldstart group starts each of them.
BENCH ?=
FUNCTIONS := $(patsubst functions/%/Cargo.toml,%,$(wildcard functions/*/Cargo.toml))
bench:
	cargo build --release --locked $(addprefix -p ,$(FUNCTIONS)) -p clinflow-benchmarks --bins
	cargo run --release --locked -p clinflow-benchmarks -- $(if $(BENCH),--only $(BENCH))

# A CPU flame graph of one benchmark group: make flamegraph BENCH=ingest [ARGS=256] (perf +
# inferno; benchmarks/flamegraphs/<group>.svg). ARGS go to the bench (ingest: the file's MiB).
ARGS ?=
flamegraph:
	@test -n "$(BENCH)" || { echo "usage: make flamegraph BENCH=<group> [ARGS=...]"; exit 2; }
	@bash scripts/flamegraph.sh $(BENCH) $(ARGS)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	.venv/bin/cfn-lint template.yaml
	.venv/bin/openapi-spec-validator openapi.yaml

# A dev token for the local stack, on the last line: make token ROLE=monitor SITES=SITE-BOS-01,SITE-LYN-02
# (a sponsor admin needs its trials: make token ROLE=sponsor_admin TRIALS=CLIN-DEMO-01;
# a patient its subject: make token ROLE=patient SUBJECT=SUBJ-0001)
ROLE ?= site_staff
SITES ?= SITE-BOS-01
TRIALS ?=
SUBJECT ?=
token:
	@cargo run -q -p clinflow-local -- token --role $(ROLE) --sites $(SITES) --trials "$(TRIALS)" $(if $(SUBJECT),--subject $(SUBJECT))

clean:
	cargo clean
	rm -rf .venv .venv-deploy .aws-sam
