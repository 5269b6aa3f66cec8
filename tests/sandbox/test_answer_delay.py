"""answer_delay: a refresh is processed at once (rotated), its answer sent only after the delay."""

from __future__ import annotations

import threading
import time

import pytest

from tdgui.sandbox import SandboxServer

from .support import assert_oauth_error, control, schwab_refresh, schwab_tokens


def test_the_answer_waits_but_the_rotation_does_not(rotating: SandboxServer) -> None:
    tokens = schwab_tokens(rotating)
    assert control(rotating, "/_sandbox/answer-delay", {"seconds": 1.0}).status_code == 200
    got: dict[str, object] = {}

    def refresh() -> None:
        started = time.monotonic()
        got["response"] = schwab_refresh(rotating, tokens["refresh_token"])
        got["took"] = time.monotonic() - started

    worker = threading.Thread(target=refresh)
    worker.start()
    deadline = time.monotonic() + 10
    while rotating.stats()["successful_refreshes"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert "response" not in got  # processed, the answer still held
    worker.join(10)
    response = got["response"]
    assert response.status_code == 200 and got["took"] >= 1.0  # type: ignore[attr-defined,operator]
    ((processed, sent),) = rotating.refresh_answers()
    assert sent - processed >= 1.0
    # The old refresh token was dead already while the answer waited: its reuse revokes the grant.
    rotating.set_answer_delay(0)
    assert_oauth_error(schwab_refresh(rotating, tokens["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize("seconds", [-1, 601, "x"])
def test_a_bad_delay_is_refused(server: SandboxServer, seconds: object) -> None:
    r = control(server, "/_sandbox/answer-delay", {"seconds": seconds})
    assert r.status_code == 400
    assert server.stats()["token_requests"] == 0
