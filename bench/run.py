"""The benchmark runner: every system side by side, written to bench/RESULTS.md.

Each measurement starts its gateway fresh (a subprocess pinned to one core) with the
fake upstream, the load client, Redis and this runner on the other cores, samples the
gateway's CPU time (user+sys from /proc/<pid>/stat) and RSS, and stops it again.
Rounds are interleaved (every system runs each scenario once per round, in an order
that rotates between rounds) so slow drift of the machine spreads over all systems;
the report gives medians over rounds and ratios to the httpx-aiohttp passthrough, the
practical limit of this stack (docs/performance.md).

Scenarios (sizes per mode in SIZES):
  1. TTFT added over going direct to the upstream, sequential requests;
  2. concurrent unpaced streams: gateway CPU µs per delivered token;
  2b. the same with one tool call whose arguments come in as many fragments:
     CPU µs per delivered arguments fragment (an event of its own);
  3. many paced streams: CPU per token, p99 inter-token gap added, RSS per stream;
  4. slow readers (1 KB/s) on long unpaced streams: RSS growth;
  5. clients leaving after 5 tokens (grace 0): client gone → upstream connection closed.
After the rounds, when Redis systems ran: Redis memory per finished stream and
connections per process (bench/redis_footprint.py).

Sluice systems are skipped, with the reason in the report, while `asgi:app` cannot be
imported. Usage: `python -m bench.run [--quick | --smoke] [--out PATH] [--json PATH]`.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import redis_footprint

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SCENARIOS = ("ttft", "throughput", "tools", "paced", "slow", "leave")
REFERENCE = "passthrough-aiohttp"
T0 = time.monotonic()  # progress lines show seconds since start
X = "\u00d7"  # the multiplication sign of ratios, escaped for the linter


@dataclass(frozen=True, slots=True)
class Sizes:
    rounds: int
    ttft_requests: int
    ttft_tokens: int
    tput_streams: int
    tput_tokens: int
    paced_streams: int
    paced_tps: float
    paced_seconds: float
    paced_ramp_s: float
    slow_readers: int
    slow_tokens: int
    slow_seconds: float
    slow_bps: float
    leave_clients: int
    leave_after: int
    leave_tps: float
    # A fresh gateway for each scenario that measures RSS (allocator high-water marks
    # of one scenario would hide the growth of the next) and one for the rest (full);
    # or one per system and round (quick, smoke: Sluice takes seconds to start, which
    # would be most of their time), the RSS scenarios first.
    fresh_for_rss: bool


SIZES = {
    "full": Sizes(3, 200, 5, 32, 2000, 1000, 20, 15, 1.0, 20, 20000, 10, 1024, 100, 5, 20, True),
    "quick": Sizes(1, 50, 5, 32, 500, 200, 20, 3, 0.5, 20, 20000, 2, 1024, 50, 5, 20, False),
    "smoke": Sizes(1, 5, 5, 2, 100, 4, 50, 0.3, 0.0, 2, 2000, 0.5, 4096, 3, 5, 50, False),
}


@dataclass(frozen=True, slots=True)
class System:
    name: str
    app: str
    server: str = "hypercorn"  # or "uvicorn"
    route: str = "bench"  # model prefix: bench (configured), openai, sim
    redis: bool = False
    cluster: bool = False  # with redis: a Redis Cluster of 3 primaries and 3 replicas
    # "openai": POST /v1/chat/completions, what the passthroughs forward; "native": the
    # one-shot GET /v1/stream?model=…&prompt=… with `event: token` events.
    endpoint: str = "openai"
    tree: str = ""  # another checkout to run (`--base`): an A/B of two revisions in one run

    @property
    def sluice(self) -> bool:
        return self.app == "asgi:app"


SYSTEMS = (
    System("passthrough-httpx", "bench.passthrough_httpx:app"),
    System(REFERENCE, "bench.passthrough_aiohttp:app"),
    System("sluice-mem-bench", "asgi:app"),
    System("sluice-mem-openai", "asgi:app", route="openai"),
    System("sluice-mem-bench-native", "asgi:app", endpoint="native"),
    System("sluice-mem-sim", "asgi:app", route="sim", endpoint="native"),
    System("sluice-redis-bench", "asgi:app", redis=True),
    System("sluice-redis-sim", "asgi:app", route="sim", redis=True, endpoint="native"),
    System("sluice-cluster-bench", "asgi:app", redis=True, cluster=True),
    System("sluice-mem-bench-uvicorn", "asgi:app", server="uvicorn"),
)
SMOKE_SYSTEMS = ("passthrough-httpx", REFERENCE, "sluice-mem-bench")


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass(slots=True)
class Cores:
    gateway: set[int]
    load: set[int]

    @classmethod
    def split(cls) -> Cores:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:  # nothing to separate: everything shares the one core
            return cls(set(cores), set(cores))
        return cls({cores[-1]}, set(cores[:-1]))

    def prefix(self, cores: set[int]) -> list[str]:
        if shutil.which("taskset") is None:
            return []
        return ["taskset", "-c", ",".join(str(c) for c in sorted(cores))]


class Proc:
    """A child process with its output in a log file."""

    def __init__(
        self, name: str, cmd: list[str], env: dict[str, str], logdir: Path, cwd: Path = ROOT
    ) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            # Nothing of a stopped system is kept, so its graceful shutdown (which waits
            # for open connections, up to hypercorn's 5 s) is not worth waiting for.
            self.popen.terminate()
            try:
                self.popen.wait(1)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


async def wait_http(port: int, path: str, proc: Proc, limit_s: float = 60.0) -> None:
    """Until GET path answers below 500 (any answer from a passthrough will do); polled
    every 20 ms, the resolution of the start-up time."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited at start-up:\n{proc.tail()}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
            line = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            if line.startswith(b"HTTP/1.1") and int(line.split()[1]) < 500:
                return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"{proc.name} not ready after {limit_s:.0f}s:\n{proc.tail()}")


async def http_get_json(port: int, path: str) -> Any:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    return orjson.loads(raw.partition(b"\r\n\r\n")[2])


async def redis_command(port: int, command: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(command + b"\r\n")
    line = await reader.readline()
    writer.close()
    return line


# -- the run -----------------------------------------------------------------------------


@dataclass(slots=True)
class Context:
    mode: str
    sizes: Sizes
    cores: Cores
    logdir: Path
    upstream_port: int = 0
    redis_port: int | None = None
    redis_pid: int | None = None
    cluster_ports: list[int] = field(default_factory=list)
    cluster_pids: list[int] = field(default_factory=list)
    measured_redis: list[int] = field(default_factory=list)  # pids of the system measured
    config_path: Path | None = None
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_cmd(ctx: Context, url: str, body: str | None, **opts: Any) -> list[str]:
    cmd = [*ctx.cores.prefix(ctx.cores.load), PY, "-m", "bench.loadclient", url, "--json"]
    if body is not None:
        cmd += ["--body", body]
    for name, value in opts.items():
        if value is not None:
            cmd += [f"--{name.replace('_', '-')}", str(value)]
    return cmd


@dataclass(slots=True)
class Sample:
    """CPU and RSS of the gateway (and Redis) over one load-client run."""

    cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    rss_before: int = 0
    rss_peak: int = 0


async def run_load(
    ctx: Context, cmd: list[str], gateway_pid: int | None
) -> tuple[dict[str, Any], Sample]:
    sample = Sample()
    if gateway_pid is not None:
        sample.rss_before = sample.rss_peak = rss_bytes(gateway_pid)
        cpu0 = cpu_seconds(gateway_pid)
    redis0 = sum(cpu_seconds(pid) for pid in ctx.measured_redis)
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    communicate = asyncio.ensure_future(proc.communicate())
    while not communicate.done():
        if gateway_pid is not None:
            with contextlib.suppress(OSError):
                sample.rss_peak = max(sample.rss_peak, rss_bytes(gateway_pid))
        await asyncio.wait({communicate}, timeout=0.05)
    out, err = communicate.result()
    if gateway_pid is not None:
        sample.cpu_s = cpu_seconds(gateway_pid) - cpu0
    if ctx.measured_redis:
        sample.redis_cpu_s = sum(cpu_seconds(pid) for pid in ctx.measured_redis) - redis0
    if proc.returncode != 0:
        raise RuntimeError(f"load client failed: {err.decode(errors='replace')[-2000:]}")
    summary: dict[str, Any] = orjson.loads(out)
    return summary, sample


def request_for(
    system: System | None, tokens: int, tps: float, tools: bool = False
) -> tuple[str, str | None]:
    """(path, JSON body or None for a GET) of one stream on the system's route;
    `tools`: the upstream answers with one tool call of `tokens` fragments."""
    route = system.route if system is not None else "bench"
    shape = f"tok{tokens}-tps{tps:g}-ttft0-rid{{rid}}" + ("-tools1" if tools else "")
    if system is not None and system.endpoint == "native":
        query = {"model": "sim/lorem", "prompt": "hi", "max_tokens": str(tokens)}
        if route == "sim":
            query.update(sim_tps=f"{tps:g}", sim_ttft_ms="0")
        else:
            query["model"] = f"{route}/{shape}"
        return "/v1/stream?" + "&".join(f"{k}={v}" for k, v in query.items()), None
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": tokens,
    }
    if route == "sim":
        body["model"] = "sim/lorem"
        body["sim"] = {"tps": tps, "ttft_ms": 0}
    else:
        # The fake upstream reads the stream's shape and the request id from the model.
        body["model"] = f"{route}/{shape}"
    return "/v1/chat/completions", orjson.dumps(body).decode()


def sluice_env(ctx: Context, system: System) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    assert ctx.config_path is not None
    env.update(
        SLUICE_CONFIG=str(ctx.config_path),
        SLUICE_DETACH_GRACE_S="0",  # scenario 5: a disconnect cancels the upstream at once
        SLUICE_MAX_STREAMS_PER_KEY="1000000",  # one anonymous client opens 1,000 streams
        OPENAI_BASE_URL=f"http://127.0.0.1:{ctx.upstream_port}/v1",
        OPENAI_API_KEY="bench",
        BENCH_API_KEY="bench",
    )
    if system.cluster:
        seeds = ",".join(f"127.0.0.1:{port}" for port in ctx.cluster_ports[:3])
        env["SLUICE_REDIS_URL"] = f"redis+cluster://{seeds}/"
    elif system.redis:
        env["SLUICE_REDIS_URL"] = f"redis://127.0.0.1:{ctx.redis_port}/0"
    return env


@contextlib.asynccontextmanager
async def gateway(
    ctx: Context, system: System, tag: str, start: dict[str, float] | None = None
) -> AsyncIterator[tuple[Proc, int]]:
    """A fresh start of the system; `start` gets its time to ready and its RSS then."""
    port = free_port()
    if system.sluice:
        env = sluice_env(ctx, system)
        if system.cluster:
            for cluster_port in ctx.cluster_ports:  # replicas refuse it: harmless
                await redis_command(cluster_port, b"FLUSHALL")
            ctx.measured_redis = list(ctx.cluster_pids)
        elif system.redis and ctx.redis_port is not None:
            await redis_command(ctx.redis_port, b"FLUSHALL")
            ctx.measured_redis = [] if ctx.redis_pid is None else [ctx.redis_pid]
        else:
            ctx.measured_redis = []
    else:
        env = dict(os.environ, BENCH_UPSTREAM=f"http://127.0.0.1:{ctx.upstream_port}")
    if system.server == "uvicorn":
        server = [str(Path(PY).parent / "uvicorn"), system.app, "--host", "127.0.0.1"]
        # httptools is what makes uvicorn fast; without it uvicorn falls back to h11.
        http = "httptools" if importlib.util.find_spec("httptools") else "auto"
        server += ["--port", str(port), "--loop", "uvloop", "--http", http]
        server += ["--backlog", "4096", "--no-access-log", "--log-level", "warning"]
    else:
        server = [str(Path(PY).parent / "hypercorn"), system.app, "--bind", f"127.0.0.1:{port}"]
        server += ["--worker-class", "uvloop", "--workers", "0", "--backlog", "4096"]
    started = time.monotonic()
    command = [*ctx.cores.prefix(ctx.cores.gateway), *server]
    proc = Proc(f"{system.name}-{tag}", command, env, ctx.logdir, Path(system.tree or ROOT))
    try:
        await wait_http(port, "/readyz" if system.sluice else "/v1/models", proc)
        if start is not None:
            start["ready_s"] = time.monotonic() - started
            start["rss_mb"] = rss_bytes(proc.pid) / 2**20
        yield proc, port
    finally:
        proc.stop()


async def warm_up(ctx: Context, system: System, port: int) -> None:
    """A few streams first, so lazy clients, pools and imports are not measured."""
    path, body = request_for(system, 20, 0)
    cmd = load_cmd(ctx, f"http://127.0.0.1:{port}{path}", body, concurrency=4, requests=3)
    summary, _ = await run_load(ctx, cmd, None)
    if summary["errors"]:
        raise RuntimeError(f"warm-up errors: {summary['error_samples']}")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def common(summary: dict[str, Any], sample: Sample | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "streams": summary["streams"],
        "errors": summary["errors"],
        "error_samples": summary["error_samples"],
        "tokens": summary["tokens"],
        "wall_s": summary["wall_s"],
    }
    if sample is not None and summary["tokens"]:
        out["cpu_s"] = sample.cpu_s
        out["cpu_us_per_token"] = sample.cpu_s / summary["tokens"] * 1e6
        if sample.redis_cpu_s:
            out["redis_cpu_us_per_token"] = sample.redis_cpu_s / summary["tokens"] * 1e6
    return out


async def measure(
    ctx: Context, system: System | None, scenario: str, port: int, pid: int | None
) -> dict[str, Any]:
    """One scenario against a running system (None: straight to the fake upstream)."""
    s = ctx.sizes
    up = ctx.upstream_port
    base = f"http://127.0.0.1:{port}"
    if scenario == "ttft":
        path, body = request_for(system, s.ttft_tokens, 0)
        cmd = load_cmd(ctx, base + path, body, requests=s.ttft_requests)
        summary, sample = await run_load(ctx, cmd, pid)
        out = common(summary, None)
        out["ttft_p50_ms"] = pct(summary["ttft_ms"], 50)
        out["ttft_p99_ms"] = pct(summary["ttft_ms"], 99)
        return out
    if scenario == "throughput":
        path, body = request_for(system, s.tput_tokens, 0)
        cmd = load_cmd(ctx, base + path, body, concurrency=s.tput_streams, timeout=300)
        summary, sample = await run_load(ctx, cmd, pid)
        out = common(summary, sample)
        out["tokens_per_s"] = summary["tokens"] / summary["wall_s"]
        return out
    if scenario == "tools":
        path, body = request_for(system, s.tput_tokens, 0, tools=True)
        cmd = load_cmd(ctx, base + path, body, concurrency=s.tput_streams, timeout=300)
        summary, sample = await run_load(ctx, cmd, pid)
        out = common(summary, sample)
        out["tokens_per_s"] = summary["tokens"] / summary["wall_s"]
        return out
    if scenario == "paced":
        tokens = round(s.paced_tps * s.paced_seconds)
        path, body = request_for(system, tokens, s.paced_tps)
        cmd = load_cmd(
            ctx, base + path, body, concurrency=s.paced_streams, ramp=s.paced_ramp_s, timeout=120
        )
        summary, sample = await run_load(ctx, cmd, pid)
        out = common(summary, sample if pid is not None else None)
        out["gap_p50_ms"] = summary["gap_ms"]["p50"]
        out["gap_p99_ms"] = summary["gap_ms"]["p99"]
        out["gap_max_ms"] = summary["gap_ms"]["max"]
        if pid is not None:
            out["rss_per_stream_kb"] = (
                (sample.rss_peak - sample.rss_before) / s.paced_streams / 1024
            )
        return out
    if scenario == "slow":
        path, body = request_for(system, s.slow_tokens, 0)
        await http_get_json(up, "/reset")
        cmd = load_cmd(
            ctx, base + path, body, concurrency=s.slow_readers, duration=s.slow_seconds,
            slow_bps=s.slow_bps, rcvbuf=4096, timeout=s.slow_seconds + 30,
        )  # fmt: skip
        summary, sample = await run_load(ctx, cmd, pid)
        out = common(summary, None)
        out["rss_before_mb"] = sample.rss_before / 2**20
        out["rss_growth_mb"] = (sample.rss_peak - sample.rss_before) / 2**20
        if system is not None and system.route != "sim":
            stats = await http_get_json(up, "/stats")
            out["upstream_tokens_written"] = sum(r["tokens_written"] for r in stats["requests"])
        return out
    if scenario == "leave":
        # Far longer than the run (but within Sluice's max_tokens cap): still streaming.
        path, body = request_for(system, 20_000, s.leave_tps)
        await http_get_json(up, "/reset")
        cmd = load_cmd(
            ctx, base + path, body, concurrency=s.leave_clients, leave_after=s.leave_after
        )
        summary, sample = await run_load(ctx, cmd, pid)
        left: dict[str, float] = summary["left_at"]
        closed: dict[str, float] = {}
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            stats = await http_get_json(up, "/stats")
            closed = {
                r["rid"]: r["conn_closed_at"]
                for r in stats["requests"]
                if r["rid"] in left and r["conn_closed_at"] is not None
            }
            if len(closed) >= len(left):
                break
            await asyncio.sleep(0.1)
        delays = [(closed[rid] - left[rid]) * 1000 for rid in left if rid in closed]
        out = common(summary, None)
        out["left"] = len(left)
        out["not_closed_3s"] = len(left) - len(closed)
        out["close_p50_ms"] = pct(delays, 50)
        out["close_p99_ms"] = pct(delays, 99)
        out["close_max_ms"] = max(delays) if delays else None
        return out
    raise ValueError(scenario)


async def measure_system(
    ctx: Context, system: System, scenarios: list[str], tag: str
) -> dict[str, dict[str, Any]]:
    """The scenarios, one after another, on one fresh start of the system."""
    results: dict[str, dict[str, Any]] = {}
    todo = [s for s in scenarios if not (s in ("leave", "tools") and system.route == "sim")]
    if len(todo) < len(scenarios):
        results["leave"] = {"skipped": "no upstream connection to close on sim/"}
    start: dict[str, float] = {}
    try:
        async with gateway(ctx, system, tag, start) as (proc, port):
            results["start"] = start  # before any stream: the warm-up comes next
            await warm_up(ctx, system, port)
            for scenario in todo:
                print(f"  {time.monotonic() - T0:6.1f}s {scenario:<10} {system.name}", flush=True)
                try:
                    results[scenario] = await measure(ctx, system, scenario, port, proc.pid)
                except Exception as exc:  # the next scenario may still work
                    results[scenario] = {"failed": f"{type(exc).__name__}: {exc}"[:1500]}
                if proc.popen.poll() is not None:
                    results[scenario]["crashed"] = proc.tail()
                    break
    except Exception as exc:  # one broken system must not stop the run of the others
        for scenario in todo:
            results.setdefault(scenario, {"failed": f"{type(exc).__name__}: {exc}"[:1500]})
    return results


async def sluice_importable() -> str | None:
    """None if `asgi:app` imports; else why not (Sluice is still being built)."""
    if not (ROOT / "asgi.py").exists():
        return "no asgi.py"
    proc = await asyncio.create_subprocess_exec(
        PY, "-c", "import asgi; asgi.app", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        lines = out.decode(errors="replace").strip().splitlines()
        return "`import asgi` fails: " + (lines[-1] if lines else "?")
    return None


async def run_all(
    mode: str,
    only: list[str] | None,
    rounds_wanted: int | None = None,
    on_round: Callable[[dict[str, Any]], None] | None = None,
    scenarios: tuple[str, ...] = SCENARIOS,
    base: Path | None = None,
) -> dict[str, Any]:
    sizes = SIZES[mode]
    # Bytecode for every system's own modules, as `make run` has it (the environment's
    # packages got theirs at install): the start-up measured is not a compiler's.
    for path in ("app", "asgi.py", "bench"):
        if (ROOT / path).is_dir():
            compileall.compile_dir(ROOT / path, quiet=1)
        elif (ROOT / path).exists():
            compileall.compile_file(ROOT / path, quiet=1)
    if rounds_wanted is not None:
        sizes = dataclasses.replace(sizes, rounds=rounds_wanted)
    cores = Cores.split()
    os.sched_setaffinity(0, cores.load)  # this runner stays off the gateway's core
    logdir = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    ctx = Context(mode, sizes, cores, logdir)
    names = only or (list(SMOKE_SYSTEMS) if mode == "smoke" else [s.name for s in SYSTEMS])
    systems = [s for s in SYSTEMS if s.name in names]
    if base is not None:  # each Sluice system twice: this tree and the base, interleaved
        systems = [
            twin
            for s in systems
            for twin in (s, dataclasses.replace(s, name=f"{s.name}@base", tree=str(base)))
            if twin is s or s.sluice
        ]
    skipped: dict[str, str] = {}
    why = await sluice_importable()
    if why is not None:
        for system in systems:
            if system.sluice:
                skipped[system.name] = why
        systems = [s for s in systems if not s.sluice]
    redis_bin = shutil.which("redis-server")
    if any(s.redis for s in systems) and redis_bin is None:
        for system in systems:
            if system.redis:
                skipped[system.name] = "no redis-server on PATH"
        systems = [s for s in systems if not s.redis]
    if any(s.cluster for s in systems) and shutil.which("redis-cli") is None:
        for system in systems:
            if system.cluster:
                skipped[system.name] = "no redis-cli on PATH (it creates the cluster)"
        systems = [s for s in systems if not s.cluster]

    rounds: list[dict[str, dict[str, Any]]] = []
    footprint: dict[str, Any] = {}  # bench/redis_footprint.py, after the rounds

    revision = git_revision()

    def snapshot() -> dict[str, Any]:
        return {
            "mode": mode,
            "sizes": asdict(sizes),
            "systems": [asdict(s) for s in systems],
            "skipped": skipped,
            "rounds": rounds,
            "cores": {"gateway": sorted(cores.gateway), "load": sorted(cores.load)},
            "logdir": str(logdir),
            "revision": revision,
            "footprint": footprint,
        }

    env = dict(os.environ)
    upstream = Proc(
        "fake-upstream",
        [*cores.prefix(cores.load), PY, "-m", "bench.fake_upstream", "--port", "0"],
        env,
        logdir,
    )
    redis: Proc | None = None
    cluster: list[Proc] = []
    try:
        deadline = time.monotonic() + 20
        while "listening" not in upstream.log_path.read_text():
            if time.monotonic() > deadline or upstream.popen.poll() is not None:
                raise RuntimeError(f"fake upstream did not start:\n{upstream.tail()}")
            await asyncio.sleep(0.05)
        ctx.upstream_port = int(upstream.log_path.read_text().split("listening", 1)[1].split()[0])
        ctx.config_path = logdir / "sluice.toml"
        ctx.config_path.write_text(
            "[providers.bench]\n"
            f'base_url = "http://127.0.0.1:{ctx.upstream_port}/v1"\n'
            'api_key_env = "BENCH_API_KEY"\n'
        )
        if any(s.redis for s in systems):
            assert redis_bin is not None
            ctx.redis_port = free_port()  # never 6379: a private server for this run only
            redis = Proc(
                "redis",
                [*cores.prefix(cores.load), redis_bin, "--port", str(ctx.redis_port),
                 "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                env,
                logdir,
            )  # fmt: skip
            ctx.redis_pid = redis.pid
            for _ in range(100):
                with contextlib.suppress(OSError):
                    if (await redis_command(ctx.redis_port, b"PING")).startswith(b"+PONG"):
                        break
                await asyncio.sleep(0.05)
        if any(s.cluster for s in systems):
            assert redis_bin is not None
            cluster = await start_cluster(ctx, redis_bin, env, logdir)
        for r in range(sizes.rounds):
            print(f"round {r + 1}/{sizes.rounds}", flush=True)
            results: dict[str, dict[str, Any]] = {s.name: {} for s in systems}
            results["direct"] = {}
            for scenario in ("ttft", "paced"):
                if scenario not in scenarios:
                    continue
                results["direct"][scenario] = await measure(
                    ctx, None, scenario, ctx.upstream_port, None
                )
            # Rotate the order each round so no system always runs first or last.
            order = systems[r % len(systems) :] + systems[: r % len(systems)]
            groups = [["slow", "paced", "ttft", "throughput", "tools", "leave"]]
            if sizes.fresh_for_rss:
                groups = [["ttft", "throughput", "tools", "leave"], ["paced"], ["slow"]]
            groups = [g for g in ([s for s in group if s in scenarios] for group in groups) if g]
            for group in groups:
                for system in order:
                    found = await measure_system(ctx, system, group, f"r{r}-{group[0]}")
                    results[system.name].update(found)
            rounds.append(results)
            if on_round is not None:  # a report after every round: a long run can be cut short
                on_round(snapshot())
        footprint.update(await redis_footprint.after_rounds(ctx.redis_port, ctx.cluster_ports))
    finally:
        upstream.stop()
        if redis is not None:
            redis.stop()
        for node in cluster:
            node.stop()
    return snapshot()


async def start_cluster(
    ctx: Context, redis_bin: str, env: dict[str, str], logdir: Path
) -> list[Proc]:
    """3 primaries + 3 replicas on free ports, pinned like the single Redis."""
    nodes: list[Proc] = []
    for i in range(6):
        port = free_port()
        home = logdir / f"cluster-{port}"
        home.mkdir(parents=True, exist_ok=True)
        nodes.append(Proc(
            f"redis-cluster-{i}",
            [*ctx.cores.prefix(ctx.cores.load), redis_bin, "--port", str(port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(home),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-port", str(free_port())],  # the bus: not port + 10000, maybe > 65535
            env,
            logdir,
        ))  # fmt: skip
        ctx.cluster_ports.append(port)
    ctx.cluster_pids = [node.pid for node in nodes]
    for port in ctx.cluster_ports:
        for _ in range(100):
            with contextlib.suppress(OSError):
                if (await redis_command(port, b"PING")).startswith(b"+PONG"):
                    break
            await asyncio.sleep(0.05)
    addresses = [f"127.0.0.1:{port}" for port in ctx.cluster_ports]
    create = ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "1"]
    created = await asyncio.create_subprocess_exec(
        *create, "--cluster-yes", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(created.communicate(), 60)
    if created.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed: {err.decode(errors='replace')}")
    for _ in range(300):  # bounded: 30 s for every node to agree
        if all([await cluster_ok(port) for port in ctx.cluster_ports]):
            break
        await asyncio.sleep(0.1)
    return nodes


async def cluster_ok(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"CLUSTER INFO\r\n")
    reply = await reader.read(256)  # cluster_state comes first
    writer.close()
    return b"cluster_state:ok" in reply


# -- the report --------------------------------------------------------------------------


def median_of(
    rounds: list[dict[str, dict[str, Any]]], system: str, scenario: str, key: str
) -> float | None:
    values = [
        v
        for rnd in rounds
        if isinstance(v := rnd.get(system, {}).get(scenario, {}).get(key), int | float)
    ]
    return statistics.median(values) if values else None


def added(
    rounds: list[dict[str, dict[str, Any]]], system: str, scenario: str, key: str
) -> float | None:
    """Median over rounds of (system - direct) for the same round."""
    values = []
    for rnd in rounds:
        mine = rnd.get(system, {}).get(scenario, {}).get(key)
        direct = rnd.get("direct", {}).get(scenario, {}).get(key)
        if isinstance(mine, int | float) and isinstance(direct, int | float):
            values.append(mine - direct)
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def ratio(value: float | None, ref: float | None) -> str:
    if value is None or ref is None or ref == 0:
        return "—"
    return f"{value / ref:.2f}{X}"


def delta(value: float | None, ref: float | None, digits: int = 2) -> str:
    if value is None or ref is None:
        return "—"
    return f"{value - ref:+.{digits}f}"


def problems(rounds: list[dict[str, dict[str, Any]]], system: str) -> list[str]:
    out = []
    for i, rnd in enumerate(rounds):
        for scenario, result in rnd.get(system, {}).items():
            for key in ("failed", "crashed"):
                if key in result:
                    out.append(f"round {i + 1} {scenario}: {key}: {result[key]}")
            if result.get("errors"):
                out.append(
                    f"round {i + 1} {scenario}: {result['errors']} stream errors, e.g. "
                    f"{result['error_samples'][:2]}"
                )
    return out


def versions() -> str:
    names = ("hypercorn", "uvicorn", "httptools", "httpx", "aiohttp", "httpx-aiohttp", "uvloop",
             "orjson", "openai", "redis")  # fmt: skip
    parts = [f"Python {platform.python_version()}"]
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            parts.append(f"{name} {importlib.metadata.version(name)}")
    redis_bin = shutil.which("redis-server")
    if redis_bin:
        out = subprocess.run([redis_bin, "--version"], capture_output=True, text=True).stdout
        parts.append("redis-server " + out.split("v=", 1)[-1].split()[0])
    return ", ".join(parts)


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.1f} GiB"
    return f"{platform.system()} {platform.release()}, {model}, {os.cpu_count()} CPUs, {mem} RAM"


def git_revision() -> str:
    """The commit measured, read once when the run starts (`-dirty`: uncommitted changes)."""
    # BENCH_REVISION names the commit when running from an exported tree (no .git).
    if os.environ.get("BENCH_REVISION"):
        return os.environ["BENCH_REVISION"]
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    if not head:
        return "?"
    # The report this runner rewrites after every round changes nothing it measures.
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", ".", ":(exclude)bench/RESULTS.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{head}-dirty" if changed else head


def report(data: dict[str, Any], command: str, started: str, elapsed_s: float) -> str:
    rounds: list[dict[str, dict[str, Any]]] = data["rounds"]
    s = Sizes(**data["sizes"])
    names = [sys_["name"] for sys_ in data["systems"]]
    ref = REFERENCE if REFERENCE in names else None
    lines = [
        "# Sluice benchmark results",
        "",
        "Written by `bench/run.py`; method and scenarios in its docstring. Every",
        f"figure is the median over rounds; ratios ({X}) and differences (Δ) are to the",
        "`httpx-aiohttp` passthrough, the practical limit of this stack. CPU is the",
        "gateway process's own user+system time (/proc/<pid>/stat, 10 ms ticks) divided by",
        "tokens delivered; Redis's own CPU is shown apart. Latency added is measured against",
        "the same load client going straight to the fake upstream in the same round.",
        "",
        f"- command: `{command}` (mode `{data['mode']}`, {len(rounds)} of {s.rounds} round(s), "
        f"{elapsed_s / 60:.1f} min), started {started}",
        f"- revision: {data.get('revision') or git_revision()}",
        f"- machine: {machine()}; gateway pinned to core(s) {data['cores']['gateway']}, "
        f"fake upstream, load client and Redis on {data['cores']['load']}",
        f"- versions: {versions()}",
        "- servers: `hypercorn --worker-class uvloop --workers 0` unless named `-uvicorn` "
        "(`--loop uvloop --http httptools`); one process each",
        "- routes: `bench` = a configured OpenAI-compatible provider pointing at the fake "
        "upstream; `openai` = the built-in `openai/` provider with `OPENAI_BASE_URL` "
        "pointing at it; `sim` = the built-in simulated model (no upstream)",
        "",
    ]
    if data["skipped"]:
        lines.append("Skipped: " + "; ".join(f"`{k}` ({v})" for k, v in data["skipped"].items()))
        lines.append("")

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    lines += [
        f"## 1. TTFT added over direct ({s.ttft_requests} sequential requests, "
        f"{s.ttft_tokens} tokens each)",
        "",
        f"Direct p50 {fmt(median_of(rounds, 'direct', 'ttft', 'ttft_p50_ms'), 2)} ms, "
        f"p99 {fmt(median_of(rounds, 'direct', 'ttft', 'ttft_p99_ms'), 2)} ms.",
        "",
        row(["system", "added p50, ms", "Δ ref", "added p99, ms", "Δ ref", "errors"]),
        row(["---", "---:", "---:", "---:", "---:", "---:"]),
    ]
    ref50 = added(rounds, ref, "ttft", "ttft_p50_ms") if ref else None
    ref99 = added(rounds, ref, "ttft", "ttft_p99_ms") if ref else None
    for name in names:
        a50 = added(rounds, name, "ttft", "ttft_p50_ms")
        a99 = added(rounds, name, "ttft", "ttft_p99_ms")
        err = median_of(rounds, name, "ttft", "errors")
        lines.append(row([name, fmt(a50, 2), delta(a50, ref50), fmt(a99, 2), delta(a99, ref99),
                          fmt(err, 0)]))  # fmt: skip
    lines += [
        "",
        "## 1b. Start (a fresh start per system and round: spawn to the first answer below "
        "500 of `/readyz`, or of `/v1/models` for a passthrough; RSS then, before any stream)",
        "",
        row(["system", "start-up to ready, s", f"{X} ref", "RSS at start, MB", f"{X} ref"]),
        row(["---", "---:", "---:", "---:", "---:"]),
    ]
    ref_ready = median_of(rounds, ref, "start", "ready_s") if ref else None
    ref_rss_start = median_of(rounds, ref, "start", "rss_mb") if ref else None
    for name in names:
        ready = median_of(rounds, name, "start", "ready_s")
        rss_start = median_of(rounds, name, "start", "rss_mb")
        lines.append(row([name, fmt(ready, 2), ratio(ready, ref_ready), fmt(rss_start),
                          ratio(rss_start, ref_rss_start)]))  # fmt: skip
    lines += [
        "",
        f"## 2. Throughput ({s.tput_streams} concurrent {X} {s.tput_tokens:,} unpaced tokens)",
        "",
        row(["system", "CPU µs/token", f"{X} ref", "Redis µs/token", "tokens/s", "errors"]),
        row(["---", "---:", "---:", "---:", "---:", "---:"]),
    ]
    ref_cpu = median_of(rounds, ref, "throughput", "cpu_us_per_token") if ref else None
    for name in names:
        cpu = median_of(rounds, name, "throughput", "cpu_us_per_token")
        lines.append(row([
            name, fmt(cpu, 2), ratio(cpu, ref_cpu),
            fmt(median_of(rounds, name, "throughput", "redis_cpu_us_per_token"), 2),
            fmt(median_of(rounds, name, "throughput", "tokens_per_s"), 0),
            fmt(median_of(rounds, name, "throughput", "errors"), 0),
        ]))  # fmt: skip
    lines += [
        "",
        f"## 2b. Tool-call arguments ({s.tput_streams} concurrent {X} one call of "
        f"{s.tput_tokens:,} unpaced fragments)",
        "",
        row(["system", "CPU µs/event", f"{X} ref", "Redis µs/event", "events/s", "errors"]),
        row(["---", "---:", "---:", "---:", "---:", "---:"]),
    ]
    ref_tools = median_of(rounds, ref, "tools", "cpu_us_per_token") if ref else None
    for name in names:
        cpu = median_of(rounds, name, "tools", "cpu_us_per_token")
        lines.append(row([
            name, fmt(cpu, 2), ratio(cpu, ref_tools),
            fmt(median_of(rounds, name, "tools", "redis_cpu_us_per_token"), 2),
            fmt(median_of(rounds, name, "tools", "tokens_per_s"), 0),
            fmt(median_of(rounds, name, "tools", "errors"), 0),
        ]))  # fmt: skip
    lines += [
        "",
        f"## 3. Paced ({s.paced_streams:,} streams {X} {s.paced_tps:g} tok/s for "
        f"{s.paced_seconds:g} s, starts spread over {s.paced_ramp_s:g} s)",
        "",
        f"Direct: inter-token gap p50 {fmt(median_of(rounds, 'direct', 'paced', 'gap_p50_ms'))} "
        f"ms, p99 {fmt(median_of(rounds, 'direct', 'paced', 'gap_p99_ms'))} ms.",
        "",
        row(
            [
                "system",
                "CPU µs/token",
                f"{X} ref",
                "Redis µs/token",
                "p99 gap added, ms",
                "Δ ref",
                "RSS/stream, KB",
                f"{X} ref",
                "errors",
            ]
        ),
        row(["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]),
    ]
    ref_cpu = median_of(rounds, ref, "paced", "cpu_us_per_token") if ref else None
    ref_gap = added(rounds, ref, "paced", "gap_p99_ms") if ref else None
    ref_rss = median_of(rounds, ref, "paced", "rss_per_stream_kb") if ref else None
    for name in names:
        cpu = median_of(rounds, name, "paced", "cpu_us_per_token")
        gap = added(rounds, name, "paced", "gap_p99_ms")
        rss = median_of(rounds, name, "paced", "rss_per_stream_kb")
        lines.append(row([
            name, fmt(cpu, 1), ratio(cpu, ref_cpu),
            fmt(median_of(rounds, name, "paced", "redis_cpu_us_per_token"), 1),
            fmt(gap, 1), delta(gap, ref_gap, 1), fmt(rss, 1), ratio(rss, ref_rss),
            fmt(median_of(rounds, name, "paced", "errors"), 0),
        ]))  # fmt: skip
    lines += [
        "",
        f"## 4. Slow readers ({s.slow_readers} readers at {s.slow_bps:g} B/s on "
        f"{s.slow_tokens:,}-token unpaced streams, for {s.slow_seconds:g} s)",
        "",
        row(
            [
                "system",
                "RSS before, MB",
                "RSS growth, MB",
                "Δ ref",
                "tokens read",
                "upstream tokens written",
            ]
        ),
        row(["---", "---:", "---:", "---:", "---:", "---:"]),
    ]
    ref_growth = median_of(rounds, ref, "slow", "rss_growth_mb") if ref else None
    for name in names:
        growth = median_of(rounds, name, "slow", "rss_growth_mb")
        lines.append(row([
            name, fmt(median_of(rounds, name, "slow", "rss_before_mb")), fmt(growth, 2),
            delta(growth, ref_growth), fmt(median_of(rounds, name, "slow", "tokens"), 0),
            fmt(median_of(rounds, name, "slow", "upstream_tokens_written"), 0),
        ]))  # fmt: skip
    lines += [
        "",
        f"## 5. Client gone → upstream connection closed ({s.leave_clients} clients leaving "
        f"after {s.leave_after} tokens of a {s.leave_tps:g} tok/s stream)",
        "",
        row(["system", "p50, ms", "p99, ms", "max, ms", "Δ ref p99", "not closed in 3 s"]),
        row(["---", "---:", "---:", "---:", "---:", "---:"]),
    ]
    ref_close = median_of(rounds, ref, "leave", "close_p99_ms") if ref else None
    for name in names:
        p99 = median_of(rounds, name, "leave", "close_p99_ms")
        lines.append(row([
            name, fmt(median_of(rounds, name, "leave", "close_p50_ms"), 2), fmt(p99, 2),
            fmt(median_of(rounds, name, "leave", "close_max_ms"), 2), delta(p99, ref_close),
            fmt(median_of(rounds, name, "leave", "not_closed_3s"), 0),
        ]))  # fmt: skip
    lines += redis_footprint.report(data.get("footprint"))
    lines += ["", "## Targets", ""]
    lines += targets(rounds, names, ref)
    notes = [(name, problems(rounds, name)) for name in names]
    if any(p for _, p in notes):
        lines += ["", "## Failures and stream errors", ""]
        for name, found in notes:
            lines += [f"- `{name}`: {p}" for p in found]
    lines.append("")
    return "\n".join(lines)


def targets(
    rounds: list[dict[str, dict[str, Any]]], names: list[str], ref: str | None
) -> list[str]:
    """The targets of the performance work, each against the passthrough (`ref`)
    measured in the same run; Redis mode against memory mode, a cluster against
    a single Redis."""
    if ref is None or not any(n.startswith("sluice-") for n in names):
        return ["Not evaluated: needs the aiohttp passthrough and Sluice in the same run."]
    out = []

    def check(label: str, value: float | None, limit: float | None, unit: str) -> None:
        if value is None or limit is None:
            out.append(f"- {label}: not measured")
            return
        verdict = "met" if value <= limit else f"MISSED by {value - limit:,.2f}{unit}"
        out.append(f"- {label}: {value:,.2f}{unit} vs ≤ {limit:,.2f}{unit} — {verdict}")

    def of(system: str, scenario: str, key: str) -> float | None:
        return median_of(rounds, system, scenario, key)

    def plus(value: float | None, slack: float) -> float | None:
        return None if value is None else value + slack

    def times(value: float | None, factor: float) -> float | None:
        return None if value is None else value * factor

    mem, redis, cluster = "sluice-mem-bench", "sluice-redis-bench", "sluice-cluster-bench"
    if mem not in names:
        return [f"Not evaluated: needs `{mem}` in the run."]
    for q, slack in (("50", 0.3), ("99", 1.0)):
        check(
            f"1: added TTFT p{q} ≤ ref + {slack} ms",
            added(rounds, mem, "ttft", f"ttft_p{q}_ms"),
            plus(added(rounds, ref, "ttft", f"ttft_p{q}_ms"), slack),
            " ms",
        )
    check("1b: RSS at start ≤ 60 MB", of(mem, "start", "rss_mb"), 60, " MB")
    check("1b: start-up to ready ≤ 1 s", of(mem, "start", "ready_s"), 1, " s")
    check(
        f"2: unpaced CPU/token ≤ 2{X} ref",
        of(mem, "throughput", "cpu_us_per_token"),
        times(of(ref, "throughput", "cpu_us_per_token"), 2),
        " µs",
    )
    check(
        f"3: paced CPU/token ≤ 1.2{X} ref",
        of(mem, "paced", "cpu_us_per_token"),
        times(of(ref, "paced", "cpu_us_per_token"), 1.2),
        " µs",
    )
    check(
        "3: paced p99 gap added ≤ ref + 5 ms",
        added(rounds, mem, "paced", "gap_p99_ms"),
        plus(added(rounds, ref, "paced", "gap_p99_ms"), 5),
        " ms",
    )
    check(
        "3: paced RSS per stream ≤ ref",
        of(mem, "paced", "rss_per_stream_kb"),
        of(ref, "paced", "rss_per_stream_kb"),
        " KB",
    )
    check(
        "5: client gone → upstream closed p99 ≤ ref",
        of(mem, "leave", "close_p99_ms"),
        of(ref, "leave", "close_p99_ms"),
        " ms",
    )
    if redis in names:
        check("5: Redis mode: closed p99 ≤ 20 ms", of(redis, "leave", "close_p99_ms"), 20, " ms")
        check(
            f"3: Redis mode paced CPU/token ≤ 1.15{X} memory mode",
            of(redis, "paced", "cpu_us_per_token"),
            times(of(mem, "paced", "cpu_us_per_token"), 1.15),
            " µs",
        )
        check(
            "3: Redis mode paced p99 gap ≤ memory mode + 10 ms",
            added(rounds, redis, "paced", "gap_p99_ms"),
            plus(added(rounds, mem, "paced", "gap_p99_ms"), 10),
            " ms",
        )
        if cluster in names:
            check(
                f"3: cluster paced CPU/token ≤ 1.2{X} single Redis",
                of(cluster, "paced", "cpu_us_per_token"),
                times(of(redis, "paced", "cpu_us_per_token"), 1.2),
                " µs",
            )
    return out


def scrub(text: str, logdir: str) -> str:
    """No path of the machine that ran it goes into a report that may be committed."""
    for path, name in ((logdir, "<logs>"), (str(ROOT), "<repo>"), (tempfile.gettempdir(), "<tmp>")):
        text = text.replace(path, name)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the Sluice benchmark.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="about two minutes, smaller sizes")
    group.add_argument("--smoke", action="store_true", help="seconds; for the test suite")
    parser.add_argument("--systems", help="comma-separated names (default: all of the mode)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument("--rounds", type=int, default=None, help="override the mode's rounds")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {SCENARIOS}"
    )
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        help="another checkout (e.g. `git worktree add`): its Sluice systems run beside these",
    )
    args = parser.parse_args(argv)
    scenarios = tuple(args.scenarios.split(","))
    if not set(scenarios) <= set(SCENARIOS):
        parser.error(f"--scenarios: choose from {SCENARIOS}")
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    only = args.systems.split(",") if args.systems else None
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    command = "python -m bench.run" + "".join(f" {a}" for a in (argv or sys.argv[1:]))

    def write(data: dict[str, Any]) -> None:
        elapsed = time.monotonic() - t0
        args.out.write_text(scrub(report(data, command, started, elapsed), data["logdir"]))
        if args.json is not None:
            args.json.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        print(f"wrote {args.out} after {elapsed:.0f} s; logs in {data['logdir']}", flush=True)

    write(asyncio.run(run_all(mode, only, args.rounds, write, scenarios, args.base)))


if __name__ == "__main__":
    main()
