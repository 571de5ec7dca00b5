"""POST /v1/chat/completions and GET /v1/models through the official `openai`
SDK, and raw HTTP where the SDK hides what matters (ids, cuts, resume)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from app.settings import Settings
from tests.support.server import RunningServer, run_sluice
from tests.support.sse_parser import SSEEvent, SSEParser

ECHO = "the quick brown fox jumps over the lazy dog"
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": ECHO}]


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with run_sluice(Settings(sim_tps=0, heartbeat_s=0.05)) as running:
        yield running


@pytest.fixture
async def sdk(server: RunningServer) -> AsyncIterator[openai.AsyncOpenAI]:
    # No SDK retries: every failure must surface exactly as Sluice sent it.
    async with openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key="x", max_retries=0
    ) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def chat_body(**extra: object) -> dict[str, object]:
    return {"model": "sim/lorem", "messages": MESSAGES, "stream": True, **extra}


def content_of(events: list[SSEEvent]) -> str:
    text = ""
    for event in events:
        if event.data == "[DONE]":
            continue
        for choice in json.loads(event.data)["choices"]:
            text += choice["delta"].get("content") or ""
    return text


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll a condition the test cannot await directly (bounded: 10 s)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never became true")


# ---- the SDK, unchanged ----------------------------------------------------


async def test_sdk_streams_role_content_and_finish_without_usage(
    sdk: openai.AsyncOpenAI,
) -> None:
    stream = await sdk.chat.completions.create(model="sim/echo", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ECHO
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.usage is None for c in chunks)
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].id.startswith("chatcmpl-")
    assert {c.model for c in chunks} == {"sim/echo"}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}


async def test_sdk_stream_with_include_usage_ends_with_a_usage_chunk(
    sdk: openai.AsyncOpenAI,
) -> None:
    stream = await sdk.chat.completions.create(
        model="sim/echo",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (9, 9)
    assert last.usage.total_tokens == 18
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ECHO


async def test_sdk_non_streaming_returns_a_whole_completion(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(model="sim/echo", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "sim/echo"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == ECHO
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 9)


async def test_sdk_extra_body_sim_and_max_tokens_shape_the_answer(
    sdk: openai.AsyncOpenAI,
) -> None:
    completion = await sdk.chat.completions.create(
        model="sim/lorem",
        messages=MESSAGES,
        max_completion_tokens=5,
        extra_body={"sim": {"tps": 0, "ttft_ms": 20}},
    )
    assert completion.choices[0].message.content == "Lorem ipsum dolor sit amet"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5


async def test_heartbeat_comments_are_ignored_by_the_sdk(
    server: RunningServer, sdk: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    # the first token comes after several heartbeat periods of the server (0.05 s)
    slow = {"sim": {"ttft_ms": 300}}
    stream = await sdk.chat.completions.create(
        model="sim/echo", messages=MESSAGES, stream=True, extra_body=slow
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == ECHO
    raw = await http.post(f"{server.url}/v1/chat/completions", json=chat_body(**slow))
    assert b"\n: ping\n\n" in b"\n" + raw.content


async def test_mid_stream_error_raises_the_sdks_api_error(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="sim/echo", messages=MESSAGES, stream=True, extra_body={"sim": {"fail_after": 3}}
    )
    texts: list[str] = []

    async def consume() -> None:
        async for chunk in stream:
            texts.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError) as raised:
        await consume()
    assert not isinstance(raised.value, openai.APIStatusError)
    assert "".join(texts) == "the quick brown"
    assert raised.value.type == "upstream_error"
    assert "simulated upstream failure" in raised.value.message


async def test_non_streaming_upstream_error_is_an_http_status(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        await sdk.chat.completions.create(
            model="sim/echo", messages=MESSAGES, extra_body={"sim": {"fail_after": 2}}
        )
    assert raised.value.status_code == 502
    assert raised.value.type == "upstream_error"


async def test_sdk_lists_every_configured_model(sdk: openai.AsyncOpenAI) -> None:
    page = await sdk.models.list()
    assert [m.id for m in page.data] == ["sim/echo", "sim/lorem"]
    assert {m.object for m in page.data} == {"model"}
    assert {m.owned_by for m in page.data} == {"sim"}


# ---- errors before the first byte -------------------------------------------


async def test_unknown_model_is_the_sdks_not_found_error(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        await sdk.chat.completions.create(model="sim/nope", messages=MESSAGES, stream=True)
    assert raised.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
            "tools[0].function.parameters",
        ),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                        ],
                    }
                ]
            },
            "messages[0].content",
        ),
        ({"logprobs": True}, "logprobs"),
        ({"frobnicate": True}, "frobnicate"),
    ],
)
async def test_unsupported_fields_are_the_sdks_bad_request_error(
    sdk: openai.AsyncOpenAI, extra: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await sdk.chat.completions.create(model="sim/echo", messages=MESSAGES, extra_body=extra)
    assert raised.value.param == param
    assert raised.value.type == "invalid_request"
    assert isinstance(raised.value.body, dict)
    assert set(raised.value.body) == {"message", "type", "param", "code"}
    assert param in str(raised.value.body["message"])


async def test_malformed_json_is_a_400_with_openais_error_body(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        f"{server.url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


# ---- raw HTTP: ids, headers, resume -----------------------------------------


async def read_events(
    http: httpx.AsyncClient,
    url: str,
    body: dict[str, object],
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
) -> tuple[httpx.Response, list[SSEEvent]]:
    """POST and parse the SSE body; with `stop_after`, cut the connection then."""
    parser = SSEParser()
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r:
        async for piece in r.aiter_raw():
            parser.feed(piece)
            if stop_after is not None and len(parser.events) >= stop_after:
                break
    return r, parser.events


async def test_stream_headers_and_an_event_id_on_every_block(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    response, events = await read_events(http, server.url, chat_body(max_tokens=4))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    sid = response.headers["x-stream-id"]
    ids = [e.id for e in events]
    assert ids == [
        f"{sid}:1",
        f"{sid}:1",
        f"{sid}:2",
        f"{sid}:3",
        f"{sid}:4",
        f"{sid}:5",
        f"{sid}:5",
    ]
    assert events[-1].data == "[DONE]"
    assert json.loads(events[0].data)["id"] == f"chatcmpl-{sid}"


async def test_a_retried_post_with_last_event_id_resumes_the_same_stream(
    http: httpx.AsyncClient,
) -> None:
    # paced, so the cut lands while the generation is still running
    async with run_sluice(Settings(sim_tps=200)) as server:
        body = chat_body(max_tokens=40, stream_options={"include_usage": True})
        _, whole = await read_events(http, server.url, body)
        first, head = await read_events(http, server.url, body, stop_after=6)
        sid = first.headers["x-stream-id"]
        last_id = head[-1].id
        assert last_id is not None
        second, tail = await read_events(http, server.url, body, headers={"Last-Event-ID": last_id})
        generation = server.services.generations.local(sid)
        assert generation is not None
        assert generation.stats.attaches == 2  # resumed, not generated again
    assert second.status_code == 200
    assert second.headers["x-stream-id"] == sid
    assert all('"role"' not in e.data for e in tail), "the role chunk is never repeated"
    assert content_of(head) + content_of(tail) == content_of(whole)
    assert len(content_of(whole).split()) == 40
    assert tail[-1].data == "[DONE]"
    assert json.loads(tail[-2].data)["usage"]["completion_tokens"] == 40


async def test_resume_by_query_parameter_after_the_end_is_204(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    first, events = await read_events(http, server.url, chat_body(max_tokens=3))
    last_id = events[-1].id
    response = await http.post(
        f"{server.url}/v1/chat/completions",
        params={"last_event_id": str(last_id)},
        json=chat_body(max_tokens=3),
    )
    assert response.status_code == 204
    assert response.content == b""
    assert first.status_code == 200


@pytest.mark.parametrize(
    ("last_event_id", "body", "status"),
    [
        ("AAAAAAAAAAAAAAAAAAAAAA:1", chat_body(), 404),
        ("no-colon", chat_body(), 400),
        (None, chat_body(model="sim/echo"), 400),  # another model than the stream's
        (None, chat_body(stream=False), 400),  # resume needs stream: true
    ],
)
async def test_a_resume_that_names_no_usable_stream_is_refused(
    server: RunningServer,
    http: httpx.AsyncClient,
    last_event_id: str | None,
    body: dict[str, object],
    status: int,
) -> None:
    if last_event_id is None:
        first, _ = await read_events(http, server.url, chat_body(max_tokens=3))
        last_event_id = f"{first.headers['x-stream-id']}:1"
    response = await http.post(
        f"{server.url}/v1/chat/completions", json=body, headers={"Last-Event-ID": last_event_id}
    )
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_a_long_non_streaming_answer_is_not_held_back_by_the_credit_window(
    sdk: openai.AsyncOpenAI,
) -> None:
    completion = await sdk.chat.completions.create(
        model="sim/lorem", messages=MESSAGES, max_tokens=300
    )
    assert len((completion.choices[0].message.content or "").split()) == 300


async def test_a_non_streaming_client_that_leaves_releases_its_generation(
    http: httpx.AsyncClient,
) -> None:
    async with run_sluice(Settings(sim_tps=0, detach_grace_s=0)) as server:
        body = chat_body(stream=False, sim={"ttft_ms": 60_000})
        request = asyncio.create_task(http.post(f"{server.url}/v1/chat/completions", json=body))
        generations = server.services.generations
        await eventually(lambda: any(g.readers for g in generations.running()))
        [generation] = generations.running()
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await request
        await generation.wait_ended()
        assert generation.stats.outcome == "abandoned"


async def test_an_option_the_provider_would_drop_is_refused_by_name() -> None:
    async with run_sluice(Settings()) as server, httpx.AsyncClient() as http:
        body = {
            "model": "anthropic/claude-x",
            "messages": [{"role": "user", "content": "hi"}],
            "seed": 7,  # Anthropic has no seed: dropping it would change the answer
        }
        response = await http.post(f"{server.url}/v1/chat/completions", json=body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == "seed"
        assert "anthropic/claude-x" in error["message"]


@pytest.mark.parametrize("cut", [2, 4, 7])
async def test_a_retried_post_resumes_inside_a_tool_calls_arguments(
    http: httpx.AsyncClient, cut: int
) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    sim = {"tps": 200, "tool_calls": 2, "fragment": 4}
    body = chat_body(model="sim/echo", tools=[tool], sim=sim)
    async with run_sluice() as server:
        reference, whole = await read_events(http, server.url, body)
        first, head = await read_events(http, server.url, body, stop_after=cut)
        last_id = head[-1].id
        assert last_id is not None
        _, tail = await read_events(http, server.url, body, headers={"Last-Event-ID": last_id})

    def same(events: list[SSEEvent], sid: str) -> list[tuple[str | None, str]]:
        # Two generations of one request differ only in their stream id (and `created`).
        return [
            ((e.id or "").replace(sid, "S"), re.sub(r'"created":\d+', "", e.data.replace(sid, "S")))
            for e in events
        ]

    resumed = same(head + tail, first.headers["x-stream-id"])
    assert resumed == same(whole, reference.headers["x-stream-id"])
    assert sum('"tool_calls"' in e.data for e in whole) > cut
