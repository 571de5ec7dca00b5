"""What the Redis resume store costs Redis: memory per finished stream, and
connections per Sluice process, on a single Redis and on a Redis Cluster.

Measured in this process with the store Sluice itself runs (app/resume/): an
owner `RedisStore` writes `streams` finished streams of `tokens` tokens each,
in two shapes — paced (a token every few ms: one log entry per token, what a
client reading an LLM at 20-100 tokens/s costs, the worst case) and unpaced
(every token buffered at once: a few entries of many tokens) — then each
stream's keys are sized with `MEMORY USAGE <key> SAMPLES 0` (exact), beside the
growth of `used_memory` over all primaries. Connections: `connected_clients`
over every node, before and after an owner store writes `streams` running
streams, and after a second store (another process, as far as Redis can tell)
follows them with `readers` readers.

`bench/run.py` calls `measure_all` on its private Redis and cluster after its
rounds and puts `report` in bench/RESULTS.md. Alone:
`python -m bench.redis_footprint redis://127.0.0.1:PORT/0 redis+cluster://127.0.0.1:PORT/`
(a private Redis: it is FLUSHALLed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from app.core.events import Done, Event, StreamMeta, Usage
from app.redis_client import client_for, is_cluster
from app.resume.redis_codec import StreamKeys
from app.resume.redis_sink import RedisSink
from app.resume.redis_streams import RedisStore
from app.settings import Settings
from app.sse import new_stream_id

PACE_S = 0.004  # between two tokens of a paced stream: more than a flush (2 ms)
CONNECTED_S = 3.0  # how long the streams of the connection count run
WORD = " lorem"  # a token of 6 bytes, as the simulated and most real tokens are


async def measure_all(
    urls: list[str], streams: int = 20, tokens: int = 1000, readers: int = 200
) -> dict[str, Any]:
    """Per URL: memory per stream (paced, unpaced) and connections per process."""
    found: dict[str, Any] = {"streams": streams, "tokens": tokens, "readers": readers}
    for url in urls:
        kind = "cluster" if is_cluster(url) else "single"
        found[kind] = await measure(url, streams, tokens, readers)
    return found


async def after_rounds(redis_port: int | None, cluster_ports: list[int]) -> dict[str, Any]:
    """bench/run.py's hook: its private Redis and cluster, once its rounds are done."""
    urls = [f"redis://127.0.0.1:{redis_port}/0"] if redis_port is not None else []
    if cluster_ports:
        urls.append(f"redis+cluster://{','.join(f'127.0.0.1:{p}' for p in cluster_ports)}/")
    return await measure_all(urls) if urls else {}


async def measure(url: str, streams: int, tokens: int, readers: int) -> dict[str, Any]:
    async with _admin(url) as admin:
        await _each_primary(admin, "FLUSHALL")
        out: dict[str, Any] = {}
        for shape, pace in (("paced", PACE_S), ("unpaced", 0.0)):
            before = await _summed(admin, "memory", "used_memory")
            ids = await _write_finished(url, streams, tokens, pace)
            after = await _summed(admin, "memory", "used_memory")
            sizes = [await _stream_bytes(admin, sid) for sid in ids]
            out[shape] = {
                "bytes_per_stream": statistics.mean(sizes),
                "used_memory_per_stream": (after - before) / streams,
            }
            await _each_primary(admin, "FLUSHALL")
        out["connections"] = await _connections(url, admin, streams, tokens, readers)
        await _each_primary(admin, "FLUSHALL")
    return out


@contextlib.asynccontextmanager
async def _admin(url: str) -> AsyncIterator[Redis]:
    client = client_for(url, size=4, wait_s=5.0, socket_timeout_s=10.0)
    try:
        yield client
    finally:
        await client.aclose()


async def _each_primary(admin: Redis, *command: str) -> list[Any]:
    if isinstance(admin, RedisCluster):
        nodes = admin.get_primaries()
        replies = await admin.execute_command(*command, target_nodes=nodes)
        return list(replies.values()) if isinstance(replies, dict) else [replies]
    return [await admin.execute_command(*command)]


async def _summed(admin: Redis, section: str, field: str, *, every_node: bool = False) -> int:
    if isinstance(admin, RedisCluster):
        nodes = admin.get_nodes() if every_node else admin.get_primaries()
        infos = await admin.info(section, target_nodes=nodes)
        per_node = infos.values() if isinstance(infos, dict) and field not in infos else [infos]
        return sum(int(info[field]) for info in per_node)
    return int((await admin.info(section))[field])


async def _stream_bytes(admin: Redis, stream_id: str) -> int:
    keys = StreamKeys.of(stream_id)
    total = 0
    for key in (keys.log, keys.meta, keys.lease, keys.readers):
        size = await admin.memory_usage(key, samples=0)
        total += int(size or 0)
    return total


def _settings() -> Settings:
    return Settings(resume_ttl_s=600.0, lease_ttl_s=5.0)


def _meta(stream_id: str) -> StreamMeta:
    return StreamMeta(stream_id, "bench/footprint", 1_700_000_000, "anonymous")


async def _write_finished(url: str, streams: int, tokens: int, pace_s: float) -> list[str]:
    store = RedisStore(_settings(), url)
    await store.start()
    try:
        ids = [new_stream_id() for _ in range(streams)]
        await asyncio.gather(*(_one_stream(store, sid, tokens, pace_s) for sid in ids))
        return ids
    finally:
        await store.aclose()


async def _one_stream(store: RedisStore, stream_id: str, tokens: int, pace_s: float) -> None:
    sink = cast(RedisSink, await store.create(_meta(stream_id)))
    events = [Event(seq, "token", text=WORD) for seq in range(1, tokens + 1)]
    events.append(Event(tokens + 1, "done", done=Done("length", Usage(12, tokens), 80.0, 40.0)))
    sink.bind(lambda after: events[after:])
    for event in events[:-1]:
        sink.append(event)
        if pace_s:
            await asyncio.sleep(pace_s)
    sink.append(events[-1])
    await sink.close()


async def _connections(
    url: str, admin: Redis, streams: int, tokens: int, readers: int
) -> dict[str, int]:
    """Connections opened by an owner process writing `streams` streams, and by a
    process with `readers` readers following them."""
    base = await _summed(admin, "clients", "connected_clients", every_node=True)
    owner = RedisStore(_settings(), url)
    follower = RedisStore(_settings(), url)
    await owner.start()
    await follower.start()
    try:
        ids = [new_stream_id() for _ in range(streams)]
        pace_s = CONNECTED_S / tokens
        writing = [asyncio.create_task(_one_stream(owner, sid, tokens, pace_s)) for sid in ids]
        await asyncio.sleep(0.5)  # the owner's writes and leases are under way
        with_owner = await _summed(admin, "clients", "connected_clients", every_node=True)
        following = [
            asyncio.create_task(_follow(follower, ids[i % streams])) for i in range(readers)
        ]
        await asyncio.sleep(1.5)  # every reader caught up and waiting on the follower
        with_readers = await _summed(admin, "clients", "connected_clients", every_node=True)
        for task in following:
            task.cancel()
        await asyncio.gather(*following, return_exceptions=True)
        await asyncio.gather(*writing)
    finally:
        await follower.aclose()
        await owner.aclose()
    return {"owner_process": with_owner - base, "reader_process": with_readers - with_owner}


async def _follow(store: RedisStore, stream_id: str) -> None:
    source = await store.open(stream_id)
    assert source is not None
    async with contextlib.aclosing(source.follow(0, idle_s=1.0)) as batches:
        async for batch in batches:
            if batch and batch[-1].terminal:
                return


def report(found: dict[str, Any] | None) -> list[str]:
    """The section of bench/RESULTS.md."""
    if not found:
        return []
    lines = [
        "",
        f"## Redis footprint ({found['streams']} finished streams {chr(215)} "
        f"{found['tokens']:,} tokens; bench/redis_footprint.py)",
        "",
        "| Redis | paced: bytes per stream | unpaced: bytes per stream | "
        "used_memory growth per stream (paced / unpaced) | connections: owner process | "
        f"connections: process with {found['readers']} readers |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    notes = [
        "",
        "Bytes per stream: `MEMORY USAGE` of the stream's keys once it has ended (log and",
        "meta; the lease is gone, and no reader was elsewhere). Paced: a token every few ms,",
        "one log entry per token (an LLM read at its own pace); unpaced: every token",
        "buffered at once. `used_memory` growth also counts Redis's allocator, client",
        "buffers and, on the cluster, the replication backlog filling up: an upper bound.",
        "Connections: new client connections over every node while an owner process",
        "writes the streams, then while another process follows them with that many",
        "readers: short commands share a pool of at most 64 per node, the waits at most 4.",
    ]
    for kind in ("single", "cluster"):
        m = found.get(kind)
        if m is None:
            continue
        lines.append(
            f"| {kind} | {m['paced']['bytes_per_stream']:,.0f} | "
            f"{m['unpaced']['bytes_per_stream']:,.0f} | "
            f"{m['paced']['used_memory_per_stream']:,.0f} / "
            f"{m['unpaced']['used_memory_per_stream']:,.0f} | "
            f"{m['connections']['owner_process']} | {m['connections']['reader_process']} |"
        )
    return lines + notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Redis memory and connections of Sluice.")
    parser.add_argument("urls", nargs="+", help="private Redis URLs: each is FLUSHALLed")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=200)
    args = parser.parse_args(argv)
    found = asyncio.run(measure_all(args.urls, args.streams, args.tokens, args.readers))
    sys.stdout.write("\n".join(report(found)) + "\n")


if __name__ == "__main__":
    main()
