# The two commands: `make dev` runs the system locally and walks its main job; `make test` runs
# the tests. `make package` builds what `sam deploy` takes; CI (.ci/run) runs test, then package.
.PHONY: dev test setup token lint build package bench clean

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

# The benchmarks (README, Measured): one markdown table, each figure beside its anchor from the same
# run, written to benchmarks/RESULTS.md with the date and the machine. BENCH=ingest|sdk|header|cache|report|ratelimit|api runs one
# group (printed, RESULTS.md left alone).
BENCH ?=
bench:
	cargo run --release --locked -p clinflow-benchmarks -- $(if $(BENCH),--only $(BENCH))

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
