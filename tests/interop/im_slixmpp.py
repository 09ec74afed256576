#!/usr/bin/env python3
"""IM interop scenarios with slixmpp against xmppd (RFC 6121 rosters,
subscriptions and presence, XEP-0160 offline messages, priority routing,
XEP-0280 carbons, XEP-0191 blocking, XEP-0054 vCard, XEP-0049 private
storage, XEP-0077 registration being off, XEP-0199/0202/0012 queries).

Every scenario is a named step using its own pre-registered accounts
(<prefix>1 .. <prefix>19, one shared password) and prints `ok - ...` /
`not ok - ...` per check and a `PASS  [n] ...` / `FAIL  [n] ...` line;
the script exits non-zero if any step failed. Scenarios reset the state
they depend on first (roster items, block list), so the script can be run
again against the same accounts.

Settings come from environment variables, overridable by flags:
  --host XMPP_HOST (127.0.0.1)  --port XMPP_PORT (5222, STARTTLS is used)
  --domain XMPP_DOMAIN (localhost)  --ca XMPP_CA_FILE
  --user-prefix IM_USER_PREFIX (im)  --password IM_PASSWORD (im-secret)
  --timeout XMPP_TIMEOUT (whole script, 120)  --step-timeout IM_STEP_TIMEOUT (30)
  --only IM_ONLY / --skip IM_SKIP (comma-separated step numbers)  --debug XMPP_DEBUG
Exit status: 0 all steps passed, 1 a step failed, 2 overall timeout, 64 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import functools
import logging
import os
import ssl
import sys
import time
import uuid

try:
    import slixmpp
    from slixmpp import JID
    from slixmpp.exceptions import IqError, IqTimeout
    from slixmpp.stanza import StreamFeatures
    from slixmpp.xmlstream import ElementBase
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"im_slixmpp: FAIL: cannot import slixmpp ({exc}); "
          "pip install -r tests/interop/requirements.txt", file=sys.stderr)
    sys.exit(1)

NAME = "im_slixmpp"
PLUGINS = ("xep_0030", "xep_0054", "xep_0049", "xep_0191", "xep_0280", "xep_0297",
           "xep_0203", "xep_0199", "xep_0012", "xep_0202", "xep_0077")
# slixmpp events every client records, in arrival order.
RECORDED = ("presence", "message", "message_error", "carbon_received", "carbon_sent", "roster_update",
            "presence_available", "presence_unavailable", "got_online", "got_offline",
            "presence_subscribe", "presence_subscribed", "presence_unsubscribe",
            "presence_unsubscribed", "changed_subscription", "blocked", "unblocked")
WAIT = 8.0  # seconds to wait for something that should arrive
QUIET = 1.0  # seconds of silence that show something did not arrive


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"{NAME}.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=env("XMPP_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("XMPP_PORT", "5222")))
    p.add_argument("--domain", default=env("XMPP_DOMAIN", "localhost"))
    p.add_argument("--ca", default=env("XMPP_CA_FILE"))
    p.add_argument("--user-prefix", default=env("IM_USER_PREFIX", "im"))
    p.add_argument("--password", default=env("IM_PASSWORD", "im-secret"))
    p.add_argument("--timeout", type=float, default=float(env("XMPP_TIMEOUT", "120")))
    p.add_argument("--step-timeout", type=float, default=float(env("IM_STEP_TIMEOUT", "30")))
    p.add_argument("--only", default=env("IM_ONLY", ""))
    p.add_argument("--skip", default=env("IM_SKIP", ""))
    p.add_argument("--debug", action="store_true",
                   default=env("XMPP_DEBUG", "0") in ("1", "true"))
    a = p.parse_args()
    if a.ca and not os.path.isfile(a.ca):
        p.error(f"CA file {a.ca} does not exist")
    try:
        a.only = {int(x) for x in a.only.split(",") if x.strip()}
        a.skip = {int(x) for x in a.skip.split(",") if x.strip()}
    except ValueError:
        p.error("--only and --skip take comma-separated step numbers")
    return a


class StepFailed(Exception):
    """A check a step cannot go on without failed (already reported)."""


class Reporter:
    def __init__(self, debug: bool):
        self.debug = debug
        self.wire: collections.deque[str] = collections.deque(maxlen=120)
        self.checks = 0
        self.failures = 0
        self.step = "setup"
        self.step_failures = 0
        self.results: list[tuple[str, bool, float]] = []

    def log(self, who: str, direction: str, data) -> None:
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        line = f"{time.strftime('%H:%M:%S')} {who} {direction} {str(data).strip()}"
        self.wire.append(line)
        if self.debug:
            print(line, file=sys.stderr, flush=True)

    def info(self, msg: str) -> None:
        print(f"# {msg}", flush=True)

    def ok(self, msg: str) -> None:
        self.checks += 1
        print(f"ok - {msg}", flush=True)

    def fail(self, msg: str) -> None:
        self.checks += 1
        self.failures += 1
        self.step_failures += 1
        print(f"not ok - {msg}", flush=True)
        print(f"{NAME}: FAIL: [{self.step}] {msg}", file=sys.stderr, flush=True)

    def check(self, cond: bool, msg: str, detail: str = "") -> bool:
        if cond:
            self.ok(msg)
        else:
            self.fail(f"{msg}: {detail}" if detail else msg)
        return bool(cond)

    def require(self, cond: bool, msg: str, detail: str = "") -> None:
        if not self.check(cond, msg, detail):
            raise StepFailed(msg)

    def begin(self, step: str) -> None:
        self.step = step
        self.step_failures = 0
        self.wire.clear()
        print(f"---- [{step}]", flush=True)

    def end(self, elapsed: float) -> None:
        passed = self.step_failures == 0
        self.results.append((self.step, passed, elapsed))
        if not passed and self.wire:
            print(f"---- [{self.step}] last {len(self.wire)} wire log lines ----", file=sys.stderr)
            for line in self.wire:
                print(line, file=sys.stderr)
            print("---- end of wire log ----", file=sys.stderr, flush=True)
        print(f"{'PASS' if passed else 'FAIL'}  [{self.step}] ({elapsed:.1f}s)", flush=True)

    def finish(self, code: int | None = None) -> int:
        if code is None:
            code = 1 if self.failures else 0
        print("---- summary", flush=True)
        for step, passed, elapsed in self.results:
            print(f"{'PASS' if passed else 'FAIL'}  [{step}] ({elapsed:.1f}s)")
        steps_failed = sum(1 for _, p, _ in self.results if not p)
        print(f"{NAME}: {'PASS' if code == 0 else 'FAIL'} ({len(self.results) - steps_failed}/"
              f"{len(self.results)} steps, {self.checks - self.failures}/{self.checks} checks)",
              flush=True)
        return code


class AuthFailed(Exception):
    def __init__(self, condition: str):
        super().__init__(f"SASL failure <{condition}/>")
        self.condition = condition


class Client(slixmpp.ClientXMPP):
    """A ClientXMPP over STARTTLS that logs its wire traffic and records the
    events listed in RECORDED as (event name, stanza) in `self.events`."""

    def __init__(self, who: str, jid: str, password: str, opts, reporter: Reporter,
                 plugins=PLUGINS):
        super().__init__(jid, password)
        self.who = who
        self.reporter = reporter
        self.enable_direct_tls = False
        self.enable_starttls = True
        self.enable_plaintext = False
        if opts.ca:
            self.ca_certs = opts.ca
        for p in plugins:
            self.register_plugin(p)
        loop = asyncio.get_event_loop()
        self.events: list[tuple[str, object]] = []
        self.changed = asyncio.Event()
        self.session_started: asyncio.Future = loop.create_future()
        self.disconnected_at: float | None = None
        self.expect_disconnect = False
        self.features_seen: list[set[str]] = []
        self.add_event_handler("session_start", lambda _e: self._settle(str(self.boundjid)))
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("failed_all_auth",
                               lambda _e=None: self._settle(exc=AuthFailed("no-mechanism-left")))
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("stream_error", self._on_stream_error)
        for name in RECORDED:
            self.add_event_handler(name, functools.partial(self._record, name))
        self.register_handler(Callback(
            "features spy", MatchXPath(f"{{{self.stream_ns}}}features"),
            lambda f: self.features_seen.append(set(f["features"]))))

    # wire log
    def send_raw(self, data):
        self.reporter.log(self.who, "->", data)
        return super().send_raw(data)

    def data_received(self, data):
        self.reporter.log(self.who, "<-", data)
        return super().data_received(data)

    # session
    def _settle(self, value=None, exc: BaseException | None = None):
        if not self.session_started.done():
            if exc is not None:
                self.session_started.set_exception(exc)
            else:
                self.session_started.set_result(value)

    def _on_failed_auth(self, stanza):
        cond = stanza["condition"] if stanza is not None else "?"
        self._settle(exc=AuthFailed(cond))

    def _on_stream_error(self, err):
        self.reporter.log(self.who, "!!", f"stream error: {err['condition']}")
        self._settle(exc=RuntimeError(f"stream error {err['condition']}: {err['text']}"))

    def _on_disconnected(self, reason):
        self.disconnected_at = time.monotonic()
        self.reporter.log(self.who, "..", f"disconnected ({reason})")
        self._settle(exc=RuntimeError(f"disconnected before session start ({reason})"))

    def _record(self, name, stanza):
        self.events.append((name, stanza))
        self.changed.set()

    # waiting
    def mark(self) -> int:
        return len(self.events)

    def find(self, kinds, pred=lambda s: True, since: int = 0):
        if isinstance(kinds, str):
            kinds = (kinds,)
        return [s for k, s in self.events[since:] if k in kinds and pred(s)]

    async def wait_for(self, kinds, pred=lambda s: True, *, since: int = 0,
                       timeout: float = WAIT):
        """The first recorded event of one of `kinds` (from index `since`)
        matching `pred`, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(kinds, pred, since)
            if found:
                return found[0]
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_count(self, kinds, n: int, pred=lambda s: True, *, since: int = 0,
                         timeout: float = WAIT) -> list:
        """Waits until `n` matching events were recorded; returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(kinds, pred, since)
            left = deadline - time.monotonic()
            if len(found) >= n or left <= 0:
                return found
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def sync(self) -> None:
        """A ping round trip to the server: everything sent before has been
        processed by the time the answer arrives."""
        await self.plugin["xep_0199"].send_ping(self.boundjid.domain, timeout=WAIT)

    async def server_roster(self) -> dict[str, dict]:
        """The full roster as the server has it (a get without `ver`)."""
        iq = self.make_iq_get()
        iq.enable("roster")
        res = await iq.send(timeout=WAIT)
        return {str(j): dict(v) for j, v in res["roster"]["items"].items()}


class Ctx:
    """One step's settings and clients (all disconnected at the end)."""

    def __init__(self, opts, r: Reporter):
        self.opts = opts
        self.r = r
        self.clients: list[Client] = []
        self.token = uuid.uuid4().hex[:8]

    def jid(self, n: int) -> str:
        return f"{self.opts.user_prefix}{n}@{self.opts.domain}"

    def client(self, who: str, n: int, resource: str, plugins=PLUGINS, password=None) -> Client:
        c = Client(who, f"{self.jid(n)}/{resource}", password or self.opts.password,
                   self.opts, self.r, plugins)
        self.clients.append(c)
        return c

    async def login(self, c: Client) -> str:
        c.connect(self.opts.host, self.opts.port)
        try:
            return await asyncio.wait_for(asyncio.shield(c.session_started), WAIT * 2)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{c.who}: no session within {WAIT * 2:.0f}s") from None

    async def online(self, who: str, n: int, resource: str, *, roster: bool = True,
                     presence: bool = True, priority: int | None = None,
                     status: str | None = None) -> Client:
        """Log in, fetch the roster and send initial presence, as an IM
        client does."""
        c = self.client(who, n, resource)
        try:
            jid = await self.login(c)
        except Exception as exc:  # noqa: BLE001
            self.r.fail(f"{who} ({self.jid(n)}/{resource}) cannot log in: {exc}")
            raise StepFailed("login") from None
        self.r.info(f"{who} online as {jid}")
        if roster:
            await c.get_roster(timeout=WAIT)
        if presence:
            kw = {}
            if priority is not None:
                kw["ppriority"] = priority
            if status is not None:
                kw["pstatus"] = status
            c.send_presence(**kw)
        return c

    async def close(self, c: Client) -> None:
        await shutdown(c)
        if c in self.clients:
            self.clients.remove(c)


async def shutdown(*clients: Client) -> None:
    for c in clients:
        c.expect_disconnect = True
        try:
            c.cancel_connection_attempt()
            await asyncio.wait_for(c.disconnect(wait=1.0), 5)
        except Exception:  # noqa: BLE001 - best effort
            c.abort()


def cond_of(exc: IqError) -> str:
    return exc.iq["error"]["condition"]


async def remove_contact(c: Client, jid: str) -> None:
    """Remove `jid` from c's roster if the server has it there."""
    if jid in await c.server_roster():
        await c.del_roster_item(jid)


async def reset_pair(a: Client, b: Client) -> None:
    """No roster items between a and b, on both sides."""
    await remove_contact(a, b.boundjid.bare)
    await remove_contact(b, a.boundjid.bare)
    await a.sync()
    await b.sync()


async def ensure_mutual(ctx: Ctx, a: Client, b: Client) -> None:
    """Make a and b `both` contacts (both online, slixmpp's default
    auto_authorize/auto_subscribe), unless they already are."""
    ab, ba = a.boundjid.bare, b.boundjid.bare
    ra, rb = await a.server_roster(), await b.server_roster()
    if ra.get(ba, {}).get("subscription") == "both" and rb.get(ab, {}).get("subscription") == "both":
        ctx.r.info(f"{ab} and {ba} are already mutual contacts")
        return
    await reset_pair(a, b)
    a.send_presence_subscription(pto=ba)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        ra, rb = await a.server_roster(), await b.server_roster()
        if ra.get(ba, {}).get("subscription") == "both" and rb.get(ab, {}).get("subscription") == "both":
            ctx.r.info(f"{ab} and {ba} are now mutual contacts")
            return
    ctx.r.require(False, f"setup: {ab} and {ba} become mutual contacts",
                  f"rosters: {ab}: {ra.get(ba)}, {ba}: {rb.get(ab)}")


def from_is(jid: str):
    return lambda s: str(s["from"]) == jid


def body_is(body: str):
    return lambda s: s["body"] == body


# ------------------------------------------------------------------ steps


async def step_roster_push(ctx: Ctx) -> None:
    """1. A roster set from one resource is pushed to the other."""
    r = ctx.r
    one = await ctx.online("im1/desk", 1, "desk")
    two = await ctx.online("im1/phone", 1, "phone")
    contact = f"pal-{ctx.token}@{ctx.opts.domain}"
    since = two.mark()
    res = await one.update_roster(contact, name="Pal", groups=["Interop"], timeout=WAIT)
    r.check(res["type"] == "result", "roster set from /desk answered with a result", str(res))
    push = await two.wait_for("roster_update",
                              lambda s: s["type"] == "set" and contact in map(str, s["roster"]["items"]),
                              since=since)
    r.require(push is not None, "/phone receives the roster push for the new item",
              f"no push for {contact} within {WAIT:.0f}s")
    item = two.client_roster[contact]
    r.check(item["name"] == "Pal", "/phone's roster: name 'Pal'", f"name={item['name']!r}")
    r.check(item["groups"] == ["Interop"], "/phone's roster: group 'Interop'",
            f"groups={item['groups']!r}")
    r.check(item["subscription"] == "none", "/phone's roster: subscription none",
            f"subscription={item['subscription']!r}")
    pushed = push["roster"]["items"][JID(contact)]
    r.check(push["from"].bare in ("", two.boundjid.bare), "the push comes from the account itself",
            f"from={push['from']}")
    r.check(pushed.get("subscription") == "none" and not pushed.get("ask"),
            "pushed item has subscription none and no ask", str(pushed))
    r.check(bool(push["roster"]["ver"]), "push carries a roster version (roster versioning)",
            f"ver={push['roster']['ver']!r}")
    # Change the name and group: pushed again.
    since = two.mark()
    await one.update_roster(contact, name="Pal renamed", groups=["Interop", "Second"],
                            timeout=WAIT)
    push = await two.wait_for("roster_update",
                              lambda s: s["type"] == "set" and contact in map(str, s["roster"]["items"]),
                              since=since)
    r.check(push is not None and sorted(two.client_roster[contact]["groups"]) == ["Interop", "Second"]
            and two.client_roster[contact]["name"] == "Pal renamed",
            "an update (name, two groups) is pushed too",
            f"roster item {dict(two.client_roster[contact]._state) if push else 'no push'}")
    # Remove: pushed with subscription='remove', gone from the other roster.
    since = two.mark()
    await one.del_roster_item(contact)
    push = await two.wait_for("roster_update",
                              lambda s: s["type"] == "set" and contact in map(str, s["roster"]["items"]),
                              since=since)
    r.check(push is not None and not two.client_roster.has_jid(contact),
            "removing the item pushes subscription='remove' to /phone",
            f"push={push}" if push else "no push")
    r.check(contact not in await two.server_roster(), "the server's roster no longer has the item")


async def step_subscription_handshake(ctx: Ctx) -> None:
    """2. Full subscription handshake to `both`; B answers by hand."""
    r = ctx.r
    a = await ctx.online("A(im2)", 2, "a")
    b = await ctx.online("B(im3)", 3, "b")
    aj, bj = a.boundjid.bare, b.boundjid.bare
    await reset_pair(a, b)
    # A keeps slixmpp's defaults (auto_authorize, auto_subscribe); B decides itself.
    b.auto_authorize = None
    b.auto_subscribe = False
    sa, sb = a.mark(), b.mark()
    a.send_presence_subscription(pto=bj)
    req = await b.wait_for("presence_subscribe", from_is(aj), since=sb)
    r.require(req is not None, "B receives A's subscription request from A's bare JID",
              f"no presence type='subscribe' from {aj}")
    push = await a.wait_for("roster_update",
                            lambda s: s["type"] == "set" and bj in map(str, s["roster"]["items"]),
                            since=sa)
    pushed = push["roster"]["items"][JID(bj)] if push else {}
    r.check(pushed.get("ask") == "subscribe" and pushed.get("subscription") == "none",
            "A gets a roster push with ask='subscribe', subscription none", str(pushed))
    # B approves and asks back.
    sa = a.mark()
    b.send_presence_subscription(pto=aj, ptype="subscribed")
    b.send_presence_subscription(pto=aj, ptype="subscribe")
    got = await a.wait_for("presence_subscribed", from_is(bj), since=sa)
    r.check(got is not None, "A receives B's 'subscribed'")
    online = await a.wait_for("presence_available", lambda s: s["from"].bare == bj, since=sa)
    r.check(online is not None and str(online["from"]) == str(b.boundjid),
            "A receives B's current presence after the approval (RFC 6121 §3.1.5)",
            f"got {online['from'] if online else 'nothing'}")
    # A (auto_authorize) approves B's request; both end at `both`.
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if a.client_roster[bj]["subscription"] == "both" and b.client_roster[aj]["subscription"] == "both":
            break
        await asyncio.sleep(0.2)
    r.check(a.client_roster[bj]["subscription"] == "both",
            "A's client roster says 'both' (from the pushes)",
            f"subscription={a.client_roster[bj]['subscription']}")
    r.check(b.client_roster[aj]["subscription"] == "both",
            "B's client roster says 'both' (from the pushes)",
            f"subscription={b.client_roster[aj]['subscription']}")
    ra, rb = await a.server_roster(), await b.server_roster()
    r.check(ra.get(bj, {}).get("subscription") == "both" and not ra.get(bj, {}).get("ask"),
            "a fresh roster get of A has B with subscription 'both' and no ask", str(ra.get(bj)))
    r.check(rb.get(aj, {}).get("subscription") == "both" and not rb.get(aj, {}).get("ask"),
            "a fresh roster get of B has A with subscription 'both' and no ask", str(rb.get(aj)))
    b_sees_a = await b.wait_for("presence_available", from_is(str(a.boundjid)))
    r.check(b_sees_a is not None, "B receives A's presence once subscribed")


async def step_presence_login_logout(ctx: Ctx) -> None:
    """3. A sees B come online and go offline."""
    r = ctx.r
    a = await ctx.online("A(im4)", 4, "a")
    b0 = await ctx.online("B(im5) setup", 5, "setup")
    await ensure_mutual(ctx, a, b0)
    await ctx.close(b0)
    await asyncio.sleep(0.3)
    since = a.mark()
    b = await ctx.online("B(im5)", 5, f"b-{ctx.token}", status=f"here {ctx.token}")
    bfull = str(b.boundjid)
    got = await a.wait_for("got_online", from_is(bfull), since=since)
    r.require(got is not None, "A gets 'got_online' from B's full JID when B logs in",
              f"events since: {[(k, str(s['from'])) for k, s in a.events[since:]]}")
    r.check(got["status"] == f"here {ctx.token}", "B's status text is carried",
            f"status={got['status']!r}")
    r.check(b.boundjid.bare in a.client_roster.keys() and
            bfull.split("/", 1)[1] in a.client_roster[b.boundjid.bare].resources,
            "A's roster lists B's resource as online")
    since = a.mark()
    await ctx.close(b)
    gone = await a.wait_for("presence_unavailable", from_is(bfull), since=since)
    r.check(gone is not None, "A gets 'presence_unavailable' from B's full JID when B disconnects",
            "nothing within the wait")
    off = await a.wait_for("got_offline", from_is(bfull), since=since, timeout=1)
    r.check(off is not None, "slixmpp reports 'got_offline' for B (no resource left)")
    # XEP-0012: B's last activity is now the time since that logout.
    try:
        res = await a.plugin["xep_0012"].get_last_activity(JID(b.boundjid.bare), timeout=WAIT)
        secs = res["last_activity"]["seconds"]
        r.check(isinstance(secs, int) and 0 <= secs < 60,
                "XEP-0012: A (subscribed) sees B's last activity: seconds since the logout",
                f"seconds={secs!r}")
    except (IqError, IqTimeout) as exc:
        r.fail(f"XEP-0012 last activity of B: {exc}")
    # B again, now leaving with an explicit unavailable presence and status.
    since = a.mark()
    b = await ctx.online("B(im5) again", 5, f"b2-{ctx.token}")
    bfull = str(b.boundjid)
    r.check(await a.wait_for("got_online", from_is(bfull), since=since) is not None,
            "A sees B's next login too")
    bye = f"gone fishing {ctx.token}"
    since = a.mark()
    b.send_presence(ptype="unavailable", pstatus=bye)
    gone = await a.wait_for("presence_unavailable", from_is(bfull), since=since)
    r.check(gone is not None and gone["status"] == bye,
            "B's explicit unavailable presence reaches A with its status",
            f"status={gone['status']!r}" if gone is not None else "nothing")
    await ctx.close(b)
    await asyncio.sleep(0.3)
    try:
        res = await a.plugin["xep_0012"].get_last_activity(JID(b.boundjid.bare), timeout=WAIT)
        r.check(res["last_activity"]["status"] == bye,
                "XEP-0012: B's last activity carries the status of B's last unavailable presence",
                f"status={res['last_activity']['status']!r}")
    except (IqError, IqTimeout) as exc:
        r.fail(f"XEP-0012 last activity of B: {exc}")


async def step_probe(ctx: Ctx) -> None:
    """4. A logging in after B gets B's presence from the server's probe."""
    r = ctx.r
    a0 = await ctx.online("A(im6) setup", 6, "setup")
    b = await ctx.online("B(im7)", 7, "b")
    await ensure_mutual(ctx, a0, b)
    await ctx.close(a0)
    status = f"probe me {ctx.token}"
    b.send_presence(pshow="away", pstatus=status)
    await b.sync()
    b2 = await ctx.online("B(im7)/second", 7, "second", status=f"second {ctx.token}")
    await b2.sync()
    await asyncio.sleep(0.3)
    # B sends nothing from here on: what A gets comes from the server.
    a = await ctx.online("A(im6)", 6, f"a-{ctx.token}")
    got = await a.wait_for("presence", lambda s: str(s["from"]) == str(b.boundjid) and
                           s["type"] in ("available",) + tuple(s.showtypes))
    r.require(got is not None,
              "A receives B's presence from B's full JID right after logging in (probe answered)",
              f"presences seen: {[str(s['from']) for s in a.find('presence')]}")
    r.check(got["show"] == "away" and got["status"] == status,
            "it is B's current presence (show away, status text)",
            f"show={got['show']!r} status={got['status']!r}")
    r.check(a.find("got_online", from_is(str(b.boundjid))) != [] or
            a.find("got_online", from_is(str(b2.boundjid))) != [], "slixmpp reports 'got_online' for B")
    other = await a.wait_for("presence", lambda s: str(s["from"]) == str(b2.boundjid) and
                             s["type"] in ("available",) + tuple(s.showtypes))
    r.check(other is not None and other["status"] == f"second {ctx.token}",
            "A also receives the presence of B's second resource (one per available resource)",
            f"{other['status']!r}" if other is not None else "nothing")


async def step_offline(ctx: Ctx) -> None:
    """5. Three messages to offline C arrive in order with XEP-0203 delay."""
    r = ctx.r
    a = await ctx.online("A(im8)", 8, "a")
    cj = ctx.jid(9)
    bodies = [f"offline {i} {ctx.token} éè <&>" for i in (1, 2, 3)]
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for b in bodies:
        a.send_message(mto=cj, mbody=b, mtype="chat")
    await a.sync()
    errs = a.find("message_error")
    r.check(not errs, "no error for messages to an offline account",
            str(errs[0]) if errs else "")
    c = await ctx.online("C(im9)", 9, "c")
    for i, b in enumerate(bodies):
        await c.wait_for("message", body_is(b))
    got = [m for m in c.find("message") if ctx.token in m["body"]]
    r.require(len(got) == 3, "C receives the 3 messages after logging in",
              f"received {[m['body'] for m in got]}")
    r.check([m["body"] for m in got] == bodies, "in the order they were sent",
            f"{[m['body'] for m in got]}")
    for i, m in enumerate(got, 1):
        delay = m.xml.find("{urn:xmpp:delay}delay")
        stamp = m["delay"]["stamp"] if delay is not None else None
        r.check(delay is not None and isinstance(stamp, dt.datetime),
                f"message {i} has a XEP-0203 delay with a stamp", f"delay={m['delay']}")
        if isinstance(stamp, dt.datetime):
            now = dt.datetime.now(dt.timezone.utc)
            r.check(before - dt.timedelta(seconds=2) <= stamp <= now + dt.timedelta(seconds=2),
                    f"message {i}: stamp {stamp.isoformat()} is the time it was stored",
                    f"sent after {before.isoformat()}, now {now.isoformat()}")
        r.check(str(m["from"]) == str(a.boundjid) and m["type"] == "chat",
                f"message {i}: from A's full JID, type chat", f"from={m['from']} type={m['type']}")
        r.check(m["delay"]["from"] == ctx.opts.domain, f"message {i}: delay from the server's domain",
                f"from={m['delay']['from']}")
    # Delivered once: the next login finds the store empty.
    await ctx.close(c)
    c = await ctx.online("C(im9) again", 9, "c2")
    await c.sync()
    await asyncio.sleep(QUIET)
    again = [m["body"] for m in c.find("message") if ctx.token in m["body"]]
    r.check(not again, "the next login of C gets none of them again", f"got {again}")


async def step_priority(ctx: Ctx) -> None:
    """6. A message to the bare JID goes to the highest-priority resource."""
    r = ctx.r
    low = await ctx.online("D(im10)/low", 10, "low", priority=1)
    high = await ctx.online("D(im10)/high", 10, "high", priority=10)
    # Each resource sees the other's presence: both are available to the server.
    seen = await low.wait_for("presence_available", from_is(str(high.boundjid)))
    r.check(seen is not None and seen["priority"] == 10, "/low sees /high with priority 10",
            f"{seen['priority'] if seen else 'no presence'}")
    s = await ctx.online("sender(im11)", 11, "s")
    dj = low.boundjid.bare
    bodies = [f"to bare {i} {ctx.token}" for i in (1, 2)]
    for b in bodies:
        s.send_message(mto=dj, mbody=b, mtype="chat")
    for b in bodies:
        got = await high.wait_for("message", body_is(b))
        r.check(got is not None, f"/high (priority 10) receives '{b}'")
    await asyncio.sleep(QUIET)
    stray = [m["body"] for m in low.find("message", lambda m: ctx.token in m["body"])]
    r.check(not stray, "/low (priority 1) receives none of them", f"got {stray}")
    # A full JID still reaches the low-priority resource.
    body = f"to /low {ctx.token}"
    s.send_message(mto=str(low.boundjid), mbody=body, mtype="chat")
    r.check(await low.wait_for("message", body_is(body)) is not None,
            "a message to /low's full JID reaches /low")
    # Priorities swapped by new presence: routing follows.
    low.send_presence(ppriority=20)
    await high.wait_for("presence_available",
                        lambda p: str(p["from"]) == str(low.boundjid) and p["priority"] == 20)
    body = f"after swap {ctx.token}"
    s.send_message(mto=dj, mbody=body, mtype="chat")
    r.check(await low.wait_for("message", body_is(body)) is not None,
            "after /low raises its priority to 20, bare-JID messages go to /low")
    await asyncio.sleep(QUIET)
    r.check(not high.find("message", body_is(body)), "... and not to /high")


async def step_carbons(ctx: Ctx) -> None:
    """7. XEP-0280 carbons of received and sent messages."""
    r = ctx.r
    phone = await ctx.online("E(im12)/phone", 12, "phone", priority=5)
    laptop = await ctx.online("E(im12)/laptop", 12, "laptop", priority=0)
    for c in (phone, laptop):
        try:
            res = await c.plugin["xep_0280"].enable(timeout=WAIT)
            r.check(res["type"] == "result", f"{c.who}: carbons enabled")
        except (IqError, IqTimeout) as exc:
            r.fail(f"{c.who}: enabling carbons failed: {exc}")
            raise StepFailed("carbons") from None
    f = await ctx.online("F(im13)", 13, "f")
    await laptop.wait_for("presence_available", from_is(str(phone.boundjid)))
    ej = phone.boundjid.bare
    # Received: F -> E (bare) goes to /phone (priority 5); /laptop gets a carbon.
    body = f"hello E {ctx.token}"
    sl = laptop.mark()
    f.send_message(mto=ej, mbody=body, mtype="chat")
    r.check(await phone.wait_for("message", body_is(body)) is not None,
            "F -> E (bare): /phone (priority 5) gets the message")
    carbon = await laptop.wait_for("carbon_received",
                                   lambda m: m["carbon_received"]["body"] == body, since=sl)
    r.require(carbon is not None, "/laptop gets a 'carbon_received' with the message",
              f"events: {[k for k, _ in laptop.events[sl:]]}")
    inner = carbon["carbon_received"]
    r.check(str(carbon["from"]) == ej, "the carbon comes from E's bare JID", f"from={carbon['from']}")
    r.check(str(inner["from"]) == str(f.boundjid) and inner["type"] == "chat",
            "the forwarded message is from F's full JID, type chat",
            f"from={inner['from']} type={inner['type']}")
    r.check(not laptop.find("message", body_is(body), since=sl),
            "/laptop does not also get the message itself")
    # Received to a full JID: the other resource gets a carbon too.
    body = f"hello phone {ctx.token}"
    sl = laptop.mark()
    f.send_message(mto=str(phone.boundjid), mbody=body, mtype="chat")
    r.check(await laptop.wait_for("carbon_received",
                                  lambda m: m["carbon_received"]["body"] == body, since=sl) is not None,
            "F -> E/phone (full JID): /laptop gets a 'carbon_received'")
    # Sent: /laptop writes to F; /phone gets a <sent/> carbon.
    body = f"from laptop {ctx.token}"
    sp = phone.mark()
    laptop.send_message(mto=str(f.boundjid), mbody=body, mtype="chat")
    r.check(await f.wait_for("message", body_is(body)) is not None, "F receives E/laptop's message")
    sent = await phone.wait_for("carbon_sent", lambda m: m["carbon_sent"]["body"] == body, since=sp)
    r.require(sent is not None, "/phone gets a 'carbon_sent' for /laptop's message",
              f"events: {[k for k, _ in phone.events[sp:]]}")
    inner = sent["carbon_sent"]
    r.check(str(inner["to"]) == str(f.boundjid) and str(inner["from"]) == str(laptop.boundjid),
            "the sent carbon holds the original (from E/laptop, to F)",
            f"from={inner['from']} to={inner['to']}")
    # <private/> messages are not copied.
    body = f"private {ctx.token}"
    sp = phone.mark()
    msg = laptop.make_message(mto=str(f.boundjid), mbody=body, mtype="chat")
    msg.enable("carbon_private")
    msg.send()
    await f.wait_for("message", body_is(body))
    await asyncio.sleep(QUIET)
    r.check(not phone.find("carbon_sent", lambda m: m["carbon_sent"]["body"] == body, since=sp),
            "a message with <private xmlns='urn:xmpp:carbons:2'/> is not copied")
    # Disabled carbons: no more copies to /laptop.
    await laptop.plugin["xep_0280"].disable(timeout=WAIT)
    body = f"after disable {ctx.token}"
    sl = laptop.mark()
    f.send_message(mto=ej, mbody=body, mtype="chat")
    await phone.wait_for("message", body_is(body))
    await asyncio.sleep(QUIET)
    r.check(not laptop.find("carbon_received", since=sl),
            "after /laptop disables carbons it gets no carbon")


async def step_blocking(ctx: Ctx) -> None:
    """8. XEP-0191: G blocks H."""
    r = ctx.r
    g = await ctx.online("G(im14)", 14, "g", priority=5)  # gets bare-JID messages
    g2 = await ctx.online("G(im14)/other", 14, "other")
    h = await ctx.online("H(im15)", 15, "h")
    blocking = g.plugin["xep_0191"]
    # Start from an empty list: <unblock/> without items unblocks everyone
    # (slixmpp's unblock([]) would send an empty iq).
    iq = g.make_iq_set()
    iq.enable("unblock")
    await iq.send(timeout=WAIT)
    hj = h.boundjid.bare
    await g2.plugin["xep_0191"].get_blocked(timeout=WAIT)  # G/other wants pushes (§3.2)
    s2 = g2.mark()
    res = await blocking.block(JID(hj), timeout=WAIT)
    r.check(res["type"] == "result", "G blocks H")
    push = await g2.wait_for("blocked", since=s2)
    r.check(push is not None and [str(i["jid"]) for i in push["block"]] == [hj],
            "G's other resource gets the block push ('blocked' event) for H", str(push))
    blocked = await blocking.get_blocked_jids(timeout=WAIT)
    r.check({str(j) for j in blocked} == {hj}, "G's block list (get_blocked) is exactly H",
            f"{sorted(map(str, blocked))}")
    body = f"let me talk {ctx.token}"
    sh, sg, sg2 = h.mark(), g.mark(), g2.mark()
    h.send_message(mto=g.boundjid.bare, mbody=body, mtype="chat")
    err = await h.wait_for("message_error", lambda m: m["type"] == "error", since=sh)
    r.check(err is not None and err["error"]["condition"] == "service-unavailable",
            "H's message to G bounces with <service-unavailable/>",
            f"{err['error']['condition'] if err else 'no error'}")
    h.send_message(mto=str(g.boundjid), mbody=body + " (full)", mtype="chat")
    errs = await h.wait_count("message_error", 2, since=sh)
    r.check(len(errs) >= 2 and all(e["error"]["condition"] == "service-unavailable" for e in errs),
            "to G's full JID too (XEP-0191 §3.5 SHOULD; Prosody drops it silently)",
            f"{[e['error']['condition'] for e in errs]}")
    got = g.find(("message",), lambda m: ctx.token in m["body"], since=sg) + \
        g2.find(("message",), lambda m: ctx.token in m["body"], since=sg2)
    r.check(not got, "G (neither resource) receives nothing from H", f"got {[m['body'] for m in got]}")
    # G -> H is refused too (XEP-0191 §3.6).
    sg = g.mark()
    g.send_message(mto=str(h.boundjid), mbody=f"hi H {ctx.token}", mtype="chat")
    err = await g.wait_for("message_error", since=sg)
    r.check(err is not None and err["error"]["condition"] == "not-acceptable" and
            err.xml.find(".//{urn:xmpp:blocking:errors}blocked") is not None,
            "G's message to H bounces with <not-acceptable/> and <blocked/>",
            str(err) if err is not None else "no error")
    await asyncio.sleep(0.2)
    r.check(not h.find("message", lambda m: f"hi H {ctx.token}" == m["body"]),
            "H does not get G's message")
    # Unblock.
    s2 = g2.mark()
    await blocking.unblock(JID(hj), timeout=WAIT)
    push = await g2.wait_for("unblocked", since=s2)
    r.check(push is not None and [str(i["jid"]) for i in push["unblock"]] == [hj],
            "G's other resource gets the unblock push", str(push))
    blocked = await blocking.get_blocked_jids(timeout=WAIT)
    r.check(not blocked, "after unblock the block list is empty", f"{sorted(map(str, blocked))}")
    body = f"now? {ctx.token}"
    h.send_message(mto=g.boundjid.bare, mbody=body, mtype="chat")
    r.check(await g.wait_for("message", body_is(body)) is not None,
            "after unblock H's message reaches G")


class InteropPrefs(ElementBase):
    """A private-storage payload: <prefs xmlns='urn:xmppd:interop:prefs'>."""
    name = "prefs"
    namespace = "urn:xmppd:interop:prefs"
    plugin_attrib = "interop_prefs"
    interfaces = {"color", "token"}
    sub_interfaces = interfaces


async def step_vcard_private(ctx: Ctx) -> None:
    """9. XEP-0054 vCard set and read by another account; XEP-0049 private storage."""
    r = ctx.r
    me = await ctx.online("im16", 16, "v")
    other = await ctx.online("im17", 17, "o")
    vcards = me.plugin["xep_0054"]
    vc = vcards.make_vcard()
    fn, nick = f"Interop Tester {ctx.token}", f"tester-{ctx.token}"
    vc["FN"] = fn
    vc["NICKNAME"] = nick
    try:
        await vcards.publish_vcard(vc, timeout=WAIT)
        r.ok("vCard published (FN, NICKNAME)")
    except (IqError, IqTimeout) as exc:
        r.fail(f"vCard publish failed: {exc}")
        raise StepFailed("vcard") from None
    try:
        res = await other.plugin["xep_0054"].get_vcard(me.boundjid.bare, timeout=WAIT)
        got = res["vcard_temp"]
        nicks = got["NICKNAME"]  # a list: NICKNAME may repeat
        nicks = [nicks] if isinstance(nicks, str) else list(nicks)
        r.check(got["FN"] == fn and nicks == [nick],
                "another account reads the vCard back (FN, NICKNAME)",
                f"FN={got['FN']!r} NICKNAME={nicks!r}")
        r.check(str(res["from"]) == me.boundjid.bare, "the answer comes from the owner's bare JID",
                f"from={res['from']}")
    except (IqError, IqTimeout) as exc:
        r.fail(f"reading the vCard from another account: {exc}")
    try:
        res = await me.plugin["xep_0054"].get_vcard(me.boundjid.bare, timeout=WAIT)
        r.check(res["vcard_temp"]["FN"] == fn, "the owner reads its own vCard from the server")
    except (IqError, IqTimeout) as exc:
        r.fail(f"reading one's own vCard: {exc}")
    # Private XML storage.
    for c in (me, other):
        c.plugin["xep_0049"].register(InteropPrefs)
    prefs = InteropPrefs()
    prefs["color"] = "blue"
    prefs["token"] = ctx.token
    try:
        await me.plugin["xep_0049"].store(prefs, timeout=WAIT)
        r.ok("private XML stored")
        res = await me.plugin["xep_0049"].retrieve("interop_prefs", timeout=WAIT)
        got = res["private"]["interop_prefs"]
        r.check(got["token"] == ctx.token and got["color"] == "blue",
                "private XML retrieved intact", f"got {got}")
    except (IqError, IqTimeout) as exc:
        r.fail(f"private storage: {exc}")
    # Another account cannot read it (XEP-0049 §3).
    iq = other.make_iq_get(ito=me.boundjid.bare)
    iq["private"].enable("interop_prefs")
    try:
        res = await iq.send(timeout=WAIT)
        r.fail(f"another account read the private XML: {res}")
    except IqError as exc:
        r.check(cond_of(exc) in ("forbidden", "not-allowed", "service-unavailable"),
                f"another account's private XML get is refused (<{cond_of(exc)}/>)")
    except IqTimeout:
        r.fail("another account's private XML get got no answer")


async def step_ibr_off(ctx: Ctx) -> None:
    """10. In-band registration (XEP-0077) is off by default."""
    r = ctx.r
    user = f"ibr-{ctx.token}"
    jid = f"{user}@{ctx.opts.domain}/ibr"
    pw = "Ibr-pa55word"
    # (a) An application that registers when the server offers it.
    c = Client("ibr", jid, pw, ctx.opts, r)
    ctx.clients.append(c)
    asked = []
    c.add_event_handler("register", lambda form: asked.append(form))
    try:
        await ctx.login(c)
        r.fail("login as a never-registered account succeeded")
    except AuthFailed as exc:
        r.check(exc.condition == "not-authorized",
                "without an account, SASL fails with <not-authorized/>", str(exc))
    r.check(bool(c.features_seen), "stream features were received", "none seen")
    r.check(all("register" not in f for f in c.features_seen),
            "no stream feature offers registration", f"{c.features_seen}")
    r.check(not asked, "slixmpp's xep_0077 never fired 'register'")
    await ctx.close(c)
    # (b) Forcing it, as slixmpp's register_account example does.
    c = Client("ibr-forced", jid, pw, ctx.opts, r)
    ctx.clients.append(c)
    plugin = c.plugin["xep_0077"]
    plugin.force_registration = True
    outcome: dict[str, str] = {}

    async def try_register(_features):
        try:
            await plugin.get_registration(timeout=WAIT)
            outcome["get"] = "result"
        except IqError as exc:
            outcome["get"] = cond_of(exc)
        except IqTimeout:
            outcome["get"] = "timeout"
        iq = c.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = user
        iq["register"]["password"] = pw
        try:
            await iq.send(timeout=WAIT)
            outcome["set"] = "result"
        except IqError as exc:
            outcome["set"] = cond_of(exc)
        except IqTimeout:
            outcome["set"] = "timeout"
        return False  # go on with SASL

    # slixmpp's own forcing filter only acts on an ssl.SSLSocket, which its
    # asyncio transport never is after STARTTLS: add the feature ourselves,
    # and ask with our handler (the plugin's raises the IqError and stalls).
    def add_register_feature(stanza):
        if isinstance(stanza, StreamFeatures) and "mechanisms" in stanza["features"]:
            stanza.enable("register")
        return stanza

    c.add_filter("in", add_register_feature)
    c.unregister_feature("register", plugin.order)
    c.register_feature("register", try_register, restart=False, order=plugin.order)
    try:
        await ctx.login(c)
        r.fail("forced registration: the login succeeded, so an account was created")
    except AuthFailed as exc:
        r.check(exc.condition == "not-authorized",
                "forced registration: SASL still fails afterwards (no account was created)", str(exc))
    r.check(outcome.get("get") == "service-unavailable",
            "the registration form request (iq get jabber:iq:register) gets <service-unavailable/>",
            f"got {outcome.get('get')}")
    r.check(outcome.get("set") in ("service-unavailable", "not-allowed", "forbidden"),
            f"the registration itself (iq set) is refused (<{outcome.get('set')}/>)",
            f"got {outcome.get('set')}")


async def step_services(ctx: Ctx) -> None:
    """11. Server queries: disco#info, XEP-0199 ping, XEP-0202 time, XEP-0012 uptime."""
    r = ctx.r
    c = await ctx.online("im18", 18, "s")
    domain = c.boundjid.domain
    try:
        info = await c.plugin["xep_0030"].get_info(jid=domain, timeout=WAIT)
        feats = set(info["disco_info"]["features"])
        want = {"urn:xmpp:carbons:2", "urn:xmpp:blocking", "vcard-temp",
                "jabber:iq:private", "urn:xmpp:ping", "urn:xmpp:time", "jabber:iq:last"}
        r.check(want <= feats, "disco#info of the server lists the IM features",
                f"missing {sorted(want - feats)}")
        ids = info["disco_info"]["identities"]
        r.check(any(i[0] == "server" and i[1] == "im" for i in ids),
                "the server identity is server/im", f"{ids}")
    except (IqError, IqTimeout) as exc:
        r.fail(f"disco#info: {exc}")
    try:
        rtt = await c.plugin["xep_0199"].ping(domain, timeout=WAIT)
        r.ok(f"XEP-0199 ping to the server answered ({rtt * 1000:.0f} ms)")
    except (IqError, IqTimeout) as exc:
        r.fail(f"ping: {exc}")
    try:
        res = await c.plugin["xep_0202"].get_entity_time(JID(domain), timeout=WAIT)
        # Read <utc/> ourselves: slixmpp 1.17's get_utc() appends a 'Z' to
        # the text and so cannot parse XEP-0202's own format (...Z).
        text = res.xml.findtext("{urn:xmpp:time}time/{urn:xmpp:time}utc") or ""
        utc = dt.datetime.strptime(text.replace("Z", "+00:00"), "%Y-%m-%dT%H:%M:%S%z") \
            if "." not in text else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        r.check(text.endswith("Z"), "XEP-0202 <utc/> is in UTC with a 'Z'", text)
        now = dt.datetime.now(dt.timezone.utc)
        r.check(abs((utc - now).total_seconds()) < 30, "XEP-0202 entity time is the current UTC time",
                f"server says {utc}, here {now}")
    except (IqError, IqTimeout, ValueError) as exc:
        r.fail(f"entity time: {exc}")
    try:
        res = await c.plugin["xep_0012"].get_last_activity(JID(domain), timeout=WAIT)
        secs = res["last_activity"]["seconds"]
        r.check(isinstance(secs, int) and secs >= 0, "XEP-0012 to the server: uptime in seconds",
                f"seconds={secs!r}")
    except (IqError, IqTimeout) as exc:
        r.fail(f"last activity of the server: {exc}")
    # Last activity of a non-contact is presence information: refused.
    try:
        res = await c.plugin["xep_0012"].get_last_activity(JID(ctx.jid(17)), timeout=WAIT)
        r.fail(f"XEP-0012 of a non-contact answered: {res}")
    except IqError as exc:
        r.check(cond_of(exc) == "forbidden", "XEP-0012 of a non-contact is <forbidden/>",
                f"<{cond_of(exc)}/>")
    except IqTimeout:
        r.fail("XEP-0012 of a non-contact: no answer")


async def step_self_presence(ctx: Ctx) -> None:
    """12. RFC 6121 §4.2.2 / §4.4.2: the server sends a resource's presence
    broadcast to all of the user's available resources, "including the
    resource that generated the presence notification in the first place
    (i.e., an entity is implicitly subscribed to its own presence)"."""
    r = ctx.r
    status = f"initial {ctx.token}"
    one = await ctx.online("im19/one", 19, "one", status=status)
    me = str(one.boundjid)
    got = await one.wait_for("presence", lambda p: str(p["from"]) == me and p["status"] == status,
                             timeout=2 * QUIET)
    r.check(got is not None, "initial presence is echoed to the resource that sent it (§4.2.2)",
            "no presence from its own full JID arrived")
    two = await ctx.online("im19/two", 19, "two")
    s1 = one.mark()
    status = f"update {ctx.token}"
    one.send_presence(pshow="dnd", pstatus=status)
    r.check(await two.wait_for("presence", lambda p: str(p["from"]) == me and p["status"] == status)
            is not None, "the other resource gets the presence update")
    got = await one.wait_for("presence", lambda p: str(p["from"]) == me and p["status"] == status,
                             since=s1, timeout=2 * QUIET)
    r.check(got is not None, "a presence update is echoed to the resource that sent it (§4.4.2)",
            "no presence from its own full JID arrived")


STEPS = [
    (1, "roster push to a second resource", step_roster_push),
    (2, "subscription handshake to 'both'", step_subscription_handshake),
    (3, "presence on login and logout", step_presence_login_logout),
    (4, "presence probe at login", step_probe),
    (5, "offline messages with delay", step_offline),
    (6, "priority routing", step_priority),
    (7, "carbons both ways", step_carbons),
    (8, "blocking", step_blocking),
    (9, "vCard and private storage", step_vcard_private),
    (10, "in-band registration off", step_ibr_off),
    (11, "ping, time, last activity, disco", step_services),
    (12, "own presence echoed to the sender", step_self_presence),
]


async def run_step(num: int, title: str, fn, opts, r: Reporter) -> None:
    r.begin(f"{num} {title}")
    ctx = Ctx(opts, r)
    start = time.monotonic()
    try:
        await asyncio.wait_for(fn(ctx), opts.step_timeout)
    except StepFailed:
        pass
    except asyncio.TimeoutError:
        r.fail(f"step did not finish within {opts.step_timeout:.0f}s")
    except (IqError, IqTimeout) as exc:
        r.fail(f"unexpected iq {'error' if isinstance(exc, IqError) else 'timeout'}: "
               f"{exc.iq if isinstance(exc, IqError) else ''}")
    except Exception as exc:  # noqa: BLE001
        r.fail(f"unexpected error: {type(exc).__name__}: {exc}")
    finally:
        dropped = [c.who for c in ctx.clients if c.disconnected_at is not None and not c.expect_disconnect
                   and c.session_started.done() and not c.session_started.exception()]
        if dropped:
            r.fail(f"connection dropped by the server: {dropped}")
        await shutdown(*ctx.clients)
    r.end(time.monotonic() - start)


async def main_async(opts, r: Reporter) -> None:
    r.info(f"slixmpp {slixmpp.__version__}, {ssl.OPENSSL_VERSION}; server {opts.host}:{opts.port} "
           f"(STARTTLS), domain {opts.domain}, accounts {opts.user_prefix}1..19, CA {opts.ca or '(system)'}")
    for num, title, fn in STEPS:
        if (opts.only and num not in opts.only) or num in opts.skip:
            continue
        await run_step(num, title, fn, opts, r)


def main() -> int:
    opts = parse_args()
    r = Reporter(opts.debug)
    logging.basicConfig(level=logging.CRITICAL if not opts.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(main_async(opts, r), opts.timeout))
    except asyncio.TimeoutError:
        r.fail(f"overall timeout of {opts.timeout:.0f}s exceeded ({r.step})")
        r.end(0)
        return r.finish(2)
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
