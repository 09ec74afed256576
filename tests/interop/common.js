"use strict";
// Shared helpers for the Node.js interop client scripts.
//
// Settings come from environment variables, overridable by command-line
// flags (`--port 5222` or `--port=5222`):
//
//   flag              env var            default
//   --host            XMPP_HOST          127.0.0.1
//   --port            XMPP_PORT          5222   (c2s, STARTTLS)
//   --tls-port        XMPP_TLS_PORT      5223   (c2s_direct_tls, XEP-0368)
//   --domain          XMPP_DOMAIN        localhost
//   --ca              XMPP_CA_FILE       (none) PEM file of the CA to trust
//   --alice-jid       ALICE_JID          alice@<domain>
//   --alice-password  ALICE_PASSWORD     alice-secret
//   --bob-jid         BOB_JID            bob@<domain>
//   --bob-password    BOB_PASSWORD       bob-secret
//   --timeout         XMPP_TIMEOUT       20     (seconds, whole script)
//   --debug           XMPP_DEBUG         0      (1: print the wire log live)

const crypto = require("node:crypto");
const { spawnSync } = require("node:child_process");
const path = require("node:path");

const FLAGS = {
  host: "XMPP_HOST",
  port: "XMPP_PORT",
  "tls-port": "XMPP_TLS_PORT",
  domain: "XMPP_DOMAIN",
  ca: "XMPP_CA_FILE",
  "alice-jid": "ALICE_JID",
  "alice-password": "ALICE_PASSWORD",
  "bob-jid": "BOB_JID",
  "bob-password": "BOB_PASSWORD",
  timeout: "XMPP_TIMEOUT",
  debug: "XMPP_DEBUG",
};

function usage(script) {
  const lines = [`usage: node ${script} [--flag value]...`, "flags (and env vars):"];
  for (const [flag, env] of Object.entries(FLAGS)) lines.push(`  --${flag.padEnd(16)} ${env}`);
  return lines.join("\n");
}

function parseSettings(script) {
  const values = {};
  for (const env of Object.values(FLAGS)) {
    if (process.env[env] !== undefined && process.env[env] !== "") values[env] = process.env[env];
  }
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      console.log(usage(script));
      process.exit(0);
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !(m[1] in FLAGS)) {
      console.error(`${script}: unknown argument ${arg}\n${usage(script)}`);
      process.exit(64);
    }
    let value = m[2];
    if (value === undefined) {
      if (m[1] === "debug") value = "1";
      else if (i + 1 < argv.length) value = argv[++i];
      else {
        console.error(`${script}: --${m[1]} needs a value`);
        process.exit(64);
      }
    }
    values[FLAGS[m[1]]] = value;
  }
  const domain = values.XMPP_DOMAIN || "localhost";
  const s = {
    host: values.XMPP_HOST || "127.0.0.1",
    port: Number(values.XMPP_PORT || 5222),
    tlsPort: Number(values.XMPP_TLS_PORT || 5223),
    domain,
    ca: values.XMPP_CA_FILE ? path.resolve(values.XMPP_CA_FILE) : undefined,
    alice: { jid: values.ALICE_JID || `alice@${domain}`, password: values.ALICE_PASSWORD || "alice-secret" },
    bob: { jid: values.BOB_JID || `bob@${domain}`, password: values.BOB_PASSWORD || "bob-secret" },
    timeout: Number(values.XMPP_TIMEOUT || 20),
    debug: values.XMPP_DEBUG === "1" || values.XMPP_DEBUG === "true",
  };
  for (const [k, v] of [["port", s.port], ["tls-port", s.tlsPort], ["timeout", s.timeout]]) {
    if (!Number.isFinite(v) || v <= 0) {
      console.error(`${script}: invalid --${k}`);
      process.exit(64);
    }
  }
  return s;
}

// Node reads NODE_EXTRA_CA_CERTS only at start-up, so when a CA file is given
// and not yet trusted, run this same script again in a child with it set.
// Returns only in the process that should do the work.
function ensureTrustedCa(settings) {
  if (!settings.ca || process.env.NODE_EXTRA_CA_CERTS === settings.ca) return;
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: settings.ca, XMPP_CA_FILE: settings.ca };
  const r = spawnSync(process.execPath, process.argv.slice(1), { env, stdio: "inherit" });
  if (r.error) {
    console.error(`cannot re-run with NODE_EXTRA_CA_CERTS: ${r.error.message}`);
    process.exit(1);
  }
  process.exit(r.status === null ? 1 : r.status);
}

function localpart(jid) {
  const at = jid.indexOf("@");
  return at < 0 ? "" : jid.slice(0, at);
}

function bare(jid) {
  const s = String(jid);
  const slash = s.indexOf("/");
  return slash < 0 ? s : s.slice(0, slash);
}

function uniqueBody(tag) {
  return `${tag} ${crypto.randomUUID()} \u00e9\u00e8 <&> "quotes"`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// A small test reporter: `ok - ...` per check, wire log ring buffer dumped
// on failure, overall timeout, exit codes (0 pass, 1 fail, 2 timeout).
class Reporter {
  constructor(name, settings) {
    this.name = name;
    this.settings = settings;
    this.wire = [];
    this.failures = 0;
    this.checks = 0;
    this.timer = setTimeout(() => {
      this.fail(`overall timeout of ${settings.timeout}s exceeded (${this.step || "?"})`);
      this.finish(2);
    }, settings.timeout * 1000);
    this.timer.unref();
    process.on("unhandledRejection", (err) => {
      this.fail(`unhandled rejection: ${err && err.stack ? err.stack : err}`);
      this.finish(1);
    });
    process.on("uncaughtException", (err) => {
      this.fail(`uncaught exception: ${err && err.stack ? err.stack : err}`);
      this.finish(1);
    });
  }

  log(who, dir, data) {
    const line = `${new Date().toISOString().slice(11, 23)} ${who} ${dir} ${String(data).trim()}`;
    this.wire.push(line);
    if (this.wire.length > 200) this.wire.shift();
    if (this.settings.debug) console.error(line);
  }

  info(msg) {
    console.log(`# ${msg}`);
  }

  begin(step) {
    this.step = step;
  }

  ok(msg) {
    this.checks++;
    console.log(`ok - ${msg}`);
  }

  fail(msg) {
    this.checks++;
    this.failures++;
    console.log(`not ok - ${msg}`);
    console.error(`${this.name}: FAIL: ${msg}`);
  }

  check(cond, msg, detail) {
    if (cond) this.ok(msg);
    else this.fail(detail ? `${msg}: ${detail}` : msg);
    return cond;
  }

  finish(code) {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    if (code === undefined) code = this.failures ? 1 : 0;
    if (code !== 0 && this.wire.length) {
      console.error(`---- last ${this.wire.length} wire log lines ----`);
      for (const l of this.wire) console.error(l);
      console.error("---- end of wire log ----");
    }
    console.log(`${this.name}: ${code === 0 ? "PASS" : "FAIL"} (${this.checks - this.failures}/${this.checks} checks)`);
    process.exit(code);
  }
}

// Resolves with the first value for which `predicate` is true among the
// values pushed into the returned collector, or rejects after `ms`.
function collector() {
  const items = [];
  const waiters = [];
  return {
    items,
    push(item) {
      items.push(item);
      for (const w of [...waiters]) {
        if (w.predicate(item)) {
          waiters.splice(waiters.indexOf(w), 1);
          clearTimeout(w.timer);
          w.resolve(item);
        }
      }
    },
    wait(predicate, ms, what) {
      const found = items.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { predicate, resolve };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
        }, ms);
        waiters.push(w);
      });
    },
  };
}

module.exports = { parseSettings, ensureTrustedCa, localpart, bare, uniqueBody, sleep, Reporter, collector };
