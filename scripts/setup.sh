# Sourced by ./run and ./test: installs what Sanji needs, reusing what is already there.
#   .venv/                      Python virtual environment with Sanji installed (editable)
#   tools/pouchdb/node_modules  pouchdb-server 4.2.0, the CouchDB stand-in for development and tests
#   /usr/bin/chromium           Debian's Chromium, for the browser tests (./test only)
# Download caches stay outside the clone (pip: ~/.cache/pip, npm: ~/.npm).
set -euo pipefail

say() { printf '[setup] %s\n' "$*" >&2; }

need_python() {
  local py
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$py"; return 0
    fi
  done
  say "Python 3.11 or newer is required"; return 1
}

setup_python() {
  local extras="$1" stamp=.venv/.sanji-installed want
  want="$(cat pyproject.toml | sha256sum | cut -c1-16) $extras"
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$(need_python)" -m venv .venv
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python packages ($extras)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
    echo "$want" > "$stamp"
  fi
}

setup_pouchdb() {
  local dir=tools/pouchdb stamp=tools/pouchdb/node_modules/.sanji-installed want
  want="$(cat "$dir/package-lock.json" "$dir/fix-validation.js" | sha256sum | cut -c1-16)"
  if [ ! -x "$dir/node_modules/.bin/pouchdb-server" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    command -v npm >/dev/null || { say "npm (Node.js 18+) is required for pouchdb-server"; return 1; }
    say "installing pouchdb-server 4.2.0 from npm (development and tests only)"
    (cd "$dir" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >&2)
    node "$dir/fix-validation.js"
    echo "$want" > "$stamp"
  fi
}

setup_chromium() {
  if [ -x /usr/bin/chromium ]; then return 0; fi
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  say "installing Debian's chromium for the browser tests"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >&2
}
