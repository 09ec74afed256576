#!/usr/bin/env node
"use strict";
// Interop check with @xmpp/client (xmpp.js): two users over STARTTLS with
// SCRAM, initial presence, one chat message each way, and a wrong password
// that must fail with <not-authorized/>.
//
// Settings: see common.js (XMPP_HOST, XMPP_PORT, XMPP_DOMAIN, XMPP_CA_FILE,
// ALICE_JID, ALICE_PASSWORD, BOB_JID, BOB_PASSWORD, XMPP_TIMEOUT, XMPP_DEBUG).

const { parseSettings, ensureTrustedCa, localpart, bare, uniqueBody, sleep, Reporter, collector } = require("./common");

const NAME = "xmpp_client_chat";
const settings = parseSettings(`${NAME}.js`);
ensureTrustedCa(settings);

const STEP_MS = Math.max(2000, Math.floor((settings.timeout * 1000) / 3));

const r = new Reporter(NAME, settings);

function describeError(e) {
  if (!e) return String(e);
  const parts = [];
  if (e.condition) parts.push(`<${e.condition}/>`);
  parts.push(`${e.name || "Error"}: ${e.message || "(no message)"}`);
  if (e.code) parts.push(`code ${e.code}`);
  if (e.text) parts.push(`text ${e.text}`);
  if (!e.message && !e.condition && e.stack) parts.push(e.stack.split("\n").slice(0, 6).join(" | "));
  return parts.join(", ");
}

async function main() {
  const { client, xml } = await import("@xmpp/client");
  const service = `xmpp://${settings.host}:${settings.port}`;
  r.info(`server ${service}, domain ${settings.domain}, CA ${settings.ca || "(system)"}`);

  function makeClient(who, account, password) {
    const c = client({
      service,
      domain: settings.domain,
      username: localpart(account.jid),
      password,
      resource: `xmppjs-${who}-${process.pid}`,
      timeout: 10000, // stream open/close wait (default 2 s)
    });
    // A test must see a dropped connection, not paper over it.
    c.reconnect.stop();
    c.on("element", (el) => r.log(who, "<-", el.toString()));
    c.on("send", (el) => {
      r.log(who, "->", el.toString());
      if (el.name === "auth" || el.name === "authenticate") c.mechanism = el.attrs.mechanism;
    });
    c.on("error", (e) => r.log(who, "!!", `error: ${describeError(e)}`));
    c.on("status", (s) => r.log(who, "..", `status ${s}`));
    c.inbox = collector();
    c.on("stanza", (st) => c.inbox.push(st));
    return c;
  }

  const alice = makeClient("alice", settings.alice, settings.alice.password);
  const bob = makeClient("bob", settings.bob, settings.bob.password);
  let dropped = null;
  for (const [who, c] of [["alice", alice], ["bob", bob]]) {
    c.on("disconnect", () => {
      if (!c.stopping) dropped = dropped || `${who}'s connection was closed by the server`;
    });
  }

  // 1. Log in both users (STARTTLS + SASL + bind).
  r.begin("login");
  let aliceJid, bobJid;
  try {
    // One after the other: the library's SCRAM key derivation is
    // synchronous JavaScript that blocks the event loop for a second or
    // two, long enough to trip the other client's stream-open timer.
    aliceJid = await alice.start();
    bobJid = await bob.start();
  } catch (e) {
    r.fail(`login failed: ${describeError(e)}`);
    return r.finish(1);
  }
  aliceJid = String(aliceJid);
  bobJid = String(bobJid);
  r.ok(`alice online as ${aliceJid} (SASL ${alice.mechanism || "?"})`);
  r.ok(`bob online as ${bobJid} (SASL ${bob.mechanism || "?"})`);
  r.check(alice.isSecure() && bob.isSecure(), "both streams are TLS-protected (STARTTLS)");
  r.check(
    /^SCRAM-/.test(alice.mechanism || "") && /^SCRAM-/.test(bob.mechanism || ""),
    "SCRAM was used",
    `alice ${alice.mechanism}, bob ${bob.mechanism}`,
  );
  r.check(bare(aliceJid) === settings.alice.jid, "alice's bound JID has her bare JID", aliceJid);
  r.check(bare(bobJid) === settings.bob.jid, "bob's bound JID has his bare JID", bobJid);
  r.check(aliceJid.includes("/") && bobJid.includes("/"), "bound JIDs are full JIDs");

  // 2. Initial presence, so that bare-JID messages are delivered.
  r.begin("presence");
  await Promise.all([alice.send(xml("presence")), bob.send(xml("presence"))]);
  const selfPresence = (jid) => (st) =>
    st.is("presence") && !st.attrs.type && String(st.attrs.from || "") === jid;
  const echoes = await Promise.allSettled([
    alice.inbox.wait(selfPresence(aliceJid), 2000, "alice's own presence"),
    bob.inbox.wait(selfPresence(bobJid), 2000, "bob's own presence"),
  ]);
  r.info(
    `initial presence sent; echoed back to self: alice ${echoes[0].status === "fulfilled"}, bob ${
      echoes[1].status === "fulfilled"
    }`,
  );
  if (echoes.some((e) => e.status !== "fulfilled")) await sleep(300);

  // 3. alice -> bob (bare JID): routed to bob's available resource.
  async function exchange(from, fromJid, to, toJid, toLabel) {
    const body = uniqueBody(`${bare(fromJid)} to ${toLabel}`);
    const id = `m-${Math.random().toString(36).slice(2)}`;
    const isIt = (st) => st.is("message") && st.getChildText("body") === body;
    const waiting = to.inbox.wait(isIt, STEP_MS, `message "${body}"`);
    await from.send(xml("message", { to: toJid, type: "chat", id }, xml("body", {}, body)));
    let got;
    try {
      got = await waiting;
    } catch (e) {
      r.fail(`${bare(fromJid)} -> ${toLabel}: ${e.message}`);
      return;
    }
    r.ok(`${bare(fromJid)} -> ${toLabel}: body received intact`);
    r.check(got.attrs.from === fromJid, `${bare(fromJid)} -> ${toLabel}: from is sender's full JID`, `from=${got.attrs.from}`);
    r.check(
      !got.attrs.to || got.attrs.to === toJid || bare(got.attrs.to) === bare(toJid),
      `${bare(fromJid)} -> ${toLabel}: to is the recipient`,
      `to=${got.attrs.to}`,
    );
    r.check(got.attrs.type === "chat", `${bare(fromJid)} -> ${toLabel}: type chat kept`, `type=${got.attrs.type}`);
  }
  r.begin("alice -> bob");
  await exchange(alice, aliceJid, bob, settings.bob.jid, `${settings.bob.jid} (bare)`);
  // 4. bob -> alice's full JID.
  r.begin("bob -> alice");
  await exchange(bob, bobJid, alice, aliceJid, `${aliceJid} (full)`);
  r.check(!dropped, "no connection was dropped", dropped);

  for (const c of [alice, bob]) c.stopping = true;
  await Promise.allSettled([alice.stop(), bob.stop()]);

  // 5. Wrong password: must be refused with <not-authorized/>.
  r.begin("wrong password");
  const mallory = makeClient("wrongpw", settings.alice, `${settings.alice.password}-wrong`);
  mallory.stopping = true;
  try {
    await mallory.start();
    r.fail("login with a wrong password succeeded");
  } catch (e) {
    r.check(
      e && e.condition === "not-authorized",
      "wrong password is refused with <not-authorized/>",
      `got ${describeError(e)}`,
    );
  }
  await Promise.allSettled([mallory.stop()]);

  r.finish();
}

main().catch((e) => {
  r.fail(`unexpected error during ${r.step || "setup"}: ${e && e.stack ? e.stack : e}`);
  r.finish(1);
});
