#!/usr/bin/env bash
# Installs what the interop client scripts need, from the npm registry and
# PyPI only:
#   - tests/interop/node_modules: `npm ci` from package-lock.json, after
#     packing the local reconnect-core stand-in (shared/interop) into pkg/
#   - tests/interop/.venv: a Python virtualenv with requirements.txt
#     (falls back to `pip install --user` when venv is unavailable)
#
# Usage: tests/interop/setup.sh [--if-missing]
#   --if-missing   do nothing for a part that is already installed and works
# Env:   XMPPD_SHARED_DIR  where shared/ is (default: <repo>/../shared)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SHARED="${XMPPD_SHARED_DIR:-$ROOT/../shared}"
RECONNECT_SRC="$SHARED/interop/reconnect-core"
RECONNECT_TGZ="$HERE/pkg/reconnect-core-1.3.0-local.1.tgz"
IF_MISSING=0
[[ "${1:-}" == "--if-missing" ]] && IF_MISSING=1

log() { echo "[interop-setup] $*"; }

node_ok() {
  (cd "$HERE" && node -e '
    require("simple-xmpp");
    import("@xmpp/client").then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); });
  ') >/dev/null 2>&1
}

python_for_interop() {
  # Prints the interpreter that has slixmpp, preferring the venv.
  local py
  for py in "$HERE/.venv/bin/python" python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import slixmpp, prometheus_client' >/dev/null 2>&1; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

setup_node() {
  if [[ $IF_MISSING == 1 ]] && node_ok; then
    log "node modules already installed"
    return 0
  fi
  command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ and npm" >&2; exit 1; }
  mkdir -p "$HERE/pkg"
  if [[ -d "$RECONNECT_SRC" ]]; then
    log "packing reconnect-core stand-in from $RECONNECT_SRC"
    (cd "$HERE" && npm pack --silent --pack-destination "$HERE/pkg" "$RECONNECT_SRC" >/dev/null)
  elif [[ ! -f "$RECONNECT_TGZ" ]]; then
    echo "reconnect-core stand-in not found at $RECONNECT_SRC (set XMPPD_SHARED_DIR)" >&2
    exit 1
  fi
  log "npm ci in tests/interop"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  node_ok || { echo "node modules installed but @xmpp/client / simple-xmpp do not load" >&2; exit 1; }
}

setup_python() {
  if [[ $IF_MISSING == 1 ]] && python_for_interop >/dev/null; then
    log "slixmpp already installed ($(python_for_interop))"
    return 0
  fi
  local req="$HERE/requirements.txt"
  if [[ -x "$HERE/.venv/bin/python" ]] || python3 -m venv "$HERE/.venv" >/dev/null 2>&1; then
    log "pip install -r requirements.txt into tests/interop/.venv"
    "$HERE/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  else
    log "python3 -m venv unavailable; pip install --user -r requirements.txt"
    rm -rf "$HERE/.venv"
    python3 -m pip install --quiet --disable-pip-version-check --user -r "$req" ||
      python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages -r "$req"
  fi
  python_for_interop >/dev/null || { echo "slixmpp installed but does not import" >&2; exit 1; }
}

setup_node
setup_python
log "ok (python: $(python_for_interop))"
