#!/usr/bin/env bash
# The benchmark's quick mode as a CI smoke test: every system of the side-by-side benchmark
# (floor, zmq_proxy reference broker, our master with libzmq and with our std client, mosquitto)
# runs each measurement briefly. It fails when a measurement fails to run, never on figures:
# timing belongs to the benchmark, not to CI. Takes about 30 s after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  echo "==> installing mosquitto (the MQTT broker the benchmark compares with)"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto
fi
# The benchmark starts its own mosquitto on a free port; the packaged service is not needed.

echo "==> zerosmq-bench --quick"
out="${CARGO_TARGET_DIR:-target}/bench-smoke.json"
cargo run --release -q -p zerosmq-tests --bin zerosmq-bench -- --quick --json "$out"

if grep -q '"error": "' "$out"; then
  echo "bench-smoke: some measurements failed to run:" >&2
  grep '"error": "' "$out" >&2
  exit 1
fi
echo "bench-smoke: every measurement ran ($out)"
