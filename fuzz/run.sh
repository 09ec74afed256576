#!/usr/bin/env bash
# Run one cargo-fuzz target for a while, or minimise its seed corpus.
#
#   fuzz/run.sh TARGET SECONDS     fuzz TARGET (xml, jid, sasl, c2s) for SECONDS
#   fuzz/run.sh --minimize TARGET  merge fuzz/corpus/TARGET into fuzz/seeds/TARGET
#   fuzz/run.sh --smoke            every target for 20 s (a quick check)
#
# Needs `cargo install cargo-fuzz`. The toolchain is stable, so nightly-only
# flags are unlocked with RUSTC_BOOTSTRAP=1. The crate is safe Rust (the C in
# SQLite/ring is not instrumented), so no sanitizer is used (-s none): it
# builds and runs faster; panics, hangs (-timeout) and memory (-rss_limit_mb)
# are still caught. The working corpus is fuzz/corpus/TARGET (not committed);
# fuzz/seeds/TARGET (committed, small) is read too. A crash lands in
# fuzz/artifacts/TARGET/: copy it to fuzz/regressions/TARGET/ and fix the code;
# tests/fuzz_regressions.rs replays those files in `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export RUSTC_BOOTSTRAP=1

max_len() {
  case "$1" in
    jid) echo 3100 ;;  # three 1023-byte parts and separators
    sasl) echo 1024 ;;
    *) echo 4096 ;;    # above the xml harness's 2048-byte stanza limit
  esac
}

fuzz() { # TARGET SECONDS
  local t=$1 secs=$2
  mkdir -p "corpus/$t" "seeds/$t"
  nice -n 15 cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1
}

case "${1:-}" in
  --minimize)
    t=$2
    mkdir -p "corpus/$t.min"
    nice -n 15 cargo fuzz run -s none "$t" "corpus/$t.min" "seeds/$t" "corpus/$t" -- -merge=1
    rm -rf "seeds/$t" && mv "corpus/$t.min" "seeds/$t"
    ;;
  --smoke)
    for t in xml jid sasl c2s; do fuzz "$t" 20; done
    ;;
  xml | jid | sasl | c2s)
    fuzz "$1" "${2:-600}"
    ;;
  *)
    sed -n '2,15p' "${BASH_SOURCE[0]}"
    exit 2
    ;;
esac
