#!/usr/bin/env bash
# Adds tdgui to the desktop's application menu for the current user (no root needed).
#
#   scripts/install-desktop.sh [PATH-TO-TDGUI]   install (or update)
#   scripts/install-desktop.sh --uninstall       remove what install put there
#
# PATH-TO-TDGUI is the executable the menu entry starts: a PyInstaller bundle's
# dist/tdgui/tdgui, or a venv's bin/tdgui. Default: `tdgui` on PATH, else this repo's
# .venv/bin/tdgui.
#
# Installs under $XDG_DATA_HOME (default ~/.local/share):
#   applications/tdgui.desktop                 (Exec= set to PATH-TO-TDGUI)
#   icons/hicolor/<N>x<N>/apps/tdgui.png, icons/hicolor/scalable/apps/tdgui.svg
#   metainfo/io.github.tdgui.tdgui.metainfo.xml
# then refreshes the desktop database and icon cache when those tools exist (never fails
# when they do not) and checks the entry with desktop-file-validate when available.
# The resources are taken from ../resources next to this script (TDGUI_RESOURCES overrides).
# "Launch at login" (~/.config/autostart) is the app's own setting and is left alone here.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
resources=${TDGUI_RESOURCES:-$repo/resources}
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
case $data_home in
  /*) ;;
  *) data_home=$HOME/.local/share ;; # the XDG spec says to ignore relative paths
esac

app_id=tdgui
metainfo_name=io.github.tdgui.tdgui.metainfo.xml
sizes=(16 24 32 48 64 128 256 512)

applications=$data_home/applications
icons=$data_home/icons/hicolor
metainfo=$data_home/metainfo

say() { printf 'install-desktop: %s\n' "$*"; }
die() {
  printf 'install-desktop: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

refresh_caches() {
  # Both are optional: menus and icon themes also work without the caches, just slower.
  if command -v update-desktop-database >/dev/null 2>&1 && [ -d "$applications" ]; then
    update-desktop-database -q "$applications" || say "update-desktop-database failed (ignored)"
  fi
  if command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -d "$icons" ]; then
    # -t: a per-user hicolor directory normally has no index.theme of its own.
    gtk-update-icon-cache -q -f -t "$icons" || say "gtk-update-icon-cache failed (ignored)"
  fi
}

# Quote a path for a desktop entry's Exec key (Desktop Entry spec, "The Exec key"):
# reserved characters need double quotes; inside them ", `, $ and \ get a backslash;
# then, as for any string value, every backslash is doubled; % is written %%.
exec_quote() {
  local s=$1
  s=${s//%/%%}
  if [[ $s =~ ^[A-Za-z0-9_./+,:@=-]+$ ]]; then
    printf '%s' "$s"
    return
  fi
  s=${s//\\/\\\\\\\\}
  s=${s//\"/\\\\\"}
  s=${s//\`/\\\\\`}
  s=${s//\$/\\\\\$}
  printf '"%s"' "$s"
}

do_uninstall() {
  rm -f "$applications/$app_id.desktop" "$metainfo/$metainfo_name" "$icons/scalable/apps/$app_id.svg"
  for n in "${sizes[@]}"; do
    rm -f "$icons/${n}x${n}/apps/$app_id.png"
  done
  # Icon size folders left empty go too; the XDG base folders themselves stay.
  for d in "$icons"/*/apps; do
    [ -d "$d" ] && rmdir --ignore-fail-on-non-empty "$d" "$(dirname "$d")"
  done
  refresh_caches
  say "removed tdgui's menu entry, icons and metainfo from $data_home"
}

do_install() {
  local launcher=${1:-}
  if [ -z "$launcher" ]; then
    launcher=$(command -v tdgui 2>/dev/null || true)
    [ -n "$launcher" ] || launcher=$repo/.venv/bin/tdgui
  fi
  case $launcher in
    /*) ;;
    *) launcher=$PWD/$launcher ;;
  esac
  [[ $launcher != *$'\n'* ]] || die "the launcher path contains a newline"
  [ -x "$launcher" ] || say "warning: $launcher is not an executable (yet); the menu entry will start it anyway"

  [ -f "$resources/$app_id.desktop" ] || die "no $resources/$app_id.desktop (set TDGUI_RESOURCES?)"

  mkdir -p "$applications" "$metainfo" "$icons/scalable/apps"

  # The menu entry, with Exec (and only Exec) pointing at the launcher.
  local exec_value tmp
  exec_value=$(exec_quote "$launcher")
  tmp=$(mktemp "$applications/.$app_id.desktop.XXXXXX")
  # (The value goes through the environment: awk -v would undo the backslash escaping.)
  EXEC_VALUE=$exec_value awk '
    /^\[/ { in_main = ($0 == "[Desktop Entry]") }
    in_main && /^Exec=/ { print "Exec=" ENVIRON["EXEC_VALUE"]; next }
    { print }
  ' "$resources/$app_id.desktop" >"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$applications/$app_id.desktop"

  for n in "${sizes[@]}"; do
    install -D -m 644 "$resources/icons/hicolor/${n}x${n}/apps/$app_id.png" \
      "$icons/${n}x${n}/apps/$app_id.png"
  done
  install -m 644 "$resources/$app_id.svg" "$icons/scalable/apps/$app_id.svg"
  install -m 644 "$resources/$metainfo_name" "$metainfo/$metainfo_name"

  if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$applications/$app_id.desktop" ||
      die "desktop-file-validate rejected $applications/$app_id.desktop"
  fi
  refresh_caches
  say "installed $applications/$app_id.desktop -> $launcher"
}

case ${1:-} in
  -h | --help) usage ;;
  --uninstall) do_uninstall ;;
  -*) die "unknown option $1 (see --help)" ;;
  *) do_install "${1:-}" ;;
esac
