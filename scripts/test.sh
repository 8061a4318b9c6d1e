#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian/Ubuntu machine and runs the whole test suite:
# unit tests, end-to-end tests (real master, real libzmq, pyzmq), the demo, the embedded checks
# (bare-metal builds, QEMU, TAP), fuzzing for a bounded time, and the benchmark's quick mode.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

step() { printf '\n==> %s\n' "$*"; }

step "system packages (graphviz for the graph, python3 for the compatibility test, tmux for the terminal UI tests, Node.js for the Foxglove client, Chromium for the web page test)"
missing=()
command -v dot >/dev/null || missing+=(graphviz)
command -v tmux >/dev/null || missing+=(tmux)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

step "pyzmq (a second, independent ZeroMQ peer for the compatibility test)"
if ! python3 -c 'import zmq' 2>/dev/null; then
  python3 -m pip install --quiet pyzmq 2>/dev/null || python3 -m pip install --quiet --break-system-packages pyzmq
fi

step "prometheus_client (its text parser reads the master's /metrics in the web tests)"
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  python3 -m pip install --quiet prometheus_client 2>/dev/null || python3 -m pip install --quiet --break-system-packages prometheus_client
fi

step "mcap (the MCAP project's Python reader) for the typed-recording test"
if ! python3 -c 'import mcap' 2>/dev/null; then
  python3 -m pip install --quiet mcap 2>/dev/null || python3 -m pip install --quiet --break-system-packages mcap
fi

step "the official Foxglove protocol client (@foxglove/ws-protocol from npm) for the Foxglove endpoint tests"
(cd tests/foxglove && npm ci --no-audit --no-fund --silent)

step "unit and end-to-end tests (the QEMU NIC firmware test runs in scripts/boards.sh, below)"
cargo test --workspace --all-targets -- --skip firmware_on_qemu_virt_nic
cargo test --workspace --doc

step "no_std: zerosmq-core and zerosmq-embedded build without std (host check)"
cargo build -p zerosmq-core --no-default-features
cargo build -p zerosmq-core --no-default-features --features curve
cargo test -p zerosmq-core --features curve --lib
cargo build -p zerosmq-embedded --no-default-features

step "demo smoke run (master and example system in one process)"
cargo run -q -p zerosmq-examples --bin demo -- --bind 127.0.0.1 --port 0 --readings 6 --duration 1 >/tmp/zerosmq-demo.log
grep -q "monitor: sent STOP after 6 readings" /tmp/zerosmq-demo.log
grep -q "listener: I heard hello world" /tmp/zerosmq-demo.log

step "soak, short: 100 topics of churn with a master restart in the middle"
cargo run -q -p zerosmq-tests --bin zerosmq-soak -- --seconds 10

for extra in .ci/embedded.sh .ci/bench-smoke.sh; do
  if [ -f "$extra" ]; then
    step "$extra"
    bash "$extra"
  fi
done

step "board projects (examples/boards): build each for its chip"
bash scripts/boards.sh

step "zerosmq-bridge (bridge/, its own workspace): Zenoh and MQTT against mosquitto, two masters, a Python Zenoh peer"
bash scripts/bridge.sh

step "all tests passed"
