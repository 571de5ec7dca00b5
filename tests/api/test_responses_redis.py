"""Responses across two Sluice instances sharing a private Redis: a response
created on one is read, resumed, continued and cancelled through the other."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator

import openai
import pytest

from app.settings import Settings
from tests.api.test_responses import until_ended
from tests.support.redis_server import RedisServer, redis_server
from tests.support.server import run_sluice

__all__ = ["redis_server"]


@pytest.fixture
async def pair(redis_server: RedisServer) -> AsyncIterator[tuple[openai.AsyncOpenAI, ...]]:
    settings = Settings(sim_tps=0, redis_url=redis_server.url, lease_ttl_s=1.0)
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            server = await stack.enter_async_context(run_sluice(settings))
            client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
            clients.append(await stack.enter_async_context(client))
        yield tuple(clients)


async def test_starting_after_on_another_process_gives_exactly_the_rest(
    pair: tuple[openai.AsyncOpenAI, ...],
) -> None:
    a, b = pair
    queued = await a.responses.create(
        model="sim/lorem", input="x", background=True, max_output_tokens=15
    )
    await until_ended(b, queued.id)
    full = [e.to_dict() async for e in await a.responses.retrieve(queued.id, stream=True)]
    rng = random.Random(5)
    for k in [0, len(full) - 2, *rng.sample(range(len(full)), 4)]:
        rest = await b.responses.retrieve(queued.id, stream=True, starting_after=k)
        assert [e.to_dict() async for e in rest] == full[k + 1 :]


async def test_a_live_run_is_followed_from_another_process(
    pair: tuple[openai.AsyncOpenAI, ...],
) -> None:
    a, b = pair
    queued = await a.responses.create(
        model="sim/lorem",
        input="x",
        background=True,
        max_output_tokens=20,
        extra_body={"sim": {"tps": 100}},
    )
    followed = [
        e.to_dict()
        async for e in await b.responses.retrieve(queued.id, stream=True, starting_after=2)
    ]
    full = [e.to_dict() async for e in await a.responses.retrieve(queued.id, stream=True)]
    assert followed == full[3:]
    assert (await b.responses.retrieve(queued.id)).to_dict() == (
        await a.responses.retrieve(queued.id)
    ).to_dict()


async def test_a_conversation_and_a_cancel_cross_processes(
    pair: tuple[openai.AsyncOpenAI, ...],
) -> None:
    a, b = pair
    first = await a.responses.create(model="sim/echo", input="one two")
    second = await b.responses.create(
        model="sim/echo", input="three", previous_response_id=first.id
    )
    assert second.usage is not None
    assert second.usage.input_tokens == 5  # "one two" + the answer "one two" + "three"
    running = await a.responses.create(
        model="sim/lorem",
        input="x",
        background=True,
        max_output_tokens=2000,
        extra_body={"sim": {"tps": 50}},
    )
    cancelled = await b.responses.cancel(running.id)
    assert cancelled.status == "cancelled"
    assert (await a.responses.retrieve(running.id)).status == "cancelled"
    await b.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await a.responses.retrieve(first.id)
