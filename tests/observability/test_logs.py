"""Log lines of a real server: JSON, one request id on every line of a request,
and no prompt, key or token unless SLUICE_LOG_CONTENT is on."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import structlog

from app.observability.context import accepted_request_id
from app.providers.simulated import SimulatedProvider
from app.settings import Settings
from tests.observability.capture import LogLines
from tests.support.client import read_sse
from tests.support.providers import registry_with
from tests.support.server import run_sluice

PROMPT = "zebra quartz marmalade"  # sim/echo streams it back, so the output holds it too
KEY = "sk-observability-test-key-0123456789"


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> LogLines:
    return LogLines(capsys)


def sim() -> SimulatedProvider:
    return SimulatedProvider(default_tps=0, default_ttft_ms=0)


async def test_every_line_of_a_request_carries_its_request_id(logs: LogLines) -> None:
    async with (
        run_sluice(Settings(), registry_with(sim())) as server,
        httpx.AsyncClient() as client,
    ):
        url = f"{server.url}/v1/stream?model=sim/lorem&prompt=x&max_tokens=5"
        result = await read_sse(client, url, headers={"X-Request-Id": "req-obs.42"})
        sid = result.headers["x-stream-id"]
        await logs.one("response.end", stream_id=sid)
        await logs.one("http.request", request_id="req-obs.42")

    assert result.headers["x-request-id"] == "req-obs.42"
    mine = [line for line in logs.read() if line.get("request_id") == "req-obs.42"]
    # The stream's lines in any order (the generation may end before or after
    # its reader has sent the terminal event); the request's own line is last.
    assert sorted(str(line["event"]) for line in mine[:3]) == [
        "response.end",
        "stream.end",
        "stream.start",
    ]
    assert mine[3:] == [mine[-1]]
    assert mine[-1]["event"] == "http.request"
    assert {line.get("stream_id") for line in mine[:3]} == {sid}
    request = mine[-1]
    assert (request["method"], request["path"], request["status"]) == ("GET", "/v1/stream", 200)


async def test_an_unusable_request_id_is_replaced_by_a_fresh_one(logs: LogLines) -> None:
    async with (
        run_sluice(Settings(), registry_with(sim())) as server,
        httpx.AsyncClient() as client,
    ):
        sent = {"X-Request-Id": "two words\tand a tab"}
        first = await client.get(f"{server.url}/healthz", headers=sent)
        second = await client.get(f"{server.url}/v1/models")

    fresh = first.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", fresh)
    assert re.fullmatch(r"[0-9a-f]{32}", second.headers["x-request-id"])
    assert second.headers["x-request-id"] != fresh
    (models,) = logs.named("http.request", path="/v1/models")
    assert models["request_id"] == second.headers["x-request-id"]


def test_a_request_id_is_accepted_only_when_short_and_plain() -> None:
    assert accepted_request_id(b"abc-123_x.y:z") == "abc-123_x.y:z"
    assert accepted_request_id(b"a" * 128) == "a" * 128
    assert accepted_request_id(b"a" * 129) is None
    assert accepted_request_id(b"has space") is None
    assert accepted_request_id(b"line\nbreak") is None
    assert accepted_request_id(b"") is None
    assert accepted_request_id(None) is None


async def test_prompts_keys_and_tokens_stay_out_of_the_logs(logs: LogLines) -> None:
    settings = Settings(api_keys=(KEY,))
    auth = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "sim/echo", "messages": [{"role": "user", "content": PROMPT}]}
    async with run_sluice(settings, registry_with(sim())) as server, httpx.AsyncClient() as client:
        created = await client.post(f"{server.url}/v1/streams", json=body, headers=auth)
        assert created.status_code == 201
        stream_url = created.json()["url"]
        token = parse_qs(urlsplit(stream_url).query)["token"][0]
        streamed = await read_sse(client, server.url + stream_url)
        oneshot = await read_sse(
            client, f"{server.url}/v1/stream?model=sim/echo&prompt={PROMPT}", headers=auth
        )
        chat = await client.post(
            f"{server.url}/v1/chat/completions", json={**body, "stream": False}, headers=auth
        )
        refused = await client.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer x"})
        for sid in (created.json()["id"], oneshot.headers["x-stream-id"]):
            await logs.one("stream.end", stream_id=sid)
        await logs.one("http.request", path="/v1/chat/completions")

    assert chat.status_code == 200
    assert chat.json()["choices"][0]["message"]["content"] == PROMPT  # the words did flow
    assert streamed.terminal is not None
    assert refused.status_code == 401
    assert len(logs.named("stream.start")) == 3
    text = logs.raw
    for secret in (KEY, token, "zebra", "quartz", "marmalade"):
        assert secret not in text


async def test_log_content_lets_prompts_and_output_into_the_logs(logs: LogLines) -> None:
    settings = Settings(log_content=True)
    async with run_sluice(settings, registry_with(sim())) as server, httpx.AsyncClient() as client:
        result = await read_sse(client, f"{server.url}/v1/stream?model=sim/echo&prompt={PROMPT}")
        sid = result.headers["x-stream-id"]
        end = await logs.one("stream.end", stream_id=sid)
        (start,) = logs.named("stream.start", stream_id=sid)

    assert start["messages"] == [PROMPT]
    assert end["output"] == PROMPT


def test_fields_named_after_credentials_are_masked_whatever_the_caller_passed(
    logs: LogLines,
) -> None:
    structlog.get_logger("test").info("careless", authorization=f"Bearer {KEY}", api_key=KEY)
    (line,) = logs.named("careless")
    assert line["authorization"] == line["api_key"] == "[redacted]"
    assert KEY not in logs.raw
