#!/usr/bin/env bash
# tsung (Debian's tsung 1.7, an independent XMPP load tool) logs in
# TSUNG_USERS accounts PREFIX1..PREFIXn (passwords PWPREFIX1..) over
# STARTTLS, half with SASL PLAIN and half with XEP-0078 iq:auth (its
# auth_get / auth_set_plain), then fetches the roster, sends presence and
# chats (tsung_login.xml). tsung does not check the answers itself, so the
# server's /metrics must show exactly n more successful authentications and
# no more failures, and tsung must have finished every user without errors.
#
# TSUNG_SCENARIO=register (tsung_register.xml) instead has every user
# register its account in-band (XEP-0077, from one address: the server
# needs `[registration] enabled` and `max_per_ip = 0`) and then log in with
# iq:auth: all n logins must succeed, which they only do for accounts that
# exist.
#
# Env: XMPP_PORT, XMPP_DOMAIN, XMPP_METRICS_URL, TSUNG_USERS, TSUNG_PREFIX,
# TSUNG_PWPREFIX, TSUNG_SCENARIO (run.sh sets them).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v tsung >/dev/null || { echo "tsung is not installed (Debian package tsung)"; exit 1; }
n=${TSUNG_USERS:?} prefix=${TSUNG_PREFIX:?} pwprefix=${TSUNG_PWPREFIX:?}

metric() { # name
  python3 - "$XMPP_METRICS_URL" "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
vals = [float(l.split()[-1]) for l in body.splitlines() if l.startswith(sys.argv[2] + " ") or l.startswith(sys.argv[2] + "{")]
print(int(sum(vals)))
PY
}

work="$(mktemp -d "${TMPDIR:-/tmp}/tsung.XXXXXX")"
trap 'rm -rf "$work"' EXIT
sed -e "s/@PORT@/$XMPP_PORT/; s/@DOMAIN@/$XMPP_DOMAIN/; s/@USERS@/$n/g; s/@PREFIX@/$prefix/; s/@PWPREFIX@/$pwprefix/" \
  "$HERE/tsung_${TSUNG_SCENARIO:-login}.xml" >"$work/scenario.xml"
ok0=$(metric xmppd_auth_successes_total) failed0=$(metric xmppd_auth_failures_total)
# tsung keeps its Erlang node name and state under $HOME/.tsung.
HOME="$work" timeout 120 tsung -f "$work/scenario.xml" -l "$work/log" start >"$work/tsung.out" 2>&1 || {
  cat "$work/tsung.out"
  exit 1
}
log="$(ls "$work"/log/*/tsung.log)"
ok=$(($(metric xmppd_auth_successes_total) - ok0)) failed=$(($(metric xmppd_auth_failures_total) - failed0))
grep -E '^stats: (users_count|finish_users_count|tr_auth_sasl|tr_auth_legacy|error_)' "$log" | sed 's/^/tsung /'
finished=$(awk '$2 == "finish_users_count" { print $4 }' "$log" | tail -n 1)
# Transactions: the third field counts those of one 10 s period.
sasl=$(awk '$2 == "tr_auth_sasl" { n += $3 } END { print n + 0 }' "$log")
legacy=$(awk '$2 == "tr_auth_legacy" { n += $3 } END { print n + 0 }' "$log")
echo "server: $ok successful and $failed failed authentications; tsung: $finished users finished, $sasl SASL and $legacy iq:auth logins"
[[ "$finished" == "$n" ]] || { echo "tsung finished ${finished:-0} of $n users"; exit 1; }
[[ "$ok" == "$n" && "$failed" == 0 ]] || { echo "expected $n successful and 0 failed authentications"; exit 1; }
if [[ "${TSUNG_SCENARIO:-login}" == register ]]; then
  [[ $legacy == "$n" ]] || { echo "expected $n iq:auth logins"; exit 1; }
else
  [[ $(($sasl + $legacy)) == "$n" && $sasl -gt 0 && $legacy -gt 0 ]] ||
    { echo "expected both login methods, $n in all"; exit 1; }
fi
! grep -qE '^stats: error_' "$log" || { echo "tsung reported errors"; exit 1; }
