# Sourced by ./run and ./test: installs what Sanji needs, reusing what is already there.
#   .venv/                      Python virtual environment with Sanji installed (editable)
#   tools/pouchdb/node_modules  pouchdb-server 4.2.0, the CouchDB stand-in for development and tests
#   /usr/bin/chromium           Debian's Chromium, for the browser tests (./test only)
#   Qt WebEngine's libraries    for the test of the kiosk's real window (./test only)
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

# What Qt WebEngine (the kiosk window, PyQt6's wheels) loads from the system on Debian bookworm.
QT_DEBS="libnss3 libnspr4 libxcomposite1 libxdamage1 libxrandr2 libxtst6 libxkbcommon0
  libxkbcommon-x11-0 libxkbfile1 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
  libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xkb1 libegl1 libgl1
  libgbm1 libasound2 libfontconfig1 libdbus-1-3 libglib2.0-0"

setup_browsers() {
  # The browser tests' Debian packages: Chromium, and Qt WebEngine's libraries for the kiosk
  # window's test. Only what is missing is installed, so a second run costs one dpkg-query.
  local missing="" pkg sudo=""
  [ -x /usr/bin/chromium ] || missing="chromium"
  for pkg in $QT_DEBS; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii' || missing="$missing $pkg"
  done
  [ -n "$missing" ] || return 0
  [ "$(id -u)" = 0 ] || sudo="sudo"
  say "installing Debian packages for the browser tests:$missing"
  $sudo apt-get update -qq >&2
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
}
