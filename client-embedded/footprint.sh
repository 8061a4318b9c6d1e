#!/bin/bash
# Prints the embedded node's footprint: its state without user buffers (size_of on each target,
# from the on-target self-test), and flash (text + rodata + vector table) and RAM (static data,
# bss; plus the measured peak stack) of the firmware example with a publisher and a subscriber
# (examples/firmware, bin `node`), built with opt-level "z", LTO, panic=abort, binary control
# encoding only (core and node without their `text` feature). A second table row per target is
# the same firmware with feature `plain`: every connection authenticates with ZMTP PLAIN.
#
# Needs Debian's rustc-web, cargo-web, rust-web-src, qemu-system-arm, qemu-system-misc and
# rustup's rust-lld (see .ci/embedded.sh, which installs them and calls this script).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FW="$ROOT/examples/firmware"
export CARGO_TARGET_DIR="${FIRMWARE_TARGET_DIR:-$FW/target}"
LLD="${RUST_LLD:-$(ls "${RUSTUP_HOME:-$HOME/.rustup}"/toolchains/*/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld | head -1)}"
export CARGO_TARGET_THUMBV7EM_NONE_EABIHF_LINKER="$LLD" CARGO_TARGET_RISCV32IMC_UNKNOWN_NONE_ELF_LINKER="$LLD"

qemu_for() {
  case "$1" in
    thumbv7em-none-eabihf) echo "qemu-system-arm -cpu cortex-m4 -machine mps2-an386" ;;
    riscv32imc-unknown-none-elf) echo "qemu-system-riscv32 -machine virt -cpu rv32 -bios none" ;;
  esac
}

# Sum of the named sections' sizes in an ELF (from `size -A`).
sections() {
  local elf="$1"; shift
  size -A "$elf" | awk -v names="$*" 'BEGIN { split(names, n, " "); for (i in n) want[n[i]] = 1 }
    ($1 in want) { s += $2 } END { print s + 0 }'
}

printf '%-30s %10s %10s %10s %12s %10s\n' target flash_bytes text rodata static_ram peak_stack
for target in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  (cd "$FW" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo build -q --release \
    -Z build-std=core --target "$target")
  elf="$CARGO_TARGET_DIR/$target/release/node"
  text=$(sections "$elf" .text .init .init.rust .trap .vector_table)
  rodata=$(sections "$elf" .rodata)
  data=$(sections "$elf" .data)
  ram=$(sections "$elf" .data .bss .uninit)
  flash=$((text + rodata + data))
  out=$(timeout 60 $(qemu_for "$target") -nographic -semihosting-config enable=on,target=native \
    -kernel "$CARGO_TARGET_DIR/$target/release/selftest")
  stack=$(echo "$out" | sed -n 's/^stack: node round trip peak \([0-9]*\) bytes$/\1/p')
  printf '%-30s %10s %10s %10s %12s %10s\n' "$target" "$flash" "$text" "$rodata" "$ram" "$stack"
  echo "$out" | sed -n 's/^state: /    state on this target: /p'
done
for target in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  (cd "$FW" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo build -q --release \
    -Z build-std=core --target "$target" --features plain)
  elf="$CARGO_TARGET_DIR/$target/release/node"
  # The PLAIN round trip must pass too (exit code 0), or its figures mean nothing.
  timeout 60 $(qemu_for "$target") -nographic -semihosting-config enable=on,target=native -kernel "$elf"
  text=$(sections "$elf" .text .init .init.rust .trap .vector_table)
  rodata=$(sections "$elf" .rodata)
  data=$(sections "$elf" .data)
  ram=$(sections "$elf" .data .bss .uninit)
  printf '%-30s %10s %10s %10s %12s %10s\n' "$target+plain" "$((text + rodata + data))" "$text" "$rodata" "$ram" "-"
done
# Leave the default build in place for whoever runs the binaries next.
for target in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  (cd "$FW" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo build -q --release \
    -Z build-std=core --target "$target")
done
echo "flash = vector table + text + rodata + data initialisers; static_ram = data + bss;"
echo "peak_stack = the node round trip (Node, Publisher, Subscriber, 2 x 128-byte buffers, call frames)."
