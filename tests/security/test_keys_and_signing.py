"""API keys held as digests, and signed stream tokens (pure functions)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.security.keys import KeyRing, key_identity
from app.security.signing import BadToken, sign, verify
from app.sse import new_stream_id

SECRET = b"s" * 32
OWNER = key_identity("sk-alpha")
NOW = 1_800_000_000


def test_identity_is_a_digest_prefix_and_never_contains_the_key() -> None:
    identity = key_identity("sk-alpha")
    assert identity == "key_" + hashlib.sha256(b"sk-alpha").hexdigest()[:12]
    assert "alpha" not in identity


def test_keyring_knows_each_key_by_its_identity_and_nothing_else() -> None:
    ring = KeyRing(["sk-alpha", "sk-bravo"])
    assert ring.identify(b"sk-alpha") == key_identity("sk-alpha")
    assert ring.identify(b"sk-bravo") == key_identity("sk-bravo")
    assert ring.identify(b"sk-alph") is None
    assert ring.identify(b"sk-alpha ") is None
    assert ring.identify(b"") is None


def test_keyring_holds_digests_not_keys() -> None:
    ring = KeyRing(["sk-alpha"])
    assert "sk-alpha" not in repr(ring._entries)
    assert b"sk-alpha" not in b"".join(digest for digest, _ in ring._entries)


def test_the_same_key_listed_twice_is_one_key() -> None:
    assert len(KeyRing(["sk-alpha", "sk-alpha", "sk-bravo"])) == 2


def test_token_opens_its_stream_for_its_owner_until_it_expires() -> None:
    stream_id = new_stream_id()
    token = sign(SECRET, stream_id, OWNER, NOW + 60)
    assert verify(SECRET, token, stream_id, NOW) == OWNER
    assert verify(SECRET, token, stream_id, NOW + 59.9) == OWNER
    with pytest.raises(BadToken, match="expired"):
        verify(SECRET, token, stream_id, NOW + 60)


URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
STREAM_IDS = st.text(URLSAFE, min_size=16)


@given(STREAM_IDS, STREAM_IDS)
def test_a_token_for_one_stream_never_opens_another(x: str, y: str) -> None:
    token = sign(SECRET, x, OWNER, NOW + 60)
    if x != y:
        with pytest.raises(BadToken):
            verify(SECRET, token, y, NOW)


@given(st.integers(min_value=0, max_value=200), st.characters(min_codepoint=33, max_codepoint=126))
def test_an_altered_or_truncated_token_fails(position: int, replacement: str) -> None:
    stream_id = "A" * 22
    token = sign(SECRET, stream_id, OWNER, NOW + 60)
    index = position % len(token)
    altered = token[:index] + replacement + token[index + 1 :]
    if altered != token:
        with pytest.raises(BadToken):
            verify(SECRET, altered, stream_id, NOW)
    with pytest.raises(BadToken):
        verify(SECRET, token[:index], stream_id, NOW)


def test_a_token_signed_with_another_secret_fails() -> None:
    stream_id = new_stream_id()
    token = sign(b"another secret", stream_id, OWNER, NOW + 60)
    with pytest.raises(BadToken, match="not valid"):
        verify(SECRET, token, stream_id, NOW)


@given(st.text(max_size=300))
def test_any_string_is_refused_without_an_exception_other_than_bad_token(text: str) -> None:
    with pytest.raises(BadToken):
        verify(SECRET, text, "A" * 22, NOW)
