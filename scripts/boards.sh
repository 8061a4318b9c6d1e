#!/usr/bin/env bash
# Builds every board project under examples/boards/ (each its own cargo workspace) with Debian's
# rustc and -Z build-std, as a user flashing a board would build it. Wi-Fi credentials are
# build-time settings with no default, so CI builds with placeholders (the firmware is not run).
# Called by scripts/test.sh; installs Debian's bare-metal toolchain when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

need=()
for p in rustc-web cargo-web rust-web-src; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

export CARGO_TARGET_DIR="${BOARDS_TARGET_DIR:-$ROOT/target/boards}"
export WIFI_SSID="${WIFI_SSID:-ci-placeholder}" WIFI_PASSWORD="${WIFI_PASSWORD:-ci-placeholder}"
for project in examples/boards/*/; do
  [ -f "$project/Cargo.toml" ] || continue
  start=$(date +%s)
  echo "==> board project $project"
  (cd "$project" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo build --release --locked -q)
  echo "    built in $(( $(date +%s) - start )) s"
done
