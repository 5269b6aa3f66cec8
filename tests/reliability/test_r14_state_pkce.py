"""Row 14: state and PKCE generation.

Must hold: state ≥128 bits, 0 collisions in 100,000 draws; code_verifier 43-128 unreserved
characters (RFC 7636 §4.1), ≥128 bits, 0 collisions; the challenge is S256 of the verifier
and "plain" is never sent, for every provider profile that uses PKCE.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections import Counter
from urllib.parse import parse_qs, urlsplit

from rel_support import scale
from tdgui.core import flow, providers

STATES = 100_000
#: flow.new_code_verifier draws each of its 64 characters with secrets.choice (~0.2 ms per
#: verifier here): 100,000 of them take ~20 s, so the default run draws 10,000.
VERIFIERS = scale(10_000, 100_000)
UNRESERVED = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def test_state_is_long_and_unique(figure) -> None:
    states = [flow.new_state() for _ in range(STATES)]
    assert len(set(states)) == STATES
    bits = min(len(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))) * 8 for s in states)
    assert bits >= 128
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", s) for s in states[:1000])
    figure(f"row 14 (state): {STATES:,} draws, 0 collisions, {bits} bits each (minimum 128)")


def test_verifier_is_long_unreserved_and_unique(figure) -> None:
    verifiers = [flow.new_code_verifier() for _ in range(VERIFIERS)]
    assert len(set(verifiers)) == VERIFIERS
    assert all(UNRESERVED.match(v) for v in verifiers)
    alphabet = 66
    bits = min(len(v) for v in verifiers) * math.log2(alphabet)
    assert bits >= 128
    # Every unreserved character turns up about equally often (a broken generator would not).
    counts = Counter("".join(verifiers))
    expected = sum(counts.values()) / alphabet
    assert len(counts) == alphabet
    worst = max(abs(c - expected) / expected for c in counts.values())
    assert worst < 0.05, worst
    figure(
        f"row 14 (verifier): {VERIFIERS:,} draws, 0 collisions, {min(map(len, verifiers))}-"
        f"{max(map(len, verifiers))} unreserved chars = {bits:.0f} bits, character counts within "
        f"{worst:.1%} of uniform"
    )


def test_s256_only_for_every_pkce_provider(figure) -> None:
    profiles = [
        providers.schwab(),
        providers.tdameritrade(),
        providers.sandbox("schwab", "https://127.0.0.1:1", None),
        providers.sandbox("tdameritrade", "https://127.0.0.1:1", None),
        providers.custom("https://auth.example/authorize", "https://auth.example/token", "none", (), True),
        providers.custom("https://auth.example/authorize", "https://auth.example/token", "none", (), False),
    ]
    with_pkce = 0
    for profile in profiles:
        for _ in range(50):
            pending = flow.begin_login("a", profile, "KEY", "https://127.0.0.1:8182/", 0.0)
            query = parse_qs(urlsplit(pending.url).query)
            assert query["state"] == [pending.state]
            if not profile.pkce:
                assert pending.code_verifier is None and "code_challenge" not in query, profile.name
                assert "code_challenge_method" not in query
                continue
            assert pending.code_verifier is not None and UNRESERVED.match(pending.code_verifier)
            assert query["code_challenge_method"] == ["S256"], profile.name
            digest = hashlib.sha256(pending.code_verifier.encode("ascii")).digest()
            assert query["code_challenge"] == [base64.urlsafe_b64encode(digest).rstrip(b"=").decode()]
            assert pending.code_verifier not in pending.url
            with_pkce += 1
    figure(
        f"row 14 (PKCE): {with_pkce} authorization URLs of {sum(p.pkce for p in profiles)} PKCE profiles all "
        "S256 with challenge = SHA-256(verifier), never plain; non-PKCE profiles send no challenge"
    )
