#!/usr/bin/env python3
"""Summarise a bench/compare.sh results directory as one Markdown table:
a column per server and the ratios xmppd/ejabberd and xmppd/Prosody."""
import json
import os
import sys

SERVERS = ["xmppd", "ejabberd", "prosody"]
# (label, file, key, scale, better) — better: "high" or "low".
ROWS = [
    ("idle: server KB per connection", "idle", "server_kb_per_conn", 1, "low"),
    ("idle: connections held", "idle", "connected", 1, "high"),
    ("login flat out: logins/s", "login-flat", "logins_per_s", 1, "high"),
    ("login flat out: server CPU ms per login", "login-flat", "server_cpu_ms_per_login", 1, "low"),
    ("login flat out: p99 login ms", "login-flat", "login_ms_p99", 1, "low"),
    ("login flat out, TLS resumed: logins/s", "login-resume", "logins_per_s", 1, "high"),
    ("login flat out, TLS resumed: server CPU ms per login", "login-resume", "server_cpu_ms_per_login", 1, "low"),
    ("login paced: logins/s achieved", "login-rate", "logins_per_s", 1, "high"),
    ("login paced: p50 login ms", "login-rate", "login_ms_p50", 1, "low"),
    ("login paced: p99 login ms", "login-rate", "login_ms_p99", 1, "low"),
    ("chat paced: delivered msgs/s", "chat-rate", "msgs_per_s", 1, "high"),
    ("chat paced: latency p50 ms", "chat-rate", "latency_ms_p50", 1, "low"),
    ("chat paced: latency p99 ms", "chat-rate", "latency_ms_p99", 1, "low"),
    ("chat paced: latency p99.9 ms", "chat-rate", "latency_ms_p999", 1, "low"),
    ("chat paced: server CPU s per 100k msgs", "chat-rate", "server_cpu_s_per_100k", 1, "low"),
    ("chat paced: lost msgs", "chat-rate", "msgs_lost", 1, "low"),
    ("chat flat out: delivered msgs/s", "chat-flat", "msgs_per_s", 1, "high"),
    ("chat flat out: latency p99 ms", "chat-flat", "latency_ms_p99", 1, "low"),
    ("chat flat out: server CPU s per 100k msgs", "chat-flat", "server_cpu_s_per_100k", 1, "low"),
    ("chat flat out: lost msgs", "chat-flat", "msgs_lost", 1, "low"),
    ("chat flat out, senders in bursts of BURST: delivered msgs/s", "chat-burst", "msgs_per_s", 1, "high"),
    ("chat flat out in bursts: server CPU s per 100k msgs", "chat-burst", "server_cpu_s_per_100k", 1, "low"),
    ("chat flat out in bursts: lost msgs", "chat-burst", "msgs_lost", 1, "low"),
    ("chat at half the server's flat-out rate: msgs/s", "chat-half", "msgs_per_s", 1, "high"),
    ("chat at half rate: latency p50 ms", "chat-half", "latency_ms_p50", 1, "low"),
    ("chat at half rate: latency p99 ms", "chat-half", "latency_ms_p99", 1, "low"),
    ("chat at half rate: server CPU s per 100k msgs", "chat-half", "server_cpu_s_per_100k", 1, "low"),
    ("chat at half rate: lost msgs", "chat-half", "msgs_lost", 1, "low"),
    ("presence: roster size", "presence", "roster_items_avg", 1, "high"),
    ("presence: delivered presence/s", "presence", "presence_per_s", 1, "high"),
    ("presence: latency p99 ms", "presence", "presence_latency_ms_p99", 1, "low"),
    ("presence: server CPU s per 100k", "presence", "server_cpu_s_per_100k", 1, "low"),
    ("presence: lost", "presence", "presence_lost", 1, "low"),
    ("tsung: users (STARTTLS + PLAIN, then chats)", "tsung", "users", 1, "high"),
    ("tsung: sessions finished", "tsung", "sessions_finished", 1, "high"),
    ("tsung: login transaction mean ms", "tsung", "login_ms_mean", 1, "low"),
    ("tsung: chats sent", "tsung", "chats_sent", 1, "high"),
    ("tsung: server CPU s for the run", "tsung", "server_cpu_s", 1, "low"),
    ("tsung: server peak RSS MB", "tsung", "server_rss_peak_kb", 1 / 1024, "low"),
    ("tsung: errors", "tsung", "tsung_errors", 1, "low"),
]


def load(d, srv, name):
    try:
        with open(os.path.join(d, f"{srv}-{name}.json")) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    return f"{v:,}"


def ratio(a, b):
    if a is None or b is None or not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def main():
    d = sys.argv[1]
    present = [s for s in SERVERS if any(load(d, s, n) for n in ("idle", "login-flat", "chat-flat", "tsung"))]
    print(f"## xmppd vs ejabberd vs Prosody ({os.path.basename(os.path.normpath(d))})\n")
    try:
        with open(os.path.join(d, "machine.txt")) as f:
            for line in f:
                print(f"    {line.rstrip()}")
        print()
    except OSError:
        pass
    head = ["metric", "better"] + present
    if "xmppd" in present:
        head += [f"xmppd/{s}" for s in present if s != "xmppd"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, name, key, scale, better in ROWS:
        vals = {}
        for s in present:
            r = load(d, s, name)
            v = r.get(key) if r else None
            vals[s] = v * scale if isinstance(v, (int, float)) and scale != 1 else v
            if r and key in ("presence_per_s", "roster_items_avg") and not r.get("users_with_roster"):
                vals[s] = None
        row = [label, better] + [fmt(vals[s]) for s in present]
        if "xmppd" in present:
            row += [ratio(vals["xmppd"], vals[s]) for s in present if s != "xmppd"]
        print("| " + " | ".join(row) + " |")
    # Noise and errors, per run.
    print("\nPer run: other CPU on the machine during the run (s; >1 means a busy neighbour) and errors:\n")
    for s in present:
        for name in ("idle", "login-rate", "login-flat", "login-resume", "chat-rate", "chat-flat", "chat-burst", "presence"):
            r = load(d, s, name)
            if r is None:
                print(f"- {s} {name}: no result")
                continue
            err = r.get("errors")
            print(f"- {s} {name}: elapsed {fmt(r.get('elapsed_s'))} s, other CPU {fmt(r.get('other_cpu_s'))} s, "
                  f"tool CPU {fmt(r.get('tool_cpu_s'))} s, server CPU {fmt(r.get('run_server_cpu_s'))} s"
                  + (f", mech {r.get('mech')}" if r.get("mech") else "")
                  + (f", errors: {err[:300]}" if err else ""))


if __name__ == "__main__":
    main()
