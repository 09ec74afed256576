#!/usr/bin/env bash
# Third-party client interop tests for xmppd.
#
# Builds xmppd (or uses $XMPPD_BIN), starts `xmppd serve` on free loopback
# ports with a fresh data dir, registers two users with `xmppd ctl`, runs
# every client script (@xmpp/client, simple-xmpp, slixmpp, tsung), checks a few
# admin commands (duplicate registration, status, SIGTERM, restart with the
# same data dir) and ends with the line `N passed, M failed`.
#
# Usage: tests/interop/run.sh
# Env:
#   XMPPD_BIN         xmppd binary to test (default: cargo build --release,
#                     then target/release/xmppd)
#   XMPP_TIMEOUT      per-client-script timeout in seconds (default 20)
#   KEEP_TMP=1        keep the temp dir (config, data, logs) even on success
#   INTEROP_ONLY      space-separated subset of client scripts to run
#   XMPP_DEBUG=1      client scripts print their wire log live
#   XMPP_C2S_SNIFFS_TLS=0  don't require direct TLS on the c2s port (for
#                     reference servers, see reference/prosody-xmppd)
#   RUST_LOG          passed to the server
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

PASSED=0
FAILED=0
FAILED_NAMES=()
SERVER_PID=""
TMP=""

pass() { PASSED=$((PASSED + 1)); echo "PASS  $*"; }
fail() { FAILED=$((FAILED + 1)); FAILED_NAMES+=("$*"); echo "FAIL  $*"; }
note() { echo "----  $*"; }

summary_and_exit() {
  stop_server_quietly
  echo
  if ((FAILED > 0)); then
    echo "interop failures:"
    for n in "${FAILED_NAMES[@]}"; do echo "  - $n"; done
    if [[ -n "$TMP" && -f "$TMP/server.log" ]]; then
      local plain="$TMP/server.plain.log"
      # No colours, no backtrace frames.
      sed 's/\x1b\[[0-9;]*m//g' "$TMP/server.log" | grep -vE '^ +([0-9]+: |at )' >"$plain"
      if grep -q "panicked at" "$plain"; then
        echo "---- server panics ($(grep -c "panicked at" "$plain")) ----"
        grep -A1 "panicked at" "$plain" | grep -v '^--$' | sort | uniq -c | sort -rn | head -n 20
      fi
      echo "---- last 60 lines of the server log ($TMP/server.log, backtraces omitted) ----"
      tail -n 60 "$plain"
      echo "---- end of server log ----"
    fi
  fi
  if [[ -n "$TMP" ]]; then
    if ((FAILED > 0)) || [[ "${KEEP_TMP:-0}" == 1 ]]; then
      echo "kept temp dir: $TMP"
    else
      rm -rf "$TMP"
    fi
  fi
  echo "${PASSED} passed, ${FAILED} failed"
  ((FAILED == 0))
  exit $?
}

stop_server_quietly() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  SERVER_PID=""
}
trap 'stop_server_quietly' EXIT
trap 'echo "interrupted"; fail "run interrupted"; summary_and_exit' INT TERM

# ---------------------------------------------------------------- setup
if [[ -n "${XMPPD_BIN:-}" ]]; then
  XMPPD="$XMPPD_BIN"
else
  note "cargo build --release"
  if ! cargo build --release --quiet; then
    fail "cargo build --release"
    summary_and_exit
  fi
  XMPPD="$ROOT/target/release/xmppd"
fi
if [[ ! -x "$XMPPD" ]]; then
  fail "xmppd binary $XMPPD not found or not executable"
  summary_and_exit
fi
note "xmppd binary: $XMPPD"

if ! "$HERE/setup.sh" --if-missing; then
  fail "install client dependencies (tests/interop/setup.sh)"
  summary_and_exit
fi
PY=""
for cand in "$HERE/.venv/bin/python" python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import slixmpp' >/dev/null 2>&1; then
    PY="$(command -v "$cand")"
    break
  fi
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/xmppd-interop.XXXXXX")"
DATA="$TMP/data"
CFG="$TMP/xmppd.toml"
mkdir -p "$DATA"

# Three distinct free high ports on 127.0.0.1.
read -r PORT TLS_PORT HTTP_PORT < <(python3 - <<'PY'
import random, socket
chosen = []
while len(chosen) < 3:
    p = random.randint(20000, 60999)
    if p in chosen:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    chosen.append(p)
print(*chosen)
PY
)
note "temp dir $TMP, c2s port $PORT, c2s_direct_tls port $TLS_PORT, http port $HTTP_PORT"

# A second virtual host with its own CA and certificate, served by SNI.
NET=example.net
NET_CA="$TMP/$NET-ca.pem"
if ! (cd "$TMP" && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=interop CA for $NET" -keyout net-ca-key.pem -out "$NET_CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$NET" \
      -keyout "$NET-key.pem" -out "$NET.csr" &&
    openssl x509 -req -in "$NET.csr" -CA "$NET_CA" -CAkey net-ca-key.pem -CAcreateserial -days 2 \
      -extfile <(printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$NET") -out "$NET.pem") \
    >"$TMP/openssl.log" 2>&1; then
  fail "openssl: certificate for $NET ($(tr '\n' ' ' <"$TMP/openssl.log"))"
  summary_and_exit
fi

cat >"$CFG" <<EOF
hosts = ["localhost", "$NET"]
admins = ["alice@localhost"]
data_dir = "$DATA"

[host."$NET"]
cert = "$TMP/$NET.pem"
key = "$TMP/$NET-key.pem"

[[listen]]
kind = "http"
address = "127.0.0.1:$HTTP_PORT"

[[listen]]
kind = "c2s"
address = "127.0.0.1:$PORT"

[[listen]]
kind = "c2s_direct_tls"
address = "127.0.0.1:$TLS_PORT"

[auth]
allow_plaintext = false
# Every client script checks a wrong password from 127.0.0.1; with the
# default 500 ms base the growing delay (capped at 10x) would outlast the
# scripts' 4 s step timeout by the last one. 100 ms keeps the delays real
# (they still grow) but within it.
failure_delay_ms = 100
# XEP-0078 for tsung_login.sh; the other clients see the iq-auth feature
# beside SASL and must still choose SASL.
legacy_auth = true
EOF

DOMAIN=localhost
ALICE_PASSWORD='Al1ce-s3cret!'
BOB_PASSWORD='b0b=pass,word'
CA="$DATA/tls/ca.pem"

export XMPP_HOST=127.0.0.1 XMPP_PORT="$PORT" XMPP_TLS_PORT="$TLS_PORT" XMPP_DOMAIN="$DOMAIN"
# NODE_EXTRA_CA_CERTS: Node reads it at start-up (the scripts would re-run
# themselves with it otherwise).
export XMPP_CA_FILE="$CA" NODE_EXTRA_CA_CERTS="$CA" ALICE_JID="alice@$DOMAIN" ALICE_PASSWORD BOB_JID="bob@$DOMAIN" BOB_PASSWORD
export XMPP_TIMEOUT="${XMPP_TIMEOUT:-20}"
# Accounts of the IM scenario scripts: im1..im19 (im_slixmpp.py) and
# im21..im27 (im_xmpp_client.js), one password.
IM_PASSWORD='im-Pa55 w0rd'
IM_USERS=$(echo im{1..19} im{21..27})
export IM_USER_PREFIX=im IM_PASSWORD
# The IM scripts run many scenarios: at least 120 s for each.
IM_TIMEOUT=$((XMPP_TIMEOUT > 120 ? XMPP_TIMEOUT : 120))
# Accounts of tsung_login.sh: ts1..ts20 with passwords tspw1..tspw20.
TSUNG_USERS=20

wait_port() { # port seconds
  python3 - "$1" "$2" <<'PY'
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}

start_server() { # label
  echo "==== xmppd serve ($1) $(date -u +%H:%M:%S)" >>"$TMP/server.log"
  "$XMPPD" serve --config "$CFG" >>"$TMP/server.log" 2>&1 &
  SERVER_PID=$!
  local waited=0
  for _ in $(seq 300); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID"
      fail "$1: xmppd serve exited early with status $? (see server log)"
      SERVER_PID=""
      return 1
    fi
    if wait_port "$PORT" 0.1 && wait_port "$TLS_PORT" 0.1 && [[ -s "$CA" ]]; then
      pass "$1: xmppd serve listens on c2s and c2s_direct_tls and wrote tls/ca.pem ($((waited / 10)).$((waited % 10))s)"
      return 0
    fi
    waited=$((waited + 1))
    sleep 0.1
  done
  fail "$1: xmppd serve not listening on $PORT and $TLS_PORT with $CA present within 30s"
  return 1
}

ctl() { "$XMPPD" ctl --config "$CFG" "$@"; }

# expect_ctl NAME EXPECTED_STATUS EXPECTED_LINE ARGS...
expect_ctl() {
  local name=$1 want_status=$2 want_line=$3
  shift 3
  local out status
  out="$(timeout 30 "$XMPPD" ctl --config "$CFG" "$@" 2>&1)"
  status=$?
  if [[ $status == "$want_status" ]] && { [[ -z "$want_line" ]] || grep -qxF -- "$want_line" <<<"$out"; }; then
    pass "$name"
  else
    fail "$name: expected exit $want_status${want_line:+ and the line '$want_line'}, got exit $status and output: $(tr '\n' ' ' <<<"$out")"
  fi
}

# register_many LABEL USER PASSWORD [USER PASSWORD ...]: create the accounts
# on $DOMAIN with one `ctl register_bulk` (a password is the rest of its line).
register_many() {
  local label=$1 file n=0
  shift
  file="$(mktemp "$TMP/accounts.XXXXXX")"
  while (($# >= 2)); do
    printf '%s %s %s\n' "$1" "$DOMAIN" "$2" >>"$file"
    n=$((n + 1))
    shift 2
  done
  expect_ctl "$label ($n accounts)" 0 "$n users registered, 0 already existed" register_bulk "$file"
}

run_client() { # label command...
  local label=$1
  shift
  local start=$SECONDS status
  echo "---- $label"
  timeout $((XMPP_TIMEOUT + 40)) "$@" 2>&1 | sed 's/^/      /'
  status=${PIPESTATUS[0]}
  if [[ $status == 0 ]]; then
    pass "$label ($((SECONDS - start))s)"
  elif [[ $status == 124 ]]; then
    fail "$label: killed after $((XMPP_TIMEOUT + 40))s"
  else
    fail "$label: exit status $status"
  fi
}

CLIENTS=(xmpp_client_chat simple_xmpp_chat slixmpp_chat im_slixmpp im_xmpp_client adhoc_slixmpp shaper_slixmpp channel_binding_scramp tsung_login)
[[ -n "${INTEROP_ONLY:-}" ]] && read -r -a CLIENTS <<<"$INTEROP_ONLY"

run_named_client() { # name [label-suffix]
  case "$1" in
    xmpp_client_chat) run_client "@xmpp/client chat${2:-}" node "$HERE/xmpp_client_chat.js" ;;
    # host 'localhost', as in the tutorial and the README.
    simple_xmpp_chat) run_client "simple-xmpp chat${2:-}" env XMPP_HOST=localhost node "$HERE/simple_xmpp_chat.js" ;;
    slixmpp_chat)
      if [[ -z "$PY" ]]; then
        fail "slixmpp chat${2:-}: no python with slixmpp (run tests/interop/setup.sh)"
      else
        run_client "slixmpp chat${2:-}" "$PY" "$HERE/slixmpp_chat.py"
      fi
      ;;
    im_slixmpp)
      if [[ -z "$PY" ]]; then
        fail "slixmpp IM scenarios${2:-}: no python with slixmpp (run tests/interop/setup.sh)"
      else
        XMPP_TIMEOUT=$IM_TIMEOUT run_client "slixmpp IM scenarios${2:-}" "$PY" "$HERE/im_slixmpp.py"
      fi
      ;;
    im_xmpp_client) XMPP_TIMEOUT=$IM_TIMEOUT run_client "@xmpp/client IM scenarios${2:-}" node "$HERE/im_xmpp_client.js" ;;
    adhoc_slixmpp)
      if [[ -z "$PY" ]]; then
        fail "slixmpp XEP-0133 ad-hoc commands${2:-}: no python with slixmpp (run tests/interop/setup.sh)"
      else
        run_client "slixmpp XEP-0133 ad-hoc commands${2:-}" "$PY" "$HERE/adhoc_slixmpp.py"
      fi
      ;;
    channel_binding_scramp)
      if [[ -z "$PY" ]]; then
        fail "scramp SCRAM-SHA-256-PLUS tls-server-end-point${2:-}: no python venv (run tests/interop/setup.sh)"
      else
        run_client "scramp SCRAM-SHA-256-PLUS tls-server-end-point${2:-}" "$PY" "$HERE/channel_binding_scramp.py"
      fi
      ;;
    shaper_slixmpp)
      if [[ -z "$PY" ]]; then
        fail "slixmpp burst under the default shapers${2:-}: no python with slixmpp (run tests/interop/setup.sh)"
      else
        run_client "slixmpp burst under the default shapers${2:-}" \
          env XMPP_METRICS_URL="http://127.0.0.1:$HTTP_PORT/metrics" "$PY" "$HERE/shaper_slixmpp.py"
      fi
      ;;
    tsung_login)
      run_client "tsung: SASL PLAIN and XEP-0078 iq:auth logins, roster, presence, chat${2:-}" \
        env XMPP_METRICS_URL="http://127.0.0.1:$HTTP_PORT/metrics" TSUNG_USERS="$TSUNG_USERS" TSUNG_PREFIX=ts \
        TSUNG_PWPREFIX=tspw "$HERE/tsung_login.sh"
      ;;
    *) fail "unknown client script $1" ;;
  esac
}

# ---------------------------------------------------------------- run 1
if ! start_server "first start"; then
  summary_and_exit
fi
CA_SUM="$(sha256sum "$CA" | cut -d' ' -f1)"

expect_ctl "ctl status exits 0 while the server runs" 0 "" status
expect_ctl "ctl register alice" 0 "User alice@$DOMAIN successfully registered" \
  register alice "$DOMAIN" "$ALICE_PASSWORD"
expect_ctl "ctl register bob" 0 "User bob@$DOMAIN successfully registered" \
  register bob "$DOMAIN" "$BOB_PASSWORD"
im_accounts=()
for u in $IM_USERS; do im_accounts+=("$u" "$IM_PASSWORD"); done
register_many "ctl register_bulk the IM scenario users" "${im_accounts[@]}"
ts_accounts=()
for i in $(seq "$TSUNG_USERS"); do ts_accounts+=("ts$i" "tspw$i"); done
register_many "ctl register_bulk the tsung users" "${ts_accounts[@]}"
expect_ctl "ctl register of an existing user fails with a conflict" 1 \
  "Error: conflict: User alice@$DOMAIN already registered" \
  register alice "$DOMAIN" "another-password"

for c in "${CLIENTS[@]}"; do
  run_named_client "$c"
done

# tsung registering its users in-band from one address: registration on,
# without the per-address limit, by a live reload; then off again.
if [[ " ${CLIENTS[*]} " == *" tsung_login "* ]]; then
  cp "$CFG" "$CFG.orig"
  printf '\n[registration]\nenabled = true\nmax_per_ip = 0\n' >>"$CFG"
  expect_ctl "ctl reload_config turns in-band registration on (max_per_ip = 0)" 0 "" reload_config
  # Passwords trpass1..: at least registration.min_password_length (6).
  run_client "tsung: XEP-0077 in-band registration of $TSUNG_USERS users from one address, then iq:auth" \
    env XMPP_METRICS_URL="http://127.0.0.1:$HTTP_PORT/metrics" TSUNG_USERS="$TSUNG_USERS" TSUNG_PREFIX=tr \
    TSUNG_PWPREFIX=trpass TSUNG_SCENARIO=register "$HERE/tsung_login.sh"
  mv "$CFG.orig" "$CFG"
  expect_ctl "ctl reload_config turns it off again" 0 "" reload_config
fi

# slixmpp on the second virtual host: it verifies the certificate against
# $NET's own CA only, so it passes only if SNI picked $NET's certificate.
if [[ -z "${INTEROP_ONLY:-}" || " $INTEROP_ONLY " == *" vhost "* ]]; then
  expect_ctl "ctl register alice@$NET" 0 "User alice@$NET successfully registered" register alice "$NET" "$ALICE_PASSWORD"
  expect_ctl "ctl register bob@$NET" 0 "User bob@$NET successfully registered" register bob "$NET" "$BOB_PASSWORD"
  if [[ -z "$PY" ]]; then
    fail "slixmpp chat on $NET: no python with slixmpp (run tests/interop/setup.sh)"
  else
    run_client "slixmpp chat on virtual host $NET (its own certificate by SNI)" env XMPP_DOMAIN="$NET" \
      ALICE_JID="alice@$NET" BOB_JID="bob@$NET" XMPP_CA_FILE="$NET_CA" "$PY" "$HERE/slixmpp_chat.py"
    run_client "/metrics parses with prometheus_client; sessions back to 0" \
      "$PY" "$HERE/metrics_check.py" "http://127.0.0.1:$HTTP_PORT/metrics" localhost=0 "$NET=0"
  fi
    # Both hosts: every localhost account (the IM users, alice, bob and any the
  # XEP-0133 add-user check created) plus alice and bob on $NET.
  local_users="$(timeout 30 "$XMPPD" ctl --config "$CFG" registered_users "$DOMAIN" | wc -l)"
  expect_ctl "ctl stats registeredusers counts both hosts" 0 "$((local_users + 2))" stats registeredusers
  expect_ctl "ctl stats_host registeredusers $NET" 0 "2" stats_host registeredusers "$NET"
fi

# ---------------------------------------------------------------- SIGTERM
if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
  kill -TERM "$SERVER_PID"
  stopped=""
  for _ in $(seq 50); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then stopped=1; break; fi
    sleep 0.1
  done
  if [[ -n "$stopped" ]]; then
    wait "$SERVER_PID"
    status=$?
    SERVER_PID=""
    if [[ $status == 0 ]]; then
      pass "xmppd exits 0 within 5s of SIGTERM"
    else
      fail "xmppd exited with status $status after SIGTERM (expected 0)"
    fi
  else
    fail "xmppd still running 5s after SIGTERM"
    stop_server_quietly
  fi
else
  fail "xmppd was no longer running before SIGTERM"
  SERVER_PID=""
fi

out="$(timeout 30 "$XMPPD" ctl --config "$CFG" status 2>&1)"
status=$?
if [[ $status != 0 ]]; then
  pass "ctl status exits non-zero ($status) when the server is stopped"
else
  fail "ctl status exits 0 although the server is stopped: $(tr '\n' ' ' <<<"$out")"
fi

# ---------------------------------------------------------------- run 2
if start_server "restart with the same data dir"; then
  if [[ "$(sha256sum "$CA" | cut -d' ' -f1)" == "$CA_SUM" ]]; then
    pass "generated CA kept across restart"
  else
    fail "tls/ca.pem changed across restart (clients trusting it break)"
  fi
  run_named_client "${CLIENTS[0]}" " after restart (users persisted)"
fi

summary_and_exit
