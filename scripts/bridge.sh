#!/usr/bin/env bash
# Builds and tests zerosmq-bridge (bridge/, its own cargo workspace: zenoh and rumqttc stay out
# of the main build). Installs what its tests need when missing: mosquitto and its clients
# (Debian), openssl (the TLS test's certificates), eclipse-zenoh (PyPI, the same protocol version as the zenoh crate). The tests start
# the master binary of the main workspace (built into ./target if it is not there yet).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
# The MQTT TLS test makes its CA and broker certificates with the openssl command.
command -v openssl >/dev/null || missing+=(openssl)
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
cargo fmt -- --check
# Clippy as the compiler of the bridge's own code (what `cargo clippy` does), in the same build
# as the tests: `cargo clippy` would check every dependency a second time, minutes of Zenoh.
driver="$(command -v clippy-driver || rustup which clippy-driver 2>/dev/null || true)"
if [ -n "$driver" ]; then
  export RUSTC_WORKSPACE_WRAPPER="$driver"
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
else
  echo "clippy-driver not found: the bridge is built without clippy" >&2
fi
cargo build -j2 --locked --all-targets
# One test binary at a time, two tests at once: each test starts masters, brokers and bridges.
cargo test -j2 --locked -- --test-threads=2
