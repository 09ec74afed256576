#!/usr/bin/env bash
# The project's single test command (CI runs it through .ci/run):
#
#   scripts/test.sh
#
# Works on a fresh clone of a fresh machine that has the Rust toolchain,
# Node.js 20+/npm and Python 3.11+: it installs what the tests need itself
# (npm ci and a Python venv under tests/interop/, Debian packages only if a
# tool is missing), then runs, stopping at the first failure:
#   1. cargo fmt --check
#   2. cargo clippy --all-targets -- -D warnings
#   3. cargo test                      (all unit and integration tests)
#   4. tests/docker_layout.sh          (Dockerfile checks + cargo build --release --locked)
#   5. tests/interop/run.sh            (real XMPP clients against xmppd)
# and prints a summary ending with `Total: N passed, M failed`.
#
# Env: SKIP_INTEROP=1 skips step 5; SKIP_LINT=1 skips steps 1-2.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if [[ "${CI:-}" == true || "${CI:-}" == 1 ]]; then
  # Clean one-off builds: incremental compilation only costs time and disk,
  # and full debuginfo in test builds mostly costs compile and link time
  # (line tables keep file:line in backtraces). The release build, like the
  # Dockerfile's, keeps Cargo.toml's profile.
  export CARGO_INCREMENTAL=0
  export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
  export CARGO_PROFILE_TEST_DEBUG="${CARGO_PROFILE_TEST_DEBUG:-line-tables-only}"
fi

LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/xmppd-test.XXXXXX")"
STEPS=()
TOTAL_PASSED=0
TOTAL_FAILED=0
CURRENT=""
START=$SECONDS

summary() {
  local rc=$?
  echo
  echo "================ summary ================"
  local s
  for s in "${STEPS[@]}"; do echo "  $s"; done
  if [[ $rc != 0 && -n "$CURRENT" ]]; then
    echo "  FAILED  $CURRENT (exit $rc), $((SECONDS - STEP_START))s"
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
  fi
  echo "  time: $((SECONDS - START))s, logs: $LOGDIR"
  echo "Total: ${TOTAL_PASSED} passed, ${TOTAL_FAILED} failed"
}
trap summary EXIT

STEP_START=$SECONDS
step_ok() { STEPS+=("ok      $1${2:+ ($2)}, $((SECONDS - STEP_START))s"); CURRENT=""; }
banner() { CURRENT="$1"; STEP_START=$SECONDS; echo; echo "==> $1"; }

as_root() {
  if [[ "$(id -u)" == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    echo "need root to run: $*" >&2
    return 1
  fi
}

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { echo "missing: $* (and no apt-get to install it)" >&2; return 1; }
  if [[ $APT_UPDATED == 0 ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Counters: add the counts found in a log to the totals; set STEP_FAILED
# and COUNTS.
count_plain() { # log -- the last `N passed, M failed` line
  local line p=0 f=0
  line="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1 || true)"
  if [[ -n "$line" ]]; then
    p="$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")"
    f="$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")"
  fi
  STEP_FAILED=$f
  TOTAL_PASSED=$((TOTAL_PASSED + p))
  TOTAL_FAILED=$((TOTAL_FAILED + f))
  COUNTS="$p passed, $f failed"
}
count_cargo() { # log -- sum of libtest's `test result:` lines
  local p=0 f=0 a b
  while read -r a b; do
    p=$((p + a))
    f=$((f + b))
  done < <(sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p' "$1")
  STEP_FAILED=$f
  TOTAL_PASSED=$((TOTAL_PASSED + p))
  TOTAL_FAILED=$((TOTAL_FAILED + f))
  COUNTS="$p passed, $f failed"
}

# run_counted NAME COUNTER CMD... -- runs CMD with its output teed to a log,
# counts its tests, and stops the whole run if it failed.
run_counted() {
  local name=$1 counter=$2 log rc
  shift 2
  log="$LOGDIR/$(tr -c 'A-Za-z0-9' '_' <<<"$name").log"
  banner "$name"
  set +e
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  STEP_FAILED=0
  COUNTS=""
  "$counter" "$log"
  if [[ $rc != 0 ]]; then
    STEPS+=("FAILED  $name ($COUNTS, exit $rc), $((SECONDS - STEP_START))s")
    CURRENT=""
    ((STEP_FAILED > 0)) || TOTAL_FAILED=$((TOTAL_FAILED + 1))
    exit "$rc"
  fi
  step_ok "$name" "$COUNTS"
}

# ------------------------------------------------------------ prerequisites
banner "prerequisites"
for tool in cargo rustc; do
  command -v "$tool" >/dev/null || { echo "$tool not found: install the Rust toolchain (rustup)" >&2; exit 1; }
done
cargo fmt --version >/dev/null 2>&1 || { echo "rustfmt missing: rustup component add rustfmt" >&2; exit 1; }
cargo clippy --version >/dev/null 2>&1 || { echo "clippy missing: rustup component add clippy" >&2; exit 1; }
missing=()
command -v python3 >/dev/null || missing+=(python3 python3-venv python3-pip)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v timeout >/dev/null || missing+=(coreutils)
# tests/interop/tsung_login.sh: tsung, an independent XMPP load tool.
command -v tsung >/dev/null || missing+=(tsung)
if [[ "${SKIP_INTEROP:-0}" != 1 && ${#missing[@]} -gt 0 ]]; then
  echo "installing Debian packages: ${missing[*]}"
  apt_install "${missing[@]}"
fi
echo "$(cargo --version); $(rustc --version)"
if [[ "${SKIP_INTEROP:-0}" != 1 ]]; then
  echo "node $(node --version); npm $(npm --version 2>/dev/null); $(python3 --version)"
  banner "install interop client dependencies (tests/interop/setup.sh)"
  tests/interop/setup.sh 2>&1 | tee "$LOGDIR/setup.log"
  step_ok "install interop client dependencies"
fi

# ------------------------------------------------------------ lint
if [[ "${SKIP_LINT:-0}" != 1 ]]; then
  banner "cargo fmt --check"
  cargo fmt --check
  step_ok "cargo fmt --check"

  banner "cargo clippy --all-targets -- -D warnings"
  cargo clippy --all-targets -- -D warnings
  step_ok "cargo clippy --all-targets -- -D warnings"
fi

# ------------------------------------------------------------ tests
run_counted "cargo test" count_cargo cargo test
run_counted "tests/docker_layout.sh" count_plain tests/docker_layout.sh
if [[ "${SKIP_INTEROP:-0}" != 1 ]]; then
  # docker_layout.sh built the release binary with --locked.
  run_counted "tests/interop/run.sh" count_plain env XMPPD_BIN="$ROOT/target/release/xmppd" tests/interop/run.sh
fi
