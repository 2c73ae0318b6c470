#!/usr/bin/env bash
# The figures of the README's "Measured" section: stripped release size and
# cold-start init of every function, and the authorizer's CPU per verification.
# Release builds use their own target directory (fat LTO is slow; it should
# not invalidate the debug builds of `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/measure}
functions=$(ls functions)
cargo build --release $(printf -- '-p %s ' $functions hello) --bins
echo "## $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m)"
python3 scripts/init_time.py --runs "${RUNS:-20}" --floor "$CARGO_TARGET_DIR/release/hello" \
  $(printf -- "$CARGO_TARGET_DIR/release/%s " $functions)
cargo run --quiet --release -p authorizer --example cpu
cargo run --quiet --release -p whatsapp-webhook --example webhook_cpu
# Against the emulator (debug build is fine: it counts requests, not time).
CARGO_TARGET_DIR=target cargo run --quiet -p quota-alerts --example requests_per_record
CARGO_TARGET_DIR=target cargo run --quiet -p fanout --example fanout_requests
CARGO_TARGET_DIR=target cargo run --quiet -p whatsapp-bot --example whatsapp_requests
cargo run --quiet --release -p webhook-delivery --example throughput
CARGO_TARGET_DIR=target cargo run --quiet -p rpa-worker --example rpa_requests
cargo run --quiet --release -p rpa-scheduler --example scheduler_10k
