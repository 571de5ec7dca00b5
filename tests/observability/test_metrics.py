"""GET /metrics: Prometheus text that prometheus-client's parser reads, with
live gauges, fallbacks and upstream errors counted, and bounded labels."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from app.errors import UpstreamError
from app.observability.metrics import OTHER_MODEL, ModelLabels
from app.providers.base import ChatRequest, Chunk, Provider
from app.providers.registry import ProviderRegistry
from app.providers.simulated import SimulatedProvider
from app.settings import Settings
from tests.observability.capture import scrape
from tests.support.client import read_sse
from tests.support.server import run_sluice


class Broken:
    """An upstream that fails before its first token, retryably: a fallback moves on."""

    name = "broken"
    accepts: frozenset[str] = frozenset()

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[Chunk]:
        raise UpstreamError("the broken upstream is down", retryable=True, code="503")
        yield Chunk()  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        return None


def registry() -> ProviderRegistry:
    sim = SimulatedProvider(default_tps=0, default_ttft_ms=0)
    aliases: dict[str, tuple[str, ...]] = {"team/default": ("broken/model", "sim/lorem")}
    providers: dict[str, Provider] = {"sim": sim, "broken": Broken()}
    return ProviderRegistry(providers, aliases)


async def test_metrics_are_open_and_parse_with_prometheus_clients_parser() -> None:
    settings = Settings(api_keys=("sk-metrics-test-key",))
    async with run_sluice(settings, registry) as server, httpx.AsyncClient() as client:
        exported = await scrape(client, server.url)

    for family in (
        "sluice_active_streams",
        "sluice_attached_readers",
        "sluice_ttft_seconds",
        "sluice_upstream_ttft_seconds",
        "sluice_tokens_per_second",
        "sluice_stream_duration_seconds",
        "sluice_send_blocked_seconds",
        "sluice_streams",
        "sluice_reconnections",
        "sluice_upstream_errors",
        "sluice_fallbacks",
    ):
        assert family in exported.families, family
    assert exported.families["sluice_ttft_seconds"].type == "histogram"
    assert exported.families["sluice_streams"].type == "counter"
    assert exported.families["sluice_active_streams"].type == "gauge"


async def test_a_fallback_is_counted_with_the_upstream_error_that_caused_it() -> None:
    async with run_sluice(Settings(), registry) as server, httpx.AsyncClient() as client:
        before = await scrape(client, server.url)
        url = f"{server.url}/v1/stream?model=team/default&prompt=x&max_tokens=4"
        result = await read_sse(client, url)
        after = await scrape(client, server.url)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert result.terminal is not None
    assert result.terminal.event == "done"
    assert delta("sluice_fallbacks_total", provider="broken", model="team/default") == 1
    assert delta("sluice_upstream_errors_total", provider="broken", type="upstream_error") == 1
    done = {"provider": "sim", "model": "team/default", "outcome": "done"}
    assert delta("sluice_streams_total", **done) == 1
    assert delta("sluice_output_tokens_total", provider="sim", model="team/default") == 4


async def test_a_failed_stream_counts_its_outcome_and_upstream_error() -> None:
    async with run_sluice(Settings(), registry) as server, httpx.AsyncClient() as client:
        before = await scrape(client, server.url)
        url = f"{server.url}/v1/stream?model=sim/lorem&prompt=x&max_tokens=9&sim_fail_after=3"
        result = await read_sse(client, url)
        after = await scrape(client, server.url)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert result.terminal is not None
    assert result.terminal.event == "error"
    failed = {"provider": "sim", "model": "sim/lorem", "outcome": "upstream_error"}
    assert delta("sluice_streams_total", **failed) == 1
    assert delta("sluice_upstream_errors_total", provider="sim", type="upstream_error") == 1
    assert delta("sluice_fallbacks_total", provider="sim", model="sim/lorem") == 0
    assert delta("sluice_output_tokens_total", provider="sim", model="sim/lorem") == 3


async def test_live_gauges_count_a_running_stream_and_its_reader() -> None:
    async with run_sluice(Settings(), registry) as server, httpx.AsyncClient() as client:
        idle = await scrape(client, server.url)
        url = f"{server.url}/v1/stream?model=sim/lorem&prompt=x&max_tokens=500&sim_tps=5"
        async with client.stream("GET", url) as response:
            chunks = aiter(response.aiter_raw())  # held: dropping it closes the response
            await anext(chunks)  # the stream is running and followed
            busy = await scrape(client, server.url)
            sid = response.headers["x-stream-id"]
            await response.aclose()
        generation = server.services.generations.local(sid)
        assert generation is not None
        generation.cancel()
        await generation.wait_ended()
        done = await scrape(client, server.url)

    assert busy.value("sluice_active_streams") - idle.value("sluice_active_streams") == 1
    assert busy.value("sluice_attached_readers") - idle.value("sluice_attached_readers") == 1
    assert done.value("sluice_active_streams") == idle.value("sluice_active_streams")


def test_model_labels_stay_bounded_whatever_names_clients_send() -> None:
    labels = ModelLabels(["sim/lorem", "team/default"], limit=2)
    assert labels("openai/a") == "openai/a"
    assert labels("openai/b") == "openai/b"
    assert labels("openai/c") == OTHER_MODEL  # over the limit of unconfigured names
    assert labels("openai/a") == "openai/a"  # a name once admitted keeps its label
    assert labels("team/default") == "team/default"  # configured names always have theirs
    assert labels("openai/" + "x" * 200) == OTHER_MODEL
