"""The login view's browser identity: a normal Chrome's user agent.

Sites turn embedded engines away by their user agent: QtWebEngine's default names itself
(`QtWebEngine/6.x`) and, offscreen, `HeadlessChrome`. qutebrowser does the same for the same
reason: its site quirks (`content.headers.user_agent` per URL pattern, qutebrowser/config/
configdata.yml, filled in by qutebrowser/utils/websettings.py `UserAgent`) send
`Mozilla/5.0 ({os_info}) AppleWebKit/{webkit_version} (KHTML, like Gecko)
{upstream_browser_key}/{upstream_browser_version} Safari/{webkit_version}` to sites that
reject QtWebEngine (accounts.google.com, web.whatsapp.com). We send that string for every
page of the login, with the Chromium version the engine really is (qWebEngineChromiumVersion),
in Chrome's reduced form (`Chrome/<major>.0.0.0` since Chrome 101), so the page's feature
checks and the header agree with the engine that runs them. `navigator.webdriver` is left
as the engine has it: false (Blink sets it only under automation, W3C WebDriver §6.1).
"""

from __future__ import annotations

import logging
import re
import sys

log = logging.getLogger(__name__)

#: Chrome's frozen platform tokens (the User-Agent reduction froze them, Chrome 101+).
_OS_INFO = {
    "linux": "X11; Linux x86_64",
    "win32": "Windows NT 10.0; Win64; x64",
    "darwin": "Macintosh; Intel Mac OS X 10_15_7",
}

_MAJOR = re.compile(r"(\d+)\.")


def os_info(platform: str = sys.platform) -> str:
    """Chrome's platform token for `platform` (sys.platform); Linux for any other Unix."""
    for prefix, info in _OS_INFO.items():
        if platform.startswith(prefix):
            return info
    return _OS_INFO["linux"]


def chrome_user_agent(chromium_version: str, platform: str = sys.platform) -> str:
    """The user agent a normal Chrome of `chromium_version` (e.g. "122.0.6261.171") sends on `platform`."""
    match = _MAJOR.match(chromium_version.strip() + ".")
    if match is None:
        raise ValueError(f"not a Chromium version: {chromium_version!r}")
    return (
        f"Mozilla/5.0 ({os_info(platform)}) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{match.group(1)}.0.0.0 Safari/537.36"
    )
