#!/usr/bin/env bash
# Set up (or update) the project's virtualenv in .venv, plus the system packages a purpose needs.
#   scripts/setup.sh demo   runtime only
#   scripts/setup.sh test   runtime + test tools + Debian's Chromium for the browser tier
# Safe to re-run: pip runs again only when pyproject.toml, setup.py or native/ changed.
set -euo pipefail
purpose="${1:-demo}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

say() { printf '\033[1m[hdx setup]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else say "need root for: $*"; return 1; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    say "please install these system packages: ${missing[*]}"; return 1
  fi
  say "installing system packages: ${missing[*]}"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
}

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "hdx needs Python >= 3.11 (found: $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11"
  exit 1
fi

# A C compiler builds the native change detector; without one hdx uses its numpy twin.
command -v cc >/dev/null || apt_install gcc libc6-dev || say "no C compiler: using the numpy change detector"
if [ "$purpose" = test ]; then
  # Chromium for the browser tier; fonts so pages render text.
  [ -x /usr/bin/chromium ] || apt_install chromium fonts-dejavu-core
  # Real X servers for the X tier: Xvfb, and Xorg's dummy driver for RandR resizes/monitors;
  # xwd/xrandr/xdpyinfo as independent references.
  apt_install xvfb xserver-xorg-core xserver-xorg-video-dummy x11-apps x11-xserver-utils \
    x11-utils xkb-data
  # The VNC peer of `hdx bench peers` (and its tests): a Debian VNC server on the same Xvfb.
  apt_install x11vnc
  # Network namespaces, veth and tbf for the shaped-link and beyond-loopback tests.
  apt_install iproute2
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$python" -m venv .venv || { apt_install python3-venv && "$python" -m venv .venv; }
fi

extras=""
[ "$purpose" = test ] && extras="[test]"
stamp=".venv/.hdx-installed-$purpose"
fingerprint="$(cat pyproject.toml setup.py native/*.c native/*.h native/*.py | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$fingerprint" ]; then
  say "installing hdx$extras into .venv (first time takes a minute or two)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".$extras"
  echo "$fingerprint" > "$stamp"
fi
say "ready: $(.venv/bin/python -c 'import hdx.damage as d; print("change detection backend:", d.backend)')"
