"""Prometheus metrics: definitions, bounded labels, and the text exposition.

Nothing here is called per token. Streams count in locals (`Stats`) and the
figures are observed once, when a stream or a response ends; the only
calls outside those ends are the gauges, moved once per stream start/end
and once per reader attach/detach.

Labels are bounded: `provider` is a configured provider name, `model` a
public model name that resolved (see `ModelLabels`), `outcome` and `type`
come from the error tree. A stream id is never a label.

Several workers: prometheus-client's multiprocess mode. When the
environment variable `PROMETHEUS_MULTIPROC_DIR` names a directory at
import time, every metric lives in memory-mapped files there, and
`/metrics` (in any worker) merges the files of all of them: counters and
histograms are summed, the live gauges summed over the processes still
alive (`livesum`). Without it, one process, the default registry.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER_MODEL = "other"
# Strategy: `openai/<anything>` resolves (the upstream knows its models), so a
# client could mint label values at will. Configured names always get their
# own label; beyond them, the first few distinct names seen do, then "other".
MAX_UNCONFIGURED_MODELS = 32
MAX_MODEL_LABEL_CHARS = 128

_SECONDS_FAST = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SECONDS_LONG = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_SECONDS_BLOCKED = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)
_RATES = (1.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0, 1000.0)

ACTIVE_STREAMS = Gauge(
    "sluice_active_streams",
    "Generations running now (started, not yet ended).",
    multiprocess_mode="livesum",
)
ATTACHED_READERS = Gauge(
    "sluice_attached_readers",
    "Readers following a stream of this process now (SSE responses and stream:false waits).",
    multiprocess_mode="livesum",
)
TTFT = Histogram(
    "sluice_ttft_seconds",
    "Time to first token, from the arrival of the request that created the stream.",
    ["provider", "model"],
    buckets=_SECONDS_FAST,
)
UPSTREAM_TTFT = Histogram(
    "sluice_upstream_ttft_seconds",
    "The upstream's own time to first token: from opening the answering provider's "
    "stream to its first token.",
    ["provider", "model"],
    buckets=_SECONDS_FAST,
)
TOKENS_PER_SECOND = Histogram(
    "sluice_tokens_per_second",
    "Output tokens per second over a generation, from its first token to its end.",
    ["provider", "model"],
    buckets=_RATES,
)
STREAM_DURATION = Histogram(
    "sluice_stream_duration_seconds",
    "From the arrival of the creating request to the stream's terminal event.",
    ["provider", "model"],
    buckets=_SECONDS_LONG,
)
SEND_BLOCKED = Histogram(
    "sluice_send_blocked_seconds",
    "Per SSE response: time spent waiting in send() for a slow client.",
    ["model"],
    buckets=_SECONDS_BLOCKED,
)
STREAMS = Counter(
    "sluice_streams",
    "Streams ended, by outcome (done or the terminal error's type).",
    ["provider", "model", "outcome"],
)
RESPONSES = Counter(
    "sluice_responses",
    "SSE responses ended: delivered (terminal event sent), client_gone, incomplete.",
    ["model", "outcome"],
)
RECONNECTIONS = Counter(
    "sluice_reconnections",
    "Readers that attached to a stream after its first reader (resumes, extra tabs).",
)
UPSTREAM_ERRORS = Counter(
    "sluice_upstream_errors",
    "Upstream failures by provider and error type, including those a fallback recovered.",
    ["provider", "type"],
)
FALLBACKS = Counter(
    "sluice_fallbacks",
    "Moves to an alias's next target; provider is the one that failed.",
    ["provider", "model"],
)
OUTPUT_TOKENS = Counter(
    "sluice_output_tokens",
    "Output tokens generated (the provider's usage when given, counted otherwise).",
    ["provider", "model"],
)
BYTES_SENT = Counter(
    "sluice_bytes_sent",
    "Body bytes written to SSE clients.",
    ["model"],
)


class ModelLabels:
    """Maps a resolved public model name to a bounded label value."""

    def __init__(self, configured: Iterable[str], limit: int = MAX_UNCONFIGURED_MODELS) -> None:
        self._configured = frozenset(configured)
        self._seen: set[str] = set()
        self._limit = limit

    def __call__(self, model: str) -> str:
        if model in self._configured or model in self._seen:
            return model
        if len(self._seen) >= self._limit or len(model) > MAX_MODEL_LABEL_CHARS:
            return OTHER_MODEL
        self._seen.add(model)
        return model


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def render() -> bytes:
    """The exposition of every metric, merged over workers in multiprocess mode."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def process_exiting() -> None:
    """Drop this process's live gauges from the merged view (multiprocess mode)."""
    if multiprocess_dir() is not None:
        _multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
