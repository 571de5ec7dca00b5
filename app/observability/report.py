"""Each stream's figures, reported once: a log line and metrics at its start and
at its end, and a line and metrics at the end of every SSE response.

Strategy: a generation can end before its readers have finished sending
(the terminal event is in the log before a slow client has it), and a reader
may resume an ended stream minutes later. So the figures are split where they
become final: `stream.end`, when the generation ends, carries what the
upstream side decided (outcome, TTFT, tokens/s, output tokens, duration,
reconnections so far); `response.end`, when each SSE response ends, carries
what one client got (bytes, time blocked in `send`, client_gone). Summing a
stream's `response.end` lines gives its delivery totals.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from app.observability import metrics

if TYPE_CHECKING:
    from app.core.events import StreamMeta
    from app.errors import UpstreamError
    from app.providers.registry import Target
    from app.streaming.generation import Generation, Stats
    from app.streaming.responder import Delivery

log = structlog.get_logger("sluice.stream")

# Terminal types that are the upstream's failure (the rest are Sluice's decisions).
UPSTREAM_OUTCOMES = frozenset({"upstream_error", "upstream_timeout", "rate_limited"})


class StreamAttempts:
    """The fallback chain's observer for one stream (`app.providers.fallback.Attempts`)."""

    def __init__(self, stats: Stats, stream_id: str, model_label: str) -> None:
        self._stats = stats
        self._stream_id = stream_id
        self._model = model_label

    def opening(self, target: Target) -> None:
        self._stats.provider = target.provider.name
        self._stats.upstream_opened = time.monotonic()

    def falling_back(self, target: Target, error: UpstreamError) -> None:
        provider = target.provider.name
        metrics.UPSTREAM_ERRORS.labels(provider, error.type).inc()
        metrics.FALLBACKS.labels(provider, self._model).inc()
        # The message is the upstream's and may quote the request: type and code only.
        log.warning(
            "stream.fallback",
            stream_id=self._stream_id,
            provider=provider,
            error_type=error.type,
            error_code=error.code,
        )


def stream_started(generation: Generation, log_content: bool) -> None:
    metrics.ACTIVE_STREAMS.inc()
    request = generation.request
    content = {"messages": [m.content for m in request.messages]} if log_content else {}
    log.info(
        "stream.start",
        stream_id=generation.meta.stream_id,
        model=request.model,
        provider=generation.stats.provider,
        max_tokens=request.max_tokens,
        message_count=len(request.messages),
        **content,
    )


def stream_ended(generation: Generation, model_label: str, log_content: bool) -> None:
    stats = generation.stats
    ended = stats.ended if stats.ended is not None else time.monotonic()
    duration = ended - stats.started
    tps = stats.tokens_per_second(ended)
    _observe_stream(stats, model_label, duration, tps)
    events = generation.log.events if log_content else []
    content = (
        {"output": "".join(e.text for e in events if e.kind == "token")} if log_content else {}
    )
    log.info(
        "stream.end",
        stream_id=generation.meta.stream_id,
        model=generation.meta.model,
        provider=stats.provider,
        outcome=stats.outcome,
        ttft_ms=_round(stats.ttft_ms),
        upstream_ttft_ms=_round(stats.upstream_ttft_ms),
        tokens_per_second=_round(tps),
        output_tokens=stats.output_tokens,
        tokens=stats.tokens,
        duration_s=round(duration, 3),
        reconnections=stats.reconnections,
        readers=generation.readers,
        **content,
    )


def _observe_stream(stats: Stats, model: str, duration: float, tps: float | None) -> None:
    provider = stats.provider
    metrics.ACTIVE_STREAMS.dec()
    metrics.STREAMS.labels(provider, model, stats.outcome).inc()
    metrics.STREAM_DURATION.labels(provider, model).observe(duration)
    metrics.OUTPUT_TOKENS.labels(provider, model).inc(stats.output_tokens)
    if stats.ttft_ms is not None:
        metrics.TTFT.labels(provider, model).observe(stats.ttft_ms / 1000)
    if stats.upstream_ttft_ms is not None:
        metrics.UPSTREAM_TTFT.labels(provider, model).observe(stats.upstream_ttft_ms / 1000)
    if tps is not None:
        metrics.TOKENS_PER_SECOND.labels(provider, model).observe(tps)
    if stats.outcome in UPSTREAM_OUTCOMES:
        metrics.UPSTREAM_ERRORS.labels(provider, stats.outcome).inc()


def response_outcome(delivery: Delivery) -> str:
    if delivery.client_gone:
        return "client_gone"
    return "delivered" if delivery.complete else "incomplete"


def response_ended(meta: StreamMeta, delivery: Delivery, model_label: str) -> None:
    outcome = response_outcome(delivery)
    metrics.RESPONSES.labels(model_label, outcome).inc()
    metrics.SEND_BLOCKED.labels(model_label).observe(delivery.send_blocked_s)
    metrics.BYTES_SENT.labels(model_label).inc(delivery.bytes_sent)
    log.info(
        "response.end",
        stream_id=meta.stream_id,
        model=meta.model,
        outcome=outcome,
        last_seq=delivery.last_seq,
        bytes_sent=delivery.bytes_sent,
        send_blocked_ms=round(delivery.send_blocked_s * 1000, 1),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
