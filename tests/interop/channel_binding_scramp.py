#!/usr/bin/env python3
"""SCRAM-SHA-256-PLUS with tls-server-end-point channel binding (RFC 5929 §4,
XEP-0440 §5) against xmppd, computed by a third-party SCRAM client: PyPI
`scramp`, which hashes the server certificate itself (asn1crypto reads its
signature algorithm). Over TLS 1.3 and TLS 1.2, after STARTTLS (RFC 6120 §5).
A wrong binding must be refused with <not-authorized/>.

Env: XMPP_HOST, XMPP_PORT, XMPP_DOMAIN, XMPP_CA_FILE, ALICE_JID, ALICE_PASSWORD.
Exit status: 0 all checks passed, 1 a check failed.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import sys

from scramp import ScramClient

HOST = os.environ.get("XMPP_HOST", "127.0.0.1")
PORT = int(os.environ.get("XMPP_PORT", "5222"))
DOMAIN = os.environ.get("XMPP_DOMAIN", "localhost")
CA = os.environ["XMPP_CA_FILE"]
USER = os.environ["ALICE_JID"].split("@")[0]
PASSWORD = os.environ["ALICE_PASSWORD"]
HEADER = (f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode()
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
failures = 0


def check(ok: bool, what: str) -> None:
    global failures
    print(("ok - " if ok else "not ok - ") + what)
    failures += 0 if ok else 1


def read_until(sock, pattern: str) -> str:
    buf = b""
    sock.settimeout(10)
    while not re.search(pattern.encode(), buf):
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"closed while waiting for {pattern!r}: {buf!r}")
        buf += chunk
    return buf.decode()


def connect(version: ssl.TLSVersion):
    raw = socket.create_connection((HOST, PORT), timeout=10)
    raw.sendall(HEADER)
    read_until(raw, "</stream:features>")
    raw.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    read_until(raw, "<proceed")
    ctx = ssl.create_default_context(cafile=CA)
    ctx.minimum_version = ctx.maximum_version = version
    tls = ctx.wrap_socket(raw, server_hostname=DOMAIN)
    tls.sendall(HEADER)
    return tls, read_until(tls, "</stream:features>")


def login(tls, cb=None) -> str:
    client = ScramClient(["SCRAM-SHA-256-PLUS"], USER, PASSWORD,
                         channel_binding=cb or ("tls-server-end-point", tls))
    first = base64.b64encode(client.get_client_first().encode()).decode()
    tls.sendall(f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256-PLUS'>{first}</auth>".encode())
    got = read_until(tls, "</challenge>|</failure>|<failure[^>]*/>")
    if "<failure" in got:
        return got
    challenge = re.search(r"<challenge[^>]*>([^<]*)</challenge>", got).group(1)
    client.set_server_first(base64.b64decode(challenge).decode())
    final = base64.b64encode(client.get_client_final().encode()).decode()
    tls.sendall(f"<response xmlns='{SASL}'>{final}</response>".encode())
    got = read_until(tls, "</success>|</failure>")
    if "<success" in got:
        data = re.search(r"<success[^>]*>([^<]*)</success>", got).group(1)
        client.set_server_final(base64.b64decode(data).decode())  # checks the server signature
    return got


for version, expected in ((ssl.TLSVersion.TLSv1_3, ["tls-exporter", "tls-server-end-point"]),
                          (ssl.TLSVersion.TLSv1_2, ["tls-server-end-point"])):
    name = version.name
    tls, features = connect(version)
    offered = re.findall(r"<channel-binding type='([^']+)'/>", features)
    check(offered == expected, f"{name}: XEP-0440 channel-binding types {offered} == {expected}")
    check("<mechanism>SCRAM-SHA-256-PLUS</mechanism>" in features, f"{name}: SCRAM-SHA-256-PLUS offered")
    got = login(tls)
    check("<success" in got, f"{name}: scramp SCRAM-SHA-256-PLUS with tls-server-end-point succeeds ({got[:80]})")
    tls.close()
    tls, _ = connect(version)
    got = login(tls, cb=("tls-server-end-point", b"\0" * 32))
    check("<not-authorized/>" in got, f"{name}: a wrong tls-server-end-point is not-authorized")
    tls.close()

print(f"channel_binding_scramp: {'PASS' if failures == 0 else 'FAIL'}")
sys.exit(1 if failures else 0)
