#!/usr/bin/env bash
# Checks the container packaging without a Docker engine:
#   - Dockerfile structure: a rust:1-bookworm build stage running
#     `cargo build --release --locked`, a debian:bookworm-slim runtime stage
#     with a non-root user (uid 10001), the binary at /usr/local/bin/xmppd,
#     the config at /etc/xmppd/xmppd.toml, VOLUME, EXPOSE, HEALTHCHECK,
#     ENTRYPOINT/CMD
#   - every COPY source exists in the repository and is not excluded by
#     .dockerignore; docker-compose.yml agrees with the Dockerfile
#   - config/xmppd.docker.toml agrees with VOLUME/EXPOSE and passes
#     `xmppd check-config`
#   - the build stage's command, `cargo build --release --locked`, run on a
#     copy of exactly what the build stage COPYs (sharing ./target)
#   - the built binary run as the image runs it, on config/xmppd.docker.toml
#     (data_dir and ports moved to a temp dir and free loopback ports): it
#     starts, every listener accepts, /metrics answers, the HEALTHCHECK's
#     `xmppd ctl status` succeeds (and fails once stopped), the README's
#     `ctl register admin localhost mypassword1` works, SIGTERM exits 0
#   - README shows the docker compose commands
# Ends with the line `N passed, M failed`; exits non-zero if any failed.
#
# Env: DOCKER_LAYOUT_SKIP_BUILD=1 skips the cargo build (structure only).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS  $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL  $*"; }
finish() {
  [[ -n "${CTX:-}" ]] && rm -rf "$CTX"
  echo "${PASSED} passed, ${FAILED} failed"
  ((FAILED == 0))
  exit $?
}

# ------------------------------------------------------------ structure
# The Python part prints PASS/FAIL lines, then `COPYSRC <path>` lines for the
# build stage's sources (used below to assemble the build context).
STRUCT_OUT="$(python3 - <<'PY'
import fnmatch, json, os, re, shlex, sys, tomllib

def out(ok, msg):
    print(("PASS  " if ok else "FAIL  ") + msg)

def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()

if not os.path.isfile("Dockerfile"):
    out(False, "Dockerfile exists")
    sys.exit(0)

# Logical lines: join continuations, drop comments and blank lines.
lines, cur = [], ""
for raw in read("Dockerfile").splitlines():
    s = raw.strip()
    if not cur and (not s or s.startswith("#")):
        continue
    if s.startswith("#"):
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    cur += s
    lines.append(cur.strip())
    cur = ""
if cur:
    lines.append(cur.strip())

stages = []  # each: {"from":..., "name":..., "ins": [(instr, args)]}
for l in lines:
    instr, _, args = l.partition(" ")
    instr = instr.upper()
    args = args.strip()
    if instr == "FROM":
        parts = args.split()
        name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
        stages.append({"from": parts[0], "name": name, "ins": []})
    elif stages:
        stages[-1]["ins"].append((instr, args))

def exec_form(args):
    try:
        v = json.loads(args)
        return v if isinstance(v, list) else None
    except ValueError:
        return None

def flags_and_rest(args):
    words = shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    rest = [w for w in words if not w.startswith("--")]
    return flags, rest

out(len(stages) == 2, f"Dockerfile has two stages (found {len(stages)})")
build = stages[0] if stages else {"from": "", "name": None, "ins": []}
runtime = stages[-1] if stages else {"from": "", "name": None, "ins": []}
out(build["from"] == "rust:1-bookworm" and build["name"] == "build",
    f"build stage is 'FROM rust:1-bookworm AS build' (found {build['from']} AS {build['name']})")
out(runtime["from"] == "debian:bookworm-slim",
    f"runtime stage is FROM debian:bookworm-slim (found {runtime['from']})")

runs = " && ".join(a for i, a in build["ins"] if i == "RUN")
out(re.search(r"(^|[;&|]\s*|\s)cargo build --release --locked(\s|$)", runs) is not None,
    "build stage runs 'cargo build --release --locked'")

def instrs(stage, name):
    return [a for i, a in stage["ins"] if i == name]

rt_runs = " && ".join(instrs(runtime, "RUN"))
out("ca-certificates" in rt_runs, "runtime stage installs ca-certificates")
m = re.search(r"useradd\b[^&;]*--uid\s+(\d+)[^&;]*\bxmppd\b", rt_runs)
out(m is not None and m.group(1) == "10001", "runtime stage creates user xmppd with uid 10001")

users = instrs(runtime, "USER")
user = users[-1].split(":")[0] if users else "root"
out(user not in ("root", "0", ""), f"final USER is not root (USER {user})")
out(user in ("xmppd", "10001"), "final USER is xmppd")

copies = instrs(runtime, "COPY")
bin_ok = False
for c in copies:
    flags, rest = flags_and_rest(c)
    if "--from=build" in flags and rest and rest[-1] == "/usr/local/bin/xmppd":
        bin_ok = True
out(bin_ok, "binary is copied from the build stage to /usr/local/bin/xmppd")
cfg_src = None
for c in copies:
    flags, rest = flags_and_rest(c)
    if not any(f.startswith("--from") for f in flags) and rest and rest[-1] == "/etc/xmppd/xmppd.toml":
        cfg_src = rest[0]
out(cfg_src == "config/xmppd.docker.toml",
    f"config/xmppd.docker.toml is copied to /etc/xmppd/xmppd.toml (source {cfg_src})")

volumes = []
for v in instrs(runtime, "VOLUME"):
    volumes += exec_form(v) or v.split()
out("/var/lib/xmppd" in volumes, f"VOLUME /var/lib/xmppd (found {volumes})")
exposed = set()
for e in instrs(runtime, "EXPOSE"):
    exposed |= {p.split("/")[0] for p in e.split()}
out({"5222", "5223", "5280"} <= exposed, f"EXPOSE 5222 5223 5280 (found {sorted(exposed)})")

hc = instrs(runtime, "HEALTHCHECK")
hc_cmd = None
if hc:
    m = re.search(r"\bCMD\s+(.*)$", hc[-1])
    hc_cmd = exec_form(m.group(1)) if m else None
out(bool(hc_cmd) and hc_cmd[0] == "xmppd" and "ctl" in hc_cmd and hc_cmd[-1] == "status",
    f"HEALTHCHECK runs 'xmppd ctl ... status' in exec form (found {hc_cmd})")
ep = exec_form((instrs(runtime, "ENTRYPOINT") or [""])[-1])
out(ep == ["xmppd"], f'ENTRYPOINT ["xmppd"] (found {ep})')
cmd = exec_form((instrs(runtime, "CMD") or [""])[-1])
out(cmd == ["serve", "--config", "/etc/xmppd/xmppd.toml"],
    f'CMD ["serve","--config","/etc/xmppd/xmppd.toml"] (found {cmd})')
if hc_cmd and "--config" in hc_cmd:
    i = hc_cmd.index("--config")
    out(i + 1 < len(hc_cmd) and hc_cmd[i + 1] == "/etc/xmppd/xmppd.toml",
        "HEALTHCHECK uses the same config as CMD")

# .dockerignore patterns (Go filepath.Match-like; good enough for ours).
ignore = []
if os.path.isfile(".dockerignore"):
    for l in read(".dockerignore").splitlines():
        l = l.strip()
        if l and not l.startswith("#"):
            ignore.append(l.rstrip("/"))
def ignored(path):
    path = os.path.normpath(path)
    parts = path.split(os.sep)
    for pat in ignore:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        for i in range(1, len(parts) + 1):
            prefix = os.sep.join(parts[:i])
            if fnmatch.fnmatch(prefix, p) or (p.startswith("**/") and fnmatch.fnmatch(parts[i - 1], p[3:])):
                if not neg:
                    return pat
    return None
out(ignored("target") is not None and ignored(".git") is not None,
    ".dockerignore excludes target/ and .git/")

all_ok = True
for stage in stages:
    for c in instrs(stage, "COPY") + instrs(stage, "ADD"):
        flags, rest = flags_and_rest(c)
        if any(f.startswith("--from") for f in flags):
            continue
        for src in rest[:-1]:
            exists = os.path.exists(src)
            ign = ignored(src)
            ok = exists and not ign
            all_ok &= ok
            why = "missing" if not exists else f"excluded by .dockerignore ({ign})" if ign else "ok"
            out(ok, f"COPY source '{src}' exists in the repo and is in the build context ({why})")
            if stage is build:
                print(f"COPYSRC {src}")
# Every explicit target path in Cargo.toml must be inside the build context.
build_srcs = [s for st in stages[:1] for c in instrs(st, "COPY") for s in flags_and_rest(c)[1][:-1]]
try:
    manifest = tomllib.loads(read("Cargo.toml"))
    paths = [t["path"] for k in ("bin", "lib", "example", "bench") for t in
             (manifest.get(k) if isinstance(manifest.get(k), list) else [manifest.get(k)] if manifest.get(k) else [])
             if "path" in t]
    # Path dependencies and [patch] entries (vendor/rustls) are sources too.
    for table in [manifest.get("dependencies", {})] + list(manifest.get("patch", {}).values()):
        paths += [d["path"] for d in table.values() if isinstance(d, dict) and "path" in d]
    build_script = manifest.get("package", {}).get("build")
    if isinstance(build_script, str):
        paths.append(build_script)
    elif os.path.exists("build.rs") and build_script is not False:
        paths.append("build.rs")
    outside = [p for p in paths if not any(os.path.normpath(p) == os.path.normpath(s) or
               os.path.normpath(p).startswith(os.path.normpath(s) + os.sep) for s in build_srcs)]
    out(not outside, f"build stage COPYs every file Cargo.toml builds from (missing: {outside or 'none'})")
except Exception as e:  # noqa: BLE001
    out(False, f"Cargo.toml readable: {e}")

# Runtime config agrees with the image.
try:
    cfg = tomllib.loads(read("config/xmppd.docker.toml"))
    out(cfg.get("data_dir") == "/var/lib/xmppd", f"docker config data_dir is the VOLUME (found {cfg.get('data_dir')})")
    listen = {l.get("kind"): l.get("address") for l in cfg.get("listen", [])}
    out(listen.get("c2s") == "0.0.0.0:5222" and listen.get("c2s_direct_tls") == "0.0.0.0:5223",
        f"docker config listens on 0.0.0.0:5222 (c2s) and 0.0.0.0:5223 (c2s_direct_tls) (found {listen})")
    out(listen.get("http") == "0.0.0.0:5280", f"docker config serves HTTP /metrics on 0.0.0.0:5280 (found {listen})")
    ports = {a.rsplit(":", 1)[1] for a in listen.values() if a}
    out(ports <= exposed, f"every port the docker config listens on is EXPOSEd ({sorted(ports)})")
    out(cfg.get("hosts") == ["localhost"], f"docker config hosts = ['localhost'] (found {cfg.get('hosts')})")
    exempt = cfg.get("limits", {}).get("exempt_networks", [])
    out("172.16.0.0/12" in exempt and "127.0.0.0/8" in exempt,
        f"docker config exempts loopback and the Docker bridge range from per-address limits (found {exempt})")
except Exception as e:  # noqa: BLE001
    out(False, f"config/xmppd.docker.toml is valid TOML: {e}")

# docker-compose.yml (no YAML parser needed for these checks).
if os.path.isfile("docker-compose.yml"):
    dc = read("docker-compose.yml")
    active = "\n".join(l.split(" #")[0] for l in dc.splitlines() if not l.strip().startswith("#"))
    out(re.search(r"^\s+build:\s*\.\s*$", active, re.M) is not None, "docker-compose.yml builds from this Dockerfile")
    out(all(re.search(rf'^\s+-\s*"?(\d+\.\d+\.\d+\.\d+:)?\d+:{p}"?\s*$', active, re.M) for p in (5222, 5223, 5280)),
        "docker-compose.yml publishes 5222, 5223 and 5280")
    out(re.search(r'^\s+-\s*"?127\.0\.0\.1:\d+:5280"?\s*$', active, re.M) is not None,
        "docker-compose.yml publishes the unauthenticated HTTP port on the host's loopback only")
    m = re.search(r"^\s+-\s*(\./\S+):/etc/xmppd/xmppd\.toml(:ro)?\s*$", active, re.M)
    out(m is not None and os.path.isfile(m.group(1)),
        f"docker-compose.yml mounts an existing config file at /etc/xmppd/xmppd.toml ({m.group(1) if m else None})")
    out(re.search(r"^\s+xmppd:\s*$", active, re.M) is not None, "docker-compose.yml has the service 'xmppd' (as in `docker compose exec xmppd`)")
    m = re.search(r"^\s+-\s*([A-Za-z0-9_.-]+):/var/lib/xmppd\s*$", active, re.M)
    named = m.group(1) if m else None
    out(named is not None and re.search(rf"^volumes:\s*\n(\s+.*\n)*?\s+{re.escape(named)}:", active + "\n", re.M) is not None,
        f"docker-compose.yml mounts a named volume ({named}) at /var/lib/xmppd")
else:
    out(False, "docker-compose.yml exists")
PY
)"
status=$?
if [[ $status != 0 ]]; then
  fail "structure checks crashed (python3 exit $status)"
fi
while IFS= read -r line; do
  case "$line" in
    "PASS  "*) pass "${line#PASS  }" ;;
    "FAIL  "*) fail "${line#FAIL  }" ;;
  esac
done <<<"$STRUCT_OUT"
mapfile -t COPY_SRCS < <(sed -n 's/^COPYSRC //p' <<<"$STRUCT_OUT")

if [[ "${DOCKER_LAYOUT_SKIP_BUILD:-0}" == 1 ]]; then
  echo "(build skipped: DOCKER_LAYOUT_SKIP_BUILD=1)"
  finish
fi

# ------------------------------------------------------------ build
# The build stage's context: only what it COPYs. Share ./target so that the
# dependencies compiled here are reused by the rest of the test run.
CTX="$(mktemp -d "${TMPDIR:-/tmp}/xmppd-docker-ctx.XXXXXX")"
for src in "${COPY_SRCS[@]}"; do
  mkdir -p "$CTX/$(dirname "$src")"
  cp -R "$src" "$CTX/$src"
done
echo "----  cargo build --release --locked (in a copy of the build stage's context)"
if (cd "$CTX" && CARGO_TARGET_DIR="$ROOT/target" cargo build --release --locked); then
  pass "cargo build --release --locked succeeds on the build stage's context"
else
  fail "cargo build --release --locked fails on the build stage's context"
  finish
fi
BIN="$ROOT/target/release/xmppd"
if [[ -x "$BIN" ]]; then
  pass "the build produces target/release/xmppd (the file the Dockerfile installs)"
else
  fail "target/release/xmppd not produced"
  finish
fi

out="$("$BIN" check-config --config config/xmppd.docker.toml 2>&1)"
status=$?
if [[ $status == 0 ]]; then
  pass "xmppd check-config --config config/xmppd.docker.toml"
else
  fail "xmppd check-config --config config/xmppd.docker.toml exits $status: $(tr '\n' ' ' <<<"$out")"
fi
if ! grep -Eq '^\s*(HEALTHCHECK|CMD).*"--config"' <(sed -n '/^HEALTHCHECK/,/CMD/p' Dockerfile); then
  # `xmppd ctl status` without --config must find /etc/xmppd/xmppd.toml.
  out="$("$BIN" serve --help 2>&1)"
  if grep -qF "/etc/xmppd/xmppd.toml" <<<"$out"; then
    pass "HEALTHCHECK's 'xmppd ctl status' finds /etc/xmppd/xmppd.toml by default"
  else
    fail "HEALTHCHECK runs 'xmppd ctl status' without --config, but xmppd's default config path is not /etc/xmppd/xmppd.toml"
  fi
fi
for sub in "serve" "ctl"; do
  out="$("$BIN" "$sub" --help 2>&1)"
  if [[ $? == 0 ]] && grep -q -- "--config" <<<"$out"; then
    pass "xmppd $sub accepts --config (as CMD/HEALTHCHECK use it)"
  else
    fail "xmppd $sub --help does not show --config: $(head -c 300 <<<"$out" | tr '\n' ' ')"
  fi
done

# ------------------------------------------------------------ run as the image would
# The image's config with data_dir and the listen ports moved to a temporary
# directory and free loopback ports (the container's 0.0.0.0:5222 etc.).
RUNDIR="$(mktemp -d "${TMPDIR:-/tmp}/xmppd-docker-run.XXXXXX")"
CFG="$RUNDIR/xmppd.toml"
if ! python3 - "$CFG" "$RUNDIR/data" <<'PY'
import re, socket, sys
cfg, data = sys.argv[1], sys.argv[2]
text = open("config/xmppd.docker.toml", encoding="utf-8").read()
def free(_m):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    return f'address = "127.0.0.1:{port}"'
text = re.sub(r'address = "0\.0\.0\.0:\d+"', free, text)
text = text.replace('data_dir = "/var/lib/xmppd"', f'data_dir = "{data}"')
open(cfg, "w", encoding="utf-8").write(text)
PY
then
  fail "cannot adapt config/xmppd.docker.toml for a local run"
  finish
fi
"$BIN" serve --config "$CFG" >"$RUNDIR/server.log" 2>&1 &
SRV=$!
healthy=0
for _ in $(seq 1 100); do
  if "$BIN" ctl --config "$CFG" status >/dev/null 2>&1; then healthy=1; break; fi
  kill -0 "$SRV" 2>/dev/null || break
  sleep 0.2
done
if ((healthy)); then
  pass "the HEALTHCHECK command (xmppd ctl status) succeeds against xmppd serve on the docker config"
else
  fail "xmppd serve on the docker config did not become healthy: $(tail -n 5 "$RUNDIR/server.log" | tr '\n' ' ')"
fi
if python3 - "$CFG" <<'PY'
import socket, sys, tomllib, urllib.request
cfg = tomllib.load(open(sys.argv[1], "rb"))
for l in cfg["listen"]:
    host, port = l["address"].rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=5).close()
    if l["kind"] == "http":
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
            body = r.read().decode()
            assert r.status == 200 and "xmppd_uptime_seconds" in body and body.endswith("# EOF\n"), body[:200]
PY
then
  pass "every listener of the docker config accepts connections; /metrics answers"
else
  fail "a listener of the docker config does not accept connections or /metrics fails"
fi
out="$("$BIN" ctl --config "$CFG" register admin localhost mypassword1 2>&1)"
if [[ "$out" == "User admin@localhost successfully registered" ]]; then
  pass "ctl register admin localhost mypassword1 (the README's docker compose exec command)"
else
  fail "ctl register on the docker config: $out"
fi
kill -TERM "$SRV" 2>/dev/null
wait "$SRV"
status=$?
if [[ $status == 0 ]]; then
  pass "SIGTERM (docker stop) stops xmppd with exit 0"
else
  fail "xmppd exited $status after SIGTERM: $(tail -n 5 "$RUNDIR/server.log" | tr '\n' ' ')"
fi
"$BIN" ctl --config "$CFG" status >/dev/null 2>&1
status=$?
if [[ $status == 3 ]]; then
  pass "the HEALTHCHECK command fails (exit 3) once xmppd is down"
else
  fail "ctl status exits $status with xmppd down (want 3)"
fi
rm -rf "$RUNDIR"

# ------------------------------------------------------------ README
if grep -qF 'docker compose up -d' README.md \
  && grep -qF 'docker compose exec xmppd xmppd ctl register admin localhost mypassword1' README.md; then
  pass "README shows docker compose up -d and docker compose exec xmppd xmppd ctl register admin localhost mypassword1"
else
  fail "README lacks the docker compose commands"
fi
finish
