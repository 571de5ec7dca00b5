"""Loud start-up warnings: open server on a reachable address, per-process secret."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.security.exposure import ExposureCheck, is_loopback, startup_warnings
from app.settings import Settings


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.org", False),
        ("", False),
    ],
)
def test_loopback_addresses_are_told_apart(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_open_server_on_a_reachable_host_is_warned_about() -> None:
    warnings = startup_warnings(Settings(host="0.0.0.0", secret=b"s", secret_is_random=False))
    assert len(warnings) == 1
    assert "auth is OFF" in warnings[0]


def test_no_warning_on_loopback_with_a_shared_secret() -> None:
    assert startup_warnings(Settings(host="127.0.0.1", secret_is_random=False)) == []
    keyed = Settings(host="0.0.0.0", api_keys=("k",), secret_is_random=False)
    assert startup_warnings(keyed) == []


def test_a_random_secret_is_warned_about() -> None:
    warnings = startup_warnings(Settings(api_keys=("k",)))
    assert len(warnings) == 1
    assert "SLUICE_SECRET" in warnings[0]


@dataclass
class _Auth:
    enabled: bool


@dataclass
class _Services:
    auth: _Auth


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    return None


async def _receive() -> Message:
    return {"type": "http.disconnect"}


async def _send(message: Message) -> None:
    return None


def _scope(server: str, auth: bool) -> Scope:
    return {"type": "http", "server": (server, 8000), "state": {"services": _Services(_Auth(auth))}}


async def test_the_first_request_on_a_reachable_address_warns_once_when_open() -> None:
    said: list[str] = []
    check = ExposureCheck(_ok, warn=said.append)
    await check(_scope("10.1.2.3", auth=False), _receive, _send)
    await check(_scope("10.1.2.3", auth=False), _receive, _send)
    assert len(said) == 1
    assert "10.1.2.3" in said[0]


@pytest.mark.parametrize(("server", "auth"), [("127.0.0.1", False), ("10.1.2.3", True)])
async def test_no_warning_on_loopback_or_with_keys(server: str, auth: bool) -> None:
    said: list[str] = []
    await ExposureCheck(_ok, warn=said.append)(_scope(server, auth), _receive, _send)
    assert said == []
