"""Signed stream URLs: a token that opens one stream, for its owner, until a time. Pure.

    token = "<expires>.<owner>.<mac>"
    mac   = base64url(HMAC-SHA256(secret, "<stream_id>\\n<owner>\\n<expires>"))

The stream id is not in the token but in the MAC, so a token presented on
another stream's URL fails like an altered one. `expires` is unix seconds, so
every process sharing the secret agrees on it. The owner is an identity
(`key_<hex>`), never a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_MAX_TOKEN = 256


class BadToken(ValueError):
    """A token that does not open this stream; the message says why, without secrets."""


def _mac(secret: bytes, stream_id: str, owner: str, expires: int) -> str:
    message = f"{stream_id}\n{owner}\n{expires}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: bytes, stream_id: str, owner: str, expires: int) -> str:
    if "." in owner:
        raise ValueError("an owner identity cannot contain '.'")
    return f"{expires}.{owner}.{_mac(secret, stream_id, owner, expires)}"


def verify(secret: bytes, token: str, stream_id: str, now: float) -> str:
    """The owner the token speaks for; BadToken if it is malformed, altered,
    made for another stream, or expired."""
    parts = token.split(".") if len(token) <= _MAX_TOKEN else []
    if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit():
        raise BadToken("the token is malformed")
    expires_text, owner, mac = parts
    expected = _mac(secret, stream_id, owner, int(expires_text))
    if not hmac.compare_digest(mac.encode("utf-8", "replace"), expected.encode()):
        raise BadToken("the token is not valid for this stream")
    if now >= int(expires_text):
        raise BadToken("the token has expired; ask for a new stream URL")
    return owner
