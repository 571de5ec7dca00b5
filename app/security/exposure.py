"""Loud warnings about how this process is exposed: an open server on a
non-loopback address, and a per-process secret that other processes cannot
check tokens with.

The bind under `hypercorn asgi:app` is hypercorn's, not SLUICE_HOST, and the
lifespan does not learn it; so besides the settings checked at start-up, the
first request's local address (`scope["server"]`) is checked once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from app.settings import Settings

log = structlog.get_logger("sluice.security")


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or a wildcard: assume it is reachable


def startup_warnings(settings: Settings) -> list[str]:
    warnings = []
    if not settings.auth_enabled and not is_loopback(settings.host):
        warnings.append(
            f"auth is OFF and SLUICE_HOST={settings.host} is not loopback: anyone who can "
            "reach this address can use it; set SLUICE_API_KEYS"
        )
    if settings.secret_is_random:
        warnings.append(
            "SLUICE_SECRET is unset: signed stream URLs are signed with a random per-process "
            "secret and will not open on any other process or after a restart; set SLUICE_SECRET"
        )
    return warnings


def _log_warning(warning: str) -> None:
    log.warning("security.warning", warning=warning)


def warn_at_startup(settings: Settings, warn: Callable[[str], None] = _log_warning) -> None:
    for warning in startup_warnings(settings):
        warn(warning)


class ExposureCheck:
    """Warns once if the first request arrived on a non-loopback address while
    auth is off; after that it only passes requests through."""

    def __init__(self, app: ASGIApp, warn: Callable[[str], None] = _log_warning) -> None:
        self._app = app
        self._warn = warn
        self._checked = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._checked and scope["type"] == "http":
            self._checked = True
            self._check(scope)
        await self._app(scope, receive, send)

    def _check(self, scope: Scope) -> None:
        services = scope.get("state", {}).get("services")
        server = scope.get("server")
        if services is None or server is None or services.auth.enabled:
            return
        if not is_loopback(str(server[0])):
            self._warn(
                f"auth is OFF and this server answers on {server[0]}, which is not "
                "loopback: anyone who can reach it can use it; set SLUICE_API_KEYS"
            )
