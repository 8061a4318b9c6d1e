#!/bin/bash
# Prints the embedded node's footprint: its state without user buffers (size_of on each target,
# from the on-target self-test), and flash (text + rodata + vector table) and RAM (static data,
# bss; plus the measured peak stack) of the firmware example with a publisher and a subscriber
# (examples/firmware, bin `node`), built with opt-level "z", LTO, panic=abort, binary control
# encoding only (core and node without their `text` feature). A second table row per target is
# the same firmware with feature `plain`: every connection authenticates with ZMTP PLAIN; a
# third, with feature `curve`: every connection is encrypted with CurveZMQ (320-byte role
# buffers, which CURVE's handshake needs). Its round trip runs in the self-test built with
# feature curve-loopback, whose far ends are core's CURVE servers (not in the measured binary).
# The lines after the table print what CURVE costs: its row minus the NULL row.
# Then the flash and RAM of each board project under examples/boards/, split by crate group.
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
declare -A null_flash null_ram
for target in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  (cd "$FW" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo build -q --release \
    -Z build-std=core --target "$target")
  elf="$CARGO_TARGET_DIR/$target/release/node"
  text=$(sections "$elf" .text .init .init.rust .trap .vector_table)
  rodata=$(sections "$elf" .rodata)
  data=$(sections "$elf" .data)
  ram=$(sections "$elf" .data .bss .uninit)
  flash=$((text + rodata + data))
  null_flash[$target]=$flash null_ram[$target]=$ram
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
declare -A curve_flash curve_ram
for target in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  (cd "$FW" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo build -q --release \
    -Z build-std=core --target "$target" --features curve)
  elf="$CARGO_TARGET_DIR/$target/release/node"
  text=$(sections "$elf" .text .init .init.rust .trap .vector_table)
  rodata=$(sections "$elf" .rodata)
  data=$(sections "$elf" .data)
  ram=$(sections "$elf" .data .bss .uninit)
  curve_flash[$target]=$((text + rodata + data)) curve_ram[$target]=$ram
  # The round trip with CURVE on the target: the self-test whose loopback far ends are core's
  # CURVE servers (feature curve-loopback; they run on the node's stack, so its peak includes
  # theirs). It must pass, or the row means nothing.
  (cd "$FW" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo build -q --release \
    -Z build-std=core --target "$target" --features curve-loopback)
  out=$(timeout 120 $(qemu_for "$target") -nographic -semihosting-config enable=on,target=native \
    -kernel "$CARGO_TARGET_DIR/$target/release/selftest")
  stack=$(echo "$out" | sed -n 's/^stack: node round trip peak \([0-9]*\) bytes$/\1/p')
  printf '%-30s %10s %10s %10s %12s %10s\n' "$target+curve" "${curve_flash[$target]}" "$text" "$rodata" "$ram" "$stack*"
  echo "$out" | sed -n 's/^state: /    state on this target with CURVE: /p'
done
for target in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  printf 'CURVE costs on %-28s %6s bytes of flash, %s of static RAM (row +curve - row NULL)\n' \
    "$target:" "$((curve_flash[$target] - null_flash[$target]))" "$((curve_ram[$target] - null_ram[$target]))"
done
# Leave the default build in place for whoever runs the binaries next.
for target in thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
  (cd "$FW" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc /usr/bin/cargo build -q --release \
    -Z build-std=core --target "$target")
done
echo "flash = vector table + text + rodata + data initialisers; static_ram = data + bss;"
echo "peak_stack = the node round trip (Node, Publisher, Subscriber, 2 x 128-byte buffers, call frames)."
echo "+curve: the same node with CURVE (2 x 320-byte buffers on the stack, not in static_ram);"
echo "  peak_stack* includes the loopback's CURVE servers, which run on the node's stack."

# Whole firmware: every board project (examples/boards/*/ with a Cargo.toml), built as
# scripts/boards.sh builds it (same target directory: a no-op after boards.sh), split by crate
# from the ELF's symbol table (`nm -S -C`): the symbol's crate is the first path segment of its
# demangled name (`<smoltcp::..>::f` is smoltcp's; `drop_in_place<T>` is T's crate's).
#   net      smoltcp, embassy-net            hal   the HAL, its drivers (Ethernet, Wi-Fi), PAC, rt
#   zerosmq  zerosmq-embedded, zerosmq-core  app   the board project's crate: its statics (the
#            (what LTO did not inline)              stack's socket buffers, packet queues) and its
#                                                   embassy tasks, with what LTO inlined into them
#   unmangled  C libraries (Espressif's Wi-Fi blobs), #[no_mangle] runtime and memcpy & co.
#   rest     everything else: core, executor, embassy-time, defmt/log, bytes without a symbol
# flash = every allocated section with contents (the image), ram = the writable sections
# (static data, bss, heaps given as statics; not the stack section, nor code that runs from RAM).
BOARDS_TD="${BOARDS_TARGET_DIR:-$ROOT/target/boards}"
group_sizes() {
  nm -S -C --defined-only "$1" | awk -v app="$2" '
    function hex(h,   i, v) { v = 0; h = tolower(h); for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1; return v }
    NF >= 4 && $2 ~ /^[0-9a-f]+$/ {
      size = hex($2); type = $3
      name = $4; for (i = 5; i <= NF; i++) name = name " " $i
      if (type ~ /^[tTrR]$/) kind = "flash"; else if (type ~ /^[dDbB]$/) kind = "ram"; else next
      if (index(name, "<embassy_executor::raw::TaskStorage<" app "::") == 1) g = "app"
      else if (name !~ /::/) g = "unmangled"
      else {
        n = name
        if (n ~ /^core::ptr::drop_in_place</) sub(/^core::ptr::drop_in_place</, "", n)
        sub(/^[<&]+/, "", n); sub(/^(dyn|mut|const) /, "", n)
        crate = n; sub(/[:<].*/, "", crate)
        if (crate ~ /^(smoltcp|embassy_net|embassy_net_driver|embassy_net_driver_channel|managed)$/) g = "net"
        else if (crate ~ /^(esp_|embassy_stm32|stm32_|virtio_drivers|cortex_m|riscv|embassy_hal_internal|embassy_embedded_hal|xtensa)/) g = "hal"
        else if (crate ~ /^zerosmq_(embedded|core)$/) g = "zerosmq"
        else if (crate == app) g = "app"
        else g = "rest"
      }
      sum[kind, g] += size
    }
    END {
      split("net hal zerosmq app unmangled", gs, " ")
      for (k = 1; k <= 2; k++) {
        kind = (k == 1) ? "flash" : "ram"; line = kind
        for (i = 1; i <= 5; i++) line = line " " sum[kind, gs[i]] + 0
        print line
      }
    }'
}
elf_sizes() {
  readelf -S -W "$1" | sed -n 's/^ *\[ *[0-9]*\] //p' | awk '
    function hex(h,   i, v) { v = 0; h = tolower(h); for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1; return v }
    { flg = $7; size = hex($5) }
    flg ~ /A/ && $2 != "NOBITS" { flash += size }
    flg ~ /A/ && flg ~ /W/ && $1 !~ /^\.stack/ { ram += size }
    END { print flash + 0, ram + 0 }'
}
echo
printf '%-28s %5s %9s | %8s %8s %8s %8s %9s %8s\n' board "" total net hal zerosmq app unmangled rest
for project in "$ROOT"/examples/boards/*/; do
  [ -f "$project/Cargo.toml" ] || continue
  # Without the linker overrides above: each project names its linker in .cargo/config.toml, and
  # another linker would change every fingerprint and rebuild what boards.sh built.
  # shellcheck disable=SC2046
  elfs=$(cd "$project" && env $(env | sed -n 's/^\(CARGO_TARGET_[A-Z0-9_]*_LINKER\)=.*/-u \1/p') \
    WIFI_SSID="${WIFI_SSID:-ci-placeholder}" WIFI_PASSWORD="${WIFI_PASSWORD:-ci-placeholder}" \
    RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$BOARDS_TD" \
    /usr/bin/cargo build -q --release --locked --message-format=json |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
  for elf in $elfs; do
    read -r flash ram < <(elf_sizes "$elf")
    while read -r kind net hal zsmq app unmangled; do
      total=$([ "$kind" = flash ] && echo "$flash" || echo "$ram")
      rest=$((total - net - hal - zsmq - app - unmangled))
      [ "$rest" -lt 0 ] && rest=0
      printf '%-28s %5s %9s | %8s %8s %8s %8s %9s %8s\n' "$(basename "$project")/$(basename "$elf")" \
        "$kind" "$total" "$net" "$hal" "$zsmq" "$app" "$unmangled" "$rest"
    done < <(group_sizes "$elf" "$(basename "$elf" | tr - _)")
  done
done
echo "board rows: bytes; flash = allocated sections with contents, ram = writable sections (no"
echo "stack); groups from the demangled symbols (see this script); rest = total - the groups."
