#!/bin/bash
# Runs every fuzz target for a bounded time (default 10 s each) from the committed seeds.
# Uses cargo-fuzz when it is installed (RUSTC_BOOTSTRAP=1 lets stable Rust take its nightly
# flags); otherwise builds the same targets with plain cargo and SanitizerCoverage flags.
set -euo pipefail
SECONDS_EACH="${1:-10}"
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
TARGETS=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v zerosmq-fuzz)
if cargo fuzz --version >/dev/null 2>&1; then
  cargo fuzz build -O >/dev/null
  BIN_DIR="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"
else
  echo "cargo-fuzz not installed: building with plain cargo and SanitizerCoverage (no ASan)"
  RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --bins >/dev/null
  BIN_DIR="$CARGO_TARGET_DIR/release"
fi
mkdir -p artifacts
for t in $TARGETS; do
  mkdir -p "corpus/$t"
  echo "== $t (${SECONDS_EACH}s)"
  log="$CARGO_TARGET_DIR/fuzz-$t.log"
  if ! "$BIN_DIR/$t" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
      -artifact_prefix="$PWD/artifacts/$t-" "corpus/$t" "seeds/$t" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $t FAILED (crash input under fuzz/artifacts/)"
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss" "$log" || true
done
echo "all fuzz targets ran ${SECONDS_EACH}s without a crash"
