"""The login child's wire format and its test-only hooks channel (pure: no display, no process)."""

from __future__ import annotations

import json

import pytest

from tdgui.core.errors import AccessDenied, LoginFailed, ProviderError
from tdgui.core.login_outcome import LoginOutcome, LoginResult, classify_error, timeout_message
from tdgui.core.tokens import TokenTimes
from tdgui.qt.login import hooks
from tdgui.qt.login.hooks import TestHooks
from tdgui.qt.login.protocol import VERSION, ChildResult, Command, LoginSpec, ProtocolError, ResultKind

SPEC = LoginSpec(
    account="a",
    url="https://127.0.0.1:4443/v1/oauth/authorize?x=1",
    redirect_uri="https://127.0.0.1:8182/",
    login_domains=("127.0.0.1",),
    provider="sandbox",
    pinned_sha256="ab" * 32,
    pinned_host="127.0.0.1",
    timeout=12.0,
)


def test_spec_round_trip_carries_no_test_hook() -> None:
    line = SPEC.to_json()
    assert LoginSpec.from_json(line) == SPEC
    assert SPEC.is_sandbox
    assert set(json.loads(line)) == {
        "v",
        "account",
        "url",
        "redirect_uri",
        "login_domains",
        "provider",
        "pinned_sha256",
        "pinned_host",
        "timeout",
        "device_dir",
    }
    # A spec without a pin is never the sandbox (no scripting on a real broker's page).
    unpinned = {**json.loads(line), "pinned_host": None, "pinned_sha256": None}
    assert not LoginSpec.from_json(json.dumps(unpinned)).is_sandbox


@pytest.mark.parametrize("version", [None, 0, 1, 3, "2"])
def test_other_versions_refused_clearly(version: object) -> None:
    data = {**json.loads(SPEC.to_json()), "v": version}
    with pytest.raises(ProtocolError, match=f"version {version!r}; this tdgui speaks {VERSION}"):
        LoginSpec.from_json(json.dumps(data))
    with pytest.raises(ProtocolError, match="version"):
        ChildResult.from_json(json.dumps({"v": version, "kind": "browser"}))
    with pytest.raises(ProtocolError, match="version"):
        Command.from_json(json.dumps({"v": version, "command": "cancel"}))


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"url": "http://example.com/authorize"}, "https"),
        ({"url": None}, "'url'"),
        ({"login_domains": "127.0.0.1"}, "login_domains"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"pinned_host": None}, "without"),
        ({"pinned_sha256": "AB" * 32}, "SHA-256"),
        ({"account": ""}, "'account'"),
    ],
)
def test_spec_validation(change: dict[str, object], complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        LoginSpec.from_json(json.dumps({**json.loads(SPEC.to_json()), **change}))


@pytest.mark.parametrize("line", ["", "not json", "[1]", '{"v": 1, "command": "reboot"}'])
def test_bad_command_lines(line: str) -> None:
    with pytest.raises(ProtocolError):
        Command.from_json(line)


def test_commands_and_results_round_trip() -> None:
    for command in Command:
        assert Command.from_json(command.to_json()) is command
    results = [
        ChildResult(ResultKind.CALLBACK, url="https://127.0.0.1:8182/?code=c&state=s", engine=("6.8", "122")),
        ChildResult(ResultKind.BROWSER, message="m"),
        ChildResult(
            ResultKind.ENDED, LoginOutcome.CANCELLED, "m", blocked=("https://x.invalid/",), popups_refused=2
        ),
    ]
    for result in results:
        assert ChildResult.from_json(result.to_json()) == result
    assert "code=" not in repr(results[0])  # the callback URL holds the code: not in a repr


def test_result_validation() -> None:
    with pytest.raises(ProtocolError, match="no URL"):
        ChildResult(ResultKind.CALLBACK)
    with pytest.raises(ProtocolError, match="cannot end"):
        ChildResult(ResultKind.ENDED, LoginOutcome.SUCCESS)  # only the parent decides success
    with pytest.raises(ProtocolError, match="unknown kind or outcome"):
        ChildResult.from_json(json.dumps({"v": VERSION, "kind": "ended", "outcome": "exploded"}))


def test_hooks_honoured_on_the_pinned_local_sandbox_only() -> None:
    text = TestHooks(autofill=True, consent="deny", visit="https://127.0.0.1:1/x").to_json()
    assert hooks.honoured(text, SPEC) == TestHooks(
        autofill=True, consent="deny", visit="https://127.0.0.1:1/x"
    )
    real = LoginSpec(
        "a",
        "https://api.schwabapi.com/v1/oauth/authorize",
        "https://127.0.0.1:8182/",
        ("api.schwabapi.com",),
        "schwab",
    )
    assert hooks.honoured(text, real) is None
    # Called "sandbox" but pinned on a remote host: not ours.
    remote = LoginSpec(
        "a",
        "https://sandbox.example.com/a",
        "https://127.0.0.1:8182/",
        ("sandbox.example.com",),
        "sandbox",
        "ab" * 32,
        "sandbox.example.com",
    )
    assert hooks.honoured(text, remote) is None
    assert hooks.honoured("not json", SPEC) is None


def test_hooks_taken_out_of_the_environment() -> None:
    environ = {hooks.ENV_VAR: TestHooks(autofill=True).to_json(), "HOME": "/h"}
    assert hooks.take_from_environment(environ, SPEC) == TestHooks(autofill=True)
    assert environ == {"HOME": "/h"}  # Chromium's processes do not inherit it
    assert hooks.take_from_environment(environ, SPEC) is None


def test_outcome_classification() -> None:
    assert classify_error(AccessDenied("no"))[0] is LoginOutcome.DENIED
    outcome, message = classify_error(ProviderError("HTTP 500"))
    assert outcome is LoginOutcome.NETWORK and "HTTP 500" in message
    assert classify_error(LoginFailed("bad state"))[0] is LoginOutcome.FAILED
    outcome, message = classify_error(KeyError("x"))
    assert outcome is LoginOutcome.FAILED and "KeyError" in message
    assert "within 2m 00s" in timeout_message(120)


def test_result_holds_times_not_tokens() -> None:
    times = TokenTimes(
        access_expires_at=2.0,
        access_received_at=1.0,
        refresh_expires_at=3.0,
        login_at=1.0,
        has_refresh_token=True,
    )
    result = LoginResult("a", LoginOutcome.SUCCESS, "ok", 1.0, times)
    assert result.ok and result.access_expires_at == 2.0 and result.refresh_expires_at == 3.0
    assert not [f for f in vars(result) if "token" in f and f != "times"]


LEAF = "cd" * 32
REAL = LoginSpec(
    "a",
    "https://api.schwabapi.com/v1/oauth/authorize",
    "https://127.0.0.1:8182/",
    ("schwabapi.com", "schwab.com"),
    "schwab",
)


@pytest.mark.parametrize(
    ("flags", "hosts"),
    [
        (
            '--host-resolver-rules="MAP a.example 127.0.0.1:4443, MAP b.example 127.0.0.1"',
            {"a.example", "b.example"},
        ),
        ("--no-sandbox '--host-resolver-rules=MAP A.example 127.0.0.1:1'", {"a.example"}),
        (
            '--host-resolver-rules="MAP a.example 127.0.0.1:1, MAP b.example 10.0.0.1:1"',
            set(),
        ),  # one off loopback
        ('--host-resolver-rules="MAP * 127.0.0.1:1"', set()),  # a wildcard is not a list of hosts
        ('--host-resolver-rules="MAP a.example 127.0.0.1:1, EXCLUDE b.example"', set()),  # not understood
        ('--host-resolver-rules="MAP a.example 127.0.0.1.evil.test:1"', set()),
        ("", set()),
        ('--host-resolver-rules="unbalanced', set()),
    ],
)
def test_loopback_mapped_hosts(flags: str, hosts: set[str]) -> None:
    assert hooks.loopback_mapped_hosts(flags) == hosts


def test_emulator_leaf_honoured_only_under_loopback_rules() -> None:
    text = TestHooks(emulator_leaf_sha256=LEAF.upper(), continue_when_blocked=True).to_json()
    rules = '--host-resolver-rules="MAP api.schwabapi.com 127.0.0.1:4443"'
    assert hooks.honoured(text, REAL, rules) == TestHooks(
        emulator_leaf_sha256=LEAF, continue_when_blocked=True
    )
    assert hooks.honoured(text, REAL, "") is None  # a real broker's host on the network: never
    assert hooks.honoured(text, REAL, '--host-resolver-rules="MAP api.schwabapi.com 192.0.2.1:443"') is None
    # Without a leaf, other hooks stay sandbox-only even under such rules.
    assert hooks.honoured(TestHooks(autofill=True).to_json(), REAL, rules) is None
    environ = {hooks.ENV_VAR: text, hooks.CHROMIUM_FLAGS_VAR: rules}
    assert hooks.take_from_environment(environ, REAL) is not None
    assert environ == {hooks.CHROMIUM_FLAGS_VAR: rules}
