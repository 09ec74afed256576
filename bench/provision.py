#!/usr/bin/env python3
"""Create the benchmark accounts (and rosters) in ejabberd or Prosody.

  provision.py ejabberd API_URL DOMAIN PREFIX FIRST COUNT PWPREFIX [CONTACTS]
      through ejabberd's HTTP API (mod_http_api on a loopback listener):
      `register`, and `add_rosteritem` (subscription both) for CONTACTS.
  provision.py prosody DATA_DIR DOMAIN PREFIX FIRST COUNT PWPREFIX [CONTACTS]
      by writing Prosody 0.12's internal storage files (accounts with
      SCRAM-SHA-256 keys, 4096 iterations, as mod_auth_internal_hashed with
      password_hash = "SHA-256" keeps them; rosters), with Prosody stopped.

Users are PREFIX{i}@DOMAIN with password PWPREFIX{i}. CONTACTS (even) gives
each user the CONTACTS/2 users before and after it on a ring as mutual
contacts — the same topology as `xmppd-load provision --contacts`.
Only loopback URLs are accepted.
"""
import hashlib
import hmac
import http.client
import json
import os
import secrets
import sys
import threading
import urllib.parse


def ring(k, n, c):
    half = min(c // 2, (n - 1) // 2)
    out = []
    for d in range(1, half + 1):
        out += [(k + n - d) % n, (k + d) % n]
    return out


def ejabberd(url, domain, prefix, first, count, pwprefix, contacts):
    u = urllib.parse.urlparse(url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("only loopback API URLs")
    jobs = []
    for k in range(count):
        i = first + k
        jobs.append(("register", {"user": f"{prefix}{i}", "host": domain, "password": f"{pwprefix}{i}"}))
    rosters = []
    for k in range(count):
        for c in ring(k, count, contacts):
            rosters.append(("add_rosteritem", {
                "localuser": f"{prefix}{first + k}", "localhost": domain,
                "user": f"{prefix}{first + c}", "host": domain,
                "nick": f"{prefix}{first + c}", "group": "bench", "subs": "both"}))
    errors = []

    def worker(items):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        for cmd, body in items:
            for attempt in range(3):
                try:
                    conn.request("POST", f"{u.path.rstrip('/')}/{cmd}", json.dumps(body),
                                 {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    data = r.read().decode(errors="replace")
                    break
                except (ConnectionError, http.client.HTTPException, OSError):
                    conn.close()
                    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
            else:
                errors.append(f"{cmd} {body}: no answer")
                continue
            # register of an existing user is fine on a re-run.
            if r.status != 200 and "already registered" not in data and "conflict" not in data.lower():
                errors.append(f"{cmd} {body.get('user', body.get('localuser'))}: {r.status} {data[:200]}")

    for batch in (jobs, rosters):
        threads = [threading.Thread(target=worker, args=(batch[t::4],)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        print(f"{len(errors)} errors, first: {errors[:3]}", file=sys.stderr)
        sys.exit(1)
    print(f"ejabberd: {count} users, {len(rosters)} roster items")


def lua_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def prosody(data_dir, domain, prefix, first, count, pwprefix, contacts):
    # Prosody's storage encodes a host's '.' and '-' as %2e / %2d.
    host = urllib.parse.quote(domain, safe="").replace(".", "%2e").replace("-", "%2d").lower()
    acc = os.path.join(data_dir, host, "accounts")
    ros = os.path.join(data_dir, host, "roster")
    os.makedirs(acc, exist_ok=True)
    os.makedirs(ros, exist_ok=True)
    items = 0
    for k in range(count):
        i = first + k
        user = f"{prefix}{i}"
        salt = secrets.token_hex(16)
        salted = hashlib.pbkdf2_hmac("sha256", f"{pwprefix}{i}".encode(), salt.encode(), 4096)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).hexdigest()
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).hexdigest()
        with open(os.path.join(acc, f"{user}.dat"), "w") as f:
            f.write("return {\n"
                    f"\t[\"iteration_count\"] = 4096;\n\t[\"salt\"] = {lua_str(salt)};\n"
                    f"\t[\"stored_key\"] = {lua_str(stored_key)};\n\t[\"server_key\"] = {lua_str(server_key)};\n"
                    "};\n")
        cs = ring(k, count, contacts) if contacts else []
        if cs:
            lines = ["return {", '\t[false] = { ["version"] = 1; ["pending"] = {}; };']
            for c in cs:
                jid = f"{prefix}{first + c}@{domain}"
                lines.append(f'\t[{lua_str(jid)}] = {{ ["subscription"] = "both"; ["groups"] = {{ ["bench"] = true; }}; '
                             f'["name"] = {lua_str(prefix + str(first + c))}; }};')
                items += 1
            lines.append("};")
            with open(os.path.join(ros, f"{user}.dat"), "w") as f:
                f.write("\n".join(lines) + "\n")
    print(f"prosody: {count} users, {items} roster items")


def main():
    if len(sys.argv) < 8:
        sys.exit(__doc__)
    kind, where, domain, prefix, first, count, pwprefix = sys.argv[1:8]
    contacts = int(sys.argv[8]) if len(sys.argv) > 8 else 0
    f = {"ejabberd": ejabberd, "prosody": prosody}[kind]
    f(where, domain, prefix, int(first), int(count), pwprefix, contacts)


if __name__ == "__main__":
    main()
