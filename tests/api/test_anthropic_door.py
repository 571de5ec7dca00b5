"""POST /v1/messages through the official `anthropic` SDK, and raw HTTP where the SDK
hides what matters (headers, ids, pings, cuts and resume), against the simulated model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from app.settings import Settings
from tests.support.server import RunningServer, run_sluice
from tests.support.sse_parser import SSEEvent, SSEParser

ECHO = "the quick brown fox jumps over the lazy dog"
VERSION = {"anthropic-version": "2023-06-01"}


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with run_sluice(Settings(sim_tps=0, heartbeat_s=0.05)) as running:
        yield running


@pytest.fixture
async def sdk(server: RunningServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    # No SDK retries: every failure must surface exactly as Sluice sent it.
    async with anthropic.AsyncAnthropic(base_url=server.url, api_key="x", max_retries=0) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def messages_body(**extra: object) -> dict[str, object]:
    return {
        "model": "sim/echo",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": ECHO}],
        "stream": True,
        **extra,
    }


async def read_events(
    http: httpx.AsyncClient,
    url: str,
    body: dict[str, object],
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
) -> tuple[httpx.Response, list[SSEEvent]]:
    """POST and parse the SSE body; with `stop_after`, cut the connection then."""
    parser = SSEParser()
    sent = {**VERSION, **(headers or {})}
    async with http.stream("POST", f"{url}/v1/messages", json=body, headers=sent) as response:
        async for piece in response.aiter_raw():
            parser.feed(piece)
            if stop_after is not None and len(parser.events) >= stop_after:
                break
    return response, parser.events


def accumulated(events: list[SSEEvent]) -> dict[str, Any]:
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in events:
        if event.event not in ("ping", "message_stop"):
            data = json.loads(event.data)
            snapshot = accumulate_event(event=data, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None
    dumped: dict[str, Any] = snapshot.model_dump(mode="json")
    return dumped


def blocks(message: anthropic.types.Message) -> list[dict[str, Any]]:
    """Content blocks as data: the stream helper's blocks are subclasses with extra
    fields of their own (`parsed_output`), which a non-streamed answer lacks."""
    return [
        block.model_dump(mode="json", exclude_none=True, exclude={"parsed_output"})
        for block in message.content
    ]


# ---- the SDK, unchanged ----------------------------------------------------


async def test_sdk_stream_final_message_equals_the_non_streamed_answer(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": ECHO}]
    async with sdk.messages.stream(model="sim/echo", max_tokens=64, messages=messages) as stream:
        texts = [text async for text in stream.text_stream]
        streamed = await stream.get_final_message()
    created = await sdk.messages.create(model="sim/echo", max_tokens=64, messages=messages)
    assert "".join(texts) == ECHO
    assert blocks(streamed) == blocks(created)
    assert [block.type for block in created.content] == ["text"]
    assert created.content[0].text == ECHO  # type: ignore[union-attr]
    assert streamed.stop_reason == created.stop_reason == "end_turn"
    assert streamed.usage.input_tokens == created.usage.input_tokens == 9
    assert streamed.usage.output_tokens == created.usage.output_tokens == 9
    assert streamed.model == created.model == "sim/echo"
    assert created.id.startswith("msg_")
    assert created.role == "assistant"


async def test_max_tokens_reached_is_stop_reason_max_tokens(sdk: anthropic.AsyncAnthropic) -> None:
    created = await sdk.messages.create(
        model="sim/lorem", max_tokens=5, messages=[{"role": "user", "content": "go"}]
    )
    assert created.stop_reason == "max_tokens"
    assert created.usage.output_tokens == 5


async def test_mid_stream_failure_is_the_sdks_stream_error_not_a_message(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    texts: list[str] = []

    async def consume() -> anthropic.types.Message:
        async with sdk.messages.stream(
            model="sim/lorem",
            max_tokens=50,
            messages=[{"role": "user", "content": "go"}],
            extra_body={"sim": {"fail_after": 3}},
        ) as stream:
            async for text in stream.text_stream:
                texts.append(text)
            return await stream.get_final_message()

    with pytest.raises(anthropic.APIStatusError) as raised:
        await consume()
    assert len(texts) == 3
    assert raised.value.status_code == 200  # what the SDK reports for an `event: error`
    assert raised.value.type == "api_error"


async def test_non_streamed_failure_is_an_error_status_with_anthropics_body(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.InternalServerError) as raised:
        await sdk.messages.create(
            model="sim/lorem",
            max_tokens=50,
            messages=[{"role": "user", "content": "go"}],
            extra_body={"sim": {"fail_after": 3}},
        )
    assert raised.value.status_code == 500
    assert raised.value.body["type"] == "error"  # type: ignore[index]
    assert raised.value.body["error"]["type"] == "api_error"  # type: ignore[index]


async def test_unknown_model_is_the_sdks_not_found_error(sdk: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as raised:
        await sdk.messages.create(
            model="nope/x", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


async def test_a_field_the_provider_cannot_honour_is_named_in_anthropics_body(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        await sdk.messages.create(
            model="sim/echo",
            max_tokens=4096,
            messages=[{"role": "user", "content": "hi"}],
            thinking={"type": "enabled", "budget_tokens": 2048},
        )
    body: dict[str, Any] = raised.value.body  # type: ignore[assignment]
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "'thinking'" in body["error"]["message"]
    assert "sim/echo" in body["error"]["message"]


async def test_an_unknown_field_is_named_in_anthropics_body(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        await sdk.messages.create(
            model="sim/echo",
            max_tokens=64,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"frequency_penalty": 1},
        )
    assert "frequency_penalty" in raised.value.body["error"]["message"]  # type: ignore[index]


async def test_anthropic_version_header_is_required(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    response = await http.post(f"{server.url}/v1/messages", json=messages_body())
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "anthropic-version: header is required",
        },
    }


async def test_count_tokens_for_a_model_that_is_not_anthropics_names_it(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        await sdk.messages.count_tokens(
            model="sim/echo", messages=[{"role": "user", "content": "hi"}]
        )
    assert "'sim/echo'" in raised.value.body["error"]["message"]  # type: ignore[index]


async def test_keys_are_taken_from_x_api_key_and_from_bearer(http: httpx.AsyncClient) -> None:
    async with run_sluice(Settings(sim_tps=0, api_keys=("k-1",))) as server:
        messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "hi"}]
        async with anthropic.AsyncAnthropic(
            base_url=server.url, api_key="k-1", max_retries=0
        ) as keyed:
            created = await keyed.messages.create(model="sim/echo", max_tokens=8, messages=messages)
        async with anthropic.AsyncAnthropic(
            base_url=server.url, auth_token="k-1", max_retries=0
        ) as bearer:
            again = await bearer.messages.create(model="sim/echo", max_tokens=8, messages=messages)
        async with anthropic.AsyncAnthropic(
            base_url=server.url, api_key="wrong", max_retries=0
        ) as wrong:
            with pytest.raises(anthropic.AuthenticationError) as raised:
                await wrong.messages.create(model="sim/echo", max_tokens=8, messages=messages)
    assert created.content == again.content
    assert raised.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


# ---- raw HTTP: headers, ids, pings, resume -----------------------------------


async def test_stream_starts_with_message_start_named_by_the_stream(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    response, events = await read_events(http, server.url, messages_body())
    sid = response.headers["x-stream-id"]
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert events[0].event == "message_start"
    assert events[0].id == f"{sid}:0"
    assert json.loads(events[0].data)["message"]["id"] == f"msg_{sid}"
    assert [e.event for e in events[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    terminal = ECHO.count(" ") + 2  # one event per word, then the done event
    assert [e.id for e in events[-3:]] == [
        f"{sid}:{terminal}",
        f"{sid}:{terminal}.1",
        f"{sid}:{terminal}.2",
    ]
    assert accumulated(events)["content"][0]["text"] == ECHO


async def test_pings_are_anthropics_ping_events_while_waiting(http: httpx.AsyncClient) -> None:
    async with run_sluice(Settings(sim_tps=0, sim_ttft_ms=400, heartbeat_s=0.05)) as server:
        _, events = await read_events(http, server.url, messages_body())
    names = [e.event for e in events]
    first_content = names.index("content_block_start")
    assert names[:2] == ["message_start", "ping"]
    assert names[1:first_content].count("ping") >= 2  # the heartbeat, not only the first ping
    assert all(json.loads(e.data) == {"type": "ping"} for e in events if e.event == "ping")


async def test_a_retried_post_with_last_event_id_resumes_exactly(http: httpx.AsyncClient) -> None:
    # paced, so the cut lands while the generation is still running
    async with run_sluice(Settings(sim_tps=200)) as server:
        body = messages_body(model="sim/lorem", max_tokens=40)
        first, head = await read_events(http, server.url, body, stop_after=6)
        sid = first.headers["x-stream-id"]
        last_id = head[-1].id
        assert last_id is not None
        second, tail = await read_events(http, server.url, body, {"Last-Event-ID": last_id})
        _, from_start = await read_events(http, server.url, body, {"Last-Event-ID": f"{sid}:0"})
        generation = server.services.generations.local(sid)
        assert generation is not None
        assert generation.stats.attaches == 3  # resumed, never generated again
    assert second.headers["x-stream-id"] == sid
    assert "message_start" not in [e.event for e in tail]
    whole = head[:1] + [e for e in from_start if e.event != "ping"]
    joined = [e for e in head + tail if e.event != "ping"]
    assert [(e.event, e.data) for e in joined] == [(e.event, e.data) for e in whole]
    message = accumulated(joined)
    assert len(message["content"][0]["text"].split()) == 40
    assert message["stop_reason"] == "max_tokens"


async def test_a_resume_inside_the_last_event_sends_its_rest_and_after_it_204(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    _, events = await read_events(http, server.url, messages_body())
    delta_id, stop_id = events[-2].id, events[-1].id
    assert delta_id is not None
    assert stop_id is not None
    assert delta_id.endswith(".1")
    _, rest = await read_events(http, server.url, messages_body(), {"Last-Event-ID": delta_id})
    assert [(e.event, e.id) for e in rest] == [("message_stop", stop_id)]
    response = await http.post(
        f"{server.url}/v1/messages",
        json=messages_body(),
        headers={**VERSION, "Last-Event-ID": stop_id},
    )
    assert response.status_code == 204
    beyond = await http.post(
        f"{server.url}/v1/messages",
        json=messages_body(),
        headers={**VERSION, "Last-Event-ID": stop_id[:-1] + "3"},
    )
    assert beyond.status_code == 400
    assert beyond.json()["error"]["type"] == "invalid_request_error"


async def test_a_stream_is_its_keys_another_key_cannot_resume_it(http: httpx.AsyncClient) -> None:
    async with run_sluice(Settings(sim_tps=0, api_keys=("k-1", "k-2"))) as server:
        first, events = await read_events(http, server.url, messages_body(), {"x-api-key": "k-1"})
        last_id = events[3].id
        assert last_id is not None
        other = await http.post(
            f"{server.url}/v1/messages",
            json=messages_body(),
            headers={**VERSION, "x-api-key": "k-2", "Last-Event-ID": last_id},
        )
        _, rest = await read_events(
            http, server.url, messages_body(), {"x-api-key": "k-1", "Last-Event-ID": last_id}
        )
    assert first.status_code == 200
    assert other.status_code == 404
    assert other.json()["error"]["type"] == "not_found_error"
    assert [e.event for e in rest][-1] == "message_stop"


async def test_the_per_key_stream_cap_is_anthropics_rate_limit_error(
    http: httpx.AsyncClient,
) -> None:
    async with run_sluice(Settings(sim_tps=5, max_streams_per_key=1)) as server:
        body = messages_body(model="sim/lorem", max_tokens=50)
        async with http.stream(
            "POST", f"{server.url}/v1/messages", json=body, headers=VERSION
        ) as running:
            assert running.status_code == 200
            refused = await http.post(f"{server.url}/v1/messages", json=body, headers=VERSION)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert int(refused.headers["retry-after"]) >= 1
