"""The Redis footprint measurement runs on a real Redis and gives figures: bytes per
finished stream (a paced stream's log has an entry per token, so it is the larger),
and the connections of an owner process and of a process with readers."""

from __future__ import annotations

import pytest

from bench.redis_footprint import measure_all, report
from tests.support.redis_server import running_redis

pytestmark = pytest.mark.slow


async def test_the_footprint_of_finished_streams_and_the_connections_of_two_processes() -> None:
    with running_redis() as redis:  # of its own: the measurement FLUSHALLs it
        found = await measure_all([redis.url], streams=2, tokens=200, readers=6)
    single = found["single"]
    assert single["paced"]["bytes_per_stream"] > single["unpaced"]["bytes_per_stream"] > 0
    assert 0 < single["connections"]["owner_process"] <= 64 + 4
    assert 0 < single["connections"]["reader_process"] <= 64 + 4
    assert any(line.startswith("| single |") for line in report(found))
