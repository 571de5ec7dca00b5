"""The owner's presence questions of a burst of leaving streams: CPU and wall time on the
gateway's loop, one ZCOUNT per stream (redis-py, each on a pooled connection: how
the store asked before app/resume/presence.py) against `ReaderCounts` (one buffer per
turn of the loop).

Scenario 5 of `bench/run.py` measures the whole leave (client gone → upstream closed);
its Redis figure is noisy on a shared machine, because the round trip goes through a
redis-server competing for a core. This isolates what the gateway itself spends.

Usage: `python -m bench.presence [--streams 100] [--rounds 30] [--json PATH]`; needs
`redis-server` on PATH (a private one on a free port, stopped at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import uvloop
from redis.asyncio import Redis

from app.redis_client import client_for
from app.resume.presence import ReaderCounts
from app.resume.redis_codec import StreamKeys
from bench.run import free_port, redis_command

Ask = Callable[[str], Awaitable[int]]


def one_by_one(redis: Redis) -> Ask:
    async def ask(stream_id: str) -> int:
        now_ms = int(time.time() * 1000)
        count: int = await redis.zcount(StreamKeys.of(stream_id).readers, now_ms, "+inf")
        return count

    return ask


async def burst(ask: Ask, stream_ids: list[str]) -> tuple[float, float]:
    """CPU and wall milliseconds for every stream asking at once."""
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(ask(sid) for sid in stream_ids))
    return (time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000


async def measure(port: int, streams: int, rounds: int) -> dict[str, dict[str, float]]:
    redis = client_for(f"redis://127.0.0.1:{port}/0", size=64, wait_s=2.0, socket_timeout_s=2.0)
    counts = ReaderCounts(redis)
    ways = {"one_by_one": one_by_one(redis), "batched": counts.count}
    stream_ids = [f"bench{i:017d}" for i in range(streams)]
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    try:
        for round_ in range(rounds + 2):  # the first two fill the pool: not counted
            for name, ask in ways.items():  # interleaved
                sample = await burst(ask, stream_ids)
                if round_ >= 2:
                    samples[name].append(sample)
    finally:
        await counts.aclose()
        await redis.aclose()
    return {
        name: {
            "cpu_ms": statistics.median(cpu for cpu, _ in got),
            "wall_ms": statistics.median(wall for _, wall in got),
        }
        for name, got in samples.items()
    }


async def run(port: int, streams: int, rounds: int) -> dict[str, dict[str, float]]:
    for _ in range(100):  # bounded: 5 s for the server to answer
        try:
            if (await redis_command(port, b"PING")).startswith(b"+PONG"):
                break
        except OSError:
            pass
        await asyncio.sleep(0.05)
    return await measure(port, streams, rounds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Measure a burst of presence questions.")
    parser.add_argument("--streams", type=int, default=100, help="streams asking at once")
    parser.add_argument("--rounds", type=int, default=30, help="bursts per way (medians)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SystemExit("no redis-server on PATH")
    port = free_port()  # never 6379: a private server for this run only
    cmd = [redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    server = subprocess.Popen([*cmd, "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        figures = uvloop.run(run(port, args.streams, args.rounds))  # the gateway's loop
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"{args.streams} streams asking at once, medians of {args.rounds} bursts:")
    for name, got in figures.items():
        print(f"  {name:<11} loop CPU {got['cpu_ms']:6.2f} ms   wall {got['wall_ms']:6.2f} ms")
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
