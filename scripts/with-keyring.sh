#!/usr/bin/env bash
# Runs a command inside a private D-Bus session with an unlocked gnome-keyring (a real
# Secret Service), and with HOME/XDG dirs in a throwaway folder so nothing lands in the
# real home. Nothing is left behind afterwards: no daemon, no temp home.
#
# Not `exec dbus-run-session`: that replaced this shell, so the EXIT trap never ran and
# every run left a temp home with a keyring whose password is known (issue 11 #18). The
# session runs as a child in its own process group instead; INT/TERM/HUP are forwarded to
# that whole group (dbus-run-session itself does not pass signals on: on SIGTERM it died
# and left its command and dbus-daemon running), and the command's exit code is ours.
set -euo pipefail
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tdgui-test-home.XXXXXX")
child=""

cleanup() {
  if [ -n "$child" ] && kill -0 -- "-$child" 2>/dev/null; then
    kill -TERM -- "-$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  # gnome-keyring-daemon daemonizes out of the process group; it usually exits with the bus,
  # but not if the bus went away while it was still starting (a command that ends at once).
  # Stop exactly the processes of this run: those whose environment names this run's dir.
  local proc
  for proc in /proc/[0-9]*; do
    [ "${proc#/proc/}" != "$$" ] || continue
    if grep -qaF "XDG_RUNTIME_DIR=$scratch/run" "$proc/environ" 2>/dev/null; then
      kill -TERM "${proc#/proc/}" 2>/dev/null || true
    fi
  done
  rm -rf "$scratch"
}
forward() {
  [ -n "$child" ] && kill "-$1" -- "-$child" 2>/dev/null || true
}
trap cleanup EXIT
trap 'forward INT' INT
trap 'forward TERM' TERM
trap 'forward HUP' HUP

export HOME="$scratch/home" XDG_CACHE_HOME="$scratch/cache" XDG_CONFIG_HOME="$scratch/config" \
  XDG_DATA_HOME="$scratch/data" XDG_RUNTIME_DIR="$scratch/run"
mkdir -p "$HOME" "$XDG_CACHE_HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$scratch" "$XDG_RUNTIME_DIR"
# The unlock password of this throwaway keyring (it lives and dies with this run).
export TDGUI_TEST_KEYRING_PASSWORD=pass

set -m # the background job gets its own process group, so one kill reaches all of it
dbus-run-session -- sh -c 'printf %s "$TDGUI_TEST_KEYRING_PASSWORD" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; exec "$@"' sh "$@" &
child=$!
set +m

status=0
while :; do
  status=0
  wait "$child" || status=$?
  # wait returns >128 when a trapped signal interrupted it; the command may still be running.
  if [ "$status" -gt 128 ] && kill -0 "$child" 2>/dev/null; then
    continue
  fi
  break
done
child=""
exit "$status"
