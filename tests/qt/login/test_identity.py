"""The login view's user agent (tdgui.qt.login.identity): a normal Chrome's, from the engine's version."""

from __future__ import annotations

import pytest

from tdgui.qt.login.identity import chrome_user_agent, os_info


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        (
            "linux",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/122.0.0.0 Safari/537.36",
        ),
        (
            "win32",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/122.0.0.0 Safari/537.36",
        ),
        (
            "darwin",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/122.0.0.0 Safari/537.36",
        ),
    ],
)
def test_chrome_user_agent_per_platform(platform: str, expected: str) -> None:
    assert chrome_user_agent("122.0.6261.171", platform) == expected


def test_the_engine_version_decides_and_nothing_names_the_embedder() -> None:
    ua = chrome_user_agent("140.0.7339.0")
    assert "Chrome/140.0.0.0" in ua
    assert "QtWebEngine" not in ua and "Headless" not in ua
    assert os_info("freebsd14") == os_info("linux")
    with pytest.raises(ValueError):
        chrome_user_agent("")


def test_the_live_engine_gets_it(qtbot: object) -> None:
    """The version the running engine reports makes a Chrome string (what the window sets)."""
    from PySide6.QtWebEngineCore import qWebEngineChromiumVersion

    version = str(qWebEngineChromiumVersion())
    assert chrome_user_agent(version).count(f"Chrome/{version.split('.')[0]}.0.0.0") == 1
