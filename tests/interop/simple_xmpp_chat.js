#!/usr/bin/env node
"use strict";
// Interop check with simple-xmpp 2.3.1, used exactly as its tutorial does:
//   xmpp.connect({ jid, password, host, port }); xmpp.send(to, text);
//   xmpp.on('chat', (from, message) => ...)
// A second user lives in `new (require('simple-xmpp').SimpleXMPP)()`.
// simple-xmpp upgrades with STARTTLS (without verifying the certificate) and
// logs in with DIGEST-MD5 if offered, else PLAIN. A wrong password must fail.
//
// Settings: see common.js (XMPP_HOST, XMPP_PORT, ALICE_JID, ALICE_PASSWORD,
// BOB_JID, BOB_PASSWORD, XMPP_TIMEOUT, XMPP_DEBUG; XMPP_CA_FILE is unused).

const { parseSettings, bare, uniqueBody, Reporter, collector } = require("./common");

const NAME = "simple_xmpp_chat";
const settings = parseSettings(`${NAME}.js`);
const r = new Reporter(NAME, settings);
const STEP_MS = Math.max(2000, Math.floor((settings.timeout * 1000) / 3));

const xmpp = require("simple-xmpp"); // the module is itself a client instance
const { SimpleXMPP } = require("simple-xmpp");

function instrument(who, client) {
  // Only after connect() does client.conn exist.
  const conn = client.conn;
  client.mechanism = undefined;
  client.inbox = collector();
  client.errors = [];
  client.on("chat", (from, message) => client.inbox.push({ from, message }));
  client.on("error", (err) => {
    const text = err && err.toString ? err.toString() : String(err);
    client.errors.push(text);
    r.log(who, "!!", `error: ${text}`);
  });
  client.on("close", () => r.log(who, "..", "closed"));
  const connection = conn.connection;
  connection.on("data", (d) => r.log(who, "<-", d));
  const origSend = connection.send.bind(connection);
  connection.send = (stanza) => {
    const s = stanza && stanza.root ? stanza.root().toString() : String(stanza);
    const m = /<auth[^>]*mechanism=["']([A-Z0-9-]+)["']/.exec(s);
    if (m) client.mechanism = m[1];
    r.log(who, "->", s);
    return origSend(stanza);
  };
}

function login(who, client, account, password) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${who}: no 'online' within ${STEP_MS} ms`)), STEP_MS);
    client.on("online", (data) => {
      clearTimeout(timer);
      resolve(data);
    });
    client.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`${who}: ${err && err.toString ? err.toString() : err}`));
    });
    client.connect({ jid: account.jid, password, host: settings.host, port: settings.port });
    instrument(who, client);
  });
}

async function main() {
  r.info(`server ${settings.host}:${settings.port}, domain ${settings.domain}`);
  const bob = new SimpleXMPP();

  r.begin("login");
  let aliceOnline, bobOnline;
  try {
    [aliceOnline, bobOnline] = await Promise.all([
      login("alice", xmpp, settings.alice, settings.alice.password),
      login("bob", bob, settings.bob, settings.bob.password),
    ]);
  } catch (e) {
    r.fail(`login failed: ${e.message}`);
    return r.finish(1);
  }
  const aliceJid = aliceOnline.jid.toString();
  const bobJid = bobOnline.jid.toString();
  r.ok(`alice online as ${aliceJid} (SASL ${xmpp.mechanism || "?"})`);
  r.ok(`bob online as ${bobJid} (SASL ${bob.mechanism || "?"})`);
  const tls = (c) => Boolean(c.conn.connection.socket && c.conn.connection.socket.encrypted);
  r.check(tls(xmpp) && tls(bob), "both streams were upgraded with STARTTLS");
  r.check(bare(aliceJid) === settings.alice.jid && bare(bobJid) === settings.bob.jid, "bound JIDs match accounts");

  // simple-xmpp sent initial presence on 'online'. Give the server a moment
  // to process it before addressing bare JIDs.
  await new Promise((res) => setTimeout(res, 500));

  async function exchange(fromLabel, from, fromJid, to, toJid) {
    const body = uniqueBody(`simple-xmpp ${fromLabel} to ${toJid}`);
    const waiting = to.inbox.wait((m) => m.message === body, STEP_MS, `chat "${body}"`);
    from.send(toJid, body); // the tutorial's call
    let got;
    try {
      got = await waiting;
    } catch (e) {
      r.fail(`${fromLabel} -> ${toJid}: ${e.message}`);
      return;
    }
    r.ok(`${fromLabel} -> ${toJid}: 'chat' event with the body`);
    r.check(got.from === fromJid, `${fromLabel} -> ${toJid}: from is sender's full JID`, `from=${got.from}`);
  }

  r.begin("alice -> bob");
  await exchange("alice", xmpp, aliceJid, bob, settings.bob.jid);
  r.begin("bob -> alice");
  await exchange("bob", bob, bobJid, xmpp, settings.alice.jid);
  r.check(
    xmpp.errors.length === 0 && bob.errors.length === 0,
    "no error events",
    [...xmpp.errors, ...bob.errors].join("; "),
  );

  xmpp.disconnect();
  bob.disconnect();

  r.begin("wrong password");
  const mallory = new SimpleXMPP();
  try {
    await login("wrongpw", mallory, settings.alice, `${settings.alice.password}-wrong`);
    r.fail("login with a wrong password succeeded");
  } catch (e) {
    r.check(/authentication failure|not-authorized/i.test(e.message), "wrong password is refused", e.message);
  }
  r.finish();
}

main().catch((e) => {
  r.fail(`unexpected error during ${r.step || "setup"}: ${e && e.stack ? e.stack : e}`);
  r.finish(1);
});
