"""The benchmark tools run and produce figures, at a tiny size.

No timing assertions: figures from a loaded 2-core CI machine mean nothing; what
matters here is that `make bench` would work and that every system it measures
answers every scenario.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.fake_upstream import StreamShape, serve
from bench.loadclient import LoadSpec, run_load

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


async def _start_upstream() -> tuple[int, asyncio.Task[None]]:
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve("127.0.0.1", 0, StreamShape(10, 0, 0), ready))
    return await ready, task


async def test_load_client_counts_every_token_of_the_fake_upstream() -> None:
    port, server = await _start_upstream()
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = '{"model": "bench/tok50-rid{rid}", "stream": true}'
        summary = await run_load(LoadSpec(url, body=body, concurrency=3, requests_per_worker=2))
        assert summary["errors"] == 0, summary["error_samples"]
        assert summary["complete"] == 6
        assert summary["tokens"] == 300
        assert len(summary["ttft_ms"]) == 6
    finally:
        server.cancel()


async def test_load_client_counts_every_arguments_fragment_of_a_tool_call() -> None:
    port, server = await _start_upstream()
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = '{"model": "bench/tok50-tools1-rid{rid}", "stream": true}'
        summary = await run_load(LoadSpec(url, body=body, concurrency=3, requests_per_worker=2))
        assert summary["errors"] == 0, summary["error_samples"]
        assert summary["complete"] == 6
        assert summary["tokens"] == 300
    finally:
        server.cancel()


async def test_upstream_stats_record_when_a_leaving_client_closed() -> None:
    port, server = await _start_upstream()
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = '{"model": "bench/tok1000-tps200-rid{rid}", "stream": true}'
        summary = await run_load(LoadSpec(url, body=body, concurrency=2, leave_after=3))
        assert set(summary["left_at"]) == {"0", "1"}
        stats: dict[str, object] = {}
        for _ in range(50):  # the close reaches the upstream a moment later
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /stats HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            stats = json.loads((await reader.read()).partition(b"\r\n\r\n")[2])
            writer.close()
            records = stats["requests"]
            assert isinstance(records, list)
            if all(r["conn_closed_at"] is not None for r in records):
                break
            await asyncio.sleep(0.02)
        records = stats["requests"]
        assert isinstance(records, list)
        assert {r["rid"] for r in records} == {"0", "1"}
        assert all(r["closed_by"] == "client" and r["tokens_written"] < 1000 for r in records)
    finally:
        server.cancel()


def test_runner_smoke_measures_every_system(tmp_path: Path) -> None:
    out, raw = tmp_path / "RESULTS.md", tmp_path / "results.json"
    subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out), "--json", str(raw)],
        cwd=ROOT,
        check=True,
        timeout=170,
    )
    data = json.loads(raw.read_text())
    names = [system["name"] for system in data["systems"]]
    assert "passthrough-httpx" in names
    assert "passthrough-aiohttp" in names
    assert "sluice-mem-bench" in names or "sluice-mem-bench" in data["skipped"]
    keys = {
        "ttft": "ttft_p50_ms",
        "throughput": "cpu_us_per_token",
        "paced": "gap_p99_ms",
        "slow": "rss_growth_mb",
        "leave": "close_p99_ms",
    }
    (results,) = data["rounds"]
    for name in names:
        for scenario, key in keys.items():
            found = results[name][scenario]
            assert "failed" not in found, (name, scenario, found)
            assert isinstance(found.get(key), int | float), (name, scenario, found)
            assert found["errors"] == 0, (name, scenario, found)
    text = out.read_text()
    assert "passthrough-aiohttp" in text
    assert str(ROOT) not in text  # the report may be committed: no path of this machine


def test_cancel_bench_cancels_every_run_and_sees_each_upstream_closed(tmp_path: Path) -> None:
    out, raw = tmp_path / "RESULTS.md", tmp_path / "cancel.json"
    out.write_text("# results of bench/run.py\n")
    command = [sys.executable, "-m", "bench.cancel", "--runs", "2", "--modes", "memory,redis-B"]
    subprocess.run(
        [*command, "--out", str(out), "--json", str(raw)], cwd=ROOT, check=True, timeout=170
    )
    modes = json.loads(raw.read_text())
    for mode in ("memory", "redis-B"):
        assert modes[mode]["statuses"] == {"cancelled": 2}
        assert modes[mode]["not_closed"] == 0
        assert isinstance(modes[mode]["closed"]["p99"], float)
    text = out.read_text()
    assert text.startswith("# results of bench/run.py\n")  # the rest of the file is kept
    assert text.count("## 6. Cancel") == 1
