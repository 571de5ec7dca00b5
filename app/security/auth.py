"""Request identity: API keys (`Authorization: Bearer`, or `x-api-key` as Anthropic's
clients send it) and signed stream tokens.

With no keys configured the server is open and every request has the empty
identity; streams then belong to nobody in particular. With keys, every /v1
request needs a key, except a stream GET carrying a valid signed `token`
(EventSource cannot send headers). Keys and tokens are never logged and
never echoed in an error message.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from urllib.parse import quote

from starlette.types import Scope

from app.errors import Unauthorized
from app.http_io import header, query_params
from app.security.keys import KeyRing
from app.security.signing import BadToken, sign, verify
from app.settings import Settings

Clock = Callable[[], float]


class Auth:
    def __init__(self, settings: Settings, clock: Clock = time.time) -> None:
        self._settings = settings
        self._keys = KeyRing(settings.api_keys)
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return len(self._keys) > 0

    def identify(self, scope: Scope, stream_id: str | None = None) -> str:
        """The caller's identity, or Unauthorized. `stream_id`: the stream a
        signed `token` query parameter may open instead of a key."""
        if not self.enabled:
            return ""
        authorization = header(scope, b"authorization")
        if authorization is not None:
            return self._bearer(authorization)
        api_key = header(scope, b"x-api-key")  # how Anthropic's clients send a key
        if api_key is not None:
            return self._key(api_key)
        token = query_params(scope).get("token") if stream_id is not None else None
        if token is not None and stream_id is not None:
            return self._token(token, stream_id)
        raise Unauthorized(
            "this endpoint needs an API key: send 'Authorization: Bearer <key>'",
            code="missing_api_key",
        )

    def _bearer(self, authorization: str) -> str:
        scheme, _, key = authorization.strip().partition(" ")
        identity = None
        if scheme.lower() == "bearer" and key.strip():
            identity = self._keys.identify(key.strip().encode("latin-1"))
        if identity is None:
            raise Unauthorized(
                "the Authorization header does not carry a valid API key",
                code="invalid_api_key",
            )
        return identity

    def _key(self, api_key: str) -> str:
        identity = self._keys.identify(api_key.strip().encode("latin-1")) if api_key else None
        if identity is None:
            raise Unauthorized(
                "the x-api-key header does not carry a valid API key", code="invalid_api_key"
            )
        return identity

    def _token(self, token: str, stream_id: str) -> str:
        try:
            return verify(self._settings.secret, token, stream_id, self._clock())
        except BadToken as exc:
            raise Unauthorized(str(exc), param="token", code="invalid_token") from None

    def stream_url(self, stream_id: str, owner: str) -> str:
        """The stream's path; with auth on it carries a token that opens it for
        `token_ttl_s` without a key."""
        path = f"/v1/streams/{stream_id}"
        if not self.enabled:
            return path
        expires = math.ceil(self._clock() + self._settings.token_ttl_s)
        token = sign(self._settings.secret, stream_id, owner, expires)
        return f"{path}?token={quote(token, safe='')}"
