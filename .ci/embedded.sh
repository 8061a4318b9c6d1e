#!/bin/bash
# Everything CI checks for the embedded node (issue 4). Idempotent; runs as root on a fresh
# Debian 12 machine (CI=true) or on a developer's machine. Called by .ci/run.
#
#  1. installs Debian's Rust 1.96 (rustc-web, cargo-web, rust-web-src: its LLVM knows the
#     bare-metal targets and it ships core's source) and QEMU;
#  2. host checks of the embedded crate's feature combinations (std, async, log, defmt; both
#     loggers at once must fail) and its unit + mock-transport tests;
#  3. bare-metal builds with no std and no alloc (build-std=core only) for thumbv7em-none-eabihf
#     and riscv32imc-unknown-none-elf, the async node included;
#  4. the on-target self-tests under qemu-system-arm and qemu-system-riscv32, by exit code
#     (also built with feature curve-recorded: CURVE against recorded libzmq servers);
#  5. every fuzz target for a bounded time (FUZZ_SECONDS, default 8 s each);
#  6. prints the footprint.
# The libzmq / master / embassy-net TAP interop tests are in the zerosmq-tests package
# (tests/tests/embedded_*.rs) and run with the workspace's `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
START=$(date +%s)
step() { echo; echo "=== embedded: $* ($(( $(date +%s) - START ))s)"; }

step "packages"
need=()
for p in rustc-web cargo-web rust-web-src qemu-system-arm qemu-system-misc iproute2 binutils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
/usr/bin/rustc --version

LLD="$(ls "${RUSTUP_HOME:-$HOME/.rustup}"/toolchains/*/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld | head -1)"
export RUST_LLD="$LLD"
export CARGO_TARGET_THUMBV7EM_NONE_EABIHF_LINKER="$LLD" CARGO_TARGET_RISCV32IMC_UNKNOWN_NONE_ELF_LINKER="$LLD"
HOST_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export FIRMWARE_TARGET_DIR="$ROOT/target/firmware"
debian_cargo() { RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$FIRMWARE_TARGET_DIR" /usr/bin/cargo "$@"; }

step "host: feature combinations, unit and mock-transport tests"
export CARGO_TARGET_DIR="$HOST_TARGET_DIR"
cargo test -q -p zerosmq-embedded --features std,async
cargo test -q -p zerosmq-embedded --features std,async,curve --lib
cargo test -q -p zerosmq-embedded --features std,async,typed --lib
cargo check -q -p zerosmq-embedded --no-default-features --features typed
cargo test -q -p zerosmq-embedded --features std,async,clock --test mock_transport
cargo test -q -p zerosmq-embedded --features std,embassy-time --test mock_async --test mock_async_timers
cargo check -q -p zerosmq-embedded --features async,log
# Without the text control protocol (what the firmware builds): core, and the node binary-only.
cargo check -q -p zerosmq-core --no-default-features
cargo test -q -p zerosmq-embedded --no-default-features --features std,async --lib
cargo check -q -p zerosmq-embedded --features async,defmt
if cargo check -q -p zerosmq-embedded --features log,defmt 2>/dev/null; then
  echo "features log and defmt together must not compile"; exit 1
fi
# (The workspace-wide clippy and tests of .ci/run cover zerosmq-embedded-host and the interop tests.)
cargo clippy -q -p zerosmq-embedded --all-targets --features std,async -- -D warnings

step "bare metal: no std, no alloc (build-std=core), both targets"
for target in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  # Feature `async` (default) compiles the async node too: its futures need no allocator either.
  (cd examples/firmware && debian_cargo build -q --release -Z build-std=core --target "$target")
done

step "QEMU: on-target self-tests"
run_qemu() {
  local target="$1" bin="$2" qemu
  case "$target" in
    thumbv7em-none-eabihf) qemu="qemu-system-arm -cpu cortex-m4 -machine mps2-an386" ;;
    riscv32imc-unknown-none-elf) qemu="qemu-system-riscv32 -machine virt -cpu rv32 -bios none" ;;
  esac
  echo "--- $bin on $target"
  timeout 120 $qemu -nographic -semihosting-config enable=on,target=native \
    -kernel "$FIRMWARE_TARGET_DIR/$target/release/$bin"
}
for target in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  run_qemu "$target" selftest
  run_qemu "$target" node && echo "node firmware: round trip passed"
done
# The self-test whose far ends replay libzmq's CURVE REP, SUB and XPUB, recorded with the
# node's keys and seed (tests/tests/embedded_curve_record.rs). footprint.sh rebuilds the default.
for target in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  (cd examples/firmware && debian_cargo build -q --release -Z build-std=core --target "$target" --features curve-recorded)
  run_qemu "$target" selftest && echo "selftest with CURVE against recorded libzmq: passed"
done

step "fuzz: every decoder, ${FUZZ_SECONDS:-8}s each"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install -q --locked cargo-fuzz --version 0.13.2 || echo "cargo-fuzz install failed: run.sh falls back to plain cargo"
fi
FUZZ_TARGET_DIR="$ROOT/target/fuzz" bash fuzz/run.sh "${FUZZ_SECONDS:-8}"

step "footprint"
bash client-embedded/footprint.sh

step "done"
