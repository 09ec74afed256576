#!/usr/bin/env python3
"""Interop check with slixmpp: two ClientXMPP instances per transport variant
exchange chat messages both ways; a wrong password must fail with
<not-authorized/>.

Variants:
  starttls    c2s port, STARTTLS only (direct TLS disabled)
  direct_tls  c2s_direct_tls port, XEP-0368 direct TLS only
  auto        c2s port with slixmpp's defaults (direct TLS is tried first,
              then STARTTLS), as an application that just gives host/port does

Settings come from environment variables, overridable by flags:
  --host XMPP_HOST (127.0.0.1)  --port XMPP_PORT (5222)
  --tls-port XMPP_TLS_PORT (5223)  --domain XMPP_DOMAIN (localhost)
  --ca XMPP_CA_FILE  --alice-jid ALICE_JID  --alice-password ALICE_PASSWORD
  --bob-jid BOB_JID  --bob-password BOB_PASSWORD  --timeout XMPP_TIMEOUT (20)
  --variants SLIXMPP_VARIANTS (starttls,direct_tls,auto)  --debug XMPP_DEBUG
  --c2s-sniffs-tls XMPP_C2S_SNIFFS_TLS (1): in the auto variant, require that
      the c2s port accepted direct TLS (xmppd does; 0 for servers that don't)
Exit status: 0 all checks passed, 1 a check failed, 2 overall timeout, 64 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import ssl
import sys
import time
import uuid

try:
    import slixmpp
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"slixmpp_chat: FAIL: cannot import slixmpp ({exc}); "
          "pip install -r tests/interop/requirements.txt", file=sys.stderr)
    sys.exit(1)

NAME = "slixmpp_chat"
ALL_VARIANTS = ("starttls", "direct_tls", "auto")


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"{NAME}.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default=env("XMPP_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("XMPP_PORT", "5222")))
    p.add_argument("--tls-port", type=int, default=int(env("XMPP_TLS_PORT", "5223")))
    p.add_argument("--domain", default=env("XMPP_DOMAIN", "localhost"))
    p.add_argument("--ca", default=env("XMPP_CA_FILE"))
    p.add_argument("--alice-jid", default=env("ALICE_JID"))
    p.add_argument("--alice-password", default=env("ALICE_PASSWORD", "alice-secret"))
    p.add_argument("--bob-jid", default=env("BOB_JID"))
    p.add_argument("--bob-password", default=env("BOB_PASSWORD", "bob-secret"))
    p.add_argument("--timeout", type=float, default=float(env("XMPP_TIMEOUT", "20")))
    p.add_argument("--variants", default=env("SLIXMPP_VARIANTS", ",".join(ALL_VARIANTS)))
    p.add_argument("--c2s-sniffs-tls", type=int, choices=(0, 1),
                   default=int(env("XMPP_C2S_SNIFFS_TLS", "1")))
    p.add_argument("--debug", action="store_true",
                   default=env("XMPP_DEBUG", "0") in ("1", "true"))
    a = p.parse_args()
    a.alice_jid = a.alice_jid or f"alice@{a.domain}"
    a.bob_jid = a.bob_jid or f"bob@{a.domain}"
    a.variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    bad = [v for v in a.variants if v not in ALL_VARIANTS]
    if bad:
        p.error(f"unknown variant(s) {bad}; known: {', '.join(ALL_VARIANTS)}")
    if a.ca and not os.path.isfile(a.ca):
        p.error(f"CA file {a.ca} does not exist")
    return a


class Reporter:
    def __init__(self, debug: bool):
        self.debug = debug
        self.wire: collections.deque[str] = collections.deque(maxlen=250)
        self.checks = 0
        self.failures = 0
        self.step = "setup"

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
        print(f"not ok - {msg}", flush=True)
        print(f"{NAME}: FAIL: {msg}", file=sys.stderr, flush=True)

    def check(self, cond: bool, msg: str, detail: str = "") -> bool:
        if cond:
            self.ok(msg)
        else:
            self.fail(f"{msg}: {detail}" if detail else msg)
        return cond

    def finish(self, code: int | None = None) -> int:
        if code is None:
            code = 1 if self.failures else 0
        if code != 0 and self.wire:
            print(f"---- last {len(self.wire)} wire log lines ----", file=sys.stderr)
            for line in self.wire:
                print(line, file=sys.stderr)
            print("---- end of wire log ----", file=sys.stderr)
        verdict = "PASS" if code == 0 else "FAIL"
        print(f"{NAME}: {verdict} ({self.checks - self.failures}/{self.checks} checks)", flush=True)
        return code


class Client(slixmpp.ClientXMPP):
    """A ClientXMPP that records its wire traffic, SASL mechanism and inbox."""

    def __init__(self, who: str, jid: str, password: str, opts: argparse.Namespace,
                 reporter: Reporter, *, direct_tls: bool, starttls: bool):
        super().__init__(jid, password)
        self.who = who
        self.reporter = reporter
        self.enable_direct_tls = direct_tls
        self.enable_starttls = starttls
        self.enable_plaintext = False
        if opts.ca:
            self.ca_certs = opts.ca
        self.mechanism: str | None = None
        self.used_starttls = False
        self.offered: list[str] = []
        self.auth_failures: list[str] = []
        self.inbox: list = []
        self.new_message = asyncio.Event()
        self.session_started: asyncio.Future = asyncio.get_event_loop().create_future()
        self.disconnected_at: float | None = None
        self.expect_disconnect = False
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("failed_all_auth", self._on_failed_all_auth)
        self.add_event_handler("no_auth", self._on_failed_all_auth)
        self.add_event_handler("connection_failed", self._on_connection_failed)
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("stream_error", self._on_stream_error)

    # wire logging
    def send_raw(self, data):
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        if "<auth " in text and "mechanism=" in text:
            start = text.index("mechanism=") + len("mechanism=") + 1
            self.mechanism = text[start:text.index(text[start - 1], start)]
        if "<starttls" in text:
            self.used_starttls = True
        self.reporter.log(self.who, "->", text)
        return super().send_raw(data)

    def data_received(self, data):
        self.reporter.log(self.who, "<-", data)
        return super().data_received(data)

    # events
    def _settle(self, value=None, exc: BaseException | None = None):
        if not self.session_started.done():
            if exc is not None:
                self.session_started.set_exception(exc)
            else:
                self.session_started.set_result(value)

    def _on_session_start(self, _event):
        self._settle(str(self.boundjid))

    def _on_message(self, msg):
        self.inbox.append(msg)
        self.new_message.set()

    def _on_failed_auth(self, stanza):
        cond = stanza["condition"] if stanza is not None else "?"
        self.auth_failures.append(f"{self.mechanism}: {cond}")
        # Stop at the first failure: slixmpp would otherwise go on through
        # every other mechanism.
        self._settle(exc=AuthFailed(cond, list(self.auth_failures)))

    def _on_failed_all_auth(self, _event=None):
        self._settle(exc=AuthFailed("no-mechanism-left", list(self.auth_failures)))

    def _on_connection_failed(self, err):
        self.reporter.log(self.who, "!!", f"connection failed: {err}")

    def _on_stream_error(self, err):
        self.reporter.log(self.who, "!!", f"stream error: {err}")
        self._settle(exc=RuntimeError(f"stream error {err['condition']}: {err['text']}"))

    def _on_disconnected(self, reason):
        self.disconnected_at = time.monotonic()
        self.reporter.log(self.who, "..", f"disconnected ({reason})")
        self._settle(exc=RuntimeError(f"disconnected before session start ({reason})"))

    async def wait_message(self, pred, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            for m in self.inbox:
                if pred(m):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.new_message.clear()
            try:
                await asyncio.wait_for(self.new_message.wait(), left)
            except asyncio.TimeoutError:
                pass


class AuthFailed(Exception):
    def __init__(self, condition: str, attempts: list[str]):
        super().__init__(f"SASL failure <{condition}/> (attempts: {', '.join(attempts) or 'none'})")
        self.condition = condition


def variant_setup(variant: str, opts) -> tuple[int, bool, bool]:
    """(port, direct_tls, starttls) for a variant."""
    if variant == "starttls":
        return opts.port, False, True
    if variant == "direct_tls":
        return opts.tls_port, True, False
    return opts.port, True, True


async def login(client: Client, host: str, port: int, timeout: float) -> str:
    client.connect(host, port)
    try:
        return await asyncio.wait_for(asyncio.shield(client.session_started), timeout)
    except asyncio.TimeoutError:
        raise RuntimeError(f"{client.who}: no session within {timeout:.0f}s") from None


async def shutdown(*clients: Client) -> None:
    for c in clients:
        c.expect_disconnect = True
        try:
            c.cancel_connection_attempt()
            await asyncio.wait_for(c.disconnect(wait=1.0), 3)
        except Exception:  # noqa: BLE001 - best effort
            c.abort()


async def run_variant(variant: str, opts, r: Reporter, step_timeout: float) -> None:
    port, direct_tls, starttls = variant_setup(variant, opts)
    r.step = f"{variant}: login"
    r.info(f"variant {variant}: {opts.host}:{port} direct_tls={direct_tls} starttls={starttls}")
    alice = Client(f"alice[{variant}]", f"{opts.alice_jid}/slixmpp-{variant}", opts.alice_password,
                   opts, r, direct_tls=direct_tls, starttls=starttls)
    bob = Client(f"bob[{variant}]", f"{opts.bob_jid}/slixmpp-{variant}", opts.bob_password,
                 opts, r, direct_tls=direct_tls, starttls=starttls)
    try:
        try:
            alice_jid, bob_jid = await asyncio.gather(
                login(alice, opts.host, port, step_timeout), login(bob, opts.host, port, step_timeout))
        except Exception as exc:  # noqa: BLE001
            r.fail(f"{variant}: login failed: {exc}")
            return
        r.ok(f"{variant}: alice online as {alice_jid} (SASL {alice.mechanism})")
        r.ok(f"{variant}: bob online as {bob_jid} (SASL {bob.mechanism})")
        for c in (alice, bob):
            sslobj = c.transport.get_extra_info("ssl_object") if c.transport else None
            r.check(sslobj is not None, f"{variant}: {c.who} stream is TLS-protected",
                    "no TLS on the transport")
            if sslobj is not None:
                how = "STARTTLS" if c.used_starttls else "direct TLS"
                r.info(f"{variant}: {c.who} {how}, {sslobj.version()} {sslobj.cipher()[0]}")
        if variant == "auto" and opts.c2s_sniffs_tls:
            r.check(not alice.used_starttls and not bob.used_starttls,
                    f"{variant}: the c2s port served slixmpp's direct TLS ClientHello",
                    "slixmpp fell back to STARTTLS")
        r.check(all((m or "").startswith("SCRAM-") for m in (alice.mechanism, bob.mechanism)),
                f"{variant}: SCRAM was used", f"alice {alice.mechanism}, bob {bob.mechanism}")
        r.check(alice_jid.split("/")[0] == opts.alice_jid and bob_jid.split("/")[0] == opts.bob_jid,
                f"{variant}: bound JIDs match the accounts", f"{alice_jid} {bob_jid}")

        r.step = f"{variant}: presence"
        for c in (alice, bob):
            c.send_presence()
        # An application would fetch its roster now; report, don't require.
        rosters = []
        for c in (alice, bob):
            try:
                await asyncio.wait_for(c.get_roster(), 3)
                rosters.append(f"{c.who} ok")
            except Exception as exc:  # noqa: BLE001
                rosters.append(f"{c.who} failed ({type(exc).__name__}: {exc})")
        r.info(f"{variant}: roster get: {', '.join(rosters)}")
        await asyncio.sleep(0.3)

        async def exchange(src: Client, src_jid: str, dst: Client, to: str, label: str):
            r.step = f"{variant}: {label}"
            body = f"slixmpp {variant} {label} {uuid.uuid4()} éè <&> \"q\""
            src.send_message(mto=to, mbody=body, mtype="chat")
            got = await dst.wait_message(lambda m: m["body"] == body, step_timeout)
            if got is None:
                r.fail(f"{variant}: {label}: message not received within {step_timeout:.0f}s")
                return
            r.ok(f"{variant}: {label}: body received intact")
            r.check(str(got["from"]) == src_jid, f"{variant}: {label}: from is sender's full JID",
                    f"from={got['from']}")
            r.check(got["type"] == "chat", f"{variant}: {label}: type chat kept", f"type={got['type']}")

        await exchange(alice, alice_jid, bob, opts.bob_jid, f"alice -> {opts.bob_jid} (bare)")
        await exchange(bob, bob_jid, alice, alice_jid, f"bob -> {alice_jid} (full)")
        dropped = [c.who for c in (alice, bob) if c.disconnected_at is not None]
        r.check(not dropped, f"{variant}: no connection was dropped", f"dropped: {dropped}")
    finally:
        await shutdown(alice, bob)


async def run_wrong_password(opts, r: Reporter, step_timeout: float) -> None:
    r.step = "wrong password"
    c = Client("wrongpw", f"{opts.alice_jid}/slixmpp-wrongpw", opts.alice_password + "-wrong",
               opts, r, direct_tls=False, starttls=True)
    try:
        jid = await login(c, opts.host, opts.port, step_timeout)
        r.fail(f"login with a wrong password succeeded as {jid}")
    except AuthFailed as exc:
        r.check(exc.condition == "not-authorized", "wrong password is refused with <not-authorized/>",
                str(exc))
    except Exception as exc:  # noqa: BLE001
        r.fail(f"wrong password: expected <not-authorized/>, got {exc}")
    finally:
        await shutdown(c)


async def main_async(opts, r: Reporter) -> None:
    r.info(f"slixmpp {slixmpp.__version__}, {ssl.OPENSSL_VERSION}; server {opts.host} "
           f"ports {opts.port}/{opts.tls_port}, CA {opts.ca or '(system)'}")
    step_timeout = max(3.0, opts.timeout / (len(opts.variants) + 2))
    for variant in opts.variants:
        await run_variant(variant, opts, r, step_timeout)
    await run_wrong_password(opts, r, step_timeout)


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
        return r.finish(2)
    except Exception as exc:  # noqa: BLE001
        r.fail(f"unexpected error during {r.step}: {type(exc).__name__}: {exc}")
        return r.finish(1)
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
