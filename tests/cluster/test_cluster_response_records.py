"""The Responses door's records on a Redis Cluster: a `redis+cluster://` URL
gets a cluster client, and a record is found whichever shard holds its slot."""

from __future__ import annotations

import pytest

from app.resume.redis_records import RedisRecords
from app.resume.responses import ResponseRecord
from app.sse import new_stream_id
from app.wire.responses_object import ECHO_FIELDS, ResponseHead
from tests.support.redis_cluster import RedisClusterServers

pytestmark = pytest.mark.slow
ECHO = tuple((name, None) for name in ECHO_FIELDS)


async def test_records_round_trip_on_every_shard(redis_cluster: RedisClusterServers) -> None:
    records = RedisRecords(redis_cluster.url, ttl_s=60.0)
    try:
        ids = [new_stream_id() for _ in range(12)]  # spread over the three primaries
        for sid in ids:
            head = ResponseHead(sid, 1771881597, "sim/echo", False, ECHO)
            await records.put(ResponseRecord(head, "owner", True, ()))
        for sid in ids:
            found = await records.get(sid)
            assert found is not None
            assert found.head.stream_id == sid
            await records.ended(sid)
            assert await records.delete(sid)
            assert await records.get(sid) is None
    finally:
        await records.aclose()
