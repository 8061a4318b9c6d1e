#!/usr/bin/env bash
# Builds and tests zerosmq-bridge (bridge/, its own cargo workspace: zenoh and rumqttc stay out
# of the main build). Installs what its tests need when missing: mosquitto and its clients
# (Debian), eclipse-zenoh (PyPI, the same protocol version as the zenoh crate). The tests start
# the master binary of the main workspace (built into ./target if it is not there yet).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin"

# The Python peer speaks Zenoh 1.10 (the crate in bridge/Cargo.lock).
if ! python3 -c 'import zenoh' 2>/dev/null; then
  python3 -m pip install --quiet "eclipse-zenoh==1.10.*" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "eclipse-zenoh==1.10.*"
fi

# The master the tests start, from the main workspace (already built by scripts/test.sh).
cargo build -q -j2 -p zerosmq-master --bin zerosmq-master
export ZEROSMQ_MASTER_BIN="$PWD/target/debug/zerosmq-master"

# Its own target directory, built once: tests and binary share it.
export CARGO_TARGET_DIR="${BRIDGE_TARGET_DIR:-$PWD/target/bridge}"
cd bridge
cargo build -j2 --locked --all-targets
cargo clippy -j2 --locked --all-targets -- -D warnings
cargo fmt -- --check
# One test binary at a time: each test starts masters, brokers and bridges of its own.
cargo test -j2 --locked -- --test-threads=2
