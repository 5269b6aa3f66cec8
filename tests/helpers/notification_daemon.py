"""A real notification daemon for the tests: Debian's dunst on a private Xvfb display, on the test
session's D-Bus (scripts/with-keyring.sh makes a private session bus).

Actions are invoked the way a user picks one from dunst's context menu: `dunstctl context`
runs the configured "dmenu" with one line per action ("#Log in now (summary) [ID,login]");
ours is a small script that answers with the line the test chose. So the daemon itself emits
ActionInvoked, exactly as on a desktop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

PICKER = """#!/bin/sh
# dunst's context menu ("dmenu"): keep what it offered, answer with the chosen action's line.
cat > "{dir}/menu.txt"
grep -F -m1 -- "$(cat "{dir}/choice")" "{dir}/menu.txt"
"""

CONFIG = """[global]
    dmenu = {dir}/picker.sh
    sticky_history = yes
    history_length = 50
"""


class Dunst:
    """dunst on its own Xvfb display; owns org.freedesktop.Notifications until `stop()`."""

    def __init__(self, directory: Path) -> None:
        for tool in ("dunst", "dunstctl", "Xvfb"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed: run scripts/system-deps.sh")
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "choice").write_text("-none-")
        picker = directory / "picker.sh"
        picker.write_text(PICKER.format(dir=directory))
        picker.chmod(0o700)
        (directory / "dunstrc").write_text(CONFIG.format(dir=directory))
        # -displayfd: Xvfb picks a free display itself (no fixed display number, like no fixed port).
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            self.xvfb.kill()
            raise RuntimeError("Xvfb did not start")
        self.env = {**os.environ, "DISPLAY": f":{number}"}
        self.log = open(directory / "dunst.log", "wb")
        self.proc = subprocess.Popen(
            ["dunst", "-config", str(directory / "dunstrc")],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while not self.running():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dunst did not start: {(directory / 'dunst.log').read_text()}")
            time.sleep(0.1)

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            ["dunstctl", *args], env=self.env, capture_output=True, text=True, timeout=15, check=True
        )
        return done.stdout

    @staticmethod
    def running() -> bool:
        """Someone owns the name (asked without D-Bus activation: dunst's service file would
        start a second dunst, on no display, for a probe that asks by name)."""
        from jeepney import message_bus
        from jeepney.io.blocking import open_dbus_connection

        with open_dbus_connection(bus="SESSION") as conn:
            reply = conn.send_and_get_reply(message_bus.NameHasOwner("org.freedesktop.Notifications"))
        return bool(reply.body[0])

    def displayed(self) -> int:
        return int(self.ctl("count", "displayed").strip()) + int(self.ctl("count", "waiting").strip())

    def choose(self, notification_id: int, action: str) -> None:
        """Pick `action` of notification `notification_id` from the context menu (dunst runs
        the picker after `dunstctl context` returned; the test waits for the signal)."""
        (self.dir / "choice").write_text(f"[{notification_id},{action}]")
        self.ctl("context")

    def menu(self) -> str:
        """The context menu's lines the last time it opened: one per action of each notification."""
        path = self.dir / "menu.txt"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        for proc in (self.proc, self.xvfb):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.log.close()
