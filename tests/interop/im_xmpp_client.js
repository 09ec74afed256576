#!/usr/bin/env node
"use strict";
// IM interop scenarios with @xmpp/client (xmpp.js) 0.14, with raw stanzas
// through xmpp.send / xmpp.iqCaller and xmpp.on("stanza"):
//   1. roster get / set with the push to a second resource, update, remove,
//      and roster versioning (RFC 6121 §2)
//   2. the subscription handshake to 'both' (RFC 6121 §3.1), presence after it
//   3. offline messages delivered in order with a XEP-0203 <delay/> (XEP-0160)
//   4. XEP-0280 carbons: received (bare and full JID) and sent copies
//
// Accounts: <IM_USER_PREFIX>21 .. <IM_USER_PREFIX>27 (default prefix "im"),
// all with the password IM_PASSWORD, registered beforehand (run.sh does).
// Each scenario resets the state it depends on, so the script can be run
// again against the same accounts.
//
// Settings: see common.js (XMPP_HOST, XMPP_PORT, XMPP_DOMAIN, XMPP_CA_FILE,
// XMPP_TIMEOUT (whole script), XMPP_DEBUG) plus IM_USER_PREFIX, IM_PASSWORD.
// Prints `ok - ...` / `not ok - ...` per check, `PASS  [n] ...` /
// `FAIL  [n] ...` per scenario; exit status 0 only if every scenario passed.

const crypto = require("node:crypto");
const { parseSettings, ensureTrustedCa, bare, sleep, Reporter, collector } = require("./common");

const NAME = "im_xmpp_client";
const settings = parseSettings(`${NAME}.js`);
ensureTrustedCa(settings);

const PREFIX = process.env.IM_USER_PREFIX || "im";
const PASSWORD = process.env.IM_PASSWORD || "im-secret";
const WAIT_MS = 10000; // something that should arrive
const QUIET_MS = 1000; // silence that shows something did not arrive
const STEP_MS = Math.max(30000, Math.floor((settings.timeout * 1000) / 5));
const NS_ROSTER = "jabber:iq:roster";
const NS_CARBONS = "urn:xmpp:carbons:2";
const NS_FORWARD = "urn:xmpp:forward:0";
const NS_DELAY = "urn:xmpp:delay";

const r = new Reporter(NAME, settings);

class StepFailed extends Error {}

function require_(cond, msg, detail) {
  if (!r.check(cond, msg, detail)) throw new StepFailed(msg);
}

function describeError(e) {
  if (!e) return String(e);
  const parts = [];
  if (e.condition) parts.push(`<${e.condition}/>`);
  parts.push(`${e.name || "Error"}: ${e.message || "(no message)"}`);
  return parts.join(", ");
}

const token = () => crypto.randomUUID().slice(0, 8);
const jidOf = (n) => `${PREFIX}${n}@${settings.domain}`;

async function main() {
  const { client, xml } = await import("@xmpp/client");
  const service = `xmpp://${settings.host}:${settings.port}`;
  r.info(`@xmpp/client, server ${service}, domain ${settings.domain}, accounts ${PREFIX}21..27, CA ${settings.ca || "(system)"}`);

  // ------------------------------------------------------------ helpers
  let clients = [];

  function makeClient(who, n, resource) {
    const c = client({
      service,
      domain: settings.domain,
      username: `${PREFIX}${n}`,
      password: PASSWORD,
      resource,
      timeout: 10000,
    });
    c.who = who;
    c.reconnect.stop();
    c.on("element", (el) => r.log(who, "<-", el.toString()));
    c.on("send", (el) => r.log(who, "->", el.toString()));
    c.on("error", (e) => r.log(who, "!!", `error: ${describeError(e)}`));
    c.on("status", (s) => r.log(who, "..", `status ${s}`));
    c.on("disconnect", () => {
      if (!c.stopping) c.dropped = true;
    });
    c.inbox = collector();
    c.on("stanza", (st) => c.inbox.push(st));
    // Roster pushes (RFC 6121 §2.1.6): accept those from the account itself.
    c.iqCallee.set(NS_ROSTER, "query", (ctx) => {
      const from = ctx.stanza.attrs.from;
      if (from && bare(from) !== bare(String(c.jid))) return xml("error", { type: "cancel" }, xml("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
      return true;
    });
    clients.push(c);
    return c;
  }

  // Logs in; with `presence` sends initial presence (optionally with a priority).
  async function online(who, n, resource, { roster = true, presence = true, priority } = {}) {
    const c = makeClient(who, n, resource);
    try {
      c.fullJid = String(await c.start());
    } catch (e) {
      r.fail(`${who} (${jidOf(n)}/${resource}) cannot log in: ${describeError(e)}`);
      throw new StepFailed("login");
    }
    c.bareJid = bare(c.fullJid);
    r.info(`${who} online as ${c.fullJid}`);
    if (roster) c.roster = await rosterGet(c);
    if (presence) {
      const children = priority === undefined ? [] : [xml("priority", {}, String(priority))];
      await c.send(xml("presence", {}, ...children));
    }
    return c;
  }

  async function stop(c) {
    c.stopping = true;
    clients = clients.filter((x) => x !== c);
    await Promise.race([c.stop().catch(() => {}), sleep(5000)]);
  }

  // The roster as {jid: <item/>} (whole roster: no `ver`).
  async function rosterGet(c, ver) {
    const attrs = ver === undefined ? { xmlns: NS_ROSTER } : { xmlns: NS_ROSTER, ver };
    const res = await c.iqCaller.request(xml("iq", { type: "get" }, xml("query", attrs)), WAIT_MS);
    const q = res.getChild("query", NS_ROSTER);
    const items = {};
    if (q) for (const it of q.getChildren("item")) items[it.attrs.jid] = it;
    return { items, ver: q ? q.attrs.ver : undefined, empty: !q };
  }

  async function rosterSet(c, item) {
    return c.iqCaller.request(xml("iq", { type: "set" }, xml("query", { xmlns: NS_ROSTER }, item)), WAIT_MS);
  }

  async function removeContact(c, jid) {
    const { items } = await rosterGet(c);
    if (items[jid]) await rosterSet(c, xml("item", { jid, subscription: "remove" }));
  }

  async function ping(c) {
    await c.iqCaller.request(xml("iq", { type: "get", to: settings.domain }, xml("ping", { xmlns: "urn:xmpp:ping" })), WAIT_MS);
  }

  const mark = (c) => c.inbox.items.length;

  // The first stanza received by `c` from index `since` on matching `pred`, or null.
  async function waitFor(c, pred, what, since = 0, ms = WAIT_MS) {
    const items = c.inbox.items;
    try {
      return await c.inbox.wait((st) => items.indexOf(st) >= since && pred(st), ms, what);
    } catch {
      return null;
    }
  }

  function received(c, pred, since = 0) {
    return c.inbox.items.slice(since).filter(pred);
  }

  const isPush = (jid) => (st) =>
    st.is("iq") && st.attrs.type === "set" && !!st.getChild("query", NS_ROSTER) &&
    st.getChild("query", NS_ROSTER).getChildren("item").some((i) => i.attrs.jid === jid);
  const pushItem = (st, jid) => st.getChild("query", NS_ROSTER).getChildren("item").find((i) => i.attrs.jid === jid);
  const isPresence = (type, from) => (st) =>
    st.is("presence") && (st.attrs.type || "available") === type && (from === undefined || st.attrs.from === from);
  const isBody = (body) => (st) => st.is("message") && st.getChildText("body") === body;
  const groupsOf = (item) => item.getChildren("group").map((g) => g.text()).sort();
  const attrsOf = (item) => (item ? item.toString() : "no item");

  // ------------------------------------------------------------ steps

  async function stepRoster() {
    const one = await online("im21/one", 21, `one-${process.pid}`);
    const two = await online("im21/two", 21, `two-${process.pid}`);
    const contact = `pal-${token()}@${settings.domain}`;
    require_(!one.roster.empty, "roster get answers with a <query/>", "empty result");
    const since1 = mark(one);
    const since2 = mark(two);
    const res = await rosterSet(one, xml("item", { jid: contact, name: "Pal" }, xml("group", {}, "Interop")));
    r.check(res.attrs.type === "result", "roster set answered with a result", res.toString());
    const push = await waitFor(two, isPush(contact), `push of ${contact}`, since2);
    require_(push, "the second resource receives the roster push", `no push for ${contact}`);
    const item = pushItem(push, contact);
    r.check(item.attrs.name === "Pal" && groupsOf(item).join() === "Interop", "pushed item has the name and group", attrsOf(item));
    r.check(item.attrs.subscription === "none" && !item.attrs.ask, "pushed item: subscription none, no ask", attrsOf(item));
    r.check(!push.attrs.from || bare(push.attrs.from) === two.bareJid, "the push comes from the account itself", `from=${push.attrs.from}`);
    const ver = push.getChild("query", NS_ROSTER).attrs.ver;
    r.check(!!ver, "the push carries a roster version", `ver=${ver}`);
    r.check(!!(await waitFor(one, isPush(contact), "own push", since1)), "the resource that set it gets the push too");
    // Versioning (RFC 6121 §2.6): the current version → empty result.
    const same = await rosterGet(two, ver);
    r.check(same.empty, "a roster get with the current version gets an empty result", `got query ver=${same.ver}`);
    const got = (await rosterGet(two)).items[contact];
    r.check(got && got.attrs.name === "Pal" && groupsOf(got).join() === "Interop", "a fresh roster get has the item", attrsOf(got));
    // Update: name and two groups.
    let s2 = mark(two);
    await rosterSet(one, xml("item", { jid: contact, name: "Pal 2" }, xml("group", {}, "Interop"), xml("group", {}, "Second")));
    let p = await waitFor(two, isPush(contact), "update push", s2);
    r.check(p && pushItem(p, contact).attrs.name === "Pal 2" && groupsOf(pushItem(p, contact)).join() === "Interop,Second", "an update (new name, two groups) is pushed", p ? attrsOf(pushItem(p, contact)) : "no push");
    // Remove.
    s2 = mark(two);
    await rosterSet(one, xml("item", { jid: contact, subscription: "remove" }));
    p = await waitFor(two, isPush(contact), "remove push", s2);
    r.check(p && pushItem(p, contact).attrs.subscription === "remove", "removing the item pushes subscription='remove'", p ? attrsOf(pushItem(p, contact)) : "no push");
    r.check(!(await rosterGet(two)).items[contact], "the item is gone from the roster");
  }

  async function stepHandshake() {
    const a = await online("A(im22)", 22, `a-${process.pid}`);
    const b = await online("B(im23)", 23, `b-${process.pid}`);
    await removeContact(a, b.bareJid);
    await removeContact(b, a.bareJid);
    await ping(a);
    await ping(b);
    await sleep(200);
    let sa = mark(a);
    let sb = mark(b);
    // A asks.
    await a.send(xml("presence", { to: b.bareJid, type: "subscribe" }));
    let p = await waitFor(a, isPush(b.bareJid), "A's push after subscribe", sa);
    r.check(p && pushItem(p, b.bareJid).attrs.ask === "subscribe" && pushItem(p, b.bareJid).attrs.subscription === "none", "A: push with ask='subscribe', subscription none", p ? attrsOf(pushItem(p, b.bareJid)) : "no push");
    const req = await waitFor(b, isPresence("subscribe", a.bareJid), "B gets the subscribe", sb);
    require_(req, "B receives presence type='subscribe' from A's bare JID");
    // B approves.
    sa = mark(a);
    sb = mark(b);
    await b.send(xml("presence", { to: a.bareJid, type: "subscribed" }));
    p = await waitFor(b, isPush(a.bareJid), "B's push after subscribed", sb);
    r.check(p && pushItem(p, a.bareJid).attrs.subscription === "from", "B: push with subscription 'from'", p ? attrsOf(pushItem(p, a.bareJid)) : "no push");
    p = await waitFor(a, isPush(b.bareJid), "A's push after subscribed", sa);
    r.check(p && pushItem(p, b.bareJid).attrs.subscription === "to" && !pushItem(p, b.bareJid).attrs.ask, "A: push with subscription 'to', no ask", p ? attrsOf(pushItem(p, b.bareJid)) : "no push");
    r.check(!!(await waitFor(a, isPresence("subscribed", b.bareJid), "subscribed", sa)), "A receives type='subscribed' from B's bare JID");
    r.check(!!(await waitFor(a, isPresence("available", b.fullJid), "B's presence", sa)), "A then receives B's presence from B's full JID");
    // And back: B asks, A approves.
    sa = mark(a);
    sb = mark(b);
    await b.send(xml("presence", { to: a.bareJid, type: "subscribe" }));
    require_(await waitFor(a, isPresence("subscribe", b.bareJid), "A gets the subscribe", sa), "A receives B's subscription request");
    await a.send(xml("presence", { to: b.bareJid, type: "subscribed" }));
    const pa = await waitFor(a, (st) => isPush(b.bareJid)(st) && pushItem(st, b.bareJid).attrs.subscription === "both", "A's 'both' push", sa);
    const pb = await waitFor(b, (st) => isPush(a.bareJid)(st) && pushItem(st, a.bareJid).attrs.subscription === "both", "B's 'both' push", sb);
    r.check(!!pa, "A gets a push with subscription 'both'");
    r.check(!!pb, "B gets a push with subscription 'both'");
    r.check(!!(await waitFor(b, isPresence("available", a.fullJid), "A's presence", sb)), "B receives A's presence from A's full JID");
    const ra = (await rosterGet(a)).items[b.bareJid];
    const rb = (await rosterGet(b)).items[a.bareJid];
    r.check(ra && ra.attrs.subscription === "both" && !ra.attrs.ask, "A's roster (fresh get) has B as 'both'", attrsOf(ra));
    r.check(rb && rb.attrs.subscription === "both" && !rb.attrs.ask, "B's roster (fresh get) has A as 'both'", attrsOf(rb));
    // Presence now flows: B goes away, A sees it; B logs out, A sees unavailable.
    sa = mark(a);
    await b.send(xml("presence", {}, xml("show", {}, "away")));
    const away = await waitFor(a, (st) => isPresence("available", b.fullJid)(st) && st.getChildText("show") === "away", "away", sa);
    r.check(!!away, "a presence change of B (show away) reaches A");
    sa = mark(a);
    await stop(b);
    r.check(!!(await waitFor(a, isPresence("unavailable", b.fullJid), "unavailable", sa)), "B's logout reaches A as type='unavailable' from B's full JID");
  }

  async function stepOffline() {
    const a = await online("A(im24)", 24, `a-${process.pid}`);
    const cJid = jidOf(25);
    const t = token();
    const bodies = [1, 2, 3].map((i) => `offline ${i} ${t} \u00e9\u00e8 <&>`);
    const before = Date.now();
    for (const [i, body] of bodies.entries()) {
      await a.send(xml("message", { to: cJid, type: "chat", id: `off-${t}-${i + 1}` }, xml("body", {}, body)));
    }
    await ping(a);
    const errs = received(a, (st) => st.is("message") && st.attrs.type === "error");
    r.check(errs.length === 0, "no error for messages to an offline account", errs.map(String).join(" "));
    const c = await online("C(im25)", 25, `c-${process.pid}`);
    const mine = (st) => st.is("message") && (st.getChildText("body") || "").includes(t);
    for (const body of bodies) await waitFor(c, isBody(body), body);
    const got = received(c, mine);
    require_(got.length === 3, "C receives the 3 messages after sending initial presence", `got ${got.map((m) => m.getChildText("body")).join(" | ")}`);
    r.check(got.map((m) => m.getChildText("body")).join("\n") === bodies.join("\n"), "in the order they were sent", got.map((m) => m.getChildText("body")).join(" | "));
    for (const [i, m] of got.entries()) {
      const delay = m.getChild("delay", NS_DELAY);
      r.check(!!delay, `message ${i + 1} has <delay xmlns='urn:xmpp:delay'>`, m.toString());
      if (!delay) continue;
      const stamp = Date.parse(delay.attrs.stamp || "");
      r.check(
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(delay.attrs.stamp || "") && stamp >= before - 2000 && stamp <= Date.now() + 2000,
        `message ${i + 1}: stamp ${delay.attrs.stamp} is a UTC XEP-0082 time from when it was stored`,
        `sent after ${new Date(before).toISOString()}`,
      );
      r.check(delay.attrs.from === settings.domain, `message ${i + 1}: delay from the server's domain`, `from=${delay.attrs.from}`);
      r.check(m.attrs.from === a.fullJid && m.attrs.type === "chat", `message ${i + 1}: from A's full JID, type chat`, `from=${m.attrs.from} type=${m.attrs.type}`);
    }
    const ids = got.map((m) => m.attrs.id).join();
    r.check(ids === [1, 2, 3].map((i) => `off-${t}-${i}`).join(), "the message ids are kept", ids);
  }

  async function stepCarbons() {
    const phone = await online("E(im26)/phone", 26, `phone-${process.pid}`, { priority: 5 });
    const laptop = await online("E(im26)/laptop", 26, `laptop-${process.pid}`, { priority: 0 });
    for (const c of [phone, laptop]) {
      try {
        await c.iqCaller.request(xml("iq", { type: "set" }, xml("enable", { xmlns: NS_CARBONS })), WAIT_MS);
        r.ok(`${c.who}: carbons enabled`);
      } catch (e) {
        r.fail(`${c.who}: enabling carbons failed: ${describeError(e)}`);
        throw new StepFailed("carbons");
      }
    }
    const f = await online("F(im27)", 27, `f-${process.pid}`);
    await waitFor(laptop, isPresence("available", phone.fullJid), "phone's presence");
    const t = token();
    const carbonOf = (kind, body) => (st) => {
      if (!st.is("message")) return false;
      const wrap = st.getChild(kind, NS_CARBONS);
      const fwd = wrap && wrap.getChild("forwarded", NS_FORWARD);
      const inner = fwd && fwd.getChild("message");
      return !!inner && inner.getChildText("body") === body;
    };
    const innerOf = (st, kind) => st.getChild(kind, NS_CARBONS).getChild("forwarded", NS_FORWARD).getChild("message");
    // Received, to the bare JID: the phone (priority 5) gets it, the laptop a carbon.
    let body = `hello E ${t}`;
    let sl = mark(laptop);
    await f.send(xml("message", { to: phone.bareJid, type: "chat" }, xml("body", {}, body)));
    r.check(!!(await waitFor(phone, isBody(body), "message at phone")), "F -> E (bare): the phone (priority 5) gets the message");
    const c1 = await waitFor(laptop, carbonOf("received", body), "received carbon", sl);
    require_(c1, "the laptop gets a <received xmlns='urn:xmpp:carbons:2'> carbon", received(laptop, () => true, sl).map(String).join(" "));
    r.check(c1.attrs.from === phone.bareJid && c1.attrs.to === laptop.fullJid, "the carbon is from E's bare JID to the laptop", `from=${c1.attrs.from} to=${c1.attrs.to}`);
    const in1 = innerOf(c1, "received");
    r.check(in1.attrs.xmlns === "jabber:client" && in1.attrs.from === f.fullJid && in1.attrs.type === "chat", "the forwarded <message xmlns='jabber:client'> is F's, type chat", in1.toString());
    r.check(received(laptop, isBody(body), sl).length === 0, "the laptop does not also get the plain message");
    // Received, to the phone's full JID.
    body = `hello phone ${t}`;
    sl = mark(laptop);
    await f.send(xml("message", { to: phone.fullJid, type: "chat" }, xml("body", {}, body)));
    r.check(!!(await waitFor(laptop, carbonOf("received", body), "received carbon (full JID)", sl)), "F -> E/phone (full JID): the laptop gets a received carbon");
    // Sent: the laptop writes to F; the phone gets a <sent/> carbon.
    body = `from laptop ${t}`;
    const sp = mark(phone);
    await laptop.send(xml("message", { to: f.fullJid, type: "chat" }, xml("body", {}, body)));
    r.check(!!(await waitFor(f, isBody(body), "message at F")), "F receives the laptop's message");
    const c2 = await waitFor(phone, carbonOf("sent", body), "sent carbon", sp);
    r.check(!!c2, "the phone gets a <sent xmlns='urn:xmpp:carbons:2'> carbon");
    if (c2) {
      const in2 = innerOf(c2, "sent");
      r.check(c2.attrs.from === phone.bareJid, "the sent carbon is from E's bare JID", `from=${c2.attrs.from}`);
      r.check(in2.attrs.from === laptop.fullJid && in2.attrs.to === f.fullJid, "it holds the original (from the laptop, to F)", in2.toString());
    }
  }

  // ------------------------------------------------------------ run
  const steps = [
    [1, "roster get/set, push to a second resource", stepRoster],
    [2, "subscription handshake to 'both'", stepHandshake],
    [3, "offline messages with <delay/>", stepOffline],
    [4, "carbons received and sent", stepCarbons],
  ];
  const results = [];
  for (const [num, title, fn] of steps) {
    const label = `${num} ${title}`;
    r.begin(label);
    console.log(`---- [${label}]`);
    const before = r.failures;
    const start = Date.now();
    let timer;
    try {
      await Promise.race([
        fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`step did not finish within ${STEP_MS / 1000}s`)), STEP_MS);
        }),
      ]);
    } catch (e) {
      if (!(e instanceof StepFailed)) r.fail(`${label}: ${e && e.condition ? describeError(e) : e && e.stack ? e.stack : e}`);
    } finally {
      clearTimeout(timer);
    }
    const dropped = clients.filter((c) => c.dropped).map((c) => c.who);
    if (dropped.length) r.fail(`connection dropped by the server: ${dropped.join(", ")}`);
    await Promise.allSettled([...clients].map(stop));
    const passed = r.failures === before;
    const secs = ((Date.now() - start) / 1000).toFixed(1);
    results.push([label, passed, secs]);
    console.log(`${passed ? "PASS" : "FAIL"}  [${label}] (${secs}s)`);
  }
  console.log("---- summary");
  for (const [label, passed, secs] of results) console.log(`${passed ? "PASS" : "FAIL"}  [${label}] (${secs}s)`);
  r.finish();
}

main().catch((e) => {
  r.fail(`unexpected error during ${r.step || "setup"}: ${e && e.stack ? e.stack : e}`);
  r.finish(1);
});
