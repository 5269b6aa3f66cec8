#!/usr/bin/env bash
# Installs the Debian packages tdgui needs (docs/platform.md) — only those missing,
# so a developer's own desktop is left alone. Needs root (or sudo) only when something is missing.
# postgresql: the tests start a private server from its binaries (tests/helpers/postgres.py).
# dunst: a real notification daemon for the desktop-notification tests (tests/helpers/notification_daemon.py).
set -euo pipefail
pkgs=(
  libegl1 libgl1 libx11-6 libx11-xcb1 libxcomposite1 libxdamage1 libxext6 libxfixes3
  libxrandr2 libxtst6 libasound2 libbrotli1 libdbus-1-3 libdrm2 libexpat1 libfontconfig1
  libfreetype6 libgbm1 libglib2.0-0 libgssapi-krb5-2 libnspr4 libnss3 libxcb1
  libxcb-cursor0 libxcb-dri3-0 libxcb-glx0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-randr0 libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-shm0
  libxcb-sync1 libxcb-util1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon0
  libxkbcommon-x11-0 libxkbfile1
  xvfb xauth dbus-daemon gnome-keyring binutils desktop-file-utils
  postgresql
  dunst
)
if ! command -v dpkg >/dev/null 2>&1; then
  echo "system-deps: not a Debian-like system; install the packages in docs/platform.md by hand" >&2
  exit 0
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
