#!/usr/bin/env python3
"""Interop check with slixmpp's XEP-0050 plugin: the admin (ALICE_JID, listed
in `admins` by run.sh) lists the server's commands, runs XEP-0133 add-user
(execute, then complete with a data form), logs in as the new user, reads
get-online-users-num; the non-admin (BOB_JID) sees no commands and gets
<forbidden/>.

Environment: XMPP_HOST, XMPP_PORT, XMPP_DOMAIN, XMPP_CA_FILE, ALICE_JID,
ALICE_PASSWORD, BOB_JID, BOB_PASSWORD, XMPP_TIMEOUT (20).
Exit status: 0 all checks passed, 1 a check failed, 2 timeout.
"""

import asyncio
import os
import sys
import uuid

import slixmpp
from slixmpp.exceptions import IqError

NAME = "adhoc_slixmpp"
ADMIN = "http://jabber.org/protocol/admin"
E = os.environ
HOST, PORT = E.get("XMPP_HOST", "127.0.0.1"), int(E.get("XMPP_PORT", "5222"))
DOMAIN = E.get("XMPP_DOMAIN", "localhost")
failures = []


def check(cond, msg):
    print(("ok - " if cond else "not ok - ") + msg, flush=True)
    if not cond:
        failures.append(msg)


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        self.enable_direct_tls = False
        self.enable_plaintext = False
        if E.get("XMPP_CA_FILE"):
            self.ca_certs = E["XMPP_CA_FILE"]
        for p in ("xep_0030", "xep_0004", "xep_0050"):
            self.register_plugin(p)
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", self._start)
        self.add_event_handler("failed_auth", lambda *_: self.started.done() or self.started.set_exception(RuntimeError("auth failed")))

    async def _start(self, _):
        self.send_presence()
        await self.get_roster()
        if not self.started.done():
            self.started.set_result(True)

    async def online(self):
        self.connect(HOST, PORT)
        await self.started
        return self


def submit_form(c, fields):
    form = c.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=ADMIN)
    for var, value in fields.items():
        form.add_field(var=var, value=value)
    return form


async def run():
    admin = await Client(E["ALICE_JID"], E["ALICE_PASSWORD"]).online()
    items = await admin.plugin["xep_0050"].get_commands(DOMAIN)
    nodes = [i[1] for i in items["disco_items"]["items"]]
    check(f"{ADMIN}#add-user" in nodes and f"{ADMIN}#announce" in nodes, f"admin lists the commands: {nodes}")

    iq = await admin.plugin["xep_0050"].send_command(DOMAIN, f"{ADMIN}#add-user", action="execute")
    cmd = iq["command"]
    sid = cmd["sessionid"]
    fields = cmd["form"].get_fields()
    check(cmd["status"] == "executing" and "accountjid" in fields, f"add-user returns its form ({cmd['status']})")
    user = "adhoc" + uuid.uuid4().hex[:8]
    form = submit_form(admin, {"accountjid": f"{user}@{DOMAIN}", "password": "new-pass-1", "password-verify": "new-pass-1"})
    iq = await admin.plugin["xep_0050"].send_command(DOMAIN, f"{ADMIN}#add-user", action="complete", payload=form, sessionid=sid)
    check(iq["command"]["status"] == "completed", "add-user completes")

    new = await Client(f"{user}@{DOMAIN}", "new-pass-1").online()
    check(True, f"the new user {user} logs in")
    iq = await admin.plugin["xep_0050"].send_command(DOMAIN, f"{ADMIN}#get-online-users-num", action="execute")
    num = iq["command"]["form"].get_fields()["onlineusersnum"]["value"]
    check(iq["command"]["status"] == "completed" and int(num) >= 2, f"get-online-users-num answers {num}")

    bob = await Client(E["BOB_JID"], E["BOB_PASSWORD"]).online()
    items = await bob.plugin["xep_0050"].get_commands(DOMAIN)
    check(len(items["disco_items"]["items"]) == 0, "a non-admin lists no commands")
    try:
        await bob.plugin["xep_0050"].send_command(DOMAIN, f"{ADMIN}#add-user", action="execute")
        check(False, "a non-admin gets <forbidden/>")
    except IqError as e:
        check(e.condition == "forbidden", f"a non-admin gets <forbidden/> ({e.condition})")
    for c in (admin, new, bob):
        c.disconnect()


def main():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(run(), float(E.get("XMPP_TIMEOUT", "20"))))
    except asyncio.TimeoutError:
        print(f"{NAME}: FAIL: timeout", file=sys.stderr)
        return 2
    except Exception as e:  # a failed step
        print(f"{NAME}: FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"{NAME}: {'FAIL' if failures else 'PASS'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
