#!/usr/bin/env bash
# bench/compare.sh — xmppd, ejabberd and Prosody under the same load from
# xmppd-load, one after another in one run, on loopback only. Prints one
# table (a column per server, ratios xmppd/ejabberd and xmppd/Prosody) and
# keeps everything under bench/results/<UTC stamp>/. See bench/README.md.
#
# Sizes (environment):
#   N=5000            users for idle, login and chat
#   CONC=100          logins in progress at once
#   LOGIN_RATE=100    logins/s of the paced login run (plus one flat out)
#   CHAT_RATE=625     msgs/s of the paced chat run (plus one flat out)
#   CHAT_SECS=30      seconds of the paced chat run
#   FLAT_SECS=15      seconds of the flat-out chat run
#   WINDOW=1000       deliveries outstanding in flat-out runs
#   BURST=8           messages per sender at a time in the second flat-out run
#   HALF_RATE=        msgs/s of the chat run at half capacity (default: half of
#                     the server's own flat-out rate, measured just before)
#   HALF_SECS=10      seconds of that run
#   HOLD=10           seconds the idle connections are held
#   P_USERS=1000      users of the presence scenario (p1..), each with
#   CONTACTS=10       mutual contacts (a ring), and
#   UPDATES=5         presence changes per user
#   SERVERS="xmppd ejabberd prosody"
#   TSUNG=0           1: also run tsung (Debian's, an independent tool) on each
#                     server: N users arriving at LOGIN_RATE/s, STARTTLS + SASL
#                     PLAIN, then TSUNG_CHATS chats TSUNG_THINK s apart
#                     (defaults 15 and 8: 625 chats/s with 5,000 online)
#   XLOAD=1           0: skip the xmppd-load runs (e.g. TSUNG=1 XLOAD=0)
#   SERVER_CPUS=, LOAD_CPUS=   optional taskset CPU lists for the servers and the tool
#   NICE=0            niceness of servers and tool (e.g. -10 on a machine shared with builds)
#   WORK=/tmp/xmppd-bench      scratch (wiped per server)   INSTALL=1  apt-get the others
set -euo pipefail

N=${N:-5000}; CONC=${CONC:-100}; LOGIN_RATE=${LOGIN_RATE:-100}; CHAT_RATE=${CHAT_RATE:-625}
CHAT_SECS=${CHAT_SECS:-30}; FLAT_SECS=${FLAT_SECS:-15}; WINDOW=${WINDOW:-1000}; HOLD=${HOLD:-10}
HALF_RATE=${HALF_RATE:-}; HALF_SECS=${HALF_SECS:-10}
BURST=${BURST:-8}
TSUNG=${TSUNG:-0}; XLOAD=${XLOAD:-1}; TSUNG_CHATS=${TSUNG_CHATS:-15}; TSUNG_THINK=${TSUNG_THINK:-8}
P_USERS=${P_USERS:-1000}; CONTACTS=${CONTACTS:-10}; UPDATES=${UPDATES:-5}
SERVERS=${SERVERS:-"xmppd ejabberd prosody"}; WORK=${WORK:-/tmp/xmppd-bench}; INSTALL=${INSTALL:-1}
SERVER_CPUS=${SERVER_CPUS:-}; LOAD_CPUS=${LOAD_CPUS:-}; NICE=${NICE:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=${OUT:-$ROOT/bench/results/$STAMP}
DOMAIN=localhost
XMPPD_PORT=15222; EJABBERD_PORT=25222; EJABBERD_API=25280; PROSODY_PORT=35222

say() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((N + 100)) ] || die "ulimit -n $(ulimit -n) is too small for N=$N"
mkdir -p "$OUT" "$WORK"

pin() { # pin CPULIST CMD...: run at $NICE, under taskset when a list is given
  local cpus=$1; shift
  if [ -n "$cpus" ]; then nice -n "$NICE" taskset -c "$cpus" "$@"; else nice -n "$NICE" "$@"; fi
}

bg() { # bg CPULIST CMD...: start CMD in the background like pin; $! is CMD's own pid
  local cpus=$1; shift
  if [ -n "$cpus" ]; then
    (exec nice -n "$NICE" taskset -c "$cpus" "$@") &
  else
    (exec nice -n "$NICE" "$@") &
  fi
}

wait_port() { # wait_port PORT: until something listens on 127.0.0.1:PORT
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# --- the machine, the versions -------------------------------------------
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "kernel: $(uname -srm)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "xmppd: ${XMPPD_REV:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (work tree modified)')}"
  echo "sizes: N=$N CONC=$CONC LOGIN_RATE=$LOGIN_RATE CHAT_RATE=$CHAT_RATE CHAT_SECS=$CHAT_SECS FLAT_SECS=$FLAT_SECS WINDOW=$WINDOW BURST=$BURST HALF_RATE=${HALF_RATE:-auto} HALF_SECS=$HALF_SECS HOLD=$HOLD P_USERS=$P_USERS CONTACTS=$CONTACTS UPDATES=$UPDATES"
  echo "pinning: servers=${SERVER_CPUS:-none} tool=${LOAD_CPUS:-none}; nice $NICE"
} > "$OUT/machine.txt"

# --- install and stop the system services -----------------------------------
stop_system_services() {
  # Debian starts them on install; they must not hold ports or CPU.
  service ejabberd stop >/dev/null 2>&1 || true
  service prosody stop >/dev/null 2>&1 || true
  if command -v ejabberdctl >/dev/null; then ejabberdctl stop >/dev/null 2>&1 || true; fi
  if command -v prosodyctl >/dev/null; then prosodyctl stop >/dev/null 2>&1 || true; fi
}
need=""
case " $SERVERS " in *" ejabberd "*) command -v ejabberdctl >/dev/null || need="$need ejabberd";; esac
case " $SERVERS " in *" prosody "*) command -v prosody >/dev/null || need="$need prosody";; esac
if [ "$TSUNG" = 1 ]; then command -v tsung >/dev/null || need="$need tsung"; fi
if [ -n "$need" ]; then
  [ "$INSTALL" = 1 ] || die "missing:$need (INSTALL=0)"
  say "installing$need"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
stop_system_services
command -v ejabberdctl >/dev/null && echo "ejabberd: $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null)" >> "$OUT/machine.txt"
command -v prosody >/dev/null && echo "prosody: $(dpkg-query -W -f='${Version}' prosody 2>/dev/null)" >> "$OUT/machine.txt"
command -v erl >/dev/null && echo "erlang: $(dpkg-query -W -f='${Version}' erlang-base 2>/dev/null)" >> "$OUT/machine.txt"

# --- build ------------------------------------------------------------------
say "building xmppd and xmppd-load (release)"
(cd "$ROOT" && cargo build --release --quiet --bin xmppd --bin xmppd-load)
BIN=$ROOT/target/release
LOAD=$BIN/xmppd-load

# --- one certificate for ejabberd and Prosody (xmppd makes its own) ---------
TLS=$WORK/tls
if [ ! -f "$TLS/cert.pem" ]; then
  mkdir -p "$TLS"
  openssl ecparam -name prime256v1 -genkey -noout -out "$TLS/ca-key.pem" 2>/dev/null
  openssl req -x509 -new -key "$TLS/ca-key.pem" -subj "/CN=xmppd bench CA" -days 30 -out "$TLS/ca.pem" 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out "$TLS/key.pem" 2>/dev/null
  openssl req -new -key "$TLS/key.pem" -subj "/CN=$DOMAIN" -out "$TLS/req.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n' "$DOMAIN" > "$TLS/ext.cnf"
  openssl x509 -req -in "$TLS/req.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca-key.pem" -CAcreateserial \
    -days 30 -extfile "$TLS/ext.cnf" -out "$TLS/cert.pem" 2>/dev/null
  cat "$TLS/cert.pem" "$TLS/key.pem" > "$TLS/combined.pem"
  chmod 644 "$TLS"/*.pem
fi

# --- per-server start / provision / stop ------------------------------------
SPID=""
start_xmppd() {
  local d=$WORK/xmppd
  cat > "$d/xmppd.toml" <<TOML
hosts = ["$DOMAIN"]
data_dir = "$d/data"
[[listen]]
kind = "c2s"
address = "127.0.0.1:$XMPPD_PORT"
[limits]
max_connections = 100000
max_connections_per_ip = 0
shaper_bytes_per_sec = 0
stanzas_per_sec = 0
max_stanza_size = 1048576
outbound_queue_bytes = 16777216
[log]
level = "warn"
TOML
  if "$BIN/xmppd" ctl --config "$d/xmppd.toml" help 2>&1 | grep -q register_bulk; then
    # Accounts through ctl (daemon down: straight into the store).
    { for i in $(seq 1 "$N"); do echo "u$i $DOMAIN pw$i"; done
      for i in $(seq 1 "$P_USERS"); do echo "p$i $DOMAIN pw$i"; done; } > "$d/users.txt"
    "$BIN/xmppd" ctl --config "$d/xmppd.toml" register_bulk "$d/users.txt" > "$d/provision.log" 2>&1
    # Rosters: no ctl command yet; the tool writes them through the store API.
    "$LOAD" provision --data-dir "$d/data" --domain "$DOMAIN" --users "$P_USERS" --prefix p --contacts "$CONTACTS" \
      >> "$d/provision.log" 2>&1
  else
    "$LOAD" provision --data-dir "$d/data" --domain "$DOMAIN" --users "$N" --password-cache "$d/pwcache" > "$d/provision.log" 2>&1
    "$LOAD" provision --data-dir "$d/data" --domain "$DOMAIN" --users "$P_USERS" --prefix p --contacts "$CONTACTS" \
      --password-cache "$d/pwcache" >> "$d/provision.log" 2>&1
  fi
  bg "$SERVER_CPUS" "$BIN/xmppd" serve --config "$d/xmppd.toml" > "$d/server.log" 2>&1
  SPID=$!
  wait_port $XMPPD_PORT || die "xmppd did not start: $(tail -5 "$d/server.log")"
  CA=$d/data/tls/ca.pem; PORT=$XMPPD_PORT
}

start_ejabberd() {
  local d=$WORK/ejabberd
  mkdir -p "$d/spool" "$d/logs"
  cat > "$d/ejabberd.yml" <<YML
hosts:
  - $DOMAIN
loglevel: warning
certfiles:
  - $TLS/combined.pem
ca_file: $TLS/ca.pem
listen:
  -
    port: $EJABBERD_PORT
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
    max_stanza_size: 1048576
    shaper: none
    access: c2s
    backlog: 1024
  -
    port: $EJABBERD_API
    ip: "127.0.0.1"
    module: ejabberd_http
    backlog: 1024
    request_handlers:
      /api: mod_http_api
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha256
acl:
  loopback:
    ip:
      - 127.0.0.0/8
access_rules:
  local:
    allow: all
  c2s:
    allow: all
api_permissions:
  "bench admin on loopback":
    from:
      - ejabberd_ctl
      - mod_http_api
    who:
      ip: 127.0.0.0/8
    what: "*"
shaper: {}
shaper_rules:
  max_user_sessions: 10
  c2s_shaper: none
max_fsm_queue: 100000
modules:
  mod_admin_extra: {}
  mod_disco: {}
  mod_http_api: {}
  mod_ping: {}
  mod_roster:
    versioning: true
  mod_version:
    show_os: false
YML
  # Our own ejabberdctl.cfg: Debian's one pins EJABBERD_CONFIG_PATH to /etc.
  cat > "$d/ejabberdctl.cfg" <<CFG
POLL=true
ERL_MAX_PORTS=65536
ERL_PROCESSES=1000000
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH=$d/ejabberd.pid
CFG
  chown -R ejabberd: "$d"
  # ejabberdctl would `su` to the ejabberd user, which resets the open-file
  # limit to 1024; setpriv keeps ours. The node name keeps it apart from a
  # system instance.
  EJ=(env HOME=/var/lib/ejabberd setpriv --reuid=ejabberd --regid=ejabberd --init-groups ejabberdctl --config "$d/ejabberd.yml" --ctl-config "$d/ejabberdctl.cfg" --spool "$d/spool" --logs "$d/logs" --node "bench@localhost")
  pin "$SERVER_CPUS" "${EJ[@]}" start
  for _ in $(seq 1 100); do "${EJ[@]}" status >/dev/null 2>&1 && break; sleep 0.5; done
  wait_port $EJABBERD_PORT || die "ejabberd did not start: $(tail -5 "$d/logs/error.log" 2>/dev/null)"
  wait_port $EJABBERD_API || die "ejabberd API did not start"
  SPID=$(pgrep -u ejabberd -f "beam.*bench@localhost" | head -1)
  [ -n "$SPID" ] || die "no ejabberd beam process"
  python3 "$ROOT/bench/provision.py" ejabberd "http://127.0.0.1:$EJABBERD_API/api" "$DOMAIN" u 1 "$N" pw > "$d/provision.log" 2>&1 \
    || die "ejabberd provisioning: $(tail -3 "$d/provision.log")"
  python3 "$ROOT/bench/provision.py" ejabberd "http://127.0.0.1:$EJABBERD_API/api" "$DOMAIN" p 1 "$P_USERS" pw "$CONTACTS" \
    >> "$d/provision.log" 2>&1 || die "ejabberd rosters: $(tail -3 "$d/provision.log")"
  CA=$TLS/ca.pem; PORT=$EJABBERD_PORT
}

start_prosody() {
  local d=$WORK/prosody
  mkdir -p "$d/data"
  cat > "$d/prosody.cfg.lua" <<LUA
-- Comparable to xmppd: c2s with STARTTLS required, SCRAM-SHA-256, roster,
-- disco, ping, version; no mod_limits, no s2s, no offline storage.
run_as_root = true
daemonize = false
pidfile = "$d/prosody.pid"
data_path = "$d/data"
plugin_paths = {}
network_backend = "epoll"
network_settings = { tcp_backlog = 1024 }
log = { { levels = { min = "warn" }, to = "file", filename = "$d/prosody.log" } }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "version"; "posix" }
modules_disabled = { "s2s"; "offline"; "c2s_limits"; "limits" }
c2s_ports = { $PROSODY_PORT }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = true
allow_unencrypted_plain_auth = false
c2s_stanza_size_limit = 1048576
authentication = "internal_hashed"
password_hash = "SHA-256"
storage = "internal"
ssl = { certificate = "$TLS/cert.pem"; key = "$TLS/key.pem"; }
VirtualHost "$DOMAIN"
LUA
  python3 "$ROOT/bench/provision.py" prosody "$d/data" "$DOMAIN" u 1 "$N" pw > "$d/provision.log" 2>&1
  python3 "$ROOT/bench/provision.py" prosody "$d/data" "$DOMAIN" p 1 "$P_USERS" pw "$CONTACTS" >> "$d/provision.log" 2>&1
  bg "$SERVER_CPUS" prosody --config "$d/prosody.cfg.lua" > "$d/server.log" 2>&1
  SPID=$!
  wait_port $PROSODY_PORT || die "prosody did not start: $(tail -5 "$d/server.log" "$d/prosody.log" 2>/dev/null)"
  CA=$TLS/ca.pem; PORT=$PROSODY_PORT
}

stop_server() { # stop_server NAME
  case $1 in
    ejabberd) "${EJ[@]}" stop >/dev/null 2>&1 || true
              for _ in $(seq 1 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.2; done ;;
    *) kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true ;;
  esac
  kill -0 "$SPID" 2>/dev/null && kill -9 "$SPID" 2>/dev/null || true
}

# run NAME ARGS...: one xmppd-load run against the current server.
run() {
  local name=$1; shift
  local f=$OUT/$SRV-$name.json
  say "  $SRV $name"
  pin "$LOAD_CPUS" "$LOAD" "$@" --server "127.0.0.1:$PORT" --domain "$DOMAIN" --ca "$CA" --server-pid "$SPID" \
    --password-cache "$WORK/$SRV/pwcache" --concurrency "$CONC" --label "$SRV" --json > "$f" 2> "$OUT/$SRV-$name.err" \
    || say "  ($SRV $name exited $?: $(head -c 300 "$OUT/$SRV-$name.err") $(grep -o '"errors":"[^"]\{0,200\}' "$f" 2>/dev/null))"
  sleep 2 # let the server settle (closing sessions) between runs
}

# run_tsung: the tsung run against the current server; the server's CPU
# seconds (utime+stime) and peak RSS over it go into $SRV-tsung.json.
run_tsung() {
  local d=$WORK/$SRV/tsung f=$OUT/$SRV-tsung.json tck c0 c1 rss=0 r
  mkdir -p "$d"
  sed -e "s/@PORT@/$PORT/" -e "s/@USERS@/$N/g" -e "s/@RATE@/$LOGIN_RATE/" -e "s/@DOMAIN@/$DOMAIN/" \
    -e "s/@ARRIVAL_SECS@/$(( (N + ${LOGIN_RATE%.*} - 1) / ${LOGIN_RATE%.*} + 1 ))/" \
    -e "s/@CHATS@/$TSUNG_CHATS/" -e "s/@THINK@/$TSUNG_THINK/g" "$ROOT/bench/tsung/compare.xml" > "$d/run.xml"
  say "  $SRV tsung"
  tck=$(getconf CLK_TCK)
  c0=$(awk '{print $14 + $15}' "/proc/$SPID/stat")
  pin "$LOAD_CPUS" tsung -f "$d/run.xml" -l "$d/log" start > "$d/tsung.out" 2>&1 &
  local tp=$!
  while kill -0 "$tp" 2>/dev/null; do
    r=$(awk '/VmRSS/ {print $2}' "/proc/$SPID/status" 2>/dev/null || echo 0)
    [ "${r:-0}" -gt "$rss" ] && rss=$r
    sleep 1
  done
  wait "$tp" || say "  ($SRV tsung exited $?: $(tail -3 "$d/tsung.out"))"
  c1=$(awk '{print $14 + $15}' "/proc/$SPID/stat")
  python3 "$ROOT/bench/tsung/summary.py" "$d/log" "$SRV" "$(python3 -c "print(($c1 - $c0) / $tck)")" "$rss" > "$f"
  sleep 2
}

for SRV in $SERVERS; do
  say "== $SRV"
  for p in $XMPPD_PORT $EJABBERD_PORT $EJABBERD_API $PROSODY_PORT; do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && die "127.0.0.1:$p is already in use (a server left running?)"
  done
  rm -rf "${WORK:?}/$SRV"; mkdir -p "$WORK/$SRV"
  T0=$(date +%s)
  "start_$SRV"
  kill -0 "$SPID" 2>/dev/null || die "$SRV (pid $SPID) is not running"
  say "  started (pid $SPID), provisioned in $(( $(date +%s) - T0 )) s"
  if [ "$XLOAD" = 1 ]; then
    # Idle first: the server's RSS baseline is a fresh process.
    run idle idle --users "$N" --hold "$HOLD"
    run login-rate login --users "$N" --login-rate "$LOGIN_RATE"
    run login-flat login --users "$N"
    # Reconnecting clients resume TLS (RFC 8446 §2.2): the same, with tickets.
    run login-resume login --users "$N" --tls-resume
    run chat-rate chat --users "$N" --rate "$CHAT_RATE" --duration "$CHAT_SECS"
    run chat-flat chat --users "$N" --duration "$FLAT_SECS" --window "$WINDOW"
    # The same with each sender writing BURST messages (to BURST random
    # recipients) at a time: one write for several, as busy clients do.
    run chat-burst chat --users "$N" --duration "$FLAT_SECS" --window "$WINDOW" --sender-burst "$BURST"
    # Latency at half capacity (issue 4: p99 at half the top rate): half of
    # HALF_RATE, or of what this server itself delivered flat out just now.
    half=${HALF_RATE:-$(python3 -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["msgs_per_s"] / 2))' \
      "$OUT/$SRV-chat-flat.json" 2>/dev/null || echo "$CHAT_RATE")}
    run chat-half chat --users "$N" --rate "$half" --duration "$HALF_SECS"
    run presence presence --users "$P_USERS" --prefix p --contacts "$CONTACTS" --updates "$UPDATES" \
      --duration 120 --window "$WINDOW"
  fi
  if [ "$TSUNG" = 1 ]; then run_tsung; fi
  stop_server "$SRV"
  say "  $SRV done in $(( $(date +%s) - T0 )) s"
done

find "$OUT" -name '*.err' -empty -delete
python3 "$ROOT/bench/table.py" "$OUT" | tee "$OUT/summary.md"
say "results in $OUT"
