#!/usr/bin/env python3
"""One tsung run of bench/compare.sh as a JSON line: the server's CPU
seconds and peak RSS over the run (given), and from tsung's own log the
sessions, the login transaction's mean/max ms, chats sent and received,
and every error counter.

usage: summary.py TSUNG_LOG_DIR LABEL SERVER_CPU_S RSS_PEAK_KB"""
import glob
import json
import os
import sys


def main():
    logdir, label, cpu, rss = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    logs = sorted(glob.glob(os.path.join(logdir, "*", "tsung.log")))
    out = {"scenario": "tsung", "label": label, "server_cpu_s": cpu, "server_rss_peak_kb": rss}
    if not logs:
        out["errors"] = "no tsung.log"
        print(json.dumps(out))
        return
    # "stats: NAME ..." lines; the last one of each name holds the totals.
    last = {}
    with open(logs[-1]) as f:
        for line in f:
            p = line.split()
            if len(p) >= 3 and p[0] == "stats:":
                last[p[1]] = p[2:]
    def total(name):
        return float(last[name][-1]) if name in last else 0.0

    out["users"] = int(total("users_count"))
    out["sessions_finished"] = int(total("finish_users_count"))
    if "tr_login" in last:
        # count and mean of the last interval, max, min, then the mean and
        # count of all the intervals before it.
        ic, im, _, mx, _, gm, gc = (float(x) for x in last["tr_login"][:7])
        out["logins"] = int(ic + gc)
        out["login_ms_mean"] = (im * ic + gm * gc) / max(ic + gc, 1)
        out["login_ms_max"] = mx
    out["chats_sent"] = int(total("request_noack")) - out["users"]  # minus the initial presences
    out["stanzas_received"] = int(total("async_unknown_data_rcv"))
    errs = {k: int(float(v[-1])) for k, v in last.items() if k.startswith("error")}
    out["tsung_errors"] = sum(errs.values())
    out["errors"] = ", ".join(f"{k}={v}" for k, v in sorted(errs.items())) or None
    if out["users"] and out.get("logins"):
        out["server_cpu_ms_per_user"] = cpu * 1000.0 / out["users"]
    print(json.dumps(out))


main()
