"""POST /v1/responses and its companions through the official `openai` SDK,
under real hypercorn; raw HTTP where the SDK hides what matters (ids, cuts)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from openai.types.responses import Response

from app.settings import Settings
from tests.support.server import RunningServer, run_sluice
from tests.support.sse_parser import SSEEvent, SSEParser

ECHO = "the quick brown fox jumps over the lazy dog"


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    # A detach grace of 0: only a background run may outlive its readers.
    async with run_sluice(Settings(sim_tps=0, heartbeat_s=0.05, detach_grace_s=0)) as running:
        yield running


@pytest.fixture
async def sdk(server: RunningServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{server.url}/v1", api_key="x", max_retries=0
    ) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def essentials(response: Response) -> tuple[object, ...]:
    usage = response.usage
    assert usage is not None
    return (response.status, response.output_text, usage.input_tokens, usage.output_tokens)


async def until_ended(sdk: openai.AsyncOpenAI, response_id: str) -> Response:
    """Poll GET /v1/responses/{id} until the run has ended (bounded: 10 s)."""
    for _ in range(500):
        response = await sdk.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress"):
            return response
        await asyncio.sleep(0.02)
    raise AssertionError(f"{response_id} did not end")


async def test_create_returns_the_whole_response(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(model="sim/echo", input=ECHO)
    assert response.id.startswith("resp_")
    assert essentials(response) == ("completed", ECHO, 9, 9)
    assert response.output[0].type == "message"


async def test_the_streamed_final_response_equals_the_non_streamed_one(
    sdk: openai.AsyncOpenAI,
) -> None:
    created = await sdk.responses.create(model="sim/echo", input=ECHO, instructions="Be brief.")
    async with sdk.responses.stream(
        model="sim/echo", input=ECHO, instructions="Be brief."
    ) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    assert essentials(final) == essentials(created)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"


async def test_heartbeats_between_events_are_ignored_by_the_sdk(
    server: RunningServer, sdk: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    # tokens come several heartbeat periods of the server (0.05 s) apart
    slow = {"sim": {"tps": 8}}
    stream = await sdk.responses.create(
        model="sim/echo", input="a b c", stream=True, extra_body=slow
    )
    assert [e.type async for e in stream][-1] == "response.completed"
    body = {"model": "sim/echo", "input": "a b c", "stream": True, **slow}
    raw = (await http.post(f"{server.url}/v1/responses", json=body)).content
    assert b"\n: ping\n" in raw
    assert b": ping\n\n" not in raw  # no blank line: the SDK would dispatch an empty event


async def test_max_output_tokens_ends_incomplete(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(model="sim/lorem", input="x", max_output_tokens=5)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None
    assert response.usage.output_tokens == 5


async def test_a_mid_stream_failure_raises_the_sdks_api_error(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.responses.create(
        model="sim/lorem", input="x", stream=True, extra_body={"sim": {"fail_after": 3}}
    )
    seen: list[str] = []

    async def consume() -> None:
        async for event in stream:
            seen.append(event.type)

    with pytest.raises(openai.APIError) as raised:
        await consume()
    assert seen.count("response.output_text.delta") == 3
    assert raised.value.code == "upstream_error"


async def test_a_background_run_with_no_reader_completes(sdk: openai.AsyncOpenAI) -> None:
    queued = await sdk.responses.create(
        model="sim/lorem",
        input="x",
        background=True,
        max_output_tokens=30,
        extra_body={"sim": {"tps": 300}},
    )
    assert queued.status in ("queued", "in_progress")
    assert queued.background is True
    ended = await until_ended(sdk, queued.id)
    assert ended.status == "incomplete"  # it ran to its token limit, unread
    assert ended.usage is not None
    assert ended.usage.output_tokens == 30


async def test_starting_after_any_k_gives_exactly_the_rest(sdk: openai.AsyncOpenAI) -> None:
    queued = await sdk.responses.create(
        model="sim/lorem", input="x", background=True, max_output_tokens=12
    )
    await until_ended(sdk, queued.id)
    full = [e.to_dict() async for e in await sdk.responses.retrieve(queued.id, stream=True)]
    assert [e["sequence_number"] for e in full] == list(range(len(full)))
    rng = random.Random(7)
    for k in [0, len(full) - 2, *rng.sample(range(len(full)), 5)]:
        rest = await sdk.responses.retrieve(queued.id, stream=True, starting_after=k)
        assert [e.to_dict() async for e in rest] == full[k + 1 :]


async def test_a_reader_starting_after_k_follows_a_live_run(sdk: openai.AsyncOpenAI) -> None:
    queued = await sdk.responses.create(
        model="sim/lorem",
        input="x",
        background=True,
        max_output_tokens=20,
        extra_body={"sim": {"tps": 100}},
    )
    live = await sdk.responses.retrieve(queued.id, stream=True, starting_after=3)
    followed = [e.to_dict() async for e in live]
    full = [e.to_dict() async for e in await sdk.responses.retrieve(queued.id, stream=True)]
    assert followed == full[4:]
    assert followed[-1]["type"] == "response.incomplete"


async def test_cancel_stops_a_background_run_and_answers_the_same_twice(
    sdk: openai.AsyncOpenAI,
) -> None:
    queued = await sdk.responses.create(
        model="sim/lorem",
        input="x",
        background=True,
        max_output_tokens=1000,
        extra_body={"sim": {"tps": 50}},
    )
    cancelled = await sdk.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    again = await sdk.responses.cancel(queued.id)
    assert again.to_dict() == cancelled.to_dict()
    events = [e async for e in await sdk.responses.retrieve(queued.id, stream=True)]
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "cancelled"


async def test_delete_forgets_the_response(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(model="sim/echo", input=ECHO)
    await sdk.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(response.id)


async def test_an_unknown_previous_response_id_is_a_404_naming_it(
    sdk: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        await sdk.responses.create(
            model="sim/echo", input="x", previous_response_id="resp_AAAAAAAAAAAAAAAAAAAAAA"
        )
    assert "resp_AAAAAAAAAAAAAAAAAAAAAA" in raised.value.message
    assert raised.value.param == "previous_response_id"


async def test_a_previous_response_id_carries_the_conversation(sdk: openai.AsyncOpenAI) -> None:
    # sim/echo answers the last user message; the history is proven upstream elsewhere.
    first = await sdk.responses.create(model="sim/echo", input="one two")
    second = await sdk.responses.create(
        model="sim/echo", input="three", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert second.output_text == "three"
    assert second.usage is not None
    assert second.usage.input_tokens == 5


async def test_a_built_in_tool_is_refused_by_name(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await sdk.responses.create(model="sim/echo", input="x", tools=[{"type": "web_search"}])
    assert "web_search" in raised.value.message


async def test_another_key_gets_404_for_a_response() -> None:
    settings = Settings(sim_tps=0, api_keys=("key-a", "key-b"))
    async with run_sluice(settings) as server:
        url = f"{server.url}/v1"
        async with (
            openai.AsyncOpenAI(base_url=url, api_key="key-a", max_retries=0) as a,
            openai.AsyncOpenAI(base_url=url, api_key="key-b", max_retries=0) as b,
        ):
            response = await a.responses.create(model="sim/echo", input=ECHO)
            for call in (b.responses.retrieve, b.responses.cancel, b.responses.delete):
                with pytest.raises(openai.NotFoundError):
                    await call(response.id)
            with pytest.raises(openai.NotFoundError):
                await b.responses.create(
                    model="sim/echo", input="x", previous_response_id=response.id
                )
            assert (await a.responses.retrieve(response.id)).status == "completed"


async def test_a_retried_post_with_last_event_id_resumes_at_any_byte(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    body = {"model": "sim/echo", "input": ECHO, "stream": True}
    whole = await http.post(f"{server.url}/v1/responses", json=body)
    full = [json.loads(e.data) for e in _parse(whole.content)]
    rng = random.Random(11)
    for cut in rng.sample(range(1, len(whole.content)), 8):
        first = await http.post(f"{server.url}/v1/responses", json=body)
        parser = SSEParser()
        parser.feed(first.content[:cut])  # what a client cut at this byte holds
        held = [json.loads(e.data) for e in parser.events]
        if parser.last_event_id is None:
            continue
        retry = await http.post(
            f"{server.url}/v1/responses",
            json=body,
            headers={"last-event-id": parser.last_event_id},
        )
        rest = [json.loads(e.data) for e in _parse(retry.content)] if retry.content else []
        assert retry.status_code in (200, 204)
        assert _without_ids(held + rest) == _without_ids(full)


def _parse(body: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    parser.feed(body)
    return list(parser.events)


def _without_ids(events: list[dict[str, object]]) -> str:
    """Two runs of the same request differ only in their ids and times."""
    text = json.dumps(events)
    for event in events:
        response = event.get("response")
        if isinstance(response, dict):
            text = text.replace(str(response["id"])[5:], "SID")
            text = text.replace(str(response["created_at"]), "T")
    return text


async def test_a_background_run_holds_its_keys_stream_slot_until_it_ends() -> None:
    settings = Settings(sim_tps=0, api_keys=("key-a",), max_streams_per_key=1)
    async with (
        run_sluice(settings) as server,
        openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="key-a", max_retries=0) as sdk,
    ):
        running = await sdk.responses.create(
            model="sim/lorem",
            input="x",
            background=True,
            max_output_tokens=2000,
            extra_body={"sim": {"tps": 50}},
        )
        with pytest.raises(openai.RateLimitError):
            await sdk.responses.create(model="sim/echo", input=ECHO)
        await sdk.responses.cancel(running.id)
        assert (await sdk.responses.create(model="sim/echo", input=ECHO)).status == "completed"
