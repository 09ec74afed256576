"""Scrape xmppd's /metrics and parse it with the Prometheus project's
OpenMetrics parser (prometheus_client), as a Prometheus server would.

Usage: metrics_check.py URL HOST=SESSIONS...
Checks that the exposition parses, that the families xmppd documents are
there with the right types, and that xmppd_sessions{host=HOST} equals each
given SESSIONS value. Prints `ok - ...` lines; exits 1 on any failure.
"""
import sys
import time
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

EXPECTED = {
    "xmppd_connections": "gauge",
    "xmppd_connections_accepted": "counter",
    "xmppd_sessions": "gauge",
    "xmppd_registered_users": "gauge",
    "xmppd_stanzas_received": "counter",
    "xmppd_stanzas_sent": "counter",
    "xmppd_auth_failures": "counter",
    "xmppd_queue_drops": "counter",
    "xmppd_store_operation_duration_seconds": "histogram",
    "xmppd_uptime_seconds": "gauge",
}


def scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.headers.get("Content-Type", ""), r.read().decode("utf-8")


def main() -> int:
    url, wants = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    # Sessions of clients that just disconnected end asynchronously: give
    # the gauge a few seconds to settle.
    for _ in range(20):
        ctype, body = scrape(url)
        if all(f'xmppd_sessions{{host="{h}"}} {n}\n' in body for h, n in wants):
            break
        time.sleep(0.25)
    failures = 0

    def check(cond: bool, msg: str) -> None:
        nonlocal failures
        print(("ok - " if cond else "not ok - ") + msg, flush=True)
        failures += 0 if cond else 1

    check(ctype.startswith("application/openmetrics-text"), f"content type {ctype!r}")
    try:
        families = {f.name: f for f in text_string_to_metric_families(body)}
    except Exception as e:  # noqa: BLE001 - report any parse error
        check(False, f"prometheus_client parses /metrics: {e}")
        return 1
    check(True, f"prometheus_client parses /metrics ({len(families)} families)")
    for name, typ in EXPECTED.items():
        f = families.get(name)
        check(f is not None and f.type == typ, f"{name} is a {typ} (found {f.type if f else None})")
    sessions = {s.labels.get("host"): s.value for s in families["xmppd_sessions"].samples}
    for host, n in wants:
        check(sessions.get(host) == float(n), f"xmppd_sessions{{host={host!r}}} == {n} (found {sessions.get(host)})")
    received = sum(s.value for s in families["xmppd_stanzas_received"].samples if s.name.endswith("_total"))
    check(received > 0, f"stanzas were counted ({received})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
