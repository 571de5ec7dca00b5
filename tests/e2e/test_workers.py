"""Several hypercorn workers (`hypercorn -w 2`, as `make serve-prod` runs them) share
streams through Redis: a reconnect that another worker accepts resumes exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from app.providers.simulated import lorem_tokens
from tests.support.client import SSEResponse, read_sse, transcript
from tests.support.redis_server import RedisServer
from tests.support.sluice_process import SluiceProcess, sluice_processes

pytestmark = pytest.mark.slow

TOKENS = 12
ATTEMPTS = 30  # streams tried until one was resumed by another worker


@pytest.fixture
async def workers(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[SluiceProcess]:
    env = {"SLUICE_REDIS_URL": redis_server.url, "SLUICE_SECRET": "workers-e2e-shared-secret"}
    async with sluice_processes(tmp_path, env, workers=2) as (supervisor,):
        yield supervisor


async def cut_and_resume(url: str, tag: str) -> list[SSEResponse]:
    """Read 3 events, drop the connection, resume on a new one (its own client:
    a fresh TCP connection, which either worker may accept)."""
    responses: list[SSEResponse] = []
    for _ in range(2):
        async with httpx.AsyncClient(timeout=30) as client:
            headers = {"X-Request-Tag": tag}
            if responses:
                headers["Last-Event-ID"] = str(responses[-1].events[-1].id)
            stop = None if responses else 3
            responses.append(await read_sse(client, url, headers=headers, stop_after=stop))
    return responses


async def pids_of(supervisor: SluiceProcess, tag: str) -> list[int]:
    """The worker pid of each of the two responses (logged when each ends)."""
    for _ in range(250):
        pids = [s.pid for s in supervisor.served() if s.tag == tag]
        if len(pids) >= 2:
            return pids
        await asyncio.sleep(0.02)
    raise AssertionError(f"access log has no two responses tagged {tag}")


async def test_reconnect_accepted_by_another_worker_resumes_the_exact_stream(
    workers: SluiceProcess,
) -> None:
    query = urlencode({"model": "sim/lorem", "prompt": "w", "max_tokens": TOKENS, "sim_tps": 40})
    expected = "".join(lorem_tokens(TOKENS))
    crossed = 0
    for attempt in range(ATTEMPTS):
        tag = f"attempt-{attempt}"
        responses = await cut_and_resume(f"{workers.url}/v1/stream?{query}", tag)
        stream_id = responses[0].headers["x-stream-id"]
        events = [e for r in responses for e in r.events]
        assert [r.status for r in responses] == [200, 200]
        assert [e.id for e in events] == [f"{stream_id}:{s}" for s in range(1, TOKENS + 2)]
        assert transcript(events) == expected
        assert events[-1].event == "done"
        first, second = await pids_of(workers, tag)
        crossed += first != second
        if crossed:
            break
    assert crossed == 1
    assert len({s.pid for s in workers.served()}) == 2
