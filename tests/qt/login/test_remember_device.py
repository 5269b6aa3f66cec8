"""Remember this device: the account field, the spec, the cookie-only dir and its wiping (CLI included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tdgui.core.accounts import device_dir
from tdgui.core.config import Account
from tdgui.core.errors import ConfigError
from tdgui.qt.login.device import prune_device_dir
from tdgui.qt.login.protocol import LoginSpec, ProtocolError

ACCOUNT = Account(name="a", provider="schwab", client_id="k", callback_url="https://127.0.0.1/")


def test_the_field_is_off_by_default_and_written_only_when_on() -> None:
    assert not ACCOUNT.remember_device
    assert "remember_device" not in ACCOUNT.to_dict()  # an older tdgui still reads the file
    on = replace(ACCOUNT, remember_device=True)
    assert on.to_dict()["remember_device"] is True
    assert Account.from_dict(on.to_dict()) == on
    with pytest.raises(ConfigError, match="remember_device"):
        Account.from_dict({**on.to_dict(), "remember_device": "yes"})


def test_spec_carries_an_absolute_device_dir_only() -> None:
    spec = LoginSpec("a", "https://api.schwabapi.com/x", "https://127.0.0.1/", ("schwab.com",), "schwab")
    assert spec.device_dir is None and LoginSpec.from_json(spec.to_json()) == spec
    kept = replace(spec, device_dir="/home/u/.config/tdgui/devices/a")
    assert LoginSpec.from_json(kept.to_json()) == kept
    with pytest.raises(ProtocolError, match="absolute"):
        LoginSpec.from_json(replace(spec, device_dir="devices/a").to_json())


def test_prune_keeps_cookies_only_and_follows_no_link(tmp_path: Path) -> None:
    where = tmp_path / "dev"
    (where / "Local Storage" / "leveldb").mkdir(parents=True)
    (where / "Cookies").write_bytes(b"c")
    (where / "Cookies-journal").write_bytes(b"j")
    (where / "Network Persistent State").write_text("{}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("x")
    (where / "link").symlink_to(outside)
    (where / "Cookies-link").symlink_to(outside / "keep")
    prune_device_dir(where)
    assert sorted(p.name for p in where.iterdir()) == ["Cookies", "Cookies-journal"]
    assert (outside / "keep").read_text() == "x"
    prune_device_dir(tmp_path / "missing")  # nothing to do


def tdgui(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TD_CONFIG_DIR": str(config)}
    return subprocess.run(
        [sys.executable, "-m", "tdgui", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


ADD = (
    "accounts",
    "add",
    "--provider",
    "schwab",
    "--client-id",
    "k",
    "--callback-url",
    "https://127.0.0.1",
    "--client-secret-stdin",
    "--store",
    "file",
)


def test_cli_opts_in_and_forgets(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    made = tdgui(config, *ADD, "on", "--remember-device", stdin="s3cret\n")
    assert made.returncode == 0, made.stderr
    assert tdgui(config, *ADD, "off", stdin="s3cret\n").returncode == 0
    body = json.loads((config / "accounts.json").read_text())
    flags = {a["name"]: a.get("remember_device", False) for a in body["accounts"]}
    assert flags == {"on": True, "off": False}
    where = device_dir(config, "on")
    where.mkdir(parents=True)
    (where / "Cookies").write_bytes(b"c")
    assert tdgui(config, "logout", "on").returncode == 0
    assert where.exists()  # a plain logout keeps the device
    done = tdgui(config, "logout", "on", "--forget-device")
    assert done.returncode == 0 and "remembered device forgotten" in done.stderr + done.stdout
    assert not where.exists()
    where.mkdir(parents=True)
    removed = tdgui(config, "accounts", "remove", "on")
    assert removed.returncode == 0, removed.stderr
    assert not where.exists()


def test_account_dialog_checkbox_off_by_default_with_the_trade_off(qtbot: QtBot) -> None:
    from tdgui.qt.account_dialog import AccountDialog

    fresh = AccountDialog()
    qtbot.addWidget(fresh)
    assert not fresh.remember_device.isChecked()
    assert "reuse" in fresh.remember_device_hint.text()  # the trade-off, next to the checkbox
    on = replace(ACCOUNT, remember_device=True)
    dialog = AccountDialog(existing=on)
    qtbot.addWidget(dialog)
    assert dialog.remember_device.isChecked()
    assert dialog._build().remember_device
    dialog.remember_device.setChecked(False)
    assert not dialog._build().remember_device
