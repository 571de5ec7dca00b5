"""Cancel → upstream closed: how long `POST /v1/responses/{id}/cancel` takes to close
the upstream call of a background response.

For each mode, Sluice is started fresh (hypercorn, uvloop, pinned to the gateway's
core like bench/run.py) against bench/fake_upstream.py, through the configured
OpenAI-compatible provider `bench`. Then, one at a time, N background responses are
created on slow paced streams (`bench/tok100000-tps20-rid<i>`); once the upstream
has written the first token of run i, the runner notes CLOCK_MONOTONIC, sends the
cancel, and reads the fake upstream's `/stats` until run i's connection is closed.
`conn_closed_at` is the upstream's own time.monotonic() in `connection_lost`, the
same clock in every process on Linux, so cancel sent → upstream closed is measured
across processes with no clock offset. The cancel POST's own latency (sent → its
answer read) is given too.

Modes:
  memory   one process, no Redis;
  redis    one process with its own redis-server;
  redis-B  two processes sharing that redis-server: each run is created on A and
           cancelled on B, so the cancel crosses Redis (the owner learns it by the
           cancel channel).

The section goes into bench/RESULTS.md between markers (replaced on every run;
`make bench` runs bench/run.py, which rewrites the file, then this).
Usage: `python -m bench.cancel [--runs N] [--modes memory,redis,redis-B] [--out PATH]
[--json PATH]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.run import (
    PY,
    ROOT,
    Cores,
    Proc,
    free_port,
    git_revision,
    http_get_json,
    machine,
    pct,
    redis_command,
    wait_http,
)

MODES = ("memory", "redis", "redis-B")
BEGIN, END = "<!-- bench.cancel: begin -->", "<!-- bench.cancel: end -->"
TPS = 20  # a token every 50 ms: the stream is mid-flight whenever the cancel lands
POLL_S = 0.002  # /stats polling while waiting for the close; bounded by WAIT_S
WAIT_S = 5.0


@dataclass(slots=True)
class Figures:
    closed_ms: list[float] = field(default_factory=list)  # cancel sent → upstream closed
    answered_ms: list[float] = field(default_factory=list)  # cancel sent → its answer read
    not_closed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        def three(values: list[float]) -> dict[str, float | None]:
            return {
                "p50": pct(values, 50),
                "p99": pct(values, 99),
                "max": max(values) if values else None,
            }

        return {
            "runs": len(self.closed_ms) + self.not_closed,
            "closed": three(self.closed_ms),
            "answered": three(self.answered_ms),
            "not_closed": self.not_closed,
            "statuses": self.statuses,
        }


async def upstream_record(port: int, rid: str) -> dict[str, Any] | None:
    stats = await http_get_json(port, "/stats")
    for record in stats["requests"]:
        if record["rid"] == rid:
            found: dict[str, Any] = record
            return found
    return None


async def wait_for(port: int, rid: str, key: str) -> dict[str, Any] | None:
    """Run `rid`'s upstream record once `key` is set; None after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        record = await upstream_record(port, rid)
        if record is not None and record[key] is not None:
            return record
        await asyncio.sleep(POLL_S)
    return None


async def one_run(
    owner: httpx.AsyncClient, canceller: httpx.AsyncClient, upstream: int, i: int, f: Figures
) -> None:
    rid = str(i)  # digits: the fake upstream reads `rid<digits>` from the model name
    body = {"model": f"bench/tok100000-tps{TPS}-rid{rid}", "input": "x", "background": True}
    created = (await owner.post("/v1/responses", json=body)).raise_for_status().json()
    if await wait_for(upstream, rid, "first_token_at") is None:
        raise RuntimeError(f"run {rid}: no first token upstream within {WAIT_S:g} s")
    sent = time.monotonic()
    answer = await canceller.post(f"/v1/responses/{created['id']}/cancel")
    answered = time.monotonic()
    status = str(answer.json().get("status")) if answer.status_code == 200 else answer.text
    f.statuses[status] = f.statuses.get(status, 0) + 1
    f.answered_ms.append((answered - sent) * 1000)
    record = await wait_for(upstream, rid, "conn_closed_at")
    if record is None:
        f.not_closed += 1
    else:
        f.closed_ms.append((record["conn_closed_at"] - sent) * 1000)


@contextlib.asynccontextmanager
async def sluice(
    tag: str, env: dict[str, str], cores: Cores, logdir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    server = [str(Path(PY).parent / "hypercorn"), "asgi:app", "--bind", f"127.0.0.1:{port}"]
    server += ["--worker-class", "uvloop", "--workers", "0"]
    proc = Proc(f"sluice-{tag}", [*cores.prefix(cores.gateway), *server], env, logdir)
    try:
        await wait_http(port, "/healthz", proc)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        proc.stop()


async def measure_mode(
    mode: str, runs: int, env: dict[str, str], upstream: int, cores: Cores, logdir: Path
) -> dict[str, Any]:
    figures = Figures()
    async with contextlib.AsyncExitStack() as stack:
        owner = await stack.enter_async_context(sluice(f"{mode}-a", env, cores, logdir))
        canceller = owner
        if mode == "redis-B":
            canceller = await stack.enter_async_context(sluice(f"{mode}-b", env, cores, logdir))
        await http_get_json(upstream, "/reset")  # rids count from 0 again
        for i in range(2):  # warm-up: imports, pools and connections are not measured
            await one_run(owner, canceller, upstream, runs + i, Figures())
        for i in range(runs):
            await one_run(owner, canceller, upstream, i, figures)
    print(f"{mode}: {orjson.dumps(figures.summary()).decode()}", flush=True)
    return figures.summary()


async def start_upstream(cores: Cores, logdir: Path) -> tuple[Proc, int]:
    cmd = [*cores.prefix(cores.load), PY, "-m", "bench.fake_upstream", "--port", "0"]
    proc = Proc("fake-upstream", cmd, dict(os.environ), logdir)
    deadline = time.monotonic() + 20
    while "listening" not in proc.log_path.read_text():
        if time.monotonic() > deadline or proc.popen.poll() is not None:
            raise RuntimeError(f"fake upstream did not start:\n{proc.tail()}")
        await asyncio.sleep(0.05)
    return proc, int(proc.log_path.read_text().split("listening", 1)[1].split()[0])


async def start_redis(cores: Cores, logdir: Path) -> tuple[Proc, int]:
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise RuntimeError("no redis-server on PATH")
    port = free_port()  # never 6379: a private server for this run only
    cmd = [redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    cmd = [*cores.prefix(cores.load), *cmd, "--appendonly", "no"]
    proc = Proc("redis", cmd, dict(os.environ), logdir)
    for _ in range(100):
        with contextlib.suppress(OSError):
            if (await redis_command(port, b"PING")).startswith(b"+PONG"):
                return proc, port
        await asyncio.sleep(0.05)
    raise RuntimeError(f"redis-server did not start:\n{proc.tail()}")


async def run_all(modes: tuple[str, ...], runs: int) -> dict[str, Any]:
    cores = Cores.split()
    os.sched_setaffinity(0, cores.load)  # this runner stays off the gateway's core
    logdir = Path(tempfile.mkdtemp(prefix="sluice-bench-cancel-"))
    upstream, upstream_port = await start_upstream(cores, logdir)
    redis: Proc | None = None
    redis_port = 0
    results: dict[str, Any] = {}
    try:
        config = logdir / "sluice.toml"
        config.write_text(
            "[providers.bench]\n"
            f'base_url = "http://127.0.0.1:{upstream_port}/v1"\n'
            'api_key_env = "BENCH_API_KEY"\n'
        )
        base = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        base.update(SLUICE_CONFIG=str(config), BENCH_API_KEY="bench")
        for mode in modes:
            env = dict(base)
            if mode != "memory":
                if redis is None:
                    redis, redis_port = await start_redis(cores, logdir)
                await redis_command(redis_port, b"FLUSHALL")
                env["SLUICE_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            results[mode] = await measure_mode(mode, runs, env, upstream_port, cores, logdir)
    finally:
        upstream.stop()
        if redis is not None:
            redis.stop()
    return {"runs": runs, "modes": results, "cores": cores}


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def section(data: dict[str, Any], command: str) -> str:
    cores: Cores = data["cores"]
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN,
        f"## 6. Cancel → upstream connection closed ({data['runs']} background responses "
        f"per mode, each cancelled mid-stream at {TPS} tok/s)",
        "",
        f"Written by `bench/cancel.py` (`{command}`), {started}, revision {git_revision()}; "
        f"{machine()}; gateway on core(s) {sorted(cores.gateway)}. `closed`: the cancel "
        "request sent → the fake upstream's `connection_lost` for that run (CLOCK_MONOTONIC "
        "of both processes); `answered`: the cancel POST sent → its answer read. `redis-B`: "
        "created on process A, cancelled on process B.",
        "",
        "| mode | closed p50, ms | closed p99, ms | closed max, ms | answered p50, ms "
        "| answered p99, ms | not closed in 5 s | statuses |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for mode, found in data["modes"].items():
        closed, answered = found["closed"], found["answered"]
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(found["statuses"].items()))
        lines.append(
            f"| {mode} | {fmt(closed['p50'])} | {fmt(closed['p99'])} | {fmt(closed['max'])} "
            f"| {fmt(answered['p50'])} | {fmt(answered['p99'])} | {found['not_closed']} "
            f"| {statuses} |"
        )
    return "\n".join([*lines, END, ""])


def write_section(out: Path, text: str) -> None:
    """Replace the section in `out` (or append it): bench/run.py owns the rest."""
    old = out.read_text() if out.exists() else ""
    if BEGIN in old and END in old:
        head, _, rest = old.partition(BEGIN)
        tail = rest.partition(END)[2].lstrip("\n")
        new = head + text + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + text
    out.write_text(new)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Measure cancel → upstream closed.")
    parser.add_argument("--runs", type=int, default=100, help="cancelled responses per mode")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {MODES}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    modes = tuple(args.modes.split(","))
    if not set(modes) <= set(MODES):
        parser.error(f"--modes: choose from {MODES}")
    command = f"python -m bench.cancel --runs {args.runs} --modes {','.join(modes)}"
    data = asyncio.run(run_all(modes, args.runs))
    write_section(args.out, section(data, command))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(data["modes"], option=orjson.OPT_INDENT_2))
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
