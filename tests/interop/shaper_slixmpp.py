#!/usr/bin/env python3
"""Interop check with slixmpp: the default limits (byte and stanza shapers,
outbound queue bounds) do not break a normal client. alice sends bob a burst
of chat messages larger than both shaper buckets (by default 320 KiB and 400
stanzas); every message must arrive, in order, and neither client may be
disconnected. With XMPP_METRICS_URL set, the server's
xmppd_shaper_pauses_total must show that the shaper did engage.

Environment: XMPP_HOST, XMPP_PORT, XMPP_DOMAIN, XMPP_CA_FILE, ALICE_JID,
ALICE_PASSWORD, BOB_JID, BOB_PASSWORD, XMPP_TIMEOUT, XMPP_METRICS_URL,
SHAPER_MESSAGES (default 600), SHAPER_BODY (bytes per body, default 600).
Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import urllib.request

try:
    import slixmpp
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"shaper_slixmpp: FAIL: cannot import slixmpp ({exc})", file=sys.stderr)
    sys.exit(1)

NAME = "shaper_slixmpp"
FAILURES: list[str] = []


def check(cond: bool, msg: str) -> None:
    print(f"{'ok' if cond else 'not ok'} - {msg}", flush=True)
    if not cond:
        FAILURES.append(msg)


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid: str, password: str):
        super().__init__(jid, password)
        self.enable_direct_tls = False
        self.enable_plaintext = False
        ca = os.environ.get("XMPP_CA_FILE")
        if ca:
            self.ca_certs = ca
        self.started = asyncio.get_event_loop().create_future()
        self.bodies: list[str] = []
        self.got_all = asyncio.Event()
        self.expected = 0
        self.disconnects = 0
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("failed_all_auth", lambda _e: self._fail("authentication failed"))
        self.add_event_handler("connection_failed", lambda e: self._fail(f"connection failed: {e}"))

    def _fail(self, why: str) -> None:
        if not self.started.done():
            self.started.set_exception(RuntimeError(why))

    def _on_start(self, _event) -> None:
        self.send_presence()
        if not self.started.done():
            self.started.set_result(True)

    def _on_message(self, msg) -> None:
        if msg["type"] in ("chat", "normal"):
            self.bodies.append(msg["body"])
            if self.expected and len(self.bodies) >= self.expected:
                self.got_all.set()

    def _on_disconnected(self, _event) -> None:
        self.disconnects += 1


def shaper_pauses(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError as e:
        print(f"# cannot read {url}: {e}", flush=True)
        return None
    for line in text.splitlines():
        if line.startswith("xmppd_shaper_pauses_total "):
            return int(float(line.split()[1]))
    return None


async def main() -> int:
    host = os.environ.get("XMPP_HOST", "127.0.0.1")
    port = int(os.environ.get("XMPP_PORT", "5222"))
    domain = os.environ.get("XMPP_DOMAIN", "localhost")
    timeout = float(os.environ.get("XMPP_TIMEOUT", "20"))
    n = int(os.environ.get("SHAPER_MESSAGES", "600"))
    size = int(os.environ.get("SHAPER_BODY", "600"))
    metrics = os.environ.get("XMPP_METRICS_URL")
    alice = Client(os.environ.get("ALICE_JID", f"alice@{domain}"), os.environ["ALICE_PASSWORD"])
    bob = Client(os.environ.get("BOB_JID", f"bob@{domain}"), os.environ["BOB_PASSWORD"])
    bob.expected = n
    before = shaper_pauses(metrics) if metrics else None
    for c in (alice, bob):
        c.connect(host, port)
    try:
        await asyncio.wait_for(asyncio.gather(alice.started, bob.started), timeout)
    except (asyncio.TimeoutError, RuntimeError) as e:
        check(False, f"both clients log in ({e!r})")
        return 1
    check(True, "both clients log in")
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    for i in range(n):
        body = f"{i:05d} " + "s" * size
        alice.send_message(mto=bob.boundjid, mbody=body, mtype="chat")
    try:
        await asyncio.wait_for(bob.got_all.wait(), timeout * 2)
    except asyncio.TimeoutError:
        pass
    elapsed = time.monotonic() - t0
    got = [b[:5] for b in bob.bodies]
    want = [f"{i:05d}" for i in range(n)]
    check(got == want, f"bob got all {n} messages of {size} bytes in order ({len(got)} in {elapsed:.1f}s)")
    check(alice.disconnects == 0 and bob.disconnects == 0, "nobody was disconnected by the limits")
    if metrics:
        after = shaper_pauses(metrics)
        check(after is not None and after > (before or 0),
              f"the shaper engaged (xmppd_shaper_pauses_total {before} -> {after})")
    for c in (alice, bob):
        c.disconnect()
    await asyncio.sleep(0.3)
    print(f"{NAME}: {'FAIL' if FAILURES else 'PASS'}", flush=True)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
