# nuvem: `make dev` runs the whole system locally, `make test` runs every check.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
EMULATOR_PORT ?= 4566
API_PORT ?= 3000
GRAPH_PORT ?= 3002
CHAT_PORT ?= 3003
RPA_PORT ?= 3004
STACK ?= nuvem
# Instances of each function at once in `make dev` (nuvem-local --concurrency),
# and more nuvem-local arguments (e.g. DEV_ARGS="--param LogLevel=debug").
CONCURRENCY ?= 1
DEV_ARGS ?=
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: venv sam-venv build dev admin-key emails test lint fmt measure bench-emulator schemathesis package load fuzz chaos

venv: $(VENV)/.installed $(VENV)/bin/nuvem-emulator
$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# moto's server with DynamoDB calls serialised (see the script's docstring).
$(VENV)/bin/nuvem-emulator: scripts/emulator.py $(VENV)/.installed
	{ echo '#!$(CURDIR)/$(VENV)/bin/python'; cat scripts/emulator.py; } > $@
	chmod +x $@

build:
	cargo build --workspace --bins

## The emulator on 127.0.0.1:$(EMULATOR_PORT), then every function of
## template.yaml behind the HTTP API on 127.0.0.1:$(API_PORT), its queue
## consumers and its schedules. Ctrl-C stops everything.
dev: venv build
	@mkdir -p .local
	@echo "make dev: WebhookAllowLoopback=true, so webhook endpoints on 127.0.0.1 (http://) are allowed here;"
	@echo "          a deployment refuses loopback unless its operator sets that parameter."
	@echo "make dev: WhatsApp goes to a fake Graph API on 127.0.0.1:$(GRAPH_PORT), the bot to a fake chat API on 127.0.0.1:$(CHAT_PORT)."
	@echo "make dev: RPA jobs go to a fake RPA API on 127.0.0.1:$(RPA_PORT) (see nuvem-local --help for its markers)."
	@$(VENV)/bin/nuvem-emulator -H 127.0.0.1 -p $(EMULATOR_PORT) > .local/emulator.log 2>&1 & \
	  moto=$$!; trap 'kill $$moto 2>/dev/null' EXIT INT TERM; \
	  target/debug/nuvem-local --template template.yaml --port $(API_PORT) \
	    --bin-dir target/debug --stack-name $(STACK) \
	    --emulator-url http://127.0.0.1:$(EMULATOR_PORT) \
	    --param PublicBaseUrl=http://127.0.0.1:$(API_PORT) \
	    --param S3ClientEndpoint=http://127.0.0.1:$(EMULATOR_PORT) \
	    --param WebhookAllowLoopback=true \
	    --fake-graph 127.0.0.1:$(GRAPH_PORT) \
	    --fake-chat 127.0.0.1:$(CHAT_PORT) \
	    --fake-rpa 127.0.0.1:$(RPA_PORT) \
	    --concurrency $(CONCURRENCY) $(DEV_ARGS)

## A new platform admin credential for the running `make dev` stack.
admin-key:
	@cargo build --quiet --bin nuvem-admin
	@AWS_ENDPOINT_URL=http://127.0.0.1:$(EMULATOR_PORT) AWS_REGION=us-east-1 \
	  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
	  target/debug/nuvem-admin create-admin-key --table $(STACK)-Table

## Emails the running `make dev` stack has sent (read back from the emulator).
emails:
	@curl -sf http://127.0.0.1:$(EMULATOR_PORT)/moto-api/data.json | python3 scripts/emails.py

fmt:
	cargo fmt --all

## checkov has a virtualenv of its own, $(VENV)/checkov: it pins boto3 to one
## version (1.35.49), which in $(VENV) would hold back the emulator's boto3 and
## botocore. --skip-download and CKV_SKIP_PACKAGE_UPDATE_CHECK keep it offline;
## it exits non-zero on any failed check (see README, "Template checks").
lint: venv
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/openapi-spec-validator openapi.yaml
	test -f $(VENV)/checkov/.installed-3.3.30 || { python3 -m venv $(VENV)/checkov \
	  && $(VENV)/checkov/bin/pip install --quiet --disable-pip-version-check checkov==3.3.30 \
	  && touch $(VENV)/checkov/.installed-3.3.30; }
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(VENV)/checkov/bin/checkov -f template.yaml \
	  --framework cloudformation --skip-download --compact --quiet
	$(MAKE) --no-print-directory sam-venv
	$(SAM_OFFLINE) $(SAM) validate --lint -t template.yaml
	$(SAM_OFFLINE) $(SAM) validate -t template.yaml --region us-east-1

## The AWS SAM CLI has a virtualenv of its own, like checkov: it pins boto3
## and cfn-lint to versions of its own.
SAM_VERSION := 1.170.0
SAM := $(VENV)/sam/bin/sam
## `sam validate` offline: no telemetry, no EC2 metadata probe for a region,
## and any AWS call it would make goes to a closed port on 127.0.0.1.
SAM_OFFLINE := SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true \
  AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline \
  HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY=
sam-venv: $(VENV)/sam/.installed-$(SAM_VERSION)
$(VENV)/sam/.installed-$(SAM_VERSION):
	python3 -m venv $(VENV)/sam
	$(VENV)/sam/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_VERSION)
	touch $@

## Every function for arm64 (provided.al2023), as a deployment runs them:
## `sam build` with the template's rust-cargolambda metadata, which runs
## `cargo lambda build --release --arm64 --bin <function>` for each; zig
## (PyPI's ziglang, in $(VENV)) links, no Docker. Output in .aws-sam/build
## (bootstraps and the built template); sizes printed at the end.
package: venv sam-venv
	rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
	  || rustup target add aarch64-unknown-linux-gnu
	SAM_CLI_TELEMETRY=0 CARGO_ZIGBUILD_ZIG_PATH=$(CURDIR)/$(VENV)/bin/python-zig \
	  $(SAM) build -t template.yaml --build-dir .aws-sam/build
	@for f in .aws-sam/build/*/bootstrap; do \
	  printf '%-24s %s\n' "$$(basename $$(dirname $$f))" "$$(stat -c %s $$f)"; \
	done; file .aws-sam/build/Authorizer/bootstrap

## The chaos flows (infra/local/tests/chaos.rs) spend their minutes waiting
## on queues and retries, so they run beside the rest of the tests rather
## than after them; their output goes to .local/chaos-test.log, and their
## failures (or closing line) are printed at the end.
test: venv lint
	cargo build --workspace --bins
	$(PY) scripts/bench_transactions.py --check
	$(MAKE) --no-print-directory schemathesis SCHEMATHESIS_EXAMPLES=$(SCHEMATHESIS_EXAMPLES_TEST)
	$(PY) scripts/init_time.py --check-no-cert-reads $(addprefix target/debug/,$(notdir $(wildcard functions/*)))
	$(PY) scripts/init_time.py --check-no-cert-reads --ahead-of-requests \
	  $(addprefix target/debug/,$(filter-out fallback,$(notdir $(wildcard functions/*))))
	cargo test --workspace --no-run
	@mkdir -p .local; rm -f .local/chaos-test.rc; \
	{ cargo test -p nuvem-local --test chaos > .local/chaos-test.log 2>&1 \
	  && echo 0 > .local/chaos-test.rc || echo $$? > .local/chaos-test.rc; } & \
	rc=0; cargo test --workspace -- --skip under_faults_ || rc=$$?; wait; \
	echo "chaos flows (.local/chaos-test.log):"; \
	{ grep -A3 'panicked at' .local/chaos-test.log || true; } | cut -c1-2000; \
	grep '^test \|^test result:' .local/chaos-test.log || true; \
	[ "$$rc" = 0 ] && [ "$$(cat .local/chaos-test.rc)" = 0 ]

## schemathesis against `make dev` from openapi.yaml, with a key of each role
## (scripts/schemathesis_run.py; figures in the README). It has a virtualenv
## of its own, like checkov, so its pins never move the emulator's.
SCHEMATHESIS_VERSION := 4.32.5
SCHEMATHESIS_EXAMPLES ?= 50
SCHEMATHESIS_EXAMPLES_TEST ?= 10
$(VENV)/schemathesis/.installed-$(SCHEMATHESIS_VERSION):
	python3 -m venv $(VENV)/schemathesis
	$(VENV)/schemathesis/bin/pip install --quiet --disable-pip-version-check schemathesis==$(SCHEMATHESIS_VERSION)
	touch $@

schemathesis: venv build $(VENV)/schemathesis/.installed-$(SCHEMATHESIS_VERSION)
	$(PY) scripts/schemathesis_run.py --examples $(SCHEMATHESIS_EXAMPLES)

## Property-based fuzzing (proptest) of every parser of outside bytes: the
## targets of fuzz/tests, FUZZ_CASES cases each (make test runs them with
## proptest's default of 256, in debug, as part of cargo test).
FUZZ_CASES ?= 1000000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) cargo test -p nuvem-fuzz --profile fuzz

## Fault injection (infra/local/tests/chaos.rs, README "Chaos"): the
## end-to-end flows with CHAOS_RATE of the functions' AWS calls faulted and
## CHAOS_CRASHES of the back-office invocations killed, larger than make
## test's run; the figures are printed at the end (.local/chaos.txt).
CHAOS_RATE ?= 0.2
CHAOS_CRASHES ?= 0.05
chaos: venv build
	@mkdir -p .local && rm -f .local/chaos.txt
	NUVEM_CHAOS_RATE=$(CHAOS_RATE) NUVEM_CHAOS_CRASHES=$(CHAOS_CRASHES) \
	  NUVEM_CHAOS_EVENTS=200 NUVEM_CHAOS_MESSAGES=10 NUVEM_CHAOS_PROCESSES=20 \
	  NUVEM_CHAOS_REPORT=$(CURDIR)/.local/chaos.txt \
	  cargo test -p nuvem-local --test chaos -- --include-ignored --test-threads 1 > .local/chaos.log 2>&1 \
	  || { tail -50 .local/chaos.log; exit 1; }
	@cat .local/chaos.txt

## A bounded load test of make dev on 127.0.0.1 (scripts/load.py; figures in
## the README): LOAD_RATE requests a second for LOAD_SECONDS.
LOAD_RATE ?= 10
LOAD_SECONDS ?= 60
LOAD_CONCURRENCY ?= 4
load: venv build
	$(PY) scripts/load.py --rate $(LOAD_RATE) --seconds $(LOAD_SECONDS) --concurrency $(LOAD_CONCURRENCY)

## Release sizes, cold-start init time and authorizer CPU (see README).
measure: venv
	scripts/measure.sh

## The emulator's GetItem and TransactWriteItems latency at 1k, 10k and 100k
## items (scripts/bench_transactions.py; its --check compares rollbacks with moto's).
bench-emulator: venv
	$(PY) scripts/bench_transactions.py
