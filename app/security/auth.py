"""Request identity. With no keys configured the server is open and every
request has the empty identity; streams then belong to nobody in particular."""

from __future__ import annotations

from starlette.types import Scope

from app.settings import Settings


class Auth:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def enabled(self) -> bool:
        return self._settings.auth_enabled

    def identify(self, scope: Scope, stream_id: str | None = None) -> str:
        """The caller's identity, or Unauthorized. `stream_id`: the stream a
        signed `token` query parameter may open instead of a key."""
        return ""

    def stream_url(self, stream_id: str, owner: str) -> str:
        return f"/v1/streams/{stream_id}"
