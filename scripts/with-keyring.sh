#!/usr/bin/env bash
# Runs a command inside a private D-Bus session with an unlocked gnome-keyring (a real
# Secret Service), and with HOME/XDG dirs in a throwaway folder so nothing lands in the
# real home. Nothing is left running afterwards (dbus-run-session ends the daemon).
set -euo pipefail
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tdgui-test-home.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export HOME="$scratch/home" XDG_CACHE_HOME="$scratch/cache" XDG_CONFIG_HOME="$scratch/config" \
  XDG_DATA_HOME="$scratch/data" XDG_RUNTIME_DIR="$scratch/run"
mkdir -p "$HOME" "$XDG_CACHE_HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
# tests/conftest.py unlocks a restarted daemon with the same password.
export TDGUI_TEST_KEYRING_PASSWORD=pass
exec dbus-run-session -- sh -c 'printf %s "$TDGUI_TEST_KEYRING_PASSWORD" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; exec "$@"' sh "$@"
